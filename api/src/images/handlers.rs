//! The image routes that only touch rows and objects: a project's images page by page, one
//! image's metadata, and deleting an image with its object.

use serde::Deserialize;
use warp::http::StatusCode;

use super::{existing_project, image_row};
use crate::access::{RequestMeta, audit};
use crate::error::ApiError;
use crate::image_store::{DeleteError, ImagePage};
use crate::reply::{
    PageRequest, Reply, cut_page, db_error, empty, json, parse_query, path_id, respond,
    storage_error,
};
use crate::state::ApiState;
use crate::storage::ObjectKey;

/// The query of `GET /api/projects/{id}/images`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/projects/{id}/images`: one page, oldest first.
pub(super) async fn list_images(project: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            let project = path_id(&project)?;
            let params: ListParams = parse_query(meta.query())?;
            let page = PageRequest::parse(params.limit.as_deref(), params.cursor.as_deref())?;
            existing_project(&s, project).await?;
            let mut items = s
                .images
                .store
                .list(project, page.after, page.limit + 1)
                .await
                .map_err(db_error)?;
            let next_cursor = cut_page(&mut items, page.limit, |i| i.id);
            Ok(json(StatusCode::OK, &ImagePage { items, next_cursor }))
        }
        .await,
    )
}

/// `GET /api/images/{id}`.
pub(super) async fn get_image(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            let image = image_row(&s, &id).await?;
            Ok(json(StatusCode::OK, &image))
        }
        .await,
    )
}

/// `DELETE /api/images/{id}`: the row and the object, or neither.
pub(super) async fn delete_image(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let id = path_id(&id)?;
            let storage = s.images.storage.clone();
            let deleted = s
                .images
                .store
                .delete_with(id, |key| async move {
                    match ObjectKey::parse(&key) {
                        Some(key) => storage.delete(&key).await,
                        // Never handed to storage; the row goes, gc reports nothing for it.
                        None => Ok(()),
                    }
                })
                .await;
            let image = match deleted {
                Ok(Some(image)) => image,
                Ok(None) => return Err(ApiError::ImageNotFound),
                Err(DeleteError::Db(e)) => return Err(db_error(e)),
                Err(DeleteError::Object(e)) => return Err(storage_error(e)),
            };
            audit!(
                caller,
                image = %image.id,
                project = %image.project_id,
                "image deleted"
            );
            Ok(empty(StatusCode::NO_CONTENT))
        }
        .await,
    )
}
