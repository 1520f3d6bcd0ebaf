//! ipm-api: the Image Project Manager API. Projects belong to groups; every `/api` request is
//! authorized in-process by authz's enforcer against the same Cedar policies as the proxy.
//!
//! `filters` translate HTTP, `handlers` act, `models` hold data, `db` stores it, `access` is
//! the enforcement point and `error` the one map from failures to statuses.

pub mod access;
pub mod config;
pub mod db;
pub mod error;
pub mod filters;
pub mod handlers;
pub mod models;
pub mod openapi;
pub mod server;
