//! Starting and stopping authz on the shared service skeleton: the core (policies, groups),
//! the enforcer, the adapters' listeners, the reloaders, one handle to reload and drain.

use std::net::SocketAddr;
use std::sync::Arc;

use ipm_policy::groups::{FileGroups, GroupSource};
use ipm_policy::secret::SecretSet;
use ipm_runtime::clock::Clock;
use ipm_runtime::config::ListenAddr;
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::groups::GroupCache;
use ipm_runtime::listen::serve;
use ipm_runtime::metrics::Metrics;
use ipm_runtime::reload::Reload;
use ipm_runtime::service::{Core, CoreSettings, ServiceHandle, header_name};

pub use ipm_runtime::service::StartError;

use crate::adapters::authzen::{AuthzenState, CallerAuth};
use crate::adapters::envoy_grpc::{self, ExtAuthz, GrpcServer};
use crate::adapters::http::{HeaderNames, HttpState};
use crate::config::{AuthzenListen, Config};
use crate::shadow::Shadow;

/// The main listener's name in the service handle.
const LISTEN: &str = "AUTHZ_LISTEN";
const ADMIN_LISTEN: &str = "AUTHZ_ADMIN_LISTEN";
const AUTHZEN_LISTEN: &str = "AUTHZ_AUTHZEN_LISTEN";

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
    grpc: Option<GrpcServer>,
    service: ServiceHandle,
    authzen_on_main: bool,
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

    /// The AuthZEN listener's TCP address: its own, else the main one (unless it is off).
    pub fn authzen_tcp_addr(&self) -> Option<SocketAddr> {
        match self.service.addr(AUTHZEN_LISTEN) {
            Some(ListenAddr::Tcp(a)) => Some(*a),
            Some(ListenAddr::Unix(_)) => None,
            None if self.authzen_on_main => self.tcp_addr(),
            None => None,
        }
    }

    /// The admin listener's TCP address, when `AUTHZ_ADMIN_LISTEN` is set.
    pub fn admin_tcp_addr(&self) -> Option<SocketAddr> {
        match self.service.addr(ADMIN_LISTEN) {
            Some(ListenAddr::Tcp(a)) => Some(*a),
            _ => None,
        }
    }

    /// Reloads policies and groups now, as SIGHUP does.
    pub fn reload_now(&self) {
        self.service.reload_now();
    }

    /// Stops accepting, lets requests in flight finish, then returns.
    pub async fn shutdown(mut self) {
        if let Some(grpc) = self.grpc.take() {
            grpc.shutdown().await;
        }
        self.service.shutdown().await;
    }
}

/// With `DATABASE_URL`, resolves `Project` entities from the API's database: read-only,
/// connected on first use (authz may start first), cached for `AUTHZ_ENTITY_CACHE_TTL_MS`.
#[cfg(feature = "database")]
fn with_database(enforcer: Enforcer, config: &Config) -> Result<Enforcer, StartError> {
    use ipm_runtime::db::{DbPool, PoolSettings};
    use ipm_runtime::db_entities::{DbEntityResolver, EntityCache};
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
    .map_err(|e| StartError::Database(e.to_string()))?;
    tracing::info!(
        backend = db.backend(),
        cache_ttl_ms = u64::try_from(config.entity_cache_ttl.as_millis()).unwrap_or(u64::MAX),
        "resolving project entities from the database"
    );
    let cache = (!config.entity_cache_ttl.is_zero())
        .then(|| EntityCache::new(config.entity_cache_ttl, Arc::new(std::time::Instant::now)));
    let resolver = Arc::new(DbEntityResolver::new(db, cache));
    // The same rows serve AuthZEN's project search, on the API's own list engine.
    Ok(enforcer
        .with_resolver(resolver.clone())
        .with_projects(resolver))
}

#[cfg(not(feature = "database"))]
fn with_database(enforcer: Enforcer, config: &Config) -> Result<Enforcer, StartError> {
    match config.database_url {
        None => Ok(enforcer),
        Some(_) => Err(StartError::Database(
            "this authz was built without the `database` feature".into(),
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
    let core = Core::load(
        CoreSettings {
            policy_dir: &config.policy_dir,
            groups_file: &config.groups_file,
            directory: &config.directory,
            clock: overrides.clock,
            groups_override: overrides.groups,
        },
        metrics,
    )?;
    let groups_kind = core.groups.kind();
    let mut enforcer = Enforcer::new(
        core.store.clone(),
        core.groups.clone(),
        config.secrets.secret_set(),
        core.metrics.clone(),
    );
    if let Some(s) = &shadow {
        enforcer = enforcer.with_observer(s.clone());
    }
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
        shadow: shadow.clone(),
    };
    let authzen = AuthzenState {
        enforcer: enforcer.clone(),
        auth: Arc::new(match &config.authzen.token {
            Some(token) => CallerAuth::Token(SecretSet::new(token, None)),
            None => CallerAuth::ProxySecret {
                header: names.secret.clone(),
                secrets: config.secrets.secret_set(),
            },
        }),
        pdp_url: config.authzen.pdp_url.as_deref().map(Arc::from),
    };
    let authzen_on_main = config.authzen.listen == AuthzenListen::Main;
    let mut service = ServiceHandle::default();
    let main = serve(
        LISTEN,
        &config.listen,
        crate::adapters::routes(state, authzen_on_main.then(|| authzen.clone())),
    )
    .await?;
    let listen = main.addr.clone();
    service.add_listener(LISTEN, main);
    // On error `service` drops, which stops the listeners already bound.
    let grpc = match &config.grpc_listen {
        None => None,
        Some(addr) => Some(
            envoy_grpc::serve(
                "AUTHZ_GRPC_LISTEN",
                addr,
                ExtAuthz::new(enforcer.clone(), names),
            )
            .await?,
        ),
    };
    let grpc_listen = grpc.as_ref().map(|g| g.listen.clone());
    if let AuthzenListen::Own(addr) = &config.authzen.listen {
        let own = serve(
            AUTHZEN_LISTEN,
            addr,
            crate::adapters::authzen_routes(authzen.clone()),
        )
        .await?;
        service.add_listener(AUTHZEN_LISTEN, own);
    }
    if let Some(admin) =
        crate::adapters::admin::start(&config.directory, core.group_cache.as_ref()).await?
    {
        service.add_listener(ADMIN_LISTEN, admin);
    }
    let extra: Vec<Arc<dyn Reload>> = shadow
        .iter()
        .map(|s| s.clone() as Arc<dyn Reload>)
        .collect();
    service.add_reloaders(core.reloaders(config.policy_poll, extra));
    let snapshot = core.store.snapshot();
    if config.secrets.skip_header_check {
        tracing::warn!(
            "SKIP_HEADER_CHECK=true with DEBUG=true: the proxy secret is NOT checked; never run this in production"
        );
    }
    tracing::info!(
        listen = %listen,
        grpc_listen = %grpc_listen.as_ref().map_or_else(|| "off".to_string(), ToString::to_string),
        authzen = ?config.authzen.listen,
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
        groups_file: core.groups_file,
        group_cache: core.group_cache,
        grpc,
        service,
        authzen_on_main,
    })
}
