//! The nginx adapter: `auth_request` subrequests on `/auth`, carrying the original request in
//! `X-Original-Method` and `X-Original-URI` and the identity in the configured headers.

use std::convert::Infallible;

use ipm_policy::request::AuthzRequest;
use ipm_runtime::service::mark_sensitive;
use warp::Filter;
use warp::http::header::HeaderName;
use warp::http::{HeaderMap, Response};
use warp::hyper::body::Bytes;

use super::http::{HeaderNames, HttpState, client_ip, decision_response, field, with_state};

/// The adapter name in decision logs and metrics.
pub const ADAPTER: &str = "nginx";

/// Builds the protocol-neutral request from nginx's subrequest headers.
pub fn nginx_request<'a>(headers: &'a HeaderMap, names: &HeaderNames) -> AuthzRequest<'a> {
    AuthzRequest {
        method: field(headers, &HeaderName::from_static("x-original-method")),
        uri: field(headers, &HeaderName::from_static("x-original-uri")),
        user: field(headers, &names.user),
        secret: field(headers, &names.secret),
        client_ip: client_ip(headers, names.client_ip.as_ref()),
    }
}

async fn auth(mut headers: HeaderMap, state: HttpState) -> Result<Response<Bytes>, Infallible> {
    mark_sensitive(&mut headers, &state.names.secret);
    let req = nginx_request(&headers, &state.names);
    let d = state.enforcer.authorize(&req, ADAPTER).await;
    Ok(decision_response(&d, &state.names, &[]))
}

/// `/auth`.
pub fn filter(
    state: HttpState,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone {
    warp::path!("auth")
        .and(warp::header::headers_cloned())
        .and(with_state(state))
        .and_then(auth)
}
