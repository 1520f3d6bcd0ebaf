//! The AuthZEN adapter (OpenID AuthZEN Authorization API 1.0): evaluation, evaluations,
//! subject/resource/action search and the PDP metadata, over HTTP with JSON bodies.
//!
//! Callers authenticate with `AUTHZ_AUTHZEN_TOKEN` as a bearer token, or else with the proxy's
//! shared secret, both compared in constant time. A denial is `200 {"decision": false}`; a
//! body that is not an AuthZEN request is a 400 that says what is wrong; `X-Request-ID` is
//! echoed on every answer.

pub mod wire;

use std::convert::Infallible;
use std::sync::Arc;

use futures_util::StreamExt;
use ipm_policy::evaluate::Semantic;
use ipm_policy::search::Searched;
use ipm_policy::secret::SecretSet;
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::search_pages::SearchError;
use ipm_runtime::service::mark_sensitive;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::header::{AUTHORIZATION, HOST, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use warp::http::{HeaderMap, Response, StatusCode};
use warp::hyper::body::{Buf, Bytes};

use super::http::json_response;

/// The adapter name in decision logs and metrics.
pub const ADAPTER: &str = "authzen";
/// Largest request body, in bytes.
pub const MAX_BODY: u64 = 1024 * 1024;
/// The request identifier callers may send, echoed back.
const REQUEST_ID: &str = "x-request-id";

pub const EVALUATION: &str = "/access/v1/evaluation";
pub const EVALUATIONS: &str = "/access/v1/evaluations";
pub const SEARCH_SUBJECT: &str = "/access/v1/search/subject";
pub const SEARCH_RESOURCE: &str = "/access/v1/search/resource";
pub const SEARCH_ACTION: &str = "/access/v1/search/action";

/// How callers prove who they are.
#[derive(Debug, Clone)]
pub enum CallerAuth {
    /// `Authorization: Bearer <AUTHZ_AUTHZEN_TOKEN>`.
    Token(SecretSet),
    /// The proxy's shared secret in its header; `None` only with `SKIP_HEADER_CHECK=true`.
    ProxySecret {
        header: HeaderName,
        secrets: Option<SecretSet>,
    },
}

impl CallerAuth {
    /// `None` when the caller is authenticated; otherwise the reason it is not.
    fn refuse(&self, headers: &HeaderMap) -> Option<&'static str> {
        match self {
            Self::Token(token) => {
                let mut values = headers.get_all(AUTHORIZATION).iter();
                match (values.next(), values.next()) {
                    (None, _) => Some("missing_token"),
                    (Some(v), None) => match v.as_bytes().split_at_checked(7) {
                        // The scheme is case-insensitive (RFC 9110); the token is not.
                        Some((scheme, candidate))
                            if scheme.eq_ignore_ascii_case(b"bearer ")
                                && token.verify(candidate) =>
                        {
                            None
                        }
                        _ => Some("invalid_token"),
                    },
                    _ => Some("invalid_token"),
                }
            }
            Self::ProxySecret { secrets: None, .. } => None,
            Self::ProxySecret {
                header,
                secrets: Some(secrets),
            } => {
                let mut values = headers.get_all(header).iter();
                match (values.next(), values.next()) {
                    (None, _) => Some("missing_proxy_secret"),
                    (Some(v), None) if secrets.verify(v.as_bytes()) => None,
                    _ => Some("invalid_proxy_secret"),
                }
            }
        }
    }
}

/// What the AuthZEN handlers share.
#[derive(Clone)]
pub struct AuthzenState {
    pub enforcer: Arc<Enforcer>,
    pub auth: Arc<CallerAuth>,
    /// `AUTHZ_AUTHZEN_PDP_URL`; `None`: `http://` and the request's `Host`.
    pub pdp_url: Option<Arc<str>>,
}

/// The caller's `X-Request-ID`, when it is one plain header value worth echoing.
fn request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(REQUEST_ID).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if v.len() <= 256 && v.as_bytes().iter().all(u8::is_ascii_graphic) => {
            Some(v.clone())
        }
        _ => None,
    }
}

fn reply(status: StatusCode, body: &Value, id: Option<HeaderValue>) -> Response<Bytes> {
    let mut r = json_response(status, body.to_string());
    if let Some(id) = id {
        r.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), id);
    }
    r
}

