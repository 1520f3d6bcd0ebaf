//! A TCP relay on 127.0.0.1 in front of a real service (Redis, PostgreSQL, a directory), cut
//! and restored on cue: a dependency going down and coming back while the shared server
//! itself keeps running for the other tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A running relay to `upstream`; stopped on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts relaying connections to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (d, c) = (down.clone(), conns.clone());
        let server = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    // Down: the connection is closed as soon as it is made.
                    drop(client);
                    continue;
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut live = c.lock().unwrap();
                live.retain(|h| !h.is_finished());
                live.push(relay.abort_handle());
            }
        });
        Self {
            addr,
            down,
            conns,
            server,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every open connection and closes each new one at once.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    /// Relays again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Connections relayed now.
    pub fn open_connections(&self) -> usize {
        let mut live = self.conns.lock().unwrap();
        live.retain(|h| !h.is_finished());
        live.len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}
