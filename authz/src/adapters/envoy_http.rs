//! The Envoy ext_authz HTTP adapter under `/envoy/`: Envoy sends the original method, `/envoy`
//! followed by the original path and query, and only its allow-listed headers.

use std::convert::Infallible;

use warp::Filter;
use warp::filters::path::FullPath;
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::{HeaderMap, Method, Response};
use warp::hyper::body::Bytes;

use super::http::{GROUPS_TRUNCATED_HEADER, HeaderNames, HttpState, decision_response};
use ipm_policy::request::{AuthzRequest, HeaderField};
use ipm_runtime::service::mark_sensitive;

/// The adapter name in decision logs and metrics.
pub const ADAPTER: &str = "envoy_http";

/// Envoy's `http_service.path_prefix` must be this.
pub const PATH_PREFIX: &str = "/envoy";

/// Envoy removes the headers this response header names from the request it forwards upstream.
pub const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// Builds the protocol-neutral request. `uri` is the original path and query: the request's
/// own, less the prefix.
pub fn envoy_request<'a>(
    method: &'a Method,
    uri: &'a str,
    headers: &'a HeaderMap,
    names: &HeaderNames,
) -> AuthzRequest<'a> {
    let mut req = super::nginx::nginx_request(headers, names);
    req.method = HeaderField::One(method.as_str().as_bytes());
    req.uri = if uri.is_empty() {
        HeaderField::Missing
    } else {
        HeaderField::One(uri.as_bytes())
    };
    req
}

/// The original URI: the path after `/envoy`, and the query when there is one.
fn original_uri(path: &FullPath, query: &str) -> String {
    let path = path.as_str().strip_prefix(PATH_PREFIX).unwrap_or_default();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

async fn check(
    method: Method,
    path: FullPath,
    query: String,
    mut headers: HeaderMap,
    state: HttpState,
) -> Result<Response<Bytes>, Infallible> {
    mark_sensitive(&mut headers, &state.names.secret);
    let uri = original_uri(&path, &query);
    let req = envoy_request(&method, &uri, &headers, &state.names);
    let d = state.enforcer.authorize_concealed(&req, ADAPTER).await;
    let truncated = d
        .identity(state.names.groups_max)
        .is_some_and(|(_, _, truncated)| truncated);
    // A client-sent truncation flag must not survive when authz did not set one.
    let remove = if truncated {
        state.names.secret.as_str().to_string()
    } else {
        format!("{},{GROUPS_TRUNCATED_HEADER}", state.names.secret.as_str())
    };
    let extra = HeaderValue::from_str(&remove)
        .map(|v| vec![(HeaderName::from_static(HEADERS_TO_REMOVE), v)])
        .unwrap_or_default();
    Ok(decision_response(&d, &state.names, &extra))
}

/// `/envoy/...` with any method. A malformed request is a 401/403 from the enforcer, never a 5xx.
pub fn filter(
    state: HttpState,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path("envoy")
        .and(warp::method())
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::any().map(move || state.clone()))
        .and_then(check)
}
