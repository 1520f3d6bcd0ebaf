//! Envoy ext_authz in HTTP mode, called as Envoy calls it: the original method on `/envoy` +
//! the original path and query, with only the allow-listed headers.

use reqwest::Method;

use crate::support::{SECRET, TestApp, spawn_app};

const ALICE: &str = "alice@example.com";

async fn envoy(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .client
        .request(method, app.url(&format!("/envoy{path}")));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("authz answers")
}

async fn envoy_as(app: &TestApp, user: &str, method: Method, path: &str) -> reqwest::Response {
    envoy(
        app,
        method,
        path,
        &[("x-proxy-secret", SECRET), ("x-user-email", user)],
    )
    .await
}

async fn reason(r: reqwest::Response) -> String {
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    body["reason"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn allow_sets_identity_and_names_the_secret_for_removal() {
    let app = spawn_app().await;
    let r = envoy_as(
        &app,
        "bob@example.com",
        Method::GET,
        "/api/projects?limit=5",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-authz-user"], "bob@example.com");
    assert_eq!(r.headers()["x-authz-groups"], "editors,photographers");
    assert_eq!(
        r.headers()["x-envoy-auth-headers-to-remove"],
        "x-proxy-secret,x-authz-groups-truncated"
    );
    // The method is the request's own: DELETE of a project is a different action than GET.
    let r = envoy_as(
        &app,
        "admin@example.com",
        Method::DELETE,
        "/api/projects/p1",
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = envoy_as(&app, ALICE, Method::POST, "/api/projects").await;
    assert_eq!(r.status(), 200);
    app.handle.shutdown().await;
}

#[tokio::test]
async fn denials_are_401_or_403_with_a_json_body_and_no_identity() {
    let app = spawn_app().await;
    let r = envoy(
        &app,
        Method::GET,
        "/api/projects",
        &[("x-user-email", ALICE)],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("x-authz-user").is_none());
    assert!(r.headers().get("x-envoy-auth-headers-to-remove").is_none());
    assert_eq!(reason(r).await, "missing_proxy_secret");

    let r = envoy_as(&app, "not-an-email", Method::GET, "/api/projects").await;
    assert_eq!(
        (r.status().as_u16(), reason(r).await.as_str()),
        (401, "invalid_user")
    );
    let r = envoy_as(&app, "nobody@example.com", Method::GET, "/api/projects").await;
    assert_eq!(
        (r.status().as_u16(), reason(r).await.as_str()),
        (403, "policy_denied")
    );
    let r = envoy_as(&app, ALICE, Method::GET, "/nothing/here").await;
    assert_eq!(
        (r.status().as_u16(), reason(r).await.as_str()),
        (403, "no_route")
    );
    app.handle.shutdown().await;
}

#[tokio::test]
async fn odd_requests_are_denied_never_5xx() {
    let app = spawn_app().await;
    let weird = Method::from_bytes(b"BREW").unwrap();
    for (method, path) in [
        (Method::GET, ""),
        (Method::POST, "/"),
        (Method::OPTIONS, "/api/projects"),
        (weird, "/api/projects"),
        (Method::GET, "//api//projects"),
        (Method::GET, "/api/projects/%2e%2e/x"),
        (Method::HEAD, "/api/projects/%ff"),
    ] {
        let r = envoy_as(&app, ALICE, method.clone(), path).await;
        assert_eq!(r.status(), 403, "{method} {path:?}");
    }
    // Not authz's to judge without a secret: 401 comes before anything about the request.
    let r = envoy(&app, Method::GET, "", &[]).await;
    assert_eq!(r.status(), 401);
    app.handle.shutdown().await;
}
