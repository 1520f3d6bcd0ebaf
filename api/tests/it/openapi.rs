//! The OpenAPI document describes exactly the routes the server answers, and the shipped
//! `routes.toml` gives every `/api` route a Cedar action, so none is denied for lack of one.

use ipm_api::filters::API_ROUTES;
use ipm_policy::snapshot::PolicySnapshot;
use ipm_testkit::shipped_policies;
use reqwest::Method;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_matches_the_router() {
    let app = spawn_api(Backend::Sqlite).await;
    let r = app.raw(Method::GET, "/api/openapi.json", &[], None).await;
    assert_eq!(r.status(), 401, "the document is behind the same checks");
    let (status, doc) = app.get(ALICE, "/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["user"]["name"],
        "x-user-email"
    );
    let p = app.create(ALICE, "team-a", "p").await;
    let id = p["id"].as_str().unwrap();
    // An image for the image routes, one a thumbnail can be made of.
    let gif = crate::thumbnails::picture(4, 4);
    let upload = |body: Vec<u8>| {
        app.client
            .post(app.url(&format!("/api/projects/{id}/images?filename=a.png")))
            .header("x-proxy-secret", SECRET)
            .header("x-user-email", ALICE)
            .header("content-type", "image/png")
            .body(body)
            .send()
    };
    let image: serde_json::Value = upload(gif.clone()).await.unwrap().json().await.unwrap();
    let image_id = image["id"].as_str().unwrap();
    let shipped = PolicySnapshot::load(&shipped_policies()).unwrap();
    let mut described = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            described += 1;
            let method = method.to_ascii_uppercase();
            assert!(
                API_ROUTES
                    .iter()
                    .any(|r| r.method == method && r.path == path),
                "{method} {path} is described but not served"
            );
        }
    }
    assert_eq!(described, API_ROUTES.len());
    for route in API_ROUTES {
        let concrete = if route.path.starts_with("/api/images/") {
            route.path.replace("{id}", image_id)
        } else {
            route.path.replace("{id}", id)
        };
        let body = match route.method {
            "POST" => Some(r#"{"name":"q","meta_group_id":"team-a"}"#),
            "PATCH" => Some(r#"{"description":"d"}"#),
            _ => None,
        };
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let (status, v) = if route.path.ends_with("/images") && route.method == "POST" {
            let r = upload(gif.clone()).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap().into())
        } else if route.path.ends_with("/content") || route.path.ends_with("/thumbnail") {
            let r = app
                .raw(
                    method,
                    &concrete,
                    &[("x-proxy-secret", SECRET), ("x-user-email", ALICE)],
                    None,
                )
                .await;
            (r.status().as_u16(), serde_json::Value::Null)
        } else {
            app.call(ALICE, method, &concrete, body).await
        };
        assert!(
            (200..300).contains(&status),
            "{} {}: {status} {v}",
            route.method,
            route.path
        );
        let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
        assert!(
            op["responses"].get(status.to_string()).is_some(),
            "{} {} answers {status}, which the document does not list",
            route.method,
            route.path
        );
        if route.path.starts_with("/api/") {
            assert!(
                shipped.routes.matches(route.method, &concrete).is_some(),
                "{} {} has no route in policies/routes.toml",
                route.method,
                route.path
            );
        }
    }
}
