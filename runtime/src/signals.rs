//! Process signals: SIGTERM and SIGINT stop (the caller drains), SIGHUP reloads. Installed
//! before the service starts, so a signal sent as soon as it answers is never the default
//! action (which would kill the process).

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The installed handlers.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers; call before starting to serve.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Returns on SIGTERM or SIGINT; on SIGHUP calls `reload` (policies and groups) and goes on.
    pub async fn wait(mut self, reload: impl Fn()) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP: reloading policies and groups");
                    reload();
                }
            }
        }
    }
}
