//! The API's routes: warp filters that translate HTTP into handler calls, one `recover` that
//! turns every rejection into a JSON error, and the security headers on every response.

use std::convert::Infallible;

use futures_util::StreamExt;
use warp::Filter;
use warp::http::HeaderMap;
use warp::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderValue, REFERRER_POLICY,
    STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use warp::hyper::body::{Buf, Bytes};

use crate::csrf::{Refused, json_content, same_origin};
use crate::error::ApiError;
use crate::extract::{get_or_head, request_meta, with_state};
use crate::handlers;
use crate::projects;
use crate::reply::{Reply, error_response};
use crate::state::ApiState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// One route the API serves: the method and the path as OpenAPI writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRoute {
    pub method: &'static str,
    pub path: &'static str,
}

/// Every route `routes()` serves (GET routes answer HEAD too). The OpenAPI document and the
/// tests are checked against this list.
pub const API_ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: "GET",
        path: "/api/projects",
    },
    ApiRoute {
        method: "POST",
        path: "/api/projects",
    },
    ApiRoute {
        method: "GET",
        path: "/api/projects/{id}",
    },
    ApiRoute {
        method: "PATCH",
        path: "/api/projects/{id}",
    },
    ApiRoute {
        method: "GET",
        path: "/api/projects/{id}/images",
    },
    ApiRoute {
        method: "POST",
        path: "/api/projects/{id}/images",
    },
    ApiRoute {
        method: "GET",
        path: "/api/images/{id}",
    },
    ApiRoute {
        method: "GET",
        path: "/api/images/{id}/content",
    },
    ApiRoute {
        method: "GET",
        path: "/api/images/{id}/thumbnail",
    },
    ApiRoute {
        method: "DELETE",
        path: "/api/images/{id}",
    },
    ApiRoute {
        method: "DELETE",
        path: "/api/projects/{id}",
    },
    ApiRoute {
        method: "GET",
        path: "/api/openapi.json",
    },
    ApiRoute {
        method: "GET",
        path: "/api/me",
    },
    ApiRoute {
        method: "GET",
        path: "/healthz",
    },
    ApiRoute {
        method: "GET",
        path: "/readyz",
    },
];

/// The response headers every reply carries, errors included: the map always; the API's CSP
/// and `no-store` unless the handler chose its own (the web UI's CSP, a thumbnail's or a UI
/// file's caching).
#[derive(Debug, Clone)]
pub(crate) struct SecurityHeaders(HeaderMap, HeaderValue);

impl SecurityHeaders {
    /// `csp` must be a valid header value (the configuration checks it).
    pub fn new(csp: &str, hsts: bool) -> Result<Self, String> {
        let mut h = HeaderMap::new();
        h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
        h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        let csp = HeaderValue::from_str(csp).map_err(|e| format!("CSP: {e}"))?;
        if hsts {
            h.insert(
                STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            );
        }
        Ok(Self(h, csp))
    }
}

/// A body over `MAX_BODY_BYTES`, by its `Content-Length` or as it streams in.
#[derive(Debug)]
struct BodyTooLarge;
impl warp::reject::Reject for BodyTooLarge {}

/// The body was cut off or unreadable.
#[derive(Debug)]
struct BodyUnreadable;
impl warp::reject::Reject for BodyUnreadable {}

/// The request body, at most `MAX_BODY_BYTES`, with or without a `Content-Length` (an
/// empty POST needs none); never buffered past the limit.
fn body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(|len: Option<u64>| async move {
            match len {
                Some(n) if n > MAX_BODY_BYTES => Err(warp::reject::custom(BodyTooLarge)),
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(collect_body)
}

async fn collect_body<S, B>(stream: S) -> Result<Bytes, warp::Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = Box::pin(stream);
    let mut out: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| warp::reject::custom(BodyUnreadable))?;
        if out.len() + chunk.remaining() > MAX_BODY_BYTES as usize {
            return Err(warp::reject::custom(BodyTooLarge));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            out.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(out))
}

/// Every rejection becomes a JSON error; a rejection never reaches a handler, so nothing
/// here can answer 2xx.
pub(crate) async fn recover(rejection: warp::Rejection) -> Result<Reply, Infallible> {
    let e = if let Some(Refused(e)) = rejection.find::<Refused>() {
        e.clone()
    } else if rejection.find::<BodyTooLarge>().is_some() {
        ApiError::PayloadTooLarge
    } else if rejection.is_not_found() {
        ApiError::RouteNotFound
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else {
        ApiError::invalid_param("request", "the request is malformed")
    };
    let mut reply = error_response(&e);
    if rejection.find::<BodyTooLarge>().is_some() {
        // The rest of the body was never read: the connection cannot carry another request,
        // and a client must not pick it from its pool to send one.
        reply.headers_mut().insert(
            warp::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    Ok(reply)
}

/// All of the API's routes, with the security headers and an access log line per request.
pub(crate) fn routes(
    state: ApiState,
    security: SecurityHeaders,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let collection = || warp::path!("api" / "projects");
    let project = || warp::path!("api" / "projects" / String);
    let list = collection()
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(projects::list_projects);
    let create = collection()
        .and(warp::post())
        .and(request_meta(&state))
        .and(json_content())
        .and(body())
        .and(with_state(state.clone()))
        .then(projects::create_project);
    let get = project()
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(projects::get_project);
    let update = project()
        .and(warp::patch())
        .and(request_meta(&state))
        .and(json_content())
        .and(body())
        .and(with_state(state.clone()))
        .then(projects::update_project);
    let delete = project()
        .and(warp::delete())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(projects::delete_project);
    let openapi = warp::path!("api" / "openapi.json")
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(handlers::openapi);
    let me = warp::path!("api" / "me")
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(handlers::me);
    let healthz = warp::path!("healthz")
        .and(get_or_head())
        .then(handlers::healthz);
    let readyz = warp::path!("readyz")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .then(handlers::readyz);
    let origins = state.origins.clone();
    let images = crate::images::routes(state.clone());
    let ui = crate::ui::routes(state);
    let log = warp::log::custom(|info| {
        tracing::info!(
            target: "ipm_api::access",
            method = %info.method(),
            path = info.path(),
            status = info.status().as_u16(),
            latency_us = u64::try_from(info.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
    });
    let SecurityHeaders(headers, csp) = security;
    let api = list
        .or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(openapi)
        .unify()
        .or(me)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(images)
        .unify()
        .or(ui)
        .unify();
    // In front of every route, so one added later is covered too.
    same_origin(origins)
        .and(api)
        .recover(recover)
        .with(warp::reply::with::default_header(
            CONTENT_SECURITY_POLICY,
            csp,
        ))
        .with(warp::reply::with::default_header(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with(warp::reply::with::headers(headers))
        .with(log)
}
