//! End-to-end tests: the shipped `nginx/` and `envoy/` configs, run by a real nginx in front of
//! authz and ipm-api and a real Envoy in front of authz. Tests that need nginx or Envoy read
//! `NGINX_BIN` or `ENVOY_BIN` and are ignored by a plain `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod basic_auth;
mod browser;
mod configs;
mod credentials;
mod envoy;
mod failures;
mod identity_layer;
mod images;
mod nginx;
mod stack;
mod stand_ins;
mod support;
mod wire;
