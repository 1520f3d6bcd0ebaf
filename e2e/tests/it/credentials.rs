//! What a browser attaches by itself: the identity layer's session cookie, Basic credentials
//! and the tokens the layer adds stop at nginx and Apache (ipm-api needs none of them), and a
//! browser's own-origin change goes through while another site's is refused.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use ipm_testkit::{eventually, free_port, loopback};

use warp::Filter;
use warp::http::{HeaderMap, Method};

use crate::configs::{apache_bin, apache_config};
use crate::nginx::{Nginx, Prefix, Setup, Upstreams};
use crate::stack::{As, Stack};
use crate::stand_ins::{Recorder, Seen, reply};
use crate::support::{DEADLINE, LAYER_IP, Reply, SECRET, https_client};

/// Credentials a browser or the identity layer (oauth2-proxy, mod_auth_openidc) may put on a
/// request: none is ipm-api's business.
const CREDENTIALS: &[(&str, &str)] = &[
    ("cookie", "_oauth2_proxy=session-alice; other=1"),
    ("authorization", "Bearer id-token"),
    ("proxy-authorization", "Basic cHJveHk6cHc="),
    ("x-forwarded-access-token", "access-token"),
    ("x-auth-request-access-token", "access-token"),
    ("x-amzn-oidc-accesstoken", "access-token"),
    ("x-amzn-oidc-data", "claims"),
    ("oidc_access_token", "access-token"),
];

fn assert_no_credentials(seen: &Seen, what: &str) {
    for (name, _) in CREDENTIALS {
        assert!(
            seen.values(name).is_empty(),
            "{name} reached the API on {what}: {:?}",
            seen.headers
        );
    }
}

/// authz allowing whoever nginx names.
fn allow(seen: &Seen) -> warp::http::Response<warp::hyper::body::Bytes> {
    match seen.values("x-user-email").as_slice() {
        [user] => reply(200, &[("x-authz-user", user), ("x-authz-groups", "g")], ""),
        _ => reply(401, &[], ""),
    }
}

