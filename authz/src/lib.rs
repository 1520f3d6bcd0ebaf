//! authz: the sidecar that answers nginx `auth_request` and Envoy `ext_authz` from Cedar
//! policies on disk, reloaded when a policy author saves.
//!
//! The decision itself lives in `ipm-policy` (pure) and the service plumbing in
//! `ipm-runtime`; this crate holds what only the sidecar has: its configuration, the protocol
//! [`adapters`] (nginx, Envoy HTTP and gRPC, admin), shadow mode, and the policy authors'
//! [`tools`] (check, explain, test, diff, fmt, coverage) behind the `authz` command.

pub mod adapters;
pub mod cli;
pub mod config;
pub mod server;
pub mod shadow;
pub mod tools;

pub use config::Config;
pub use server::{Overrides, ServerHandle, StartError, run, run_with};
