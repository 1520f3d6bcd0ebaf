//! What crosses the wire: `nginx/ipm.conf` between recorders standing in for authz and the
//! API, so every header either of them receives can be checked, whatever the client sent.

use crate::nginx::{Nginx, Prefix, Setup, Upstreams};
use crate::stand_ins::{Recorder, Seen, reply};
use crate::support::{LAYER_IP, Reply, SECRET, https_client};

/// Every identity header a client could forge, with some duplicated and some underscored.
const FORGED: &[(&str, &str)] = &[
    ("x-user-email", "alice@example.com"),
    ("x-user-email", "admin@example.com"),
    ("x_user_email", "admin@example.com"),
    ("x-proxy-secret", "guessed"),
    ("x_proxy_secret", "guessed"),
    ("x-authz-user", "admin@example.com"),
    ("x-authz-groups", "admins"),
    ("x-authz-groups-truncated", "false"),
    ("x-original-uri", "/api/projects"),
    ("x-original-method", "GET"),
    ("x-real-ip", "10.9.9.9"),
    ("authorization", "Bearer stolen"),
];

/// What the fake authz answers, by the original URI: allow with the user it was told about,
/// or deny, fail, or send a groups header of the largest size authz may send.
fn fake_authz(seen: &Seen) -> warp::http::Response<warp::hyper::body::Bytes> {
    let uri = seen.values("x-original-uri").join(",");
    let users = seen.values("x-user-email");
    let secret_ok = seen.values("x-proxy-secret") == [SECRET];
    match uri.as_str() {
        "/api/forbidden" => reply(403, &[], r#"{"error":"forbidden"}"#),
        "/api/broken" => reply(503, &[], r#"{"error":"unavailable"}"#),
        _ if users.len() != 1 || !secret_ok => reply(401, &[], ""),
        "/api/many-groups" => {
            let groups = big_groups();
            reply(
                200,
                &[("x-authz-user", &users[0]), ("x-authz-groups", &groups)],
                "",
            )
        }
        _ => reply(
            200,
            &[("x-authz-user", &users[0]), ("x-authz-groups", "editors")],
            "",
        ),
    }
}

/// A groups header of 16 KiB, authz's maximum (`AUTHZ_GROUPS_HEADER_MAX=16384`).
fn big_groups() -> String {
    let groups: Vec<String> = (0..1500).map(|i| format!("group-{i:05}")).collect();
    let mut s = groups.join(",");
    s.truncate(16 * 1024);
    s.trim_end_matches(',').to_string()
}

/// What the fake API answers: its own errors on two paths, else 200.
fn fake_api(seen: &Seen) -> warp::http::Response<warp::hyper::body::Bytes> {
    match seen.uri.as_str() {
        "/api/own-401" => reply(401, &[], r#"{"error":"api-401"}"#),
        "/api/own-404" => reply(404, &[], r#"{"error":"api-404"}"#),
        _ => reply(200, &[], r#"{"ok":true}"#),
    }
}

struct Wire {
    authz: Recorder,
    api: Recorder,
    nginx: Nginx,
    /// Connects from the identity layer's address.
    layer: reqwest::Client,
    /// Connects from anywhere else.
    other: reqwest::Client,
    _prefix: Prefix,
    _root: tempfile::TempDir,
}

/// nginx on `ipm.conf` between the two recorders; `adjust` may edit the prefix first.
async fn wire_with(adjust: impl FnOnce(&Prefix)) -> Wire {
    let root = tempfile::tempdir().unwrap();
    let authz = Recorder::start(fake_authz).await;
    let api = Recorder::start(fake_api).await;
    let prefix = Prefix::create(root.path().join("nginx"), SECRET);
    adjust(&prefix);
    let upstreams = Upstreams::Tcp {
        authz: authz.addr,
        api: api.addr,
    };
    let nginx = Nginx::start(&prefix, Setup::IdentityLayer, &upstreams, &[]).await;
    Wire {
        authz,
        api,
        nginx,
        layer: https_client(&prefix.ca_pem, Some(LAYER_IP)),
        other: https_client(&prefix.ca_pem, None),
        _prefix: prefix,
        _root: root,
    }
}

async fn wire() -> Wire {
    wire_with(|_| {}).await
}

fn with_headers(
    mut b: reqwest::RequestBuilder,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b
}

fn only(mut seen: Vec<Seen>, who: &str) -> Seen {
    assert_eq!(seen.len(), 1, "{who} received {seen:#?}");
    seen.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn authz_and_the_api_hear_only_what_nginx_says() {
    let w = wire().await;
    let body = r#"{"name":"holiday","meta_group_id":"editors"}"#;
    let request = w
        .layer
        .post(w.nginx.url("/api/projects?x=1"))
        .header("x-forwarded-email", "carol@example.com")
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.7")
        .header("cookie", "_oauth2_proxy=s")
        .header("content-type", "application/json")
        .body(body);
    let r = Reply::read(with_headers(request, FORGED).send().await.unwrap()).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ok":true}"#));

    // authz: the subrequest carries nginx's headers and nothing of the client's.
    let a = only(w.authz.take(), "authz");
    assert_eq!(a.uri, "/auth");
    assert_eq!(
        a.names(),
        [
            "host",
            "x-original-method",
            "x-original-uri",
            "x-proxy-secret",
            "x-real-ip",
            "x-user-email"
        ]
    );
    assert_eq!(a.values("x-user-email"), ["carol@example.com"]);
    assert_eq!(a.values("x-proxy-secret"), [SECRET]);
    assert_eq!(a.values("x-original-method"), ["POST"]);
    assert_eq!(a.values("x-original-uri"), ["/api/projects?x=1"]);
    // The address the layer appended, not one the client put before it.
    assert_eq!(a.values("x-real-ip"), ["203.0.113.7"]);
    assert!(a.body.is_empty());

    // The API: one of each identity header, all from nginx; the body intact.
    let p = only(w.api.take(), "the API");
    assert_eq!(
        (p.method.as_str(), p.uri.as_str()),
        ("POST", "/api/projects?x=1")
    );
    assert_eq!(p.body, body.as_bytes());
    assert_eq!(p.values("x-user-email"), ["carol@example.com"]);
    assert_eq!(p.values("x-proxy-secret"), [SECRET]);
    assert_eq!(p.values("x-authz-user"), ["carol@example.com"]);
    assert_eq!(p.values("x-authz-groups"), ["editors"]);
    assert_eq!(p.values("x-real-ip"), ["203.0.113.7"]);
    assert_eq!(p.values("x-forwarded-for"), ["203.0.113.7"]);
    for absent in [
        "x_user_email",
        "x_proxy_secret",
        "x-authz-groups-truncated",
        "x-forwarded-email",
        "x-original-uri",
        "x-original-method",
        "authorization",
    ] {
        assert!(p.values(absent).is_empty(), "{absent} reached the API");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn an_email_header_from_anyone_but_the_layer_is_ignored() {
    let w = wire().await;
    let request = w
        .other
        .get(w.nginx.url("/api/projects"))
        .header("x-forwarded-email", "carol@example.com")
        .header("x-forwarded-for", "10.0.0.5");
    let r = Reply::read(with_headers(request, FORGED).send().await.unwrap()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let a = only(w.authz.take(), "authz");
    assert!(a.values("x-user-email").is_empty(), "{a:#?}");
    assert_eq!(a.values("x-real-ip"), ["127.0.0.1"]);
    assert!(w.api.take().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn paths_that_skip_authorization_pass_no_identity() {
    let w = wire().await;
    let request = w
        .layer
        .get(w.nginx.url("/healthz"))
        .header("x-forwarded-email", "carol@example.com");
    let r = Reply::read(with_headers(request, FORGED).send().await.unwrap()).await;
    assert_eq!(r.status, 200);
    assert!(
        w.authz.take().is_empty(),
        "health checks are not authorized"
    );
    let p = only(w.api.take(), "the API");
    for absent in [
        "x-user-email",
        "x_user_email",
        "x-proxy-secret",
        "x_proxy_secret",
        "x-authz-user",
        "x-authz-groups",
        "x-authz-groups-truncated",
        "x-forwarded-email",
        "x-original-uri",
        "x-original-method",
        "authorization",
    ] {
        assert!(p.values(absent).is_empty(), "{absent} reached the API");
    }
    // The web UI's pages are no static files: anonymous, they go no further than authz.
    let r = w.other.get(w.nginx.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let a = only(w.authz.take(), "authz");
    assert_eq!(a.values("x-original-uri"), ["/"]);
    assert!(w.api.take().is_empty());
    // The subrequest's location is internal: a client cannot call authz through it.
    let r = w
        .layer
        .get(w.nginx.url("/_ipm/authz"))
        .header("x-forwarded-email", "carol@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(w.authz.take().is_empty() && w.api.take().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn errors_keep_their_status_and_the_apis_own_pass_untouched() {
    let w = wire().await;
    let get = |path: &str| {
        w.layer
            .get(w.nginx.url(path))
            .header("x-forwarded-email", "carol@example.com")
            .header("accept", "text/html")
            .send()
    };
    let r = Reply::read(get("/api/forbidden").await.unwrap()).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "forbidden");
    // authz failing is not authz allowing: 500, and the API never hears of it.
    let r = Reply::read(get("/api/broken").await.unwrap()).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["reason"], "authorization_unavailable");
    assert!(w.api.take().is_empty());
    // The API's own errors, even a 401 to a browser, are its own.
    let r = Reply::read(get("/api/own-401").await.unwrap()).await;
    assert_eq!((r.status, r.body.as_str()), (401, r#"{"error":"api-401"}"#));
    let r = Reply::read(get("/api/own-404").await.unwrap()).await;
    assert_eq!((r.status, r.body.as_str()), (404, r#"{"error":"api-404"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn the_largest_group_list_authz_sends_fits_through_nginx() {
    let call = |w: &Wire| {
        w.layer
            .get(w.nginx.url("/api/many-groups"))
            .header("x-forwarded-email", "carol@example.com")
            .send()
    };
    let w = wire().await;
    let r = call(&w).await.unwrap();
    assert_eq!(r.status(), 200);
    let p = only(w.api.take(), "the API");
    assert_eq!(p.values("x-authz-groups"), [big_groups()]);

    // With nginx's default buffer for the subrequest's headers, the same answer fails: the
    // setting in ipm/authz.conf is what makes it fit.
    let w = wire_with(|prefix| {
        let path = prefix.dir.join("ipm/authz.conf");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("proxy_buffer"))
            .filter(|l| !l.trim_start().starts_with("proxy_busy_buffers"))
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
    })
    .await;
    let r = call(&w).await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(w.nginx.error_log().contains("too big header"));
}
