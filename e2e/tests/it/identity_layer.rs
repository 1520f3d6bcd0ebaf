//! Setup (a), `nginx/ipm.conf`, end to end: the identity layer in front, nginx, authz and
//! ipm-api. The deployer's checks, sign-in redirects, other groups' projects and spoofing.

use warp::http::Method;

use crate::nginx::Setup;
use crate::stack::{As, Stack};
use crate::support::{Reply, SECRET};

fn assert_json_error(r: &Reply, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], error, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn the_deployers_checks_pass_through_nginx() {
    let stack = Stack::start(Setup::IdentityLayer).await;
    let id = stack
        .create_project(As::Session("alice"), "holiday", "photographers")
        .await;

    // No identity: 401.
    let r = stack.get(As::Anonymous, "/api/projects").await;
    assert_json_error(&r, 401, "unauthenticated");

    // A signed-in member: 200 with the project list.
    let r = stack.get(As::Session("alice"), "/api/projects").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{}", r.body);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["created_by"], "alice@example.com");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    assert_eq!(r.header_count("x-content-type-options"), 1);

    // A suspended user: 403, decided by authz.
    let r = stack.get(As::Session("mallory"), "/api/projects").await;
    assert_json_error(&r, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn a_wrong_secret_in_nginx_is_refused() {
    // nginx left with the shipped example's placeholder instead of the services' secret.
    let example = std::fs::read_to_string(
        crate::support::shipped_nginx().join("ipm/proxy-secret.conf.example"),
    )
    .unwrap();
    let placeholder = example
        .lines()
        .find_map(|l| l.strip_prefix("map \"\" $ipm_proxy_secret { default \""))
        .and_then(|rest| rest.strip_suffix("\"; }"))
        .expect("the example defines $ipm_proxy_secret");
    assert_ne!(placeholder, SECRET);
    let stack = Stack::start_with_secret(Setup::IdentityLayer, placeholder).await;
    let r = stack.get(As::Session("alice"), "/api/projects").await;
    assert_json_error(&r, 401, "unauthenticated");
    // Sending the right secret oneself does not help: nginx replaces it.
    let r = stack
        .request(As::Session("alice"), Method::GET, "/api/projects")
        .header("x-proxy-secret", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn browsers_are_sent_to_sign_in_and_api_clients_get_json() {
    let stack = Stack::start(Setup::IdentityLayer).await;
    let html = |path: &str| {
        stack
            .request(As::Anonymous, Method::GET, path)
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
    };
    let r = html("/api/projects/x").await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/oauth2/start?rd=/api/projects/x",
        "a relative redirect back to the page"
    );
    // Anything but a plain path returns to the home page: no open redirect, no injection.
    let r = html("/api/projects?next=//evil.example").await.unwrap();
    assert_eq!(r.headers()["location"], "/oauth2/start?rd=/");

    for accept in ["application/json", "*/*"] {
        let r = stack
            .plain
            .get(stack.layer.as_ref().unwrap().url("/api/projects"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_json_error(&Reply::read(r).await, 401, "unauthenticated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn a_project_in_another_group_is_out_of_reach() {
    let stack = Stack::start(Setup::IdentityLayer).await;
    let id = stack
        .create_project(As::Session("alice"), "holiday", "photographers")
        .await;
    let path = format!("/api/projects/{id}");

    // bob shares the group; carol (editors) does not.
    assert_eq!(stack.get(As::Session("bob"), &path).await.status, 200);
    let carol = stack.get(As::Session("carol"), &path).await;
    assert_json_error(&carol, 403, "forbidden");
    // A project that does not exist looks the same: the status reveals nothing.
    let missing = stack
        .get(
            As::Session("carol"),
            "/api/projects/01890a5d-ac96-7000-8000-000000000000",
        )
        .await;
    assert_eq!((missing.status, &missing.body), (carol.status, &carol.body));

    for method in [Method::PATCH, Method::DELETE] {
        let r = stack
            .request(As::Session("carol"), method.clone(), &path)
            .json(&serde_json::json!({ "name": "mine now" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method}");
    }
    let list = stack.get(As::Session("carol"), "/api/projects").await;
    assert_eq!(list.json()["items"], serde_json::json!([]));
    // Still there, unchanged.
    let r = stack.get(As::Session("alice"), &path).await;
    assert_eq!(r.json()["name"], "holiday");
}

/// Headers a client might add to pass as someone else.
fn spoofs() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![("x-user-email", "alice@example.com")],
        vec![
            ("x-user-email", "alice@example.com"),
            ("x-proxy-secret", SECRET),
        ],
        vec![
            ("x-authz-user", "alice@example.com"),
            ("x-authz-groups", "photographers,admins"),
        ],
        vec![
            ("x_user_email", "alice@example.com"),
            ("x_proxy_secret", SECRET),
        ],
        vec![("x-forwarded-email", "alice@example.com")],
        vec![
            ("x-user-email", "alice@example.com"),
            ("x-user-email", "admin@example.com"),
            ("x-forwarded-email", "admin@example.com"),
            ("x-forwarded-email", "alice@example.com"),
        ],
        vec![
            ("x-original-uri", "/api/projects"),
            ("x-original-method", "GET"),
        ],
        vec![("x-real-ip", "10.0.0.5"), ("x-forwarded-for", "10.0.0.5")],
    ]
}

async fn send(builder: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> (u16, String) {
    let mut b = builder;
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = Reply::read(b.send().await.unwrap()).await;
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn spoofed_identity_headers_get_nothing_more() {
    let stack = Stack::start(Setup::IdentityLayer).await;
    let id = stack
        .create_project(As::Session("alice"), "holiday", "photographers")
        .await;
    let project = format!("/api/projects/{id}");
    let requests: Vec<(As, Method, String)> = vec![
        (As::Session("carol"), Method::GET, "/api/projects".into()),
        (As::Session("carol"), Method::GET, project.clone()),
        (As::Session("carol"), Method::DELETE, project.clone()),
        (As::Session("mallory"), Method::GET, "/api/projects".into()),
        (As::Anonymous, Method::GET, "/api/projects".into()),
        (As::Anonymous, Method::GET, project.clone()),
    ];
    for (who, method, path) in &requests {
        let baseline = send(stack.request(*who, method.clone(), path), &[]).await;
        assert!(baseline.0 >= 200, "{baseline:?}");
        for spoof in spoofs() {
            let got = send(stack.request(*who, method.clone(), path), &spoof).await;
            assert_eq!(got, baseline, "{who:?} {method} {path} with {spoof:?}");
        }
    }
    // Straight to nginx, not from the identity layer's address: nobody, whatever is claimed.
    for spoof in spoofs() {
        let direct = stack
            .direct
            .get(stack.nginx.url("/api/projects"))
            .header("accept", "application/json");
        let (status, _) = send(direct, &spoof).await;
        assert_eq!(status, 401, "direct with {spoof:?}");
    }
    // The project is untouched and alice still sees it: the spoofs were not even partly applied.
    let r = stack.get(As::Session("alice"), &project).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn the_web_ui_needs_a_session_and_health_does_not() {
    let stack = Stack::start(Setup::IdentityLayer).await;
    // Anonymous: a browser is sent to sign in, and comes back to the page it asked for.
    let r = stack
        .request(As::Anonymous, Method::GET, "/projects/p-1")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/oauth2/start?rd=/projects/p-1");
    let r = stack.get(As::Anonymous, "/").await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Signed in: the page, from ipm-api, under its strict CSP and nginx's headers, once each.
    let r = stack.get(As::Session("alice"), "/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<title>ipm</title>"), "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.header_count("content-security-policy"), 1);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    assert_eq!(r.header_count("x-frame-options"), 1);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // A project's own address is the same page; its files are authorized too.
    let page = stack.get(As::Session("alice"), "/projects/p-1").await;
    assert_eq!((page.status, &page.body), (200, &r.body));
    let script = r
        .body
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with("/app.js"))
        .unwrap();
    let js = stack.get(As::Session("alice"), script).await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(stack.get(As::Anonymous, script).await.status, 401);
    // A suspended user gets no further than authz.
    assert_eq!(stack.get(As::Session("mallory"), "/").await.status, 403);
    assert_eq!(stack.get(As::Session("mallory"), script).await.status, 403);

    let r = stack.get(As::Anonymous, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"status":"ok"}"#));
}
