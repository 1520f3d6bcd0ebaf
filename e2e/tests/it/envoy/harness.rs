//! A real Envoy on a shipped `envoy/*.yaml`, with the documented paths and addresses
//! substituted, and the identity provider whose tokens it verifies.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipm_testkit::{eventually, repo_root};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use ipm_runtime::config::ListenAddr;

use crate::support::{Authz, SECRET, spawn_authz};

const NEEDS_ENVOY: &str = "ENVOY_BIN is not set: run scripts/test, which installs Envoy";

pub fn envoy_bin() -> PathBuf {
    PathBuf::from(std::env::var_os("ENVOY_BIN").expect(NEEDS_ENVOY))
}

pub fn shipped(name: &str) -> PathBuf {
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

pub fn jwks() -> String {
    serde_json::json!({ "keys": [{ "kty": "oct", "alg": "HS256", "kid": "e2e", "k": b64url(JWT_KEY) }] })
        .to_string()
}

/// A token as the shipped configs' identity provider would issue it: the email verified.
pub fn token(email: &str) -> String {
    signed(email, Some(true), JWT_KEY)
}

/// A validly signed token whose `email_verified` claim is `verified` (absent with `None`), as
/// a provider issues it to a user who typed an address and never confirmed it.
pub fn token_with_verified(email: &str, verified: Option<bool>) -> String {
    signed(email, verified, JWT_KEY)
}

pub fn token_signed_with(email: &str, key: &[u8]) -> String {
    signed(email, Some(true), key)
}

fn signed(email: &str, verified: Option<bool>, key: &[u8]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"e2e"}"#);
    let mut claims = serde_json::json!({
        "iss": "https://idp.example.com", "aud": "ipm", "sub": email, "email": email,
        "iat": now, "exp": now + 600,
    });
    if let Some(v) = verified {
        claims["email_verified"] = v.into();
    }
    let claims = b64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{claims}");
    let sig = b64url(&hmac_sha256(key, signing_input.as_bytes()));
    format!("{signing_input}.{sig}")
}

// === rendering a shipped config ===

/// The shipped file with `(from, to)` substituted outside comments; each `from` must occur
/// exactly once, so a change to the shipped file cannot silently leave a default in place.
pub fn render(name: &str, substitutions: &[(&str, String)]) -> String {
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

/// The files a deployer puts beside the config, in a private directory: the keys, the secret
/// (written as `openssl rand -hex 32 > file` would, with its newline) and the admin socket.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwks.json"), jwks()).unwrap();
        std::fs::write(dir.path().join("proxy-secret"), format!("{SECRET}\n")).unwrap();
        Self { dir }
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// The substitutions every test makes: loopback and an ephemeral port, the files.
    pub fn substitutions(&self) -> Vec<(&'static str, String)> {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        vec![
            (
                "address: 0.0.0.0, port_value: 10000",
                "address: 127.0.0.1, port_value: 0".into(),
            ),
            ("/run/envoy/admin.sock", path("admin.sock")),
            ("/etc/envoy/jwks.json", path("jwks.json")),
            ("/etc/envoy/secrets/proxy-secret", path("proxy-secret")),
        ]
    }
}

// === Envoy ===

pub struct Envoy {
    child: Child,
    pub listener: SocketAddr,
    admin: PathBuf,
    pub files: Files,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Envoy {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.files.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// `GET path` on the admin interface, over its unix socket: the status and the body.
    pub async fn admin(&self, path: &str) -> Option<(u16, String)> {
        let mut s = tokio::net::UnixStream::connect(&self.admin).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Some((status, if chunked { dechunk(body)? } else { body.into() }))
    }

    /// Starts Envoy on `config` and waits until it is ready and its listener is bound.
    pub async fn start(config: &str, files: Files) -> Self {
        let cfg = files.dir.path().join("envoy.yaml");
        std::fs::write(&cfg, config).unwrap();
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
            .arg("--log-path")
            .arg(files.dir.path().join("envoy.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ENVOY_BIN starts");
        let mut envoy = Self {
            child,
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: files.admin_socket(),
            files,
        };
        let ready = eventually(Duration::from_secs(30), || async {
            matches!(envoy.admin("/ready").await, Some((200, _)))
        })
        .await;
        if ready.is_none() {
            let status = envoy.child.try_wait();
            panic!("Envoy did not become ready ({status:?}):\n{}", envoy.log());
        }
        let (_, listeners) = envoy.admin("/listeners?format=json").await.unwrap();
        let listeners: serde_json::Value = serde_json::from_str(&listeners).unwrap();
        let port =
            listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                .as_u64()
                .expect("the ingress listener's port");
        envoy.listener = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap()));
        envoy
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener)
    }
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

/// Validates `config` with `envoy --mode validate`: its output, as `Err` when it fails.
pub fn validate(config: &Path) -> Result<String, String> {
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(config)
        .output()
        .expect("ENVOY_BIN runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

// === authz in each of the shipped modes ===

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `envoy.yaml`, authz's gRPC listener on TCP.
    Grpc,
    /// `envoy.yaml`, authz's gRPC listener on a unix socket.
    GrpcUnix,
    /// `envoy-http.yaml`, authz's HTTP listener.
    Http,
}

impl Mode {
    /// authz with the listener this mode needs, after `adjust`.
    pub async fn authz(
        self,
        files: &Files,
        adjust: impl FnOnce(&mut authz::config::Config) + Send + 'static,
    ) -> Authz {
        let sock = files.dir.path().join("authz-grpc.sock");
        spawn_authz(move |c| {
            if let Self::GrpcUnix = self {
                c.grpc_listen = Some(ListenAddr::Unix(sock));
            }
            adjust(c);
        })
        .await
    }

    /// The shipped config for this mode in front of `upstream`, asking `app`.
    pub fn config(self, app: &Authz, files: &Files, upstream: SocketAddr) -> String {
        let mut subs = files.substitutions();
        subs.push((
            "port_value: 8000",
            format!("port_value: {}", upstream.port()),
        ));
        let file = match self {
            Self::Grpc => {
                let grpc = app.handle.grpc_tcp_addr().unwrap();
                subs.push(("port_value: 9191", format!("port_value: {}", grpc.port())));
                "envoy.yaml"
            }
            Self::GrpcUnix => {
                let sock = files.dir.path().join("authz-grpc.sock");
                subs.push((
                    "socket_address: { address: 127.0.0.1, port_value: 9191 }",
                    format!("pipe: {{ path: {} }}", sock.display()),
                ));
                "envoy.yaml"
            }
            Self::Http => {
                subs.push((
                    "uri: http://127.0.0.1:8181",
                    format!("uri: http://{}", app.addr),
                ));
                subs.push((
                    "port_value: 8181",
                    format!("port_value: {}", app.addr.port()),
                ));
                "envoy-http.yaml"
            }
        };
        render(file, &subs)
    }
}
