//! Images: the state the image routes share and the lookups they have in common. `routes`
//! maps HTTP to `handlers` (list, metadata, delete), `upload`, `download` and `thumbnail`.

use uuid::Uuid;

use crate::error::ApiError;
use crate::image_store::Image;
use crate::reply::{db_error, path_id};
use crate::state::ApiState;

pub(crate) mod download;
mod handlers;
mod routes;
mod thumbnail;
mod upload;

pub(crate) use routes::routes;

/// Checks the project exists (policies may allow an admin on an id that names nothing).
async fn existing_project(s: &ApiState, id: Uuid) -> Result<(), ApiError> {
    match s.db.get(id).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::ProjectNotFound),
        Err(e) => Err(db_error(e)),
    }
}

/// The row of the image the path names.
async fn image_row(s: &ApiState, raw: &str) -> Result<Image, ApiError> {
    let id = path_id(raw)?;
    s.images
        .store
        .get(id)
        .await
        .map_err(db_error)?
        .ok_or(ApiError::ImageNotFound)
}
