//! Starting and stopping ipm-api: load policies and groups, open the database (migrating it
//! if asked), bind, serve, watch the policy files, drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use ipm_runtime::config::ListenAddr;
use ipm_runtime::db_entities::DbEntityResolver;
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::listen::serve;
use ipm_runtime::metrics::Metrics;
use ipm_runtime::service::{Core, CoreSettings, ServiceHandle, header_name};
use warp::hyper::body::Bytes;

use crate::access::{Access, HeaderNames};
use crate::config::{Config, DbSettings};
use crate::db::{Db, DbError};
use crate::filters::{SecurityHeaders, routes};
use crate::image_store::ImageStore;
use crate::state::{ApiState, Images};
use crate::thumbnails::Thumbnails;
use crate::ui::assets::Ui;
use crate::upload::UploadSlots;

const LISTEN: &str = "API_LISTEN";

/// Why ipm-api could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Service(#[from] ipm_runtime::service::StartError),
    #[error("{0}")]
    Database(#[from] DbError),
    #[error("{0}")]
    SecurityHeaders(String),
    #[error("image storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// A running ipm-api. Dropping it does not stop the server; call `shutdown`.
pub struct ApiHandle {
    /// The bound address (the real port when 0 was asked for).
    pub listen: ListenAddr,
    pub db: Db,
    pub enforcer: Arc<Enforcer>,
    service: ServiceHandle,
    /// Removes the objects of deleted images that are still queued (`deletions`).
    sweeper: tokio::task::JoinHandle<()>,
}

impl ApiHandle {
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self.listen {
            ListenAddr::Tcp(a) => Some(a),
            ListenAddr::Unix(_) => None,
        }
    }

    /// Reloads policies and groups now, as SIGHUP does.
    pub fn reload_now(&self) {
        self.service.reload_now();
    }

    /// Stops accepting, lets requests in flight finish, closes the database pool.
    pub async fn shutdown(self) {
        self.service.shutdown().await;
        self.sweeper.abort();
        self.db.close().await;
    }
}

/// Opens the database and applies the migrations (`ipm-api migrate`).
pub async fn migrate(settings: &DbSettings) -> Result<Db, StartError> {
    let db = Db::open(
        &settings.url,
        settings.max_connections,
        settings.acquire_timeout,
    )?;
    db.migrate().await?;
    Ok(db)
}

/// Loads everything, binds the listener and starts serving.
pub async fn run(config: Config) -> Result<ApiHandle, StartError> {
    // The same group source as authz: the groups file, or the directory behind its cache.
    let core = Core::load(
        CoreSettings {
            policy_dir: &config.policy_dir,
            groups_file: &config.groups_file,
            directory: &config.directory,
            clock: None,
            groups_override: None,
        },
        Metrics::new(),
    )?;
    let db = if config.db_auto_migrate {
        migrate(&config.db_settings()).await?
    } else {
        Db::open(
            &config.database_url,
            config.db_max_connections,
            config.db_acquire_timeout,
        )?
    };
    // Inside the API every decision reads the latest rows: no cache.
    let resolver = Arc::new(DbEntityResolver::new(db.pool().clone(), None));
    let enforcer = Arc::new(
        Enforcer::new(
            core.store.clone(),
            core.groups.clone(),
            config.secrets.secret_set(),
            core.metrics.clone(),
        )
        .with_resolver(resolver),
    );
    let names = HeaderNames {
        user: header_name("X_USER_ID_HEADER", &config.user_header)?,
        secret: header_name("X_PROXY_SECRET_HEADER", &config.secret_header)?,
        client_ip: config
            .client_ip_header
            .as_deref()
            .map(|h| header_name("API_CLIENT_IP_HEADER", h))
            .transpose()?,
    };
    let openapi = crate::openapi::document(&config.user_header, &config.secret_header);
    let images = Arc::new(Images {
        storage: crate::storage::open(&config.images.storage).await?,
        store: ImageStore::new(db.clone()),
        config: config.images.clone(),
        slots: UploadSlots::new(
            config.images.max_uploads,
            config.images.max_uploads_per_user,
        ),
        thumbnails: Arc::new(Thumbnails::new(config.images.thumbnails)),
    });
    let state = ApiState {
        access: Arc::new(Access::new(enforcer.clone(), names)),
        db: db.clone(),
        store: core.store.clone(),
        openapi: Arc::new(Bytes::from(openapi.to_string())),
        images: images.clone(),
        origins: Arc::new(config.allowed_origins.clone()),
        ui: Arc::new(Ui::new(&config.ui_csp).map_err(StartError::SecurityHeaders)?),
    };
    let security =
        SecurityHeaders::new(&config.csp, config.hsts).map_err(StartError::SecurityHeaders)?;
    let mut service = ServiceHandle::default();
    let listener = serve(LISTEN, &config.listen, routes(state, security))
        .await
        .map_err(ipm_runtime::service::StartError::from)?;
    let listen = listener.addr.clone();
    service.add_listener(LISTEN, listener);
    let sweeper = crate::deletions::spawn_sweeper(
        images.store.clone(),
        images.storage.clone(),
        images.config.delete_retry,
    );
    service.add_reloaders(core.reloaders(config.policy_poll, Vec::new()));
    if config.secrets.skip_header_check {
        tracing::warn!(
            "SKIP_HEADER_CHECK=true with DEBUG=true: the proxy secret is NOT checked; never run this in production"
        );
    }
    let snapshot = core.store.snapshot();
    tracing::info!(
        listen = %listen,
        database = db.backend(),
        policy_dir = %config.policy_dir.display(),
        policy_hash = %snapshot.hash,
        policies = snapshot.policy_count(),
        groups = core.groups.kind(),
        storage = images.storage.backend(),
        max_upload_bytes = images.config.max_upload_bytes,
        hsts = config.hsts,
        "ipm-api listening"
    );
    Ok(ApiHandle {
        listen,
        db,
        enforcer,
        service,
        sweeper,
    })
}
