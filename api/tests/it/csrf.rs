//! Requests a browser can be made to send from another site: refused before they change
//! anything (403 `cross_site_request`), and bodies only a script allowed by CORS could send
//! (JSON as `application/json`, a raw upload under a type no HTML form produces; 415 otherwise).

use reqwest::Method;
use serde_json::Value;

use crate::support::*;

/// What `<form enctype="text/plain">` sends for a field named `GIF89aAAAAAAA` holding `x`.
const GIF_TEXT: &str = "GIF89aAAAAAAA=x\r\n";
const CREATE: &str = r#"{"name":"forged","meta_group_id":"team-a"}"#;

/// `method path` as the proxy sends it for ALICE, with `headers` and a body of `content_type`.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("x-proxy-secret", SECRET)
        .header("x-user-email", ALICE);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some((content_type, bytes)) = body {
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        req = req.body(bytes);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, v)
}

async fn projects(app: &TestApp) -> Vec<Value> {
    app.list_all(ALICE, 100).await
}

async fn images(app: &TestApp, project: &str) -> Vec<Value> {
    let (status, page) = app
        .get(ALICE, &format!("/api/projects/{project}/images"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn json(text: &str) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", text.as_bytes().to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_change_nothing() {
    let app = spawn_api(Backend::Sqlite).await;
    let own = format!("http://{}", app.addr);
    let cross: &[&[(&str, &str)]] = &[
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
        &[("sec-fetch-site", "cross-site")],
        // A sibling subdomain is another party too.
        &[("sec-fetch-site", "same-site")],
        // A browser too old for Sec-Fetch-Site still names the page's origin.
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        // The API's own host under another port is another origin.
        &[("origin", "http://127.0.0.1:1")],
        // The browser says same-origin, but the origin is not this one: refused, not guessed.
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://evil.example"),
        ],
        // Garbled or doubled, it is not believed.
        &[("sec-fetch-site", "whatever")],
        &[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "cross-site"),
        ],
        &[("origin", own.as_str()), ("origin", "https://evil.example")],
    ];
    for headers in cross {
        let (status, v) = send(&app, Method::POST, "/api/projects", headers, json(CREATE)).await;
        assert_eq!(status, 403, "{headers:?}: {v}");
        assert_eq!(v["error"], "forbidden", "{headers:?}: {v}");
        assert_eq!(v["reason"], "cross_site_request", "{headers:?}: {v}");
    }
    assert_eq!(projects(&app).await, Vec::<Value>::new());

    // Every unsafe route, whatever the rest of the request looks like.
    let p = app.create(ALICE, "team-a", "mine").await;
    let id = p["id"].as_str().unwrap();
    let evil = [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ];
    let (status, v) = send(
        &app,
        Method::PATCH,
        &format!("/api/projects/{id}"),
        &evil,
        json(r#"{"name":"taken"}"#),
    )
    .await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (403, Some("cross_site_request"))
    );
    let (status, v) = send(
        &app,
        Method::POST,
        &format!("/api/projects/{id}/images?filename=a.gif"),
        &evil,
        Some(("image/gif", GIF_TEXT.as_bytes().to_vec())),
    )
    .await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (403, Some("cross_site_request"))
    );
    // A form that any page can post: multipart goes through the same rule.
    let boundary = "xyz";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.gif\"\r\n\r\n{GIF_TEXT}\r\n--{boundary}--\r\n"
    );
    let (status, v) = send(
        &app,
        Method::POST,
        &format!("/api/projects/{id}/images"),
        &evil,
        Some((
            "multipart/form-data; boundary=xyz",
            form.clone().into_bytes(),
        )),
    )
    .await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (403, Some("cross_site_request"))
    );
    let (status, v) = send(
        &app,
        Method::DELETE,
        &format!("/api/projects/{id}"),
        &evil,
        None,
    )
    .await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (403, Some("cross_site_request"))
    );
    assert_eq!(projects(&app).await, vec![p.clone()]);
    assert_eq!(images(&app, id).await, Vec::<Value>::new());

    // Reading is not refused: a cross-site page cannot read the answer anyway (no CORS).
    let (status, _) = send(&app, Method::GET, "/api/projects", &evil, None).await;
    assert_eq!(status, 200);

    // The same requests from the API's own origin, or with no origin at all (curl, scripts,
    // the proxy's own checks), go through as before.
    let same: &[&[(&str, &str)]] = &[
        &[],
        &[("origin", own.as_str())],
        &[("sec-fetch-site", "same-origin"), ("origin", own.as_str())],
        &[("sec-fetch-site", "same-origin")],
        // Typed or bookmarked by the user.
        &[("sec-fetch-site", "none")],
    ];
    for (i, headers) in same.iter().enumerate() {
        let body = format!(r#"{{"name":"ok-{i}","meta_group_id":"team-a"}}"#);
        let (status, v) = send(&app, Method::POST, "/api/projects", headers, json(&body)).await;
        assert_eq!(status, 201, "{headers:?}: {v}");
    }
    let same_origin = [("sec-fetch-site", "same-origin"), ("origin", own.as_str())];
    let (status, v) = send(
        &app,
        Method::POST,
        &format!("/api/projects/{id}/images"),
        &same_origin,
        Some(("multipart/form-data; boundary=xyz", form.into_bytes())),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = send(
        &app,
        Method::DELETE,
        &format!("/api/projects/{id}"),
        &same_origin,
        None,
    )
    .await;
    assert_eq!(status, 204, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_routes_take_json_only() {
    let app = spawn_api(Backend::Sqlite).await;
    // What an HTML form can send without a preflight, and other types that are not JSON.
    for content_type in [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "application/json-patch+json",
        "application/json; charset=latin1",
        "",
    ] {
        let body = Some((content_type, CREATE.as_bytes().to_vec()));
        let (status, v) = send(&app, Method::POST, "/api/projects", &[], body).await;
        assert_eq!(status, 415, "{content_type:?}: {v}");
        assert_eq!(v["error"], "unsupported_media_type", "{v}");
        assert_eq!(v["reason"], "unsupported_content_type", "{v}");
        assert_eq!(v["field"], "content-type", "{v}");
    }
    assert_eq!(projects(&app).await, Vec::<Value>::new());

    let p = app.create(ALICE, "team-a", "mine").await;
    let path = format!("/api/projects/{}", p["id"].as_str().unwrap());
    let body = Some(("text/plain", br#"{"name":"renamed"}"#.to_vec()));
    let (status, v) = send(&app, Method::PATCH, &path, &[], body).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (415, Some("unsupported_content_type"))
    );
    assert_eq!(app.get(ALICE, &path).await.1["name"], "mine");

    for (i, content_type) in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
    ]
    .iter()
    .enumerate()
    {
        let body = format!(r#"{{"name":"ok-{i}","meta_group_id":"team-a"}}"#);
        let (status, v) = send(
            &app,
            Method::POST,
            "/api/projects",
            &[],
            Some((content_type, body.into_bytes())),
        )
        .await;
        assert_eq!(status, 201, "{content_type}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_upload_needs_a_type_no_form_can_send() {
    let app = spawn_api(Backend::Sqlite).await;
    let p = app.create(ALICE, "team-a", "mine").await;
    let id = p["id"].as_str().unwrap();
    let path = format!("/api/projects/{id}/images?filename=a.gif");
    // A text form's body, or a typeless one (a Blob without a type), that looks like a GIF.
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "",
    ] {
        let body = Some((content_type, GIF_TEXT.as_bytes().to_vec()));
        let (status, v) = send(&app, Method::POST, &path, &[], body).await;
        assert_eq!(status, 415, "{content_type:?}: {v}");
        assert_eq!(v["reason"], "unsupported_content_type", "{v}");
        assert_eq!(v["field"], "content-type", "{v}");
    }
    assert_eq!(images(&app, id).await, Vec::<Value>::new());

    for content_type in ["image/gif", "application/octet-stream"] {
        let body = Some((content_type, GIF_TEXT.as_bytes().to_vec()));
        let (status, v) = send(&app, Method::POST, &path, &[], body).await;
        assert_eq!(status, 201, "{content_type}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_origin_may_send_unsafe_requests() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.allowed_origins =
            ipm_api::csrf::AllowedOrigins::parse("https://app.example.com").unwrap();
    })
    .await;
    let from_app = [
        ("sec-fetch-site", "same-site"),
        ("origin", "https://app.example.com"),
    ];
    let (status, v) = send(&app, Method::POST, "/api/projects", &from_app, json(CREATE)).await;
    assert_eq!(status, 201, "{v}");
    let other = [
        ("sec-fetch-site", "same-site"),
        ("origin", "https://other.example.com"),
    ];
    let (status, v) = send(&app, Method::POST, "/api/projects", &other, json(CREATE)).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (403, Some("cross_site_request"))
    );
}
