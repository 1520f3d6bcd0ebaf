//! The warp filters every route starts from: the shared state, the request as the enforcer
//! needs it, GET-or-HEAD.

use std::convert::Infallible;

use warp::Filter;
use warp::filters::path::FullPath;
use warp::http::Method;

use crate::access::RequestMeta;
use crate::state::ApiState;

/// Hands every handler the shared state.
pub(crate) fn with_state(
    state: ApiState,
) -> impl Filter<Extract = (ApiState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The request as the enforcer needs it: method, path with query, headers, peer.
pub(crate) fn request_meta(
    state: &ApiState,
) -> impl Filter<Extract = (RequestMeta,), Error = Infallible> + Clone + use<> {
    let secret = state.access.secret_header().clone();
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .map(
            move |method: Method, path: FullPath, query: Option<String>, headers, remote| {
                let uri = match query {
                    Some(q) => format!("{}?{q}", path.as_str()),
                    None => path.as_str().to_string(),
                };
                RequestMeta::new(method, uri, headers, remote, &secret)
            },
        )
}

pub(crate) fn get_or_head() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}
