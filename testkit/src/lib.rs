//! What the tests of `authz`, `ipm-api` and `ipm-e2e` share, so each crate's `tests/it/support.rs`
//! keeps only what needs the crate itself (its `spawn_app()`).
//!
//! Generic on purpose: this crate must not depend on `authz` or `ipm-api`, or their test binaries
//! would link two copies of them.
// Test code: a setup that cannot be made fails the test that asked for it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod directory;
mod metrics;
mod net;
mod postgres;
mod process;
mod proxy;
mod repo;
mod s3;
mod services;
mod wait;

pub use directory::Directory;
pub use metrics::metric_value;
pub use net::{free_port, loopback};
pub use postgres::PgDatabase;
pub use process::Running;
pub use proxy::FaultProxy;
pub use repo::{copy_policies, files_under, migrations_dir, migrator, repo_root, shipped_policies};
pub use s3::S3Server;
pub use services::{Service, in_ci, redis_url, require};
pub use wait::{eventually, wait_listening};
