//! ipm-api's integration tests: the real server on 127.0.0.1:0 over HTTP, each scenario
//! against SQLite and against a fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod binary;
mod csrf;
mod deletions;
mod directory;
mod faults;
mod images;
mod input;
mod isolation;
mod lists;
mod openapi;
mod outage;
mod pagination;
mod projects;
mod seams;
mod support;
mod thumbnails;
mod ui;
mod uploads_limits;