fn bad_request(message: String, id: Option<HeaderValue>) -> Response<Bytes> {
    reply(
        StatusCode::BAD_REQUEST,
        &json!({ "error": "bad_request", "message": message }),
        id,
    )
}

/// The request body, read up to [`MAX_BODY`] bytes whatever its framing; `Err` with the
/// status and message to send when it is longer (413) or cannot be read (400).
pub type Body = Result<Vec<u8>, (StatusCode, String)>;

async fn read_body(
    mut stream: impl futures_util::Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Body {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        })?;
        if (out.len() + chunk.remaining()) as u64 > MAX_BODY {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY} bytes"),
            ));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// Authenticates the caller and parses the body; the reply to send instead when either fails.
fn admit(
    state: &AuthzenState,
    headers: &mut HeaderMap,
    body: &Body,
) -> Result<wire::RequestIn, Box<Response<Bytes>>> {
    if let CallerAuth::ProxySecret { header, .. } = state.auth.as_ref() {
        mark_sensitive(headers, header);
    }
    if let Some(reason) = state.auth.refuse(headers) {
        let mut r = reply(
            StatusCode::UNAUTHORIZED,
            &json!({ "error": "unauthenticated", "reason": reason }),
            request_id(headers),
        );
        if matches!(state.auth.as_ref(), CallerAuth::Token(_)) {
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        return Err(Box::new(r));
    }
    let body = body.as_deref().map_err(|(status, m)| {
        let error = if *status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        Box::new(reply(
            *status,
            &json!({ "error": error, "message": m }),
            request_id(headers),
        ))
    })?;
    wire::parse(body).map_err(|m| Box::new(bad_request(m, request_id(headers))))
}

async fn evaluation(
    mut headers: HeaderMap,
    body: Body,
    state: AuthzenState,
) -> Result<Response<Bytes>, Infallible> {
    let req = match admit(&state, &mut headers, &body) {
        Ok(r) => r,
        Err(reply) => return Ok(*reply),
    };
    let id = request_id(&headers);
    let q = match req.single() {
        Ok(q) => q,
        Err(m) => return Ok(bad_request(m, id)),
    };
    let verdicts = state
        .enforcer
        .evaluate(&[q], Semantic::ExecuteAll, ADAPTER, EVALUATION)
        .await;
    let body = verdicts.first().map_or_else(
        || json!({ "decision": false }),
        |v| wire::decision(v, req.options().reasons),
    );
    Ok(reply(StatusCode::OK, &body, id))
}

async fn evaluations(
    mut headers: HeaderMap,
    body: Body,
    state: AuthzenState,
) -> Result<Response<Bytes>, Infallible> {
    let req = match admit(&state, &mut headers, &body) {
        Ok(r) => r,
        Err(reply) => return Ok(*reply),
    };
    let id = request_id(&headers);
    let reasons = req.options().reasons;
    // Without an `evaluations` array, the request is a single evaluation (spec 7.1).
    let Some(items) = &req.evaluations else {
        let q = match req.single() {
            Ok(q) => q,
            Err(m) => return Ok(bad_request(m, id)),
        };
        let verdicts = state
            .enforcer
            .evaluate(&[q], Semantic::ExecuteAll, ADAPTER, EVALUATIONS)
            .await;
        let body = verdicts.first().map_or_else(
            || json!({ "decision": false }),
            |v| wire::decision(v, reasons),
        );
        return Ok(reply(StatusCode::OK, &body, id));
    };
    let questions = match req.batch(items) {
        Ok(q) => q,
        Err(m) => return Ok(bad_request(m, id)),
    };
    let verdicts = state
        .enforcer
        .evaluate(&questions, req.options().semantic(), ADAPTER, EVALUATIONS)
        .await;
    let decisions: Vec<Value> = verdicts
        .iter()
        .map(|v| wire::decision(v, reasons))
        .collect();
    Ok(reply(
        StatusCode::OK,
        &json!({ "evaluations": decisions }),
        id,
    ))
}

async fn search(
    searched: &'static str,
    mut headers: HeaderMap,
    body: Body,
    state: AuthzenState,
) -> Result<Response<Bytes>, Infallible> {
    let req = match admit(&state, &mut headers, &body) {
        Ok(r) => r,
        Err(reply) => return Ok(*reply),
    };
    let id = request_id(&headers);
    let q = match req.search(searched) {
        Ok(q) => q,
        Err(m) => return Ok(bad_request(m, id)),
    };
    let position = match searched {
        "subject" => Some(Searched::Subject),
        "resource" => Some(Searched::Resource),
        _ => None,
    };
    let page = req.page.as_ref();
    let (token, limit) = (
        page.and_then(|p| p.token.as_deref())
            .filter(|t| !t.is_empty()),
        page.and_then(|p| p.limit),
    );
    let found = match state.enforcer.search_page(&q, position, token, limit).await {
        Ok(found) => found,
        Err(e @ SearchError::BadToken) => return Ok(bad_request(e.to_string(), id)),
        Err(SearchError::Unavailable(e)) => {
            // Fail closed, but say so: an empty page would read as "nothing is allowed".
            tracing::warn!(target: "authz::authzen", searched, error = %e, "search failed");
            let body = json!({ "error": "unavailable", "reason": e });
            return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, &body, id));
        }
    };
    tracing::info!(
        target: "authz::authzen", searched, action = q.action,
        subject_type = q.subject.entity_type, resource_type = q.resource.entity_type,
        results = found.results.len(), "search"
    );
    let results = found
        .results
        .into_iter()
        .map(|found| match searched {
            "subject" => json!({ "type": q.subject.entity_type, "id": found }),
            "resource" => json!({ "type": q.resource.entity_type, "id": found }),
            _ => json!({ "name": found }),
        })
        .collect();
    Ok(reply(
        StatusCode::OK,
        &wire::results(results, found.next_token),
        id,
    ))
}

