//! Through a real Envoy: the shipped `envoy/*.yaml` in front of authz and an upstream that
//! echoes the headers it received, so every header that reaches the upstream is checked.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use authz::server::ServerHandle;
use warp::Filter;

use super::harness::{Envoy, Files, Mode, token, token_signed_with, token_with_verified};
use crate::support::SECRET;

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

async fn stack(mode: Mode) -> Stack {
    let files = Files::new();
    let app = mode.authz(&files, |_| {}).await;
    let upstream = echo_upstream().await;
    let config = mode.config(&app, &files, upstream.addr);
    let envoy = Envoy::start(&config, files).await;
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

    // Allowed: the identity comes from the token, the token stays behind, and the upstream gets
    // the secret from the file, once, as authz and ipm-api expect it (no newline).
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
    assert_eq!(o.upstream("x-proxy-secret").as_deref(), Some(SECRET));
    assert_eq!(o.upstream("authorization"), None);
    assert_eq!(o.upstream("x-real-ip").as_deref(), Some("127.0.0.1"));

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
                ("x-real-ip", "203.0.113.9"),
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
    assert_eq!(o.upstream("x-proxy-secret").as_deref(), Some(SECRET));
    assert_eq!(o.upstream("x-real-ip").as_deref(), Some("127.0.0.1"));
    let echoed = o.body.to_string();
    for spoofed in ["client-chosen-secret", "admin@example.com", "203.0.113.9"] {
        assert!(
            !echoed.contains(spoofed),
            "{mode:?}: `{spoofed}` went upstream"
        );
    }

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
    // The token only counts in the Authorization header: in the query string it would sit in
    // access logs, so there it is no identity at all.
    let path = format!("/api/projects?access_token={}", token("bob@example.com"));
    let o = s.send("GET", &path, &[]).await;
    s.assert_denied(&o, before, 401, Some("missing_user"));
    // A signed token whose email the provider did not verify is no identity: refused (403)
    // before authz is asked, whether the claim says false or is missing.
    for verified in [Some(false), None] {
        let bearer = format!(
            "Bearer {}",
            token_with_verified("admin@example.com", verified)
        );
        let o = s
            .send("GET", "/api/projects", &[("authorization", &bearer)])
            .await;
        s.assert_denied(&o, before, 403, None);
    }
    // A header spelled with an underscore could be folded into a dash-named one further on.
    let bearer = format!("Bearer {}", token("bob@example.com"));
    let o = s
        .send(
            "GET",
            "/api/projects",
            &[
                ("authorization", &bearer),
                ("x_user_email", "admin@example.com"),
            ],
        )
        .await;
    s.assert_denied(&o, before, 400, None);

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

    // The admin interface is a socket only Envoy's user may open, and nothing it shows holds
    // the secret (the config names the secret's file, and even that path is redacted).
    let socket = std::fs::metadata(s.envoy.files.admin_socket()).unwrap();
    assert_eq!(socket.permissions().mode() & 0o777, 0o600);
    for page in [
        "/config_dump",
        "/config_dump?include_eds",
        "/clusters",
        "/listeners",
        "/stats",
        "/server_info",
        "/runtime",
    ] {
        let (status, body) = s.envoy.admin(page).await.expect("the admin socket answers");
        assert_eq!(status, 200, "{page}: {body}");
        assert!(!body.contains(SECRET), "{mode:?}: {page} shows the secret");
    }

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
