//! Process signals: SIGTERM and SIGINT stop (the caller drains), SIGHUP reloads.

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
