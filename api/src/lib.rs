//! ipm-api: the Image Project Manager API. Projects belong to groups; every `/api` request is
//! authorized in-process by authz's enforcer against the same Cedar policies as the proxy.
//!
//! `filters` translate HTTP, `handlers` act, `models` hold data, `db` stores it, `access` is
//! the enforcement point and `error` the one map from failures to statuses. Images: `images`
//! (routes), `upload` (streaming into `storage`), `sniff`, `filename`, `image_store` (rows),
//! `gc` (what a crash leaves behind).

mod access;
pub mod config;
pub mod db;
pub mod error;
mod filename;
pub mod filters;
pub mod gc;
mod handlers;
pub mod image_config;
pub mod image_store;
mod images;
pub mod models;
mod openapi;
mod projects;
mod reply;
pub mod server;
mod sniff;
pub mod storage;
mod upload;
