//! What every end-to-end test shares beyond the test kit: the secret, nginx and its shipped
//! files, authz on its own, and HTTP clients that trust the test certificate authority.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use authz::config::Config;
use authz::server::ServerHandle;
use ipm_testkit::{copy_policies, repo_root};
use warp::hyper::body::Bytes;

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

/// The shipped `nginx/` directory.
pub fn shipped_nginx() -> PathBuf {
    repo_root().join("nginx")
}

/// authz alone, on a copy of the shipped policies and groups, after `adjust`.
pub struct Authz {
    pub handle: ServerHandle,
    /// The HTTP listener (`/auth`, the Envoy HTTP check).
    pub addr: SocketAddr,
    /// Holds the policies; removed on drop.
    pub root: tempfile::TempDir,
}

pub async fn spawn_authz(adjust: impl FnOnce(&mut Config)) -> Authz {
    let root = tempfile::tempdir().unwrap();
    let policy_dir = root.path().join("policies");
    copy_policies(&policy_dir);
    let mut config = Config::for_test(&policy_dir, &policy_dir.join("groups.toml"), SECRET);
    adjust(&mut config);
    let handle = authz::server::run(config).await.expect("authz starts");
    let addr = handle.tcp_addr().expect("a TCP listener");
    Authz { handle, addr, root }
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

/// A PNG as the API recognises it (signature and header), `len` bytes in all.
pub fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&640u32.to_be_bytes());
    v.extend_from_slice(&480u32.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    let start = v.len();
    v.extend((start..len).map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8));
    v
}

/// An upload whose body the test hands over piece by piece, so it can see the API receive
/// the first piece while the client still holds the rest.
pub struct Upload {
    body: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    reply: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
}

impl Upload {
    /// Sends `request` (method, URL and headers set) with a body fed by [`Upload::send`].
    pub fn start(request: reqwest::RequestBuilder) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let request = request.body(reqwest::Body::wrap_stream(stream));
        Self {
            body: tx,
            reply: tokio::spawn(request.send()),
        }
    }

    pub async fn send(&self, bytes: &[u8]) {
        self.body
            .send(Ok(Bytes::copy_from_slice(bytes)))
            .await
            .unwrap();
    }

    pub async fn finish(self) -> Reply {
        drop(self.body);
        Reply::read(self.reply.await.unwrap().unwrap()).await
    }
}
