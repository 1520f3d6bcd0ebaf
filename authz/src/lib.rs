//! authz: authorization decisions for requests behind nginx (`auth_request`) and Envoy
//! (`ext_authz`), from Cedar policies on disk that reload when a policy author saves.
//!
//! The decision core (`enforcer`, `decision`, `policy`, `routes`, `identity`, `secret`,
//! `groups`) has no HTTP in it; `http` and `server` are the service around it.

pub mod admin;
pub mod cli;
pub mod config;
pub mod coverage;
#[cfg(feature = "database")]
pub mod db_entities;
pub mod decision;
pub mod diagnostics;
pub mod directory;
pub mod enforcer;
pub mod envoy_grpc;
pub mod envoy_http;
pub mod explain;
pub mod formatting;
pub mod group_cache;
pub mod groups;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod policy;
pub mod policy_diff;
pub mod policy_tests;
pub mod redis_cache;
pub mod reload;
pub mod routes;
pub mod secret;
pub mod server;
pub mod shadow;
pub mod slice;
pub mod store;
pub mod telemetry;
