//! The reference setup's checks and authz's semantics, enforced by the API itself: no
//! proxy in front, only headers. Security headers on every answer, errors included.

use ipm_testkit::eventually;
use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::both_backends;
use crate::support::*;

fn assert_security_headers(h: &HeaderMap, what: &str) {
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "SAMEORIGIN", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(
        h["content-security-policy"],
        ipm_api::config::DEFAULT_CSP,
        "{what}"
    );
    assert!(h.get("strict-transport-security").is_none(), "{what}");
}

async fn reference_curl_checks(backend: Backend) {
    let app = spawn_api(backend).await;
    // curl -i http://localhost:8000/api/projects
    let r = app.raw(Method::GET, "/api/projects", &[], None).await;
    assert_eq!(r.status(), 401);
    assert_security_headers(r.headers(), "401");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "unauthenticated", "reason": "missing_proxy_secret"})
    );
    // With valid headers: 200 and the list.
    let created = app.create(REF_USER, "team-a", "first").await;
    let r = app
        .raw(
            Method::GET,
            "/api/projects",
            &[("X-User-Email", REF_USER), ("X-Proxy-Secret", SECRET)],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_security_headers(r.headers(), "200");
    assert_eq!(r.headers()["content-type"], "application/json");
    let page: serde_json::Value = r.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0], created);
    assert_eq!(page["next_cursor"], serde_json::Value::Null);
    // Wrong secret: 401.
    let r = app
        .raw(
            Method::GET,
            "/api/projects",
            &[
                ("X-User-Email", REF_USER),
                ("X-Proxy-Secret", "wrong-secret"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 401);
    let text = r.text().await.unwrap();
    assert!(text.contains("invalid_proxy_secret"), "{text}");
}
both_backends!(reference_curl, reference_curl_checks);

async fn authentication_failures(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = app.create(ALICE, "team-a", "p").await;
    let id = p["id"].as_str().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("x-user-email", ALICE)], "missing_proxy_secret"),
        (&[("x-proxy-secret", SECRET)], "missing_user"),
        (
            &[("x-proxy-secret", SECRET), ("x-user-email", "not-an-email")],
            "invalid_user",
        ),
        (
            &[
                ("x-proxy-secret", SECRET),
                ("x-proxy-secret", SECRET),
                ("x-user-email", ALICE),
            ],
            "duplicate_proxy_secret",
        ),
        (
            &[
                ("x-proxy-secret", SECRET),
                ("x-user-email", ALICE),
                ("x-user-email", BOB),
            ],
            "duplicate_user",
        ),
    ];
    let routes = [
        (Method::GET, "/api/projects".to_string()),
        (Method::POST, "/api/projects".to_string()),
        (Method::GET, format!("/api/projects/{id}")),
        (Method::PATCH, format!("/api/projects/{id}")),
        (Method::DELETE, format!("/api/projects/{id}")),
        (Method::GET, "/api/openapi.json".to_string()),
    ];
    for (method, path) in &routes {
        for (headers, reason) in cases {
            let body = matches!(*method, Method::POST | Method::PATCH).then_some("{not json");
            let r = app.raw(method.clone(), path, headers, body).await;
            assert_eq!(r.status(), 401, "{method} {path} {reason}");
            assert_security_headers(r.headers(), reason);
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["reason"], *reason, "{method} {path}");
        }
    }
    // Nothing was deleted or changed by the refused requests.
    assert_eq!(app.get(ALICE, &format!("/api/projects/{id}")).await.1, p);
}
both_backends!(authentication, authentication_failures);

async fn policies_decide(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = app.create(ALICE, "team-a", "p").await;
    let id = p["id"].as_str().unwrap();
    // No group at all: the application itself is closed.
    let (status, v) = app.get(NOBODY, "/api/projects").await;
    assert_eq!((status, v["reason"].as_str()), (403, Some("policy_denied")));
    // Suspended: a forbid beats the group's permit; the project is hidden, not forbidden.
    assert_eq!(app.get(MALLORY, "/api/projects").await.0, 403);
    let (status, v) = app.get(MALLORY, &format!("/api/projects/{id}")).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (404, Some("project_not_found"))
    );
    // Admins may read any project, through the admins policy, not group membership.
    assert_eq!(
        app.get(ADMIN, &format!("/api/projects/{id}")).await,
        (200, p)
    );
}
both_backends!(policies, policies_decide);

async fn security_headers_everywhere(backend: Backend) {
    let app = spawn_with(backend, |c| {
        c.hsts = true;
        c.csp = "default-src 'self'".into();
    })
    .await;
    let auth = [("x-proxy-secret", SECRET), ("x-user-email", ALICE)];
    for (method, path, body, status) in [
        (Method::GET, "/api/projects", None, 200),
        (Method::GET, "/api/projects/nope", None, 400),
        (Method::POST, "/api/projects", Some("{"), 400),
        (Method::GET, "/api/nothing-here", None, 404),
        (Method::PUT, "/api/projects", Some("{}"), 405),
        (Method::GET, "/healthz", None, 200),
        (Method::GET, "/readyz", None, 200),
    ] {
        let r = app.raw(method.clone(), path, &auth, body).await;
        assert_eq!(r.status(), status, "{method} {path}");
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["content-security-policy"], "default-src 'self'");
        assert_eq!(
            h["strict-transport-security"],
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(h["cache-control"], "no-store");
        if status != 200 {
            let v: serde_json::Value = r.json().await.unwrap();
            assert!(v["error"].is_string() && v["reason"].is_string(), "{v}");
        }
    }
}
both_backends!(security_headers, security_headers_everywhere);

/// One policy set, two enforcement points: the API follows edits to the policies and the
/// groups file without a restart, as authz does.
async fn hot_reload(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = app.create(ALICE, "team-a", "p").await;
    let path = format!("/api/projects/{}", p["id"].as_str().unwrap());
    assert_eq!(app.get(BOB, &path).await.0, 404);
    // Bob joins team-a: he sees the project.
    let groups = std::fs::read_to_string(&app.groups_file).unwrap().replace(
        r#"team-a = ["alice@example.com""#,
        r#"team-a = ["bob@example.com", "alice@example.com""#,
    );
    let tmp = app.groups_file.with_extension("tmp");
    std::fs::write(&tmp, groups).unwrap();
    std::fs::rename(&tmp, &app.groups_file).unwrap();
    let deadline = std::time::Duration::from_secs(10);
    let joined = eventually(deadline, || async { app.get(BOB, &path).await.0 == 200 }).await;
    assert!(joined.is_some());
    // A policy forbidding Alice's reads: her project disappears for her.
    let tmp = app.policy_dir.join(".alice.cedar.tmp");
    std::fs::write(
        &tmp,
        "@id(\"alice-no-read\")\nforbid (principal == User::\"alice@example.com\", action in Action::\"Read\", resource);\n",
    )
    .unwrap();
    std::fs::rename(&tmp, app.policy_dir.join("alice.cedar")).unwrap();
    let hidden = eventually(deadline, || async { app.get(ALICE, &path).await.0 == 404 }).await;
    assert!(hidden.is_some());
    assert_eq!(app.get(BOB, &path).await.0, 200);
}
both_backends!(policies_and_groups_reload, hot_reload);
