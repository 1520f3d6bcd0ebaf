//! Probes and metrics: `/healthz` (the process answers), `/readyz` (the policies in force, any
//! pending load error, any file change not yet in force), `/metrics` (OpenMetrics text).

use std::convert::Infallible;
use std::time::{Instant, UNIX_EPOCH};

use serde_json::json;
use warp::Filter;
use warp::http::header::{CONTENT_TYPE, HeaderValue};
use warp::http::{Response, StatusCode};
use warp::hyper::body::Bytes;

use super::http::{HttpState, json_response, with_state};

async fn readyz(state: HttpState) -> Result<Response<Bytes>, Infallible> {
    let store = &state.enforcer.store;
    let snapshot = store.snapshot();
    let loaded_at = snapshot
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let pending = store.pending_error();
    // A change on disk waiting for seconds means reloads are stuck: the set in force may
    // not be the one the operator saved.
    let now = Instant::now();
    let changes = &state.enforcer.metrics.pending_changes;
    let ready = pending.is_none() && !changes.stalled(now);
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
        "pending_changes": changes.to_json(now),
        "groups": { "source": state.groups_kind },
        "skip_header_check": state.enforcer.skips_secret_check(),
        // The candidate set of shadow mode; never part of readiness.
        "shadow": state.shadow.as_ref().map(|s| s.status()),
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

/// `/healthz`, `/readyz` and `/metrics`.
pub fn filter(
    state: HttpState,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone {
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
    healthz.or(readyz).unify().or(metrics).unify()
}
