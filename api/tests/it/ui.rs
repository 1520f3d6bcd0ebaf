//! The web UI as ipm-api serves it: the page and its files behind the same checks as the API,
//! under the UI's own CSP, cached by version; and `/api/me`, who the page says is signed in.

use ipm_api::config::DEFAULT_UI_CSP;
use reqwest::Method;

use crate::support::*;

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn get(
    app: &TestApp,
    user: Option<&str>,
    path: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut headers = Vec::new();
    if let Some(user) = user {
        headers.push(("x-proxy-secret", SECRET));
        headers.push(("x-user-email", user));
    }
    headers.extend_from_slice(extra);
    app.raw(Method::GET, path, &headers, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_under_their_own_csp() {
    let app = spawn_api(Backend::Sqlite).await;
    // Not past the proxy: nothing, exactly as the API answers.
    let r = get(&app, None, "/", &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "content-type"), "application/json");

    let r = get(&app, Some(ALICE), "/", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&r, "content-security-policy"), DEFAULT_UI_CSP);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "x-frame-options"), "SAMEORIGIN");
    let page = r.text().await.unwrap();
    assert!(page.contains("<title>ipm</title>"), "{page}");
    // A project's address is the same page, whatever follows.
    let r = get(
        &app,
        Some(ALICE),
        "/projects/0190a3c4-0000-7000-8000-000000000000",
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), page);
    // The API keeps its own CSP: nothing may load from a JSON answer.
    let r = get(&app, Some(ALICE), "/api/projects", &[]).await;
    assert_eq!(
        header(&r, "content-security-policy"),
        ipm_api::config::DEFAULT_CSP
    );

    // The files, under the version the page names.
    let script = page
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with("/app.js"))
        .unwrap()
        .to_string();
    let version = script.split('/').nth(2).unwrap().to_string();
    let r = get(&app, Some(ALICE), &script, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header(&r, "content-security-policy"), DEFAULT_UI_CSP);
    assert_eq!(
        header(&r, "cache-control"),
        "private, max-age=31536000, immutable"
    );
    let etag = header(&r, "etag");
    assert_eq!(etag, format!("\"{version}\""));
    assert!(r.text().await.unwrap().contains("import "));
    let r = get(&app, Some(ALICE), &script, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    for (file, mime) in [
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
        ("viewer.js", "text/javascript; charset=utf-8"),
    ] {
        let r = get(&app, Some(ALICE), &format!("/assets/{version}/{file}"), &[]).await;
        assert_eq!(
            (r.status().as_u16(), header(&r, "content-type")),
            (200, mime.to_string()),
            "{file}"
        );
    }
    // Another version, another file, a path out of the folder: nothing (an encoded `/` is
    // no segment the policies route: 403).
    for (path, status) in [
        ("/assets/0000000000000000/app.js".to_string(), 404),
        (format!("/assets/{version}/secret.txt"), 404),
        (format!("/assets/{version}/..%2FCargo.toml"), 403),
        (format!("/assets/{version}/x/app.js"), 404),
    ] {
        let r = get(&app, Some(ALICE), &path, &[]).await;
        assert_eq!(r.status(), status, "{path}");
    }
    let r = app
        .raw(
            Method::HEAD,
            &script,
            &[("x-proxy-secret", SECRET), ("x-user-email", ALICE)],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_of_a_group_may_open_it() {
    let app = spawn_api(Backend::Sqlite).await;
    for who in [NOBODY, MALLORY] {
        for path in ["/", "/projects/x", "/api/me"] {
            let r = get(&app, Some(who), path, &[]).await;
            assert_eq!(r.status(), 403, "{who} {path}");
        }
    }
    // Pages take no unsafe methods.
    let r = app
        .raw(
            Method::POST,
            "/",
            &[("x-proxy-secret", SECRET), ("x-user-email", ALICE)],
            None,
        )
        .await;
    assert!(r.status().is_client_error(), "{}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_says_who_and_where_they_may_create_projects() {
    let app = spawn_api(Backend::Sqlite).await;
    let (status, me) = app.get(ALICE, "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me,
        serde_json::json!({ "email": ALICE, "groups": ["team-a"], "create_groups": ["team-a"] })
    );
    let (_, me) = app.get("Alice@Example.com", "/api/me").await;
    assert_eq!(me["email"], ALICE);
    let (_, me) = app.get(TEN, "/api/me").await;
    assert_eq!(me["groups"].as_array().unwrap().len(), 10);
    assert_eq!(me["create_groups"], me["groups"]);
    // A policy that forbids creating in one group leaves it out, on the same decision.
    std::fs::write(
        app.policy_dir.join("no-g3.cedar"),
        "@id(\"no-g3\")\nforbid (\n  principal,\n  action == Action::\"CreateProjectInGroup\",\n  resource == Group::\"g3\"\n);\n",
    )
    .unwrap();
    let dropped = ipm_testkit::eventually(std::time::Duration::from_secs(10), || async {
        let (_, me) = app.get(TEN, "/api/me").await;
        me["create_groups"].as_array().is_some_and(|g| g.len() == 9)
    })
    .await;
    assert!(dropped.is_some());
    let (_, me) = app.get(TEN, "/api/me").await;
    assert!(
        !me["create_groups"]
            .as_array()
            .unwrap()
            .contains(&"g3".into())
    );
    assert_eq!(me["groups"].as_array().unwrap().len(), 10);
}
