//! ipm-runtime: what authz and ipm-api share around the policy core: reading configuration,
//! binding and draining listeners, signals, telemetry and metrics, hot reload, the group
//! sources (directory, memory and Redis caches), the database pool, and the [`Enforcer`] that
//! runs the core's pipeline with its lookups filled in.

pub mod clock;
pub mod config;
#[cfg(feature = "database")]
pub mod db;
#[cfg(feature = "database")]
pub mod db_entities;
#[cfg(feature = "database")]
pub mod db_lists;
pub mod enforcer;
pub mod groups;
pub mod headers;
pub mod listen;
pub mod metrics;
pub mod reload;
pub mod search_pages;
pub mod service;
pub mod signals;
pub mod telemetry;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, ListenAddr};
pub use enforcer::{DecisionObserver, Enforcer};
pub use listen::{Listener, serve};
pub use metrics::Metrics;
pub use reload::{Reload, Reloader};
pub use service::{Core, CoreSettings, ServiceHandle, StartError};
pub use signals::Signals;
