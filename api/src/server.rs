//! Starting and stopping ipm-api: load policies and groups, open the database (migrating it
//! if asked), bind, serve, watch the policy files, drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use authz::config::ListenAddr;
use authz::db_entities::DbEntityResolver;
use authz::enforcer::Enforcer;
use authz::group_cache::{GroupCache, SystemClock};
use authz::groups::{FileGroups, GroupSource};
use authz::metrics::Metrics;
use authz::reload::{Reload, Reloader};
use authz::store::PolicyStore;
use warp::hyper::body::Bytes;

use crate::access::{Access, HeaderNames};
use crate::config::{Config, DbSettings};
use crate::db::{Db, DbError};
use crate::filters::{SecurityHeaders, header_name, routes};
use crate::handlers::ApiState;
use crate::image_store::ImageStore;
use crate::images::Images;

/// Why ipm-api could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("POLICY_DIR: the policies do not load:\n{}", .0.render())]
    Policies(#[from] authz::policy::LoadError),
    #[error("GROUPS_FILE: {0}")]
    Groups(#[from] authz::groups::GroupsFileError),
    #[error("{0}")]
    Database(#[from] DbError),
    #[error("{0}")]
    Listen(String),
    #[error("{0}")]
    Other(String),
    #[error("image storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// A running ipm-api. Dropping it does not stop the server; call `shutdown`.
pub struct ApiHandle {
    /// The bound address (the real port when 0 was asked for).
    pub listen: ListenAddr,
    pub db: Db,
    pub enforcer: Arc<Enforcer>,
    reloaders: Vec<Reloader>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
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
        for r in &self.reloaders {
            r.trigger();
        }
    }

    /// Stops accepting, lets requests in flight finish, closes the database pool.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        self.db.close().await;
        if let ListenAddr::Unix(path) = &self.listen {
            let _ = std::fs::remove_file(path);
        }
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
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(PolicyStore::load(&config.policy_dir)?);
    // The same group source as authz: the groups file, or the directory behind its cache.
    let group_cache = GroupCache::from_config(
        &config.directory,
        Arc::new(SystemClock::new()),
        metrics.clone(),
    )
    .map_err(|e| StartError::Other(e.to_string()))?;
    let (groups, groups_file): (Arc<dyn GroupSource>, _) = match group_cache {
        Some(cache) => (Arc::new(cache), None),
        None => {
            let file = Arc::new(FileGroups::load(&config.groups_file)?);
            (file.clone(), Some(file))
        }
    };
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
            store.clone(),
            groups.clone(),
            config.secrets.secret_set(),
            metrics.clone(),
        )
        .with_resolver(resolver.clone()),
    );
    let names = HeaderNames {
        user: header_name("X_USER_ID_HEADER", &config.user_header).map_err(StartError::Other)?,
        secret: header_name("X_PROXY_SECRET_HEADER", &config.secret_header)
            .map_err(StartError::Other)?,
        client_ip: config
            .client_ip_header
            .as_deref()
            .map(|h| header_name("API_CLIENT_IP_HEADER", h))
            .transpose()
            .map_err(StartError::Other)?,
    };
    let openapi = crate::openapi::document(&config.user_header, &config.secret_header);
    let images = Arc::new(Images {
        storage: crate::storage::open(&config.images.storage).await?,
        store: ImageStore::new(db.clone()),
        config: config.images.clone(),
    });
    let state = ApiState {
        access: Arc::new(Access::new(enforcer.clone(), resolver, names)),
        db: db.clone(),
        store: store.clone(),
        openapi: Arc::new(Bytes::from(openapi.to_string())),
        images: images.clone(),
    };
    let security = SecurityHeaders::new(&config.csp, config.hsts).map_err(StartError::Other)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (listen, task) =
        authz::server::serve("API_LISTEN", &config.listen, routes(state, security), rx)
            .await
            .map_err(|e| StartError::Listen(e.to_string()))?;
    let mut reloaders = vec![Reloader::spawn(
        store.clone() as Arc<dyn Reload>,
        metrics.clone(),
        config.policy_poll,
    )];
    if let Some(file) = groups_file {
        reloaders.push(Reloader::spawn(
            file as Arc<dyn Reload>,
            metrics,
            config.policy_poll,
        ));
    }
    if config.secrets.skip_header_check {
        tracing::warn!(
            "SKIP_HEADER_CHECK=true with DEBUG=true: the proxy secret is NOT checked; never run this in production"
        );
    }
    let snapshot = store.snapshot();
    tracing::info!(
        listen = %listen,
        database = db.backend(),
        policy_dir = %config.policy_dir.display(),
        policy_hash = %snapshot.hash,
        policies = snapshot.policy_count(),
        groups = groups.kind(),
        storage = images.storage.backend(),
        max_upload_bytes = images.config.max_upload_bytes,
        hsts = config.hsts,
        "ipm-api listening"
    );
    Ok(ApiHandle {
        listen,
        db,
        enforcer,
        reloaders,
        shutdown: Some(tx),
        task,
    })
}
