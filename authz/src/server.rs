//! Starting and stopping authz: load everything, bind, serve, watch files, drain on shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use warp::http::header::HeaderName;

use crate::admin::AdminServer;
use crate::config::{Config, ListenAddr};
use crate::enforcer::Enforcer;
use crate::envoy_grpc::{ExtAuthz, GrpcServer};
use crate::group_cache::{Clock, GroupCache, SystemClock};
use crate::groups::{FileGroups, GroupSource};
use crate::http::{HeaderNames, HttpState, routes};
use crate::metrics::Metrics;
use crate::reload::{Reload, Reloader};
use crate::shadow::Shadow;
use crate::store::PolicyStore;

/// Why authz could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("POLICY_DIR: the policies do not load:\n{}", .0.render())]
    Policies(#[from] crate::policy::LoadError),
    #[error("GROUPS_FILE: {0}")]
    Groups(#[from] crate::groups::GroupsFileError),
    #[error("{var}: cannot listen on `{addr}`: {message}")]
    Bind {
        var: &'static str,
        addr: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

/// A running authz. Dropping it does not stop the server; call `shutdown`.
pub struct ServerHandle {
    /// The bound address (the real port when 0 was asked for).
    pub listen: ListenAddr,
    /// The bound gRPC (Envoy ext_authz) address, unless `AUTHZ_GRPC_LISTEN=off`.
    pub grpc_listen: Option<ListenAddr>,
    pub enforcer: Arc<Enforcer>,
    /// The groups file, with `GROUP_SOURCE=file`.
    pub groups_file: Option<Arc<FileGroups>>,
    /// The directory cache, with `GROUP_SOURCE=http`.
    pub group_cache: Option<GroupCache>,
    admin: Option<AdminServer>,
    grpc: Option<GrpcServer>,
    reloaders: Vec<Reloader>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self.listen {
            ListenAddr::Tcp(a) => Some(a),
            ListenAddr::Unix(_) => None,
        }
    }

    /// The gRPC listener's TCP address, when it has one.
    pub fn grpc_tcp_addr(&self) -> Option<SocketAddr> {
        match self.grpc_listen {
            Some(ListenAddr::Tcp(a)) => Some(a),
            _ => None,
        }
    }

    /// The admin listener's TCP address, when `AUTHZ_ADMIN_LISTEN` is set.
    pub fn admin_tcp_addr(&self) -> Option<SocketAddr> {
        match self.admin.as_ref().map(|a| &a.listen) {
            Some(ListenAddr::Tcp(a)) => Some(*a),
            _ => None,
        }
    }

    /// Reloads policies and groups now, as SIGHUP does.
    pub fn reload_now(&self) {
        for r in &self.reloaders {
            r.trigger();
        }
    }

    /// Stops accepting, lets requests in flight finish, then returns.
    pub async fn shutdown(mut self) {
        if let Some(admin) = self.admin.take() {
            admin.shutdown().await;
        }
        if let Some(grpc) = self.grpc.take() {
            grpc.shutdown().await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        if let ListenAddr::Unix(path) = &self.listen {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds a listener and serves `filter` on it until the shutdown signal.
pub async fn serve<F>(
    var: &'static str,
    listen: &ListenAddr,
    filter: F,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) -> Result<(ListenAddr, tokio::task::JoinHandle<()>), StartError>
where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let bind_err = |e: std::io::Error| StartError::Bind {
        var,
        addr: listen.to_string(),
        message: e.to_string(),
    };
    let signal = async move {
        let _ = shutdown.await;
    };
    match listen {
        ListenAddr::Tcp(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(bind_err)?;
            let bound = l.local_addr().map_err(bind_err)?;
            let task = tokio::spawn(warp::serve(filter).incoming(l).graceful(signal).run());
            Ok((ListenAddr::Tcp(bound), task))
        }
        ListenAddr::Unix(path) => {
            remove_stale_socket(path);
            let l = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
            let task = tokio::spawn(warp::serve(filter).incoming(l).graceful(signal).run());
            Ok((ListenAddr::Unix(path.clone()), task))
        }
    }
}

/// A socket left by a previous run would make bind fail; anything else at `path` is not ours.
pub(crate) fn remove_stale_socket(path: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn header_name(var: &'static str, name: &str) -> Result<HeaderName, StartError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| StartError::Other(format!("{var}: `{name}`: {e}")))
}

/// With `DATABASE_URL`, resolves `Project` entities from the API's database: read-only,
/// connected on first use (authz may start first), cached for `AUTHZ_ENTITY_CACHE_TTL_MS`.
#[cfg(feature = "database")]
fn with_database(enforcer: Enforcer, config: &Config) -> Result<Enforcer, StartError> {
    use crate::db_entities::{DbEntityResolver, DbPool, EntityCache, PoolSettings};
    let Some(url) = &config.database_url else {
        return Ok(enforcer);
    };
    let db = DbPool::open_lazy(
        url,
        PoolSettings {
            read_only: true,
            max_connections: 8,
            acquire_timeout: std::time::Duration::from_secs(2),
        },
    )
    .map_err(|e| StartError::Other(e.to_string()))?;
    tracing::info!(
        backend = db.backend(),
        cache_ttl_ms = u64::try_from(config.entity_cache_ttl.as_millis()).unwrap_or(u64::MAX),
        "resolving project entities from the database"
    );
    let cache = (!config.entity_cache_ttl.is_zero())
        .then(|| EntityCache::new(config.entity_cache_ttl, Arc::new(std::time::Instant::now)));
    Ok(enforcer.with_resolver(Arc::new(DbEntityResolver::new(db, cache))))
}

#[cfg(not(feature = "database"))]
fn with_database(enforcer: Enforcer, config: &Config) -> Result<Enforcer, StartError> {
    match config.database_url {
        None => Ok(enforcer),
        Some(_) => Err(StartError::Other(
            "DATABASE_URL: this authz was built without the `database` feature".into(),
        )),
    }
}

/// Parts `run` would otherwise build from the configuration; for tests and embedding.
#[derive(Default)]
pub struct Overrides {
    /// Answers group lookups instead of the configured source (the groups file still loads).
    pub groups: Option<Arc<dyn GroupSource>>,
    /// The directory cache's clock, so tests move time instead of sleeping.
    pub clock: Option<Arc<dyn Clock>>,
}

/// Loads policies and groups, binds the listeners and starts serving.
pub async fn run(config: Config) -> Result<ServerHandle, StartError> {
    run_with(config, Overrides::default()).await
}

/// `run`, with some parts supplied by the caller.
pub async fn run_with(config: Config, overrides: Overrides) -> Result<ServerHandle, StartError> {
    let mut metrics = Metrics::new();
    let shadow = config
        .policy_shadow_dir
        .as_deref()
        .map(|dir| Arc::new(Shadow::new(dir, metrics.registry_mut())));
    let metrics = Arc::new(metrics);
    let store = Arc::new(PolicyStore::load(&config.policy_dir)?);
    metrics
        .policies_loaded
        .set(i64::try_from(store.snapshot().policy_count()).unwrap_or(i64::MAX));
    let clock = overrides
        .clock
        .unwrap_or_else(|| Arc::new(SystemClock::new()));
    let group_cache = GroupCache::from_config(&config.directory, clock, metrics.clone())
        .map_err(|e| StartError::Other(e.to_string()))?;
    let (groups, groups_file): (Arc<dyn GroupSource>, _) = match &group_cache {
        Some(cache) => (Arc::new(cache.clone()), None),
        None => {
            let file = Arc::new(FileGroups::load(&config.groups_file)?);
            (file.clone(), Some(file))
        }
    };
    let groups = overrides.groups.unwrap_or(groups);
    let groups_kind = groups.kind();
    let enforcer = Enforcer::new(
        store.clone(),
        groups,
        config.secrets.secret_set(),
        metrics.clone(),
    );
    let enforcer = match &shadow {
        Some(s) => enforcer.with_shadow(s.clone()),
        None => enforcer,
    };
    let enforcer = Arc::new(with_database(enforcer, &config)?);
    let names = Arc::new(HeaderNames {
        user: header_name("X_USER_ID_HEADER", &config.user_header)?,
        secret: header_name("X_PROXY_SECRET_HEADER", &config.secret_header)?,
        client_ip: config
            .client_ip_header
            .as_deref()
            .map(|h| header_name("AUTHZ_CLIENT_IP_HEADER", h))
            .transpose()?,
        groups_max: config.groups_header_max,
    });
    let state = HttpState {
        enforcer: enforcer.clone(),
        names: names.clone(),
        groups_kind,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (listen, task) = serve("AUTHZ_LISTEN", &config.listen, routes(state), rx).await?;
    // On error `tx` drops, which stops the HTTP listener too.
    let grpc = match &config.grpc_listen {
        None => None,
        Some(addr) => Some(
            crate::envoy_grpc::serve(
                "AUTHZ_GRPC_LISTEN",
                addr,
                ExtAuthz::new(enforcer.clone(), names),
            )
            .await?,
        ),
    };
    let grpc_listen = grpc.as_ref().map(|g| g.listen.clone());
    let admin = AdminServer::start(&config.directory, group_cache.as_ref()).await?;
    let mut reloaders = vec![Reloader::spawn(
        store.clone() as Arc<dyn Reload>,
        metrics.clone(),
        config.policy_poll,
    )];
    if let Some(shadow) = &shadow {
        reloaders.push(Reloader::spawn(
            shadow.clone() as Arc<dyn Reload>,
            metrics.clone(),
            config.policy_poll,
        ));
    }
    if let Some(file) = &groups_file {
        reloaders.push(Reloader::spawn(
            file.clone() as Arc<dyn Reload>,
            metrics.clone(),
            config.policy_poll,
        ));
    }
    let snapshot = store.snapshot();
    if config.secrets.skip_header_check {
        tracing::warn!(
            "SKIP_HEADER_CHECK=true with DEBUG=true: the proxy secret is NOT checked; never run this in production"
        );
    }
    tracing::info!(
        listen = %listen,
        grpc_listen = %grpc_listen.as_ref().map_or_else(|| "off".to_string(), ToString::to_string),
        policy_dir = %config.policy_dir.display(),
        policy_hash = %snapshot.hash,
        policies = snapshot.policy_count(),
        routes = snapshot.routes.routes().len(),
        groups = groups_kind,
        groups_file = %config.groups_file.display(),
        "authz listening"
    );
    for w in &snapshot.warnings {
        tracing::warn!(file = %w.file, line = w.line, column = w.column, message = %w.message, "policy warning");
    }
    Ok(ServerHandle {
        listen,
        grpc_listen,
        enforcer,
        groups_file,
        group_cache,
        admin,
        grpc,
        reloaders,
        shutdown: Some(tx),
        task,
    })
}

/// Returns on SIGTERM or SIGINT; on SIGHUP calls `reload` (policies and groups) and goes on.
pub async fn wait_for_signals(reload: impl Fn()) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading policies and groups");
                reload();
            }
        }
    }
}
