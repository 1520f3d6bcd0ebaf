//! The web UI, served like the API and behind the same checks: the page for `/` and
//! `/projects/{id}` (the scripts tell the two apart), and its files (`assets`) under
//! `/assets/{version}/`. Each request is authorized (`UseApp` in the shipped routes) and
//! answered under the UI's own CSP (`API_UI_CSP`): its own files, nothing inline.

use headers::{ETag, HeaderMapExt};
use warp::Filter;
use warp::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::hyper::body::Bytes;

use crate::access::RequestMeta;
use crate::error::ApiError;
use crate::extract::{get_or_head, request_meta, with_state};
use crate::reply::{Reply, empty, respond};
use crate::state::ApiState;

pub(crate) mod assets;

/// A version's files never change: the browser keeps them, and only the user's browser.
const ASSET_CACHE: &str = "private, max-age=31536000, immutable";

/// The UI's routes.
pub(crate) fn routes(
    state: ApiState,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone {
    let root = warp::path::end()
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(page);
    let project = warp::path!("projects" / String)
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(|_id: String, meta: RequestMeta, s: ApiState| page(meta, s));
    let files = warp::path!("assets" / String / String)
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state))
        .then(asset);
    root.or(project).unify().or(files).unify()
}

/// `body` with its type and the UI's CSP; none for HEAD.
fn reply(meta: &RequestMeta, s: &ApiState, mime: &'static str, body: Bytes) -> Reply {
    let mut r = if meta.method == Method::HEAD {
        empty(StatusCode::OK)
    } else {
        warp::reply::Response::new(body.into())
    };
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(CONTENT_SECURITY_POLICY, s.ui.csp.clone());
    r
}

/// `GET /` and `GET /projects/{id}`: the page, never cached (it names the current version).
async fn page(meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            Ok(reply(
                &meta,
                &s,
                "text/html; charset=utf-8",
                s.ui.page.clone(),
            ))
        }
        .await,
    )
}

/// `GET /assets/{version}/{file}`: one file of the current version.
async fn asset(version: String, name: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            let file = s.ui.asset(&version, &name).ok_or(ApiError::RouteNotFound)?;
            let tag: Option<ETag> = format!("\"{}\"", s.ui.version).parse().ok();
            let fresh = tag.as_ref().is_some_and(|t| {
                meta.headers
                    .typed_get::<headers::IfNoneMatch>()
                    .is_some_and(|h| !h.precondition_passes(t))
            });
            let mut r = if fresh {
                let mut r = empty(StatusCode::NOT_MODIFIED);
                r.headers_mut()
                    .insert(CONTENT_SECURITY_POLICY, s.ui.csp.clone());
                r
            } else {
                reply(&meta, &s, file.mime, Bytes::from_static(file.bytes))
            };
            if let Some(tag) = tag {
                r.headers_mut().typed_insert(tag);
            }
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static(ASSET_CACHE));
            Ok(r)
        }
        .await,
    )
}
