//! Loopback addresses for servers a test starts as child processes, which cannot be handed a
//! bound socket.

use std::net::SocketAddr;

/// A loopback port nobody listens on right now. Another process may take it before the child
/// binds it, so callers that can should retry with a fresh port when the bind fails.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
