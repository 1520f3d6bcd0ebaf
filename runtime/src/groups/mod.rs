//! Group sources beyond the groups file: the organisation's directory over HTTP, behind a cache
//! kept in memory or shared between replicas in Redis.

use std::time::Duration;

use ipm_policy::groups::Groups;

pub mod cache;
pub mod directory;
pub mod redis;

pub use cache::{FlushReach, GroupCache};
pub use directory::Directory;

/// A membership and when the directory gave it (by the cache's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedGroups {
    pub groups: Groups,
    pub fetched_at: Duration,
}
