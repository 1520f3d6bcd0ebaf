//! authz's integration tests: each starts the real server on 127.0.0.1:0 and talks HTTP to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod authzen;
mod child;
mod directory;
mod edge_entities;
mod edge_images;
mod envoy_grpc;
mod envoy_http;
mod faults;
mod policy_tools;
mod props;
mod reload;
mod reload_busy;
mod seams;
mod soak;
mod startup;
mod support;