fn ok(_: &Seen) -> warp::http::Response<warp::hyper::body::Bytes> {
    reply(200, &[], r#"{"ok":true}"#)
}

/// The paths of each kind of location: the API, image uploads, and the public health check.
const PATHS: &[(&str, &str)] = &[
    ("POST", "/api/projects"),
    ("GET", "/api/projects?limit=1"),
    ("POST", "/api/projects/p/images?filename=a.png"),
    ("GET", "/healthz"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn credentials_stop_at_nginx_behind_the_identity_layer() {
    let root = tempfile::tempdir().unwrap();
    let authz = Recorder::start(allow).await;
    let api = Recorder::start(ok).await;
    let prefix = Prefix::create(root.path().join("nginx"), SECRET);
    let upstreams = Upstreams::Tcp {
        authz: authz.addr,
        api: api.addr,
    };
    let nginx = Nginx::start(&prefix, Setup::IdentityLayer, &upstreams, &[]).await;
    let layer = https_client(&prefix.ca_pem, Some(LAYER_IP));
    for (method, path) in PATHS {
        let mut req = layer
            .request(method.parse().unwrap(), nginx.url(path))
            .header("x-forwarded-email", "alice@example.com")
            .header("content-type", "image/png")
            .body("x");
        for (k, v) in CREDENTIALS {
            req = req.header(*k, *v);
        }
        let r = Reply::read(req.send().await.unwrap()).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        let seen = api.take();
        assert_eq!(seen.len(), 1, "{method} {path}");
        assert_no_credentials(&seen[0], path);
        // Still the identity nginx vouches for, and the body.
        if path.starts_with("/api/") {
            assert_eq!(seen[0].values("x-user-email"), ["alice@example.com"]);
            assert_eq!(seen[0].values("x-proxy-secret"), [SECRET]);
        }
        assert_eq!(seen[0].body, "x".as_bytes());
    }
}

/// Records what reaches a unix socket, as `Recorder` does on TCP: setup (b) talks to its
/// upstreams over unix sockets only.
struct UnixRecorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl UnixRecorder {
    fn start(
        path: &Path,
        answer: fn(&Seen) -> warp::http::Response<warp::hyper::body::Bytes>,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let store = seen.clone();
        let route = warp::method()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(
                move |method: Method, path: warp::path::FullPath, headers: HeaderMap, body| {
                    let s = Seen {
                        method,
                        uri: path.as_str().to_string(),
                        headers,
                        body,
                    };
                    let r = answer(&s);
                    store.lock().unwrap().push(s);
                    r
                },
            );
        let l = tokio::net::UnixListener::bind(path).unwrap();
        tokio::spawn(warp::serve(route).incoming(l).run());
        Self { seen }
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn the_basic_password_and_cookies_stop_at_nginx() {
    let root = tempfile::tempdir().unwrap();
    let prefix = Prefix::create(root.path().join("nginx"), SECRET);
    prefix.write_htpasswd(&[("alice", "alice-password")]);
    let (authz_sock, api_sock) = (root.path().join("authz.sock"), root.path().join("api.sock"));
    let _authz = UnixRecorder::start(&authz_sock, allow);
    let api = UnixRecorder::start(&api_sock, ok);
    let upstreams = Upstreams::Unix {
        authz: authz_sock,
        api: api_sock,
    };
    let nginx = Nginx::start(&prefix, Setup::BasicAuth, &upstreams, &[]).await;
    let client = https_client(&prefix.ca_pem, None);
    for (method, path) in PATHS {
        let mut req = client
            .request(method.parse().unwrap(), nginx.url(path))
            .header("content-type", "image/png")
            .body("x");
        for (k, v) in CREDENTIALS.iter().filter(|(k, _)| *k != "authorization") {
            req = req.header(*k, *v);
        }
        let r = req
            .basic_auth("alice", Some("alice-password"))
            .send()
            .await
            .unwrap();
        let r = Reply::read(r).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        let seen = api.take();
        assert_eq!(seen.len(), 1, "{method} {path}");
        assert_no_credentials(&seen[0], path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn a_page_of_the_site_may_change_things_another_site_may_not() {
    let stack = Stack::start(Setup::IdentityLayer).await;
    // The browser's own origin: nginx's address with its port, as the browser sees it.
    let own = format!("https://{}", stack.nginx.https);
    let create = |origin: &str, site: &str, name: &str| {
        stack
            .as_layer
            .request(Method::POST, stack.nginx.url("/api/projects"))
            .header("x-forwarded-email", "alice@example.com")
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .json(&serde_json::json!({ "name": name, "meta_group_id": "photographers" }))
            .send()
    };
    let r = Reply::read(create(&own, "same-origin", "mine").await.unwrap()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = Reply::read(
        create("https://evil.example", "cross-site", "forged")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["reason"], "cross_site_request", "{}", r.body);
    let list = stack.get(As::Session("alice"), "/api/projects").await;
    let list = list.json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mine"], "{list}");
}

/// A running Apache; killed on drop.
struct Apache(std::process::Child);

impl Drop for Apache {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Apache with mod_auth_openidc: run scripts/test"]
async fn credentials_stop_at_apache() {
    let root = tempfile::tempdir().unwrap();
    let api = Recorder::start(ok).await;
    let (http, https) = (free_port(), free_port());
    let config = apache_config(root.path(), http, https, &api.addr.to_string());
    // One process in the foreground (`-X`), so the test owns it.
    let mut apache = Apache(
        std::process::Command::new(apache_bin())
            .arg("-X")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("APACHE_BIN starts"),
    );
    let up = eventually(DEADLINE, || {
        let exited = apache.0.try_wait().unwrap().is_some();
        async move {
            exited
                || tokio::net::TcpStream::connect(loopback(https))
                    .await
                    .is_ok()
        }
    })
    .await;
    let log = || std::fs::read_to_string(root.path().join("error.log")).unwrap_or_default();
    assert!(
        up.is_some() && apache.0.try_wait().unwrap().is_none(),
        "Apache did not start:\n{}",
        log()
    );
    let ca = std::fs::read(root.path().join("nginx/tls/ca.pem")).unwrap();
    // The health check: the one path that needs no sign-in at the OpenID provider. The
    // headers are unset for the whole virtual host, signed-in paths included.
    let mut req = https_client(&ca, None).get(format!("https://{}/healthz", loopback(https)));
    for (k, v) in CREDENTIALS {
        req = req.header(*k, *v);
    }
    let r = Reply::read(req.send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, log());
    let seen = api.take();
    assert_eq!(seen.len(), 1);
    assert_no_credentials(&seen[0], "/healthz behind Apache");
    assert_eq!(seen[0].values("x-proxy-secret"), [SECRET]);
}
