//! ipm-api: the Image Project Manager API. Projects belong to groups; every `/api` request is
//! authorized in-process by the shared enforcer (`ipm-runtime`) against the same Cedar policies
//! as the proxy.
//!
//! - `server` starts and stops it; `config` and `image_config` read its settings.
//! - `filters` translate HTTP into handler calls (the image routes in `images::routes`), built
//!   from the filters in `extract`, and one `recover` turns every rejection into a JSON error.
//! - Handlers act on `state`, what they all share: `projects`; `images` (`handlers` for list,
//!   metadata and delete, `upload`, `download`); `handlers` for JSON bodies and the service
//!   routes. All answer through `reply`: JSON, errors, path ids, query structs, pagination.
//! - `lists` make every list show exactly what its item route allows.
//! - `access` is the enforcement point, `csrf` refuses what another site makes a browser send,
//!   `error` is the one map from failures to statuses.
//! - `models` hold project data and `db` stores it; `image_store` stores image rows.
//! - Image bytes: `upload` streams them into `storage` (a local folder or S3), `sniff` judges
//!   them from their content, `filename` cleans their names; `deletions` removes a
//!   deleted row's object after the delete commits; `gc` removes what a crash leaves;
//!   `thumbnails` makes the small copies the web UI shows, beside each object.
//! - `openapi` is the document `/api/openapi.json` serves; `ui` is the web UI at `/`.
//!
//! Public are the modules the binary, the tests and the benchmarks use, and those whose types
//! they meet through them (`models` and `error`, through `db`).

mod access;
pub mod config;
pub mod csrf;
pub mod db;
pub mod deletions;
pub mod error;
mod extract;
mod filename;
pub mod filters;
#[cfg(test)]
mod fuzz;
pub mod gc;
mod handlers;
pub mod image_config;
pub mod image_store;
mod images;
mod lists;
pub mod models;
mod openapi;
mod projects;
mod reply;
pub mod server;
mod sniff;
mod state;
pub mod storage;
mod thumbnails;
mod ui;
mod upload;
