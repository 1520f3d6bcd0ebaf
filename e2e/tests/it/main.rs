//! End-to-end tests: the shipped `nginx/` configs, run by a real nginx in front of authz and
//! ipm-api. Tests that need nginx read `NGINX_BIN` and are ignored by a plain `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod basic_auth;
mod configs;
mod failures;
mod identity_layer;
mod images;
mod nginx;
mod stack;
mod stand_ins;
mod support;
mod wire;
