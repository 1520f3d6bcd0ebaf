//! `/auth` as nginx calls it: the 401 / 403 / 200 contract, identity headers, hostile input.

use std::io::{Read, Write};

use ipm_testkit::metric_value;

use crate::support::{SECRET, spawn_app, spawn_with};

const ALICE: &str = "alice@example.com";

#[tokio::test]
async fn no_headers_is_401_with_a_json_reason() {
    let app = spawn_app().await;
    let r = app.auth(&[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().get("x-authz-user").is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    assert_eq!(body["reason"], "missing_proxy_secret");
}

#[tokio::test]
async fn member_is_allowed_with_identity_headers() {
    let app = spawn_app().await;
    let r = app
        .auth(&[
            ("x-proxy-secret", SECRET),
            ("x-user-email", "bob@EXAMPLE.com"),
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/projects?limit=10"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-authz-user"], "bob@example.com");
    // The whole address compares without case (EMAIL_LOCAL_PART_CASE=insensitive): `Bob@`
    // is bob, with bob's groups.
    let r = app.auth_as("Bob@example.com", "GET", "/api/projects").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-authz-user"], "bob@example.com");

    let r = app.auth_as("bob@example.com", "GET", "/api/projects").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-authz-user"], "bob@example.com");
    assert_eq!(r.headers()["x-authz-groups"], "editors,photographers");
    assert!(r.headers().get("x-authz-groups-truncated").is_none());
}

#[tokio::test]
async fn wrong_missing_or_duplicated_secret_is_401() {
    let app = spawn_app().await;
    let base = [
        ("x-user-email", ALICE),
        ("x-original-method", "GET"),
        ("x-original-uri", "/api/projects"),
    ];
    for (secret, reason) in [
        (
            Some("wrong-secret-0123456789abcdef0123456789"),
            "invalid_proxy_secret",
        ),
        (Some(&SECRET[..SECRET.len() - 1]), "invalid_proxy_secret"),
        (Some(""), "invalid_proxy_secret"),
        (None, "missing_proxy_secret"),
    ] {
        let mut h = base.to_vec();
        if let Some(s) = secret {
            h.push(("x-proxy-secret", s));
        }
        let r = app.auth(&h).await;
        assert_eq!(r.status(), 401, "{secret:?}");
        let text = r.text().await.unwrap();
        assert!(text.contains(reason), "{text}");
        assert!(
            !text.contains(SECRET) && !text.contains(&SECRET.len().to_string()),
            "{text}"
        );
    }
    let mut h = base.to_vec();
    h.push(("x-proxy-secret", SECRET));
    h.push(("x-proxy-secret", SECRET));
    let r = app.auth(&h).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("duplicate_proxy_secret"));
}

#[tokio::test]
async fn previous_secret_is_accepted_during_a_rotation() {
    let previous = "previous-secret-0123456789abcdef01234567";
    let app =
        spawn_with(|c| c.secrets.previous = Some(ipm_policy::secret::Secret::new(previous))).await;
    for s in [SECRET, previous] {
        let r = app
            .auth(&[
                ("x-proxy-secret", s),
                ("x-user-email", ALICE),
                ("x-original-method", "GET"),
                ("x-original-uri", "/api/projects"),
            ])
            .await;
        assert_eq!(r.status(), 200);
    }
    let single = spawn_app().await;
    let r = single
        .auth(&[
            ("x-proxy-secret", previous),
            ("x-user-email", ALICE),
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/projects"),
        ])
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn invalid_and_hostile_emails_are_401() {
    let app = spawn_app().await;
    let long = format!("{}@example.com", "a".repeat(10 * 1024));
    for email in [
        "",
        "alice",
        "alice@",
        "@example.com",
        "\"alice\"@example.com",
        "\"a b\"@example.com",
        "Alice <alice@example.com>",
        "alice@example.com, bob@example.com",
        "alice@[127.0.0.1]",
        long.as_str(),
    ] {
        let r = app.auth_as(email, "GET", "/api/projects").await;
        assert_eq!(r.status(), 401, "{email:?}");
        assert!(r.headers().get("x-authz-user").is_none());
    }
    // Raw UTF-8 (an IDN domain not in punycode) travels as obs-text bytes.
    let idn = reqwest::header::HeaderValue::from_bytes("alice@bücher.de".as_bytes()).unwrap();
    let r = app
        .client
        .get(app.url("/auth"))
        .header("x-proxy-secret", SECRET)
        .header("x-user-email", idn)
        .header("x-original-method", "GET")
        .header("x-original-uri", "/api/projects")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Two values of the email header.
    let r = app
        .auth(&[
            ("x-proxy-secret", SECRET),
            ("x-user-email", ALICE),
            ("x-user-email", "admin@example.com"),
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/projects"),
        ])
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("duplicate_user"));
}

/// Sends raw bytes, for header values no HTTP client library will produce.
fn raw_status(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn control_bytes_in_the_email_never_pass() {
    let app = spawn_app().await;
    let addr = app.addr;
    for value in [
        &b"alice@example.com\rX-Injected: 1"[..],
        b"alice@exa\0mple.com",
        b"alice@example.com\x7f",
    ] {
        let mut req = format!(
            "GET /auth HTTP/1.1\r\nHost: authz\r\nConnection: close\r\nX-Proxy-Secret: {SECRET}\r\nX-Original-Method: GET\r\nX-Original-URI: /api/projects\r\nX-User-Email: "
        )
        .into_bytes();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n\r\n");
        let status = tokio::task::spawn_blocking(move || raw_status(addr, &req))
            .await
            .unwrap();
        // The HTTP parser refuses some of these (400) before authz sees them; either way, no 2xx.
        assert!(status == 400 || status == 401, "{value:?} -> {status}");
    }
}

#[tokio::test]
async fn policy_denial_and_unknown_routes_are_403() {
    let app = spawn_app().await;
    // mallory is a photographer but also suspended: the forbid wins.
    assert_eq!(
        app.status_as("mallory@example.com", "GET", "/api/projects")
            .await,
        403
    );
    // A valid user in no group.
    assert_eq!(
        app.status_as("nobody@example.com", "GET", "/api/projects")
            .await,
        403
    );
    // Project routes need the project's group, which no resolver provides here: members are denied.
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects/p1").await, 403);
    assert_eq!(
        app.status_as("admin@example.com", "DELETE", "/api/projects/p1")
            .await,
        200
    );
    for (method, uri) in [
        ("GET", "/admin"),
        ("GET", "/api/projects/"),
        ("GET", "/api/projects/../projects"),
        ("GET", "/api/projects/a%2Fb"),
        ("PUT", "/api/projects"),
        ("get", "/api/projects"),
        ("GET", ""),
    ] {
        let r = app.auth_as("admin@example.com", method, uri).await;
        assert_eq!(r.status(), 403, "{method} {uri}");
        assert!(r.text().await.unwrap().contains("no_route"));
    }
    let r = app
        .auth(&[("x-proxy-secret", SECRET), ("x-user-email", ALICE)])
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("missing_original_request"));
}

#[tokio::test]
async fn groups_header_is_bounded() {
    let app = spawn_with(|c| c.groups_header_max = 64).await;
    let many: Vec<String> = (0..40).map(|i| format!("team-{i:02}")).collect();
    let mut doc = String::from("[groups]\n");
    for g in &many {
        doc.push_str(&format!("\"{g}\" = [\"alice@example.com\"]\n"));
    }
    std::fs::write(&app.groups_file, doc).unwrap();
    app.handle.reload_now();
    let ok = ipm_testkit::eventually(std::time::Duration::from_secs(5), || async {
        app.auth_as(ALICE, "GET", "/api/projects")
            .await
            .headers()
            .get("x-authz-groups-truncated")
            .is_some()
    })
    .await;
    assert!(ok.is_some(), "the groups file was not reloaded");
    let r = app.auth_as(ALICE, "GET", "/api/projects").await;
    let groups = r.headers()["x-authz-groups"].to_str().unwrap().to_string();
    assert!(groups.len() <= 64, "{groups}");
    assert!(groups.starts_with("team-00,team-01,"), "{groups}");
    assert!(!groups.ends_with(','));
}

#[tokio::test]
async fn service_routes_and_unknown_paths() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, ready) = app.readyz().await;
    assert_eq!(status, 200);
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["policies"]["hash"].as_str().unwrap().len(), 64);
    let r = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = app.client.post(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 405);

    app.auth_as(ALICE, "GET", "/api/projects").await;
    app.auth(&[("x-proxy-secret", "nope")]).await;
    let metrics = app.metrics().await;
    let allowed = [
        ("adapter", "nginx"),
        ("outcome", "allow"),
        ("status", "200"),
        ("reason", "policy_allowed"),
    ];
    assert_eq!(
        metric_value(&metrics, "authz_decisions_total", &allowed),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("reason=\"invalid_proxy_secret\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("authz_decision_duration_seconds_bucket"));
    assert!(!metrics.contains(SECRET));
}

#[tokio::test]
async fn serves_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("authz.sock");
    let app = spawn_with(|c| c.listen = ipm_runtime::config::ListenAddr::Unix(sock.clone())).await;
    assert!(app.handle.tcp_addr().is_none());
    let path = sock.clone();
    let reply = tokio::task::spawn_blocking(move || {
        use std::os::unix::net::UnixStream;
        let mut s = UnixStream::connect(path).unwrap();
        let req = format!(
            "GET /auth HTTP/1.1\r\nHost: authz\r\nConnection: close\r\nX-Proxy-Secret: {SECRET}\r\nX-User-Email: {ALICE}\r\nX-Original-Method: GET\r\nX-Original-URI: /api/projects\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("x-authz-user: alice@example.com")
    );
    app.handle.shutdown().await;
    assert!(!sock.exists(), "the socket file is removed at shutdown");
}
