//! Images: the state the image routes share and the lookups they have in common. `routes`
//! maps HTTP to `handlers` (list, metadata, delete), `upload` and `download`.

use uuid::Uuid;

use crate::error::ApiError;
use crate::image_store::Image;
use crate::reply::{db_error, path_id};
use crate::state::{ApiState, Images};
use crate::storage::ObjectKey;

mod download;
mod handlers;
mod routes;
mod upload;

pub(crate) use routes::routes;

/// Removes the objects of rows already deleted (a deleted project's images). Failures are
/// logged; `ipm-api gc` finds what is left.
pub(crate) async fn remove_objects(images: &Images, keys: &[String]) {
    for key in keys.iter().filter_map(|k| ObjectKey::parse(k)) {
        if let Err(e) = images.storage.delete(&key).await {
            tracing::error!(key = %key, error = %e, "cannot remove a deleted image's object; `ipm-api gc` will");
        }
    }
}

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
