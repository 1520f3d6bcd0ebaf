//! Starting and stopping authz: load everything, bind, serve, watch files, drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::header::HeaderName;

use crate::config::{Config, ListenAddr};
use crate::enforcer::Enforcer;
use crate::groups::{FileGroups, GroupSource};
use crate::http::{HeaderNames, HttpState, routes};
use crate::metrics::Metrics;
use crate::reload::{Reload, Reloader};
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
    pub enforcer: Arc<Enforcer>,
    pub groups_file: Arc<FileGroups>,
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

    /// Reloads policies and groups now, as SIGHUP does.
    pub fn reload_now(&self) {
        for r in &self.reloaders {
            r.trigger();
        }
    }

    /// Stops accepting, lets requests in flight finish, then returns.
    pub async fn shutdown(mut self) {
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
            // A socket left by a previous run would make bind fail; anything else is not ours.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    let _ = std::fs::remove_file(path);
                }
            }
            let l = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
            let task = tokio::spawn(warp::serve(filter).incoming(l).graceful(signal).run());
            Ok((ListenAddr::Unix(path.clone()), task))
        }
    }
}

fn header_name(var: &'static str, name: &str) -> Result<HeaderName, StartError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| StartError::Other(format!("{var}: `{name}`: {e}")))
}

/// Loads policies and groups, binds the listener and starts serving.
pub async fn run(config: Config) -> Result<ServerHandle, StartError> {
    let metrics = Metrics::new();
    let metrics = Arc::new(metrics);
    let store = Arc::new(PolicyStore::load(&config.policy_dir)?);
    metrics
        .policies_loaded
        .set(i64::try_from(store.snapshot().policy_count()).unwrap_or(i64::MAX));
    let groups_file = Arc::new(FileGroups::load(&config.groups_file)?);
    let groups: Arc<dyn GroupSource> = groups_file.clone();
    let enforcer = Arc::new(Enforcer::new(
        store.clone(),
        groups,
        config.secrets.secret_set(),
        metrics.clone(),
    ));
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
        names,
        groups_kind: groups_file.kind(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (listen, task) = serve("AUTHZ_LISTEN", &config.listen, routes(state), rx).await?;
    let reloaders = vec![
        Reloader::spawn(
            store.clone() as Arc<dyn Reload>,
            metrics.clone(),
            config.policy_poll,
        ),
        Reloader::spawn(
            groups_file.clone() as Arc<dyn Reload>,
            metrics.clone(),
            config.policy_poll,
        ),
    ];
    let snapshot = store.snapshot();
    if config.secrets.skip_header_check {
        tracing::warn!(
            "SKIP_HEADER_CHECK=true with DEBUG=true: the proxy secret is NOT checked; never run this in production"
        );
    }
    tracing::info!(
        listen = %listen,
        policy_dir = %config.policy_dir.display(),
        policy_hash = %snapshot.hash,
        policies = snapshot.policy_count(),
        routes = snapshot.routes.routes().len(),
        groups_file = %config.groups_file.display(),
        "authz listening"
    );
    for w in &snapshot.warnings {
        tracing::warn!(file = %w.file, line = w.line, column = w.column, message = %w.message, "policy warning");
    }
    Ok(ServerHandle {
        listen,
        enforcer,
        groups_file,
        reloaders,
        shutdown: Some(tx),
        task,
    })
}