/// `/.well-known/authzen-configuration`: public, like any discovery document.
fn metadata(headers: &HeaderMap, state: &AuthzenState) -> Response<Bytes> {
    let id = request_id(headers);
    let base = match &state.pdp_url {
        Some(url) => url.to_string(),
        None => {
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty() && !h.contains(['/', '\\', '?', '#', '@', ' ']));
            match host {
                Some(host) => format!("http://{host}"),
                None => {
                    return bad_request(
                        "no usable Host header: send one, or set AUTHZ_AUTHZEN_PDP_URL".into(),
                        id,
                    );
                }
            }
        }
    };
    let body = json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}{EVALUATION}"),
        "access_evaluations_endpoint": format!("{base}{EVALUATIONS}"),
        "search_subject_endpoint": format!("{base}{SEARCH_SUBJECT}"),
        "search_resource_endpoint": format!("{base}{SEARCH_RESOURCE}"),
        "search_action_endpoint": format!("{base}{SEARCH_ACTION}"),
    });
    reply(StatusCode::OK, &body, id)
}

/// Every AuthZEN route; with `None` (`AUTHZ_AUTHZEN_LISTEN=off` or on its own listener) none
/// of them matches.
pub fn filter(
    state: Option<AuthzenState>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone {
    let state = warp::any().and_then(move || {
        let state = state.clone();
        async move { state.ok_or_else(warp::reject::not_found) }
    });
    let post = warp::post()
        .and(warp::header::headers_cloned())
        .and(warp::body::stream().then(read_body));
    let evaluation = warp::path!("access" / "v1" / "evaluation")
        .and(state.clone())
        .and(post)
        .and_then(|s, h, b| evaluation(h, b, s));
    let evaluations = warp::path!("access" / "v1" / "evaluations")
        .and(state.clone())
        .and(post)
        .and_then(|s, h, b| evaluations(h, b, s));
    let search = warp::path!("access" / "v1" / "search" / String)
        .and_then(|searched: String| async move {
            match searched.as_str() {
                "subject" => Ok("subject"),
                "resource" => Ok("resource"),
                "action" => Ok("action"),
                _ => Err(warp::reject::not_found()),
            }
        })
        .and(state.clone())
        .and(post)
        .and_then(|searched, s, h, b| search(searched, h, b, s));
    let metadata = warp::path!(".well-known" / "authzen-configuration")
        .and(warp::get())
        .and(state)
        .and(warp::header::headers_cloned())
        .map(|s: AuthzenState, h: HeaderMap| metadata(&h, &s));
    evaluation
        .or(evaluations)
        .unify()
        .or(search)
        .unify()
        .or(metadata)
        .unify()
}
