//! Listeners: bind a TCP address or a unix socket once, serve a warp filter on it, and drain
//! requests in flight when asked to stop.

use std::path::Path;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::ListenAddr;

/// A listener that could not be bound; names the variable that asked for it.
#[derive(Debug, thiserror::Error)]
#[error("{var}: cannot listen on `{addr}`: {message}")]
pub struct BindError {
    pub var: &'static str,
    pub addr: String,
    pub message: String,
}

/// A bound, serving listener. `stop` lets requests in flight finish.
#[derive(Debug)]
pub struct Listener {
    /// The bound address (the real port when 0 was asked for).
    pub addr: ListenAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Listener {
    /// A listener served by something other than warp (tonic, say): its bound address, the
    /// sender that stops it, and its task.
    pub fn from_parts(addr: ListenAddr, stop: oneshot::Sender<()>, task: JoinHandle<()>) -> Self {
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops accepting, waits for requests in flight, removes a unix socket file.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        if let ListenAddr::Unix(path) = &self.addr {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds `listen` (named by `var` in errors) and serves `filter` on it.
pub async fn serve<F>(
    var: &'static str,
    listen: &ListenAddr,
    filter: F,
) -> Result<Listener, BindError>
where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let bind_err = |e: std::io::Error| BindError {
        var,
        addr: listen.to_string(),
        message: e.to_string(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let signal = async move {
        let _ = rx.await;
    };
    let (addr, task) = match listen {
        ListenAddr::Tcp(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(bind_err)?;
            let bound = l.local_addr().map_err(bind_err)?;
            let task = tokio::spawn(warp::serve(filter).incoming(l).graceful(signal).run());
            (ListenAddr::Tcp(bound), task)
        }
        ListenAddr::Unix(path) => {
            remove_stale_socket(path);
            let l = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
            let task = tokio::spawn(warp::serve(filter).incoming(l).graceful(signal).run());
            (ListenAddr::Unix(path.clone()), task)
        }
    };
    Ok(Listener {
        addr,
        stop: Some(tx),
        task,
    })
}

/// A socket left by a previous run would make bind fail; anything else at `path` is not ours.
pub fn remove_stale_socket(path: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}
