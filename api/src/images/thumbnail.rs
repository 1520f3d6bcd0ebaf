//! `GET /api/images/{id}/thumbnail` (and HEAD): the image's thumbnail, made now when it has
//! none yet, cached by the browser for a day and revalidated by its `ETag`.

use headers::{ETag, HeaderMapExt};
use warp::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use warp::http::{Method, StatusCode};

use super::download::not_modified;
use super::image_row;
use crate::access::RequestMeta;
use crate::error::ApiError;
use crate::reply::{Reply, empty, respond, storage_error};
use crate::state::ApiState;
use crate::thumbnails::{ThumbnailError, etag};

/// Thumbnails never change under one `ETag`; `private`: only the user's own browser keeps
/// them, never a shared cache.
const CACHE: &str = "private, max-age=86400";

fn thumbnail_error(e: ThumbnailError) -> ApiError {
    match e {
        ThumbnailError::Refused(why) => ApiError::NoThumbnail(why.to_string()),
        ThumbnailError::Busy => ApiError::ThumbnailsBusy,
        ThumbnailError::Storage(e) => storage_error(e),
        ThumbnailError::Local(why) => {
            tracing::error!(error = %why, "cannot make a thumbnail");
            ApiError::ThumbnailsBusy
        }
    }
}

/// `GET /api/images/{id}/thumbnail`.
pub(super) async fn image_thumbnail(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            let image = image_row(&s, &id).await?;
            let tag: Option<ETag> = etag(&image).parse().ok();
            let mut r = empty(StatusCode::OK);
            if let Some(tag) = &tag {
                r.headers_mut().typed_insert(tag.clone());
                if not_modified(&meta.headers, tag) {
                    *r.status_mut() = StatusCode::NOT_MODIFIED;
                    r.headers_mut()
                        .insert(CACHE_CONTROL, HeaderValue::from_static(CACHE));
                    return Ok(r);
                }
            }
            let thumb = s
                .images
                .thumbnails
                .get(&s.images.storage, &image)
                .await
                .map_err(thumbnail_error)?;
            let length = thumb.bytes.len();
            if meta.method != Method::HEAD {
                let headers = std::mem::take(r.headers_mut());
                r = warp::reply::Response::new(thumb.bytes.into());
                r.headers_mut().extend(headers);
            }
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(thumb.mime));
            h.insert(CONTENT_LENGTH, HeaderValue::from(length));
            h.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE));
            Ok(r)
        }
        .await,
    )
}
