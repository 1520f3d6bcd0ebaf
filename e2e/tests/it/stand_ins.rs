//! Real servers playing the parts around nginx: the identity layer in front (oauth2-proxy's
//! role), recorders standing in for authz or the API, and a relay that counts what reaches the API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warp::Filter;
use warp::filters::path::FullPath;
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::{HeaderMap, Method, Response, StatusCode};
use warp::hyper::body::Bytes;

use crate::support::{LAYER_IP, https_client};

/// Headers that describe one connection, not the request: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// The request's method, path and query string, as a filter.
fn request_line()
-> impl Filter<Extract = (Method, String), Error = std::convert::Infallible> + Clone {
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .map(|method, path: FullPath, query: Option<String>| {
            let uri = match query {
                Some(q) => format!("{}?{q}", path.as_str()),
                None => path.as_str().to_string(),
            };
            (method, uri)
        })
        .untuple_one()
}

// === the identity layer ===

/// The cookie the layer's session travels in, as oauth2-proxy names it.
const SESSION_COOKIE: &str = "_oauth2_proxy";

/// Sessions the layer has: the users who signed in, by cookie value.
const SESSIONS: &[(&str, &str)] = &[
    ("session-alice", "alice@example.com"),
    ("session-bob", "bob@example.com"),
    ("session-carol", "carol@example.com"),
    ("session-admin", "admin@example.com"),
    ("session-mallory", "mallory@example.com"),
];

/// The `Cookie` header of a browser signed in at the layer as `user` (`alice`, `bob`, ...).
pub fn session_cookie(user: &str) -> String {
    format!("{SESSION_COOKIE}=session-{user}")
}

fn session_email(headers: &HeaderMap) -> Option<&'static str> {
    let cookies = headers.get_all("cookie");
    let value = cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))?;
    SESSIONS
        .iter()
        .find(|(session, _)| *session == value)
        .map(|(_, email)| *email)
}

/// Plays oauth2-proxy in front of nginx: knows who is signed in from the session cookie,
/// removes any `X-Forwarded-Email` the client sent, sets its own for signed-in users, appends
/// the client's address to `X-Forwarded-For`, and forwards over HTTPS from `LAYER_IP` with the
/// client's own `Host` (oauth2-proxy's `--pass-host-header`, on by default), so a browser's
/// `Origin` names the host the API is told of.
/// Requests without a session go on anonymous (as oauth2-proxy's skipped routes do), so
/// nginx and authz answer them.
pub struct IdentityLayer {
    pub addr: SocketAddr,
}

impl IdentityLayer {
    pub async fn start(nginx: SocketAddr, ca_pem: &[u8]) -> Self {
        let client = https_client(ca_pem, Some(LAYER_IP));
        let base = format!("https://{nginx}");
        let route = request_line()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .and(warp::addr::remote())
            .then(
                move |method, uri: String, headers, body, remote: Option<SocketAddr>| {
                    let client = client.clone();
                    let url = format!("{base}{uri}");
                    async move { forward(&client, method, url, headers, body, remote).await }
                },
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(l).run());
        Self { addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn forward(
    client: &reqwest::Client,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    remote: Option<SocketAddr>,
) -> Response<Bytes> {
    let mut out = HeaderMap::new();
    for (name, value) in &headers {
        if HOP_BY_HOP.contains(&name.as_str()) || name == "x-forwarded-email" {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Some(host) = headers.get("host") {
        out.insert("host", host.clone());
    }
    if let Some(email) = session_email(&headers) {
        out.insert("x-forwarded-email", HeaderValue::from_static(email));
    }
    if let Some(remote) = remote {
        let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(before) => format!("{before}, {}", remote.ip()),
            None => remote.ip().to_string(),
        };
        out.insert("x-forwarded-for", HeaderValue::from_str(&xff).unwrap());
    }
    let upstream = match client
        .request(method, url)
        .headers(out)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let mut r = Response::new(Bytes::from(format!("identity layer: {e}")));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return r;
        }
    };
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    let body = upstream.bytes().await.unwrap_or_default();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

// === recorders ===

/// One request as a recorder received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    /// Every value of `name`, in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The header names, sorted, each once.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.headers.keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }
}

type Answer = dyn Fn(&Seen) -> Response<Bytes> + Send + Sync;

/// A server that keeps every request it receives and answers with `answer`.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub async fn start(answer: impl Fn(&Seen) -> Response<Bytes> + Send + Sync + 'static) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let store = seen.clone();
        let answer: Arc<Answer> = Arc::new(answer);
        let route = request_line()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(move |method, uri, headers, body| {
                let s = Seen {
                    method,
                    uri,
                    headers,
                    body,
                };
                let r = answer(&s);
                store.lock().unwrap().push(s);
                r
            });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(l).run());
        Self { addr, seen }
    }

    /// The requests received since the last call.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// A reply with a status, headers and a JSON body.
pub fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in headers {
        r.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    r
}

// === the counting relay ===

/// A TCP relay in front of the API that counts every byte sent towards it, so a test can
/// show that nothing at all reached the API, not even a request it would have refused.
pub struct Relay {
    pub addr: SocketAddr,
    bytes_in: Arc<AtomicU64>,
    /// The first [`KEPT`] bytes received, for tests that look for what must not arrive.
    kept: Arc<Mutex<Vec<u8>>>,
}

/// How much of what reaches the API a relay keeps.
const KEPT: usize = 64 << 20;

impl Relay {
    pub async fn start(target: SocketAddr) -> Self {
        let bytes_in = Arc::new(AtomicU64::new(0));
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (counter, keep) = (bytes_in.clone(), kept.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((conn, _)) = l.accept().await {
                tokio::spawn(pipe(conn, target, counter.clone(), keep.clone()));
            }
        });
        Self {
            addr,
            bytes_in,
            kept,
        }
    }

    /// Whether `needle` occurs in what reached the API so far (case-insensitively, as header
    /// names and many values compare).
    pub fn received(&self, needle: &str) -> bool {
        let kept = self.kept.lock().unwrap();
        let needle = needle.to_ascii_lowercase();
        kept.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    }

    /// Bytes received from nginx so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::SeqCst)
    }
}

async fn pipe(
    mut client: tokio::net::TcpStream,
    target: SocketAddr,
    counter: Arc<AtomicU64>,
    kept: Arc<Mutex<Vec<u8>>>,
) {
    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.split();
    let (mut from_server, mut to_server) = server.split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            {
                let mut kept = kept.lock().unwrap();
                let room = KEPT.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
            }
            counter.fetch_add(n as u64, Ordering::SeqCst);
            if to_server.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_server.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}
