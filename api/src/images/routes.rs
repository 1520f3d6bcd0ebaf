//! The image routes as warp filters: each translates a request into a call to its handler
//! in `handlers`, `upload`, `download` or `thumbnail`.

use warp::Filter;

use super::download::image_content;
use super::handlers::{delete_image, get_image, list_images};
use super::thumbnail::image_thumbnail;
use super::upload::upload_image;
use crate::extract::{get_or_head, request_meta, with_state};
use crate::reply::Reply;
use crate::state::ApiState;

/// The image routes.
pub(crate) fn routes(
    state: ApiState,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone {
    let project_images = || warp::path!("api" / "projects" / String / "images");
    let image = || warp::path!("api" / "images" / String);
    let upload = project_images()
        .and(warp::post())
        .and(request_meta(&state))
        .and(warp::body::stream())
        .and(with_state(state.clone()))
        .then(upload_image);
    let list = project_images()
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(list_images);
    let get = image()
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(get_image);
    let delete = image()
        .and(warp::delete())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(delete_image);
    let content = warp::path!("api" / "images" / String / "content")
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state.clone()))
        .then(image_content);
    let thumbnail = warp::path!("api" / "images" / String / "thumbnail")
        .and(get_or_head())
        .and(request_meta(&state))
        .and(with_state(state))
        .then(image_thumbnail);
    upload
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(delete)
        .unify()
        .or(content)
        .unify()
        .or(thumbnail)
        .unify()
}
