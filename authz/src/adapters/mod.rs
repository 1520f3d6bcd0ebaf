//! authz's protocol adapters. Each translates its wire format into the core's `AuthzRequest`
//! and the `Decision` back: nginx `auth_request`, Envoy ext_authz over HTTP and gRPC, plus the
//! probes and the admin listener. AuthZEN callers ask Cedar questions directly.

pub mod admin;
pub mod authzen;
pub mod envoy_grpc;
pub mod envoy_http;
pub mod http;
pub mod nginx;
pub mod probes;

use std::convert::Infallible;

use warp::Filter;
use warp::http::Response;
use warp::hyper::body::Bytes;

use authzen::AuthzenState;
use http::{HttpState, recover};

/// All of authz's HTTP routes on the main listener; AuthZEN's too when it is served there.
pub fn routes(
    state: HttpState,
    authzen: Option<AuthzenState>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone {
    authzen::filter(authzen)
        .or(nginx::filter(state.clone()))
        .unify()
        .or(envoy_http::filter(state.clone()))
        .unify()
        .or(probes::filter(state))
        .unify()
        .recover(recover)
        .unify()
}

/// The AuthZEN routes alone, for their own listener.
pub fn authzen_routes(
    state: AuthzenState,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone {
    authzen::filter(Some(state)).recover(recover).unify()
}
