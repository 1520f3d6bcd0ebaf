//! authz's protocol adapters. Each translates its wire format into the core's `AuthzRequest`
//! and the `Decision` back: nginx `auth_request`, Envoy ext_authz over HTTP and gRPC, plus the
//! probes and the admin listener.

pub mod admin;
pub mod envoy_grpc;
pub mod envoy_http;
pub mod http;
pub mod nginx;
pub mod probes;

use std::convert::Infallible;

use warp::Filter;
use warp::http::Response;
use warp::hyper::body::Bytes;

use http::{HttpState, recover};

/// All of authz's HTTP routes on the main listener.
pub fn routes(
    state: HttpState,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone {
    nginx::filter(state.clone())
        .or(envoy_http::filter(state.clone()))
        .unify()
        .or(probes::filter(state))
        .unify()
        .recover(recover)
        .unify()
}
