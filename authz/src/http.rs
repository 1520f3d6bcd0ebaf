//! The HTTP adapter: nginx `auth_request` on `/auth`, plus `/healthz`, `/readyz`, `/metrics`.
//! Filters translate, the enforcer decides, one `recover` turns every rejection into a reply.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde_json::json;
use warp::Filter;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use warp::http::{HeaderMap, Response, StatusCode};
use warp::hyper::body::Bytes;

use crate::enforcer::{AuthzRequest, Decision, Denial, Enforcer, HeaderField};

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
}

fn field<'a>(headers: &'a HeaderMap, name: &HeaderName) -> HeaderField<'a> {
    HeaderField::from_values(headers.get_all(name).iter().map(HeaderValue::as_bytes))
}

/// The client address from the proxy's header, when it holds exactly one valid IP.
fn client_ip(headers: &HeaderMap, name: Option<&HeaderName>) -> Option<IpAddr> {
    let name = name?;
    match field(headers, name) {
        HeaderField::One(v) => std::str::from_utf8(v).ok()?.trim().parse().ok(),
        _ => None,
    }
}

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

fn json_response(status: StatusCode, body: String) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Turns a decision into the reply nginx expects: 200 with identity headers, or the denial.
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

async fn auth(headers: HeaderMap, state: HttpState) -> Result<Response<Bytes>, Infallible> {
    let req = nginx_request(&headers, &state.names);
    let d = state.enforcer.authorize(&req, "nginx").await;
    Ok(decision_response(&d, &state.names, &[]))
}

async fn readyz(state: HttpState) -> Result<Response<Bytes>, Infallible> {
    let store = &state.enforcer.store;
    let snapshot = store.snapshot();
    let loaded_at = snapshot
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let pending = store.pending_error();
    let ready = pending.is_none();
    let body = json!({
        "ready": ready,
        "policies": {
            "dir": store.dir().display().to_string(),
            "hash": snapshot.hash,
            "loaded_at_unix": loaded_at,
            "count": snapshot.policy_count(),
            "routes": snapshot.routes.routes().len(),
        },
        "pending_error": pending.as_ref().map(|p| json!({
            "since_unix": p.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
            "problems": p.error.problems,
        })),
        "groups": { "source": state.groups_kind },
        "skip_header_check": state.enforcer.skips_secret_check(),
        // The candidate set of shadow mode; never part of readiness.
        "shadow": state.enforcer.shadow.as_ref().map(|s| s.status()),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json_response(status, body.to_string()))
}

async fn metrics(state: HttpState) -> Result<Response<Bytes>, Infallible> {
    let mut r = Response::new(Bytes::from(state.enforcer.metrics.render()));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(r)
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

fn with_state(state: HttpState) -> impl Filter<Extract = (HttpState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// All of authz's HTTP routes.
pub fn routes(
    state: HttpState,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone {
    let envoy = crate::envoy_http::filter(state.clone());
    let auth = warp::path!("auth")
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(auth);
    let healthz = warp::path!("healthz")
        .and(warp::get().or(warp::head()).unify())
        .map(|| json_response(StatusCode::OK, r#"{"status":"ok"}"#.into()));
    let readyz = warp::path!("readyz")
        .and(warp::get().or(warp::head()).unify())
        .and(with_state(state.clone()))
        .and_then(readyz);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state))
        .and_then(metrics);
    auth.or(envoy)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .recover(recover)
        .unify()
}
