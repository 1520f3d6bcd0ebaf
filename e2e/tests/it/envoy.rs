//! Through a real Envoy: the shipped `envoy/*.yaml`, with addresses substituted, in front of authz
//! and an upstream that echoes the headers it received. Needs `ENVOY_BIN` (and `XDS_PYTHON`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authz::server::ServerHandle;
use ipm_runtime::config::ListenAddr;
use ipm_testkit::{eventually, repo_root};
use sha2::{Digest, Sha256};
use warp::Filter;

use crate::support::{SECRET, spawn_authz};

const NEEDS_ENVOY: &str = "ENVOY_BIN is not set: run scripts/test, which installs Envoy";

fn envoy_bin() -> PathBuf {
    PathBuf::from(std::env::var_os("ENVOY_BIN").expect(NEEDS_ENVOY))
}

fn shipped(name: &str) -> PathBuf {
    repo_root().join("envoy").join(name)
}

// === the identity provider: HS256 tokens and their JWKS ===

const JWT_KEY: &[u8] = b"e2e-hmac-key-0123456789abcdef0123456789";

fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<_>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn jwks() -> String {
    serde_json::json!({ "keys": [{ "kty": "oct", "alg": "HS256", "kid": "e2e", "k": b64url(JWT_KEY) }] })
        .to_string()
}

/// A token as the shipped configs' identity provider would issue it.
fn token(email: &str) -> String {
    token_signed_with(email, JWT_KEY)
}

fn token_signed_with(email: &str, key: &[u8]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"e2e"}"#);
    let claims = serde_json::json!({
        "iss": "https://idp.example.com", "aud": "ipm", "sub": email, "email": email,
        "iat": now, "exp": now + 600,
    });
    let claims = b64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{claims}");
    let sig = b64url(&hmac_sha256(key, signing_input.as_bytes()));
    format!("{signing_input}.{sig}")
}

// === the upstream: echoes what reached it ===

struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

async fn echo_upstream() -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let echo = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .map(
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  headers: warp::http::HeaderMap| {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut seen = serde_json::Map::new();
                for name in headers.keys() {
                    let values: Vec<_> = headers
                        .get_all(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect();
                    seen.insert(name.as_str().to_string(), values.into());
                }
                warp::reply::json(&serde_json::json!({
                    "method": method.as_str(), "path": path.as_str(), "headers": seen,
                }))
            },
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(warp::serve(echo).incoming(l).run());
    Upstream { addr, hits }
}

// === Envoy ===

/// The shipped file with `(from, to)` substituted outside comments; each `from` must occur
/// exactly once, so a change to the shipped file cannot silently leave a default in place.
fn render(name: &str, substitutions: &[(&str, String)]) -> String {
    let text = std::fs::read_to_string(shipped(name)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (from, to) in substitutions {
        let mut found = 0;
        for line in lines
            .iter_mut()
            .filter(|l| !l.trim_start().starts_with('#'))
        {
            found += line.matches(from).count();
            *line = line.replace(from, to);
        }
        assert_eq!(found, 1, "`{from}` in envoy/{name}");
    }
    lines.join("\n")
}

/// The substitutions every test makes: loopback and ephemeral ports, the secret, the keys.
fn common(jwks_path: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "address: 0.0.0.0, port_value: 10000",
            "address: 127.0.0.1, port_value: 0".into(),
        ),
        ("port_value: 9901", "port_value: 0".into()),
        ("${PROXY_SHARED_SECRET}", SECRET.into()),
        ("/etc/envoy/jwks.json", jwks_path.display().to_string()),
    ]
}

