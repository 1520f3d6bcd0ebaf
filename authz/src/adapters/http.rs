//! What every warp adapter shares: the header names it reads, its state, turning a decision
//! into an HTTP reply, and the one `recover` that turns every rejection into a JSON error.

use std::convert::Infallible;
use std::sync::Arc;

use ipm_policy::denial::Denial;
use ipm_policy::pipeline::Decision;
use ipm_runtime::enforcer::Enforcer;
use serde_json::json;
use warp::Filter;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use warp::http::{Response, StatusCode};
use warp::hyper::body::Bytes;

pub use ipm_runtime::headers::{client_ip, field};

use crate::shadow::Shadow;

/// Response header carrying the normalized user.
pub const USER_HEADER: &str = "x-authz-user";
/// Response header carrying the user's groups, comma-separated.
pub const GROUPS_HEADER: &str = "x-authz-groups";
/// Set when the groups header was cut to fit `AUTHZ_GROUPS_HEADER_MAX`.
pub const GROUPS_TRUNCATED_HEADER: &str = "x-authz-groups-truncated";

/// The header names the adapter reads, parsed once at start.
#[derive(Debug, Clone)]
pub struct HeaderNames {
    pub user: HeaderName,
    pub secret: HeaderName,
    pub client_ip: Option<HeaderName>,
    pub groups_max: usize,
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub enforcer: Arc<Enforcer>,
    pub names: Arc<HeaderNames>,
    pub groups_kind: &'static str,
    /// The candidate policy set of shadow mode, shown on `/readyz`.
    pub shadow: Option<Arc<Shadow>>,
}

pub fn json_response(status: StatusCode, body: String) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Turns a decision into the reply nginx and Envoy's HTTP mode expect: 200 with identity headers, or the denial.
/// `extra` adds adapter-specific headers to an allow.
pub fn decision_response(
    d: &Decision,
    names: &HeaderNames,
    extra: &[(HeaderName, HeaderValue)],
) -> Response<Bytes> {
    let deny = |denial: Denial| {
        let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
        json_response(status, denial.body())
    };
    let Some((user, groups, truncated)) = d.identity(names.groups_max) else {
        return deny(d.denial.unwrap_or(Denial::PolicyError));
    };
    let (Ok(user), Ok(groups)) = (HeaderValue::from_str(&user), HeaderValue::from_str(&groups))
    else {
        // Unreachable with validated emails and group names; never allow without identity.
        return deny(Denial::PolicyError);
    };
    let mut r = Response::new(Bytes::new());
    let h = r.headers_mut();
    h.insert(HeaderName::from_static(USER_HEADER), user);
    h.insert(HeaderName::from_static(GROUPS_HEADER), groups);
    if truncated {
        h.insert(
            HeaderName::from_static(GROUPS_TRUNCATED_HEADER),
            HeaderValue::from_static("true"),
        );
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (k, v) in extra {
        h.insert(k.clone(), v.clone());
    }
    r
}

/// Every rejection becomes a JSON error; nothing here can answer 2xx.
pub async fn recover(rejection: warp::Rejection) -> Result<Response<Bytes>, Infallible> {
    let (status, error) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not_found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    } else {
        (StatusCode::BAD_REQUEST, "bad_request")
    };
    Ok(json_response(
        status,
        json!({ "error": error, "reason": error }).to_string(),
    ))
}

pub fn with_state(
    state: HttpState,
) -> impl Filter<Extract = (HttpState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}
