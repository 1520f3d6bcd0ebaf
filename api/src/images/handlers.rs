//! The image routes that only touch rows and objects: a project's images page by page, one
//! image's metadata, and deleting an image with its object.

use serde::Deserialize;
use warp::http::StatusCode;

use ipm_policy::ImageParent;

use super::image_row;
use crate::access::{RequestMeta, audit};
use crate::error::ApiError;
use crate::image_store::ImagePage;
use crate::reply::{
    PageRequest, Reply, cut_page, db_error, empty, json, parse_query, path_id, respond,
};
use crate::state::ApiState;

/// The query of `GET /api/projects/{id}/images`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/projects/{id}/images`: one page, oldest first, of the images the caller may
/// read (as `GET /api/images/{id}` would answer; `lists`).
pub(super) async fn list_images(project: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let project = path_id(&project)?;
            let params: ListParams = parse_query(meta.query())?;
            let page = PageRequest::parse(params.limit.as_deref(), params.cursor.as_deref())?;
            let group = match s.db.get(project).await {
                Ok(Some(p)) => p.meta_group_id,
                Ok(None) => return Err(ApiError::ProjectNotFound),
                Err(e) => return Err(db_error(e)),
            };
            let parent = ImageParent {
                project: project.to_string(),
                group: group.into(),
            };
            let mut items = crate::lists::images(
                &s,
                caller.decision(),
                &parent,
                project,
                page.after,
                page.limit,
            )
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

/// `DELETE /api/images/{id}`: the row goes at once (its key queued in the same statement),
/// then the object; a storage outage leaves the object queued for the sweeper and gc.
pub(super) async fn delete_image(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let id = path_id(&id)?;
            let image = s
                .images
                .store
                .delete(id)
                .await
                .map_err(db_error)?
                .ok_or(ApiError::ImageNotFound)?;
            crate::deletions::finish_all(
                &s.images.store,
                s.images.storage.as_ref(),
                std::slice::from_ref(&image.storage_key),
            )
            .await;
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