struct Envoy {
    child: Child,
    pub listener: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Envoy {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// Starts Envoy on `config` and waits until it is ready and its listener is bound.
    async fn start(config: &str, dir: tempfile::TempDir) -> Self {
        let cfg = dir.path().join("envoy.yaml");
        std::fs::write(&cfg, config).unwrap();
        let admin_file = dir.path().join("admin-address");
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&cfg)
            .args([
                "--concurrency",
                "1",
                "--log-level",
                "warn",
                "--disable-hot-restart",
            ])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--log-path")
            .arg(dir.path().join("envoy.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ENVOY_BIN starts");
        let mut envoy = Self {
            child,
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let admin = std::cell::RefCell::new(String::new());
        let ready = eventually(Duration::from_secs(30), || {
            let admin_file = admin_file.clone();
            let http = http.clone();
            let admin = &admin;
            async move {
                let Ok(addr) = std::fs::read_to_string(&admin_file) else {
                    return false;
                };
                let addr = addr.trim().to_string();
                *admin.borrow_mut() = addr.clone();
                let Ok(r) = http.get(format!("http://{addr}/ready")).send().await else {
                    return false;
                };
                r.status() == 200
            }
        })
        .await;
        if ready.is_none() {
            let status = envoy.child.try_wait();
            panic!("Envoy did not become ready ({status:?}):\n{}", envoy.log());
        }
        let admin = admin.into_inner();
        let listeners: serde_json::Value = http
            .get(format!("http://{admin}/listeners?format=json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let port =
            listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                .as_u64()
                .expect("the ingress listener's port");
        envoy.listener = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap()));
        envoy
    }
}

/// A client request through Envoy and what it produced: status, body, and the upstream's echo.
struct Outcome {
    status: u16,
    body: serde_json::Value,
}

impl Outcome {
    /// The upstream's view of one request header, when it got the request.
    fn upstream(&self, name: &str) -> Option<String> {
        let values = self.body["headers"][name].as_array()?;
        assert_eq!(
            values.len(),
            1,
            "{name} reached the upstream {} times",
            values.len()
        );
        values[0].as_str().map(str::to_string)
    }
}

struct Stack {
    /// authz, until the test stops it.
    authz: Option<ServerHandle>,
    _authz_files: tempfile::TempDir,
    upstream: Upstream,
    envoy: Envoy,
    client: reqwest::Client,
}

impl Stack {
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Outcome {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("http://{}{path}", self.envoy.listener));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("Envoy answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Outcome { status, body }
    }

    async fn as_user(&self, email: &str, method: &str, path: &str) -> Outcome {
        let bearer = format!("Bearer {}", token(email));
        self.send(method, path, &[("authorization", &bearer)]).await
    }

    fn hits(&self) -> usize {
        self.upstream.hits.load(Ordering::SeqCst)
    }

    fn assert_denied(&self, o: &Outcome, before: usize, status: u16, reason: Option<&str>) {
        assert_eq!(o.status, status, "{:?}\n{}", o.body, self.envoy.log());
        if let Some(reason) = reason {
            assert_eq!(o.body["reason"], reason, "{:?}", o.body);
        }
        assert_eq!(self.hits(), before, "a denied request reached the upstream");
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Grpc,
    GrpcUnix,
    Http,
}

async fn stack(mode: Mode) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("authz-grpc.sock");
    let app = match mode {
        Mode::GrpcUnix => {
            let sock = sock.clone();
            spawn_authz(move |c| c.grpc_listen = Some(ListenAddr::Unix(sock))).await
        }
        Mode::Grpc | Mode::Http => spawn_authz(|_| {}).await,
    };
    let upstream = echo_upstream().await;
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks()).unwrap();
    let mut subs = common(&jwks_path);
    subs.push((
        "port_value: 8000",
        format!("port_value: {}", upstream.addr.port()),
    ));
    let (file, extra) = match mode {
        Mode::Grpc => (
            "envoy.yaml",
            vec![(
                "port_value: 9191",
                format!("port_value: {}", app.handle.grpc_tcp_addr().unwrap().port()),
            )],
        ),
        Mode::GrpcUnix => (
            "envoy.yaml",
            vec![(
                "socket_address: { address: 127.0.0.1, port_value: 9191 }",
                format!("pipe: {{ path: {} }}", sock.display()),
            )],
        ),
        Mode::Http => (
            "envoy-http.yaml",
            vec![
                (
                    "uri: http://127.0.0.1:8181",
                    format!("uri: http://{}", app.addr),
                ),
                (
                    "port_value: 8181",
                    format!("port_value: {}", app.addr.port()),
                ),
            ],
        ),
    };
    subs.extend(extra);
    let envoy = Envoy::start(&render(file, &subs), dir).await;
    Stack {
        authz: Some(app.handle),
        _authz_files: app.root,
        upstream,
        envoy,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

/// Every scenario, in one Envoy per mode (Envoy takes about a second to start).
async fn scenarios(mode: Mode) {
    let s = stack(mode).await;

    // Allowed: the identity comes from the token; the secret and the token stay behind.
    let o = s
        .as_user("bob@example.com", "GET", "/api/projects?limit=5")
        .await;
    assert_eq!(o.status, 200, "{mode:?}: {:?}\n{}", o.body, s.envoy.log());
    assert_eq!(o.body["path"], "/api/projects");
    assert_eq!(
        o.upstream("x-authz-user").as_deref(),
        Some("bob@example.com")
    );
    assert_eq!(
        o.upstream("x-authz-groups").as_deref(),
        Some("editors,photographers")
    );
    assert_eq!(
        o.upstream("x-user-email").as_deref(),
        Some("bob@example.com")
    );
    assert_eq!(o.upstream("x-proxy-secret"), None);
    assert_eq!(o.upstream("authorization"), None);
    assert!(
        !o.body.to_string().contains(SECRET),
        "{mode:?}: the secret reached the upstream"
    );

    // A client's own identity headers and secret never count and never reach the upstream.
    let bearer = format!("Bearer {}", token("alice@example.com"));
    let o = s
        .send(
            "GET",
            "/api/projects",
            &[
                ("authorization", &bearer),
                ("x-user-email", "admin@example.com"),
                ("x-proxy-secret", "client-chosen-secret"),
                ("x-authz-user", "admin@example.com"),
                ("x-authz-groups", "admins"),
                ("x-authz-groups-truncated", "true"),
            ],
        )
        .await;
    assert_eq!(o.status, 200, "{mode:?}: {:?}", o.body);
    assert_eq!(
        o.upstream("x-authz-user").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        o.upstream("x-authz-groups").as_deref(),
        Some("photographers")
    );
    assert_eq!(
        o.upstream("x-user-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(o.upstream("x-authz-groups-truncated"), None);
    assert_eq!(o.upstream("x-proxy-secret"), None);
    assert!(!o.body.to_string().contains(SECRET));

    // No token: no user, whatever headers the client sends, even the right secret.
    let before = s.hits();
    let o = s
        .send(
            "GET",
            "/api/projects",
            &[
                ("x-user-email", "admin@example.com"),
                ("x-proxy-secret", SECRET),
            ],
        )
        .await;
    s.assert_denied(&o, before, 401, Some("missing_user"));
    // A forged token: jwt_authn refuses it before authz is asked.
    let forged = format!(
        "Bearer {}",
        token_signed_with("admin@example.com", b"not-the-key")
    );
    let o = s
        .send("GET", "/api/projects", &[("authorization", &forged)])
        .await;
    s.assert_denied(&o, before, 401, None);

    // 403: policy and route denials, with authz's JSON body.
    let o = s
        .as_user("nobody@example.com", "GET", "/api/projects")
        .await;
    s.assert_denied(&o, before, 403, Some("policy_denied"));
    let o = s
        .as_user("mallory@example.com", "GET", "/api/projects")
        .await;
    s.assert_denied(&o, before, 403, Some("policy_denied"));
    let o = s
        .as_user("alice@example.com", "GET", "/no/such/route")
        .await;
    s.assert_denied(&o, before, 403, Some("no_route"));
    // The method is the client's: an editor may read projects but not delete one.
    let o = s
        .as_user("bob@example.com", "DELETE", "/api/projects/p1")
        .await;
    s.assert_denied(&o, before, 403, Some("policy_denied"));
    let o = s
        .as_user("admin@example.com", "DELETE", "/api/projects/p1")
        .await;
    assert_eq!(o.status, 200, "{mode:?}: {:?}", o.body);
    assert_eq!(o.body["method"], "DELETE");

    // authz stopped: the client is denied, never passed through.
    let mut s = s;
    if let Some(authz) = s.authz.take() {
        authz.shutdown().await;
    }
    let before = s.hits();
    let o = s.as_user("bob@example.com", "GET", "/api/projects").await;
    s.assert_denied(&o, before, 503, None);
}

#[tokio::test]
#[ignore = "needs Envoy: run scripts/test"]
async fn envoy_grpc_mode_end_to_end() {
    scenarios(Mode::Grpc).await;
}

#[tokio::test]
#[ignore = "needs Envoy: run scripts/test"]
async fn envoy_grpc_over_a_unix_socket_end_to_end() {
    scenarios(Mode::GrpcUnix).await;
}

#[tokio::test]
#[ignore = "needs Envoy: run scripts/test"]
async fn envoy_http_mode_end_to_end() {
    scenarios(Mode::Http).await;
}

#[test]
#[ignore = "needs Envoy: run scripts/test"]
fn every_shipped_envoy_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks()).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(shipped(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 2, "{names:?}");
    for name in names {
        // Only the key file, which must exist: everything else as shipped.
        let text = render(
            &name,
            &[("/etc/envoy/jwks.json", jwks_path.display().to_string())],
        );
        let cfg = dir.path().join(&name);
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(envoy_bin())
            .args(["--mode", "validate", "--disable-hot-restart", "-c"])
            .arg(&cfg)
            .output()
            .expect("ENVOY_BIN runs");
        assert!(
            out.status.success(),
            "envoy/{name} does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
#[ignore = "needs XDS_PYTHON: run scripts/test"]
async fn independent_client_from_envoys_protos_is_never_allowed_what_it_should_not_be() {
    let python = std::env::var_os("XDS_PYTHON")
        .expect("XDS_PYTHON is not set: run scripts/test, which installs grpcio and xds-protos");
    let script = repo_root().join("tests/python/ext_authz_check.py");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("grpc.sock");
    let tcp = spawn_authz(|_| {}).await;
    let unix = {
        let sock = sock.clone();
        spawn_authz(move |c| c.grpc_listen = Some(ListenAddr::Unix(sock))).await
    };
    let targets = [
        tcp.handle.grpc_tcp_addr().unwrap().to_string(),
        format!("unix:{}", sock.display()),
    ];
    for target in targets {
        let python = python.clone();
        let script = script.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(python)
                .arg(script)
                .arg(&target)
                .env("AUTHZ_TEST_SECRET", SECRET)
                .output()
                .expect("XDS_PYTHON runs")
        })
        .await
        .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{report}");
        assert!(report.contains("cases as expected"), "{report}");
    }
    tcp.handle.shutdown().await;
    unix.handle.shutdown().await;
}
