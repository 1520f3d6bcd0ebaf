//! Waiting on a condition with a deadline, never sleeping for a guessed time: the wait ends as
//! soon as the condition holds, and a short poll interval is the only pause.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(10);

/// Polls `check` until it returns true or `deadline` passes; returns the time it took, or
/// `None` when the deadline passed first.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until something accepts TCP connections at `addr`; the time it took, or `None`.
pub async fn wait_listening(addr: SocketAddr, deadline: Duration) -> Option<Duration> {
    eventually(deadline, || async move {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await
}
