//! What every end-to-end test shares: the secret, where the shipped files are, HTTP clients
//! that trust the test certificate authority, and waiting on a condition with a deadline.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The secret nginx, authz and ipm-api share in the tests.
pub const SECRET: &str = "e2e-secret-0123456789abcdef0123456789abcdef";

/// The identity layer's address: it connects to nginx from here, every other client from
/// 127.0.0.1, so nginx's trust in the layer is tested by address, as deployed.
pub const LAYER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Long enough for a loaded CI machine; conditions are polled, so passing tests take less.
pub const DEADLINE: Duration = Duration::from_secs(10);

const NEEDS_NGINX: &str = "NGINX_BIN is not set: run scripts/test, which installs nginx";

pub fn nginx_bin() -> PathBuf {
    PathBuf::from(std::env::var_os("NGINX_BIN").expect(NEEDS_NGINX))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped `nginx/` directory.
pub fn shipped_nginx() -> PathBuf {
    repo_root().join("nginx")
}

/// Copies the shipped policies (top-level files) into `dest`.
pub fn copy_policies(dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(repo_root().join("policies")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
    }
}

/// A loopback port nobody listens on right now. Another process may take it before nginx
/// binds it, so `Nginx::start` retries with fresh ports when the bind fails.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An HTTPS client that trusts only the test authority, follows no redirects and, with
/// `from`, connects from that local address.
pub fn https_client(ca_pem: &[u8], from: Option<IpAddr>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem).unwrap();
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DEADLINE);
    if let Some(ip) = from {
        b = b.local_address(ip);
    }
    b.build().unwrap()
}

/// A plain-HTTP client that follows no redirects.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

/// Polls `check` until it returns true or `deadline` passes; returns the time it took.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A response's status, headers and body, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn read(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap();
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers.get_all(name).iter().count()
    }
}
