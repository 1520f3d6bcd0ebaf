//! The state every handler shares: the enforcement point, the database, the policy store, the
//! OpenAPI document, the image storage, the origins trusted for unsafe requests and the web UI.

use std::sync::Arc;

use ipm_policy::store::PolicyStore;
use warp::hyper::body::Bytes;

use crate::access::Access;
use crate::csrf::AllowedOrigins;
use crate::db::Db;
use crate::image_config::ImageConfig;
use crate::image_store::ImageStore;
use crate::storage::Storage;
use crate::thumbnails::Thumbnails;
use crate::ui::assets::Ui;
use crate::upload::UploadSlots;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub access: Arc<Access>,
    pub db: Db,
    pub store: Arc<PolicyStore>,
    pub openapi: Arc<Bytes>,
    pub images: Arc<Images>,
    /// Where unsafe requests may come from besides the API's own origin (`csrf`).
    pub origins: Arc<AllowedOrigins>,
    /// The web UI's page and files.
    pub ui: Arc<Ui>,
}

/// Image storage and settings, shared by the image routes.
#[derive(Debug)]
pub struct Images {
    pub storage: Arc<dyn Storage>,
    pub store: ImageStore,
    pub config: ImageConfig,
    /// Uploads in progress, capped in all and per user.
    pub slots: UploadSlots,
    pub thumbnails: Arc<Thumbnails>,
}
