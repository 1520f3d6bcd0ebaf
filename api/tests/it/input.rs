//! Bad input answers 400 or 422 with a JSON error naming the field, and changes nothing;
//! authentication is still checked first.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::*;

async fn bad_input(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = app.create(ALICE, "team-a", "keep").await;
    let path = format!("/api/projects/{}", p["id"].as_str().unwrap());
    let long = "x".repeat(121);
    let long_description = "x".repeat(2001);
    let creates: Vec<(String, u16, &str)> = vec![
        ("{".into(), 400, "invalid_json"),
        ("".into(), 400, "invalid_json"),
        (
            r#"{"name":"a","meta_group_id":"team-a"} trailing"#.into(),
            400,
            "invalid_json",
        ),
        ("[]".into(), 422, "body"),
        (
            r#"{"name":"a","meta_group_id":"team-a","owner":"x"}"#.into(),
            422,
            "owner",
        ),
        (r#"{"meta_group_id":"team-a"}"#.into(), 422, "name"),
        (r#"{"name":"a"}"#.into(), 422, "meta_group_id"),
        (r#"{"name":7,"meta_group_id":"team-a"}"#.into(), 422, "name"),
        (
            r#"{"name":"   ","meta_group_id":"team-a"}"#.into(),
            422,
            "name",
        ),
        (
            json!({"name": long, "meta_group_id": "team-a"}).to_string(),
            422,
            "name",
        ),
        (
            json!({"name": "a\u{0}b", "meta_group_id": "team-a"}).to_string(),
            422,
            "name",
        ),
        (
            json!({"name": "a", "description": long_description, "meta_group_id": "team-a"})
                .to_string(),
            422,
            "description",
        ),
        (
            json!({"name": "a", "meta_group_id": "team a"}).to_string(),
            422,
            "meta_group_id",
        ),
        (
            json!({"name": "a", "meta_group_id": ""}).to_string(),
            422,
            "meta_group_id",
        ),
    ];
    for (body, status, what) in &creates {
        let (got, v) = app
            .call(ALICE, Method::POST, "/api/projects", Some(body))
            .await;
        assert_eq!(got, *status, "{body}: {v}");
        if *status == 400 {
            assert_eq!(v["reason"], *what, "{body}");
        } else {
            assert_eq!(v["field"], *what, "{body}: {v}");
        }
        assert!(v["message"].is_string(), "{v}");
    }
    let patches: Vec<(String, u16, &str)> = vec![
        ("{}".into(), 422, "name"),
        (r#"{"meta_group_id":"team-b"}"#.into(), 422, "meta_group_id"),
        (r#"{"name":""}"#.into(), 422, "name"),
        (json!({"name": long}).to_string(), 422, "name"),
        (r#"{"name":null}"#.into(), 422, "name"),
        ("nope".into(), 400, "invalid_json"),
    ];
    for (body, status, what) in &patches {
        let (got, v) = app.call(ALICE, Method::PATCH, &path, Some(body)).await;
        assert_eq!(got, *status, "{body}: {v}");
        if *status == 400 {
            assert_eq!(v["reason"], *what, "{body}");
        } else {
            assert_eq!(v["field"], *what, "{body}: {v}");
        }
    }
    // Nothing changed, nothing was added.
    assert_eq!(app.get(ALICE, &path).await, (200, p.clone()));
    assert_eq!(app.list_all(ALICE, 50).await, vec![p]);

    // Bad ids: the field is `id`, for members, strangers and admins alike.
    for id in [
        "nope",
        "1",
        "0190F0C4-6C3E-7B3A-8F00-0123456789AB",
        "0190f0c46c3e7b3a8f000123456789ab",
        "%7B0190f0c4-6c3e-7b3a-8f00-0123456789ab%7D",
    ] {
        for user in [ALICE, BOB, ADMIN] {
            for method in [Method::GET, Method::DELETE] {
                let (status, v) = app
                    .call(user, method.clone(), &format!("/api/projects/{id}"), None)
                    .await;
                assert_eq!(
                    (status, v["field"].as_str()),
                    (400, Some("id")),
                    "{method} {id} as {user}: {v}"
                );
            }
        }
    }
    // Bad query parameters.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("cursor=", "cursor"),
        ("cursor=not-a-cursor", "cursor"),
        ("group=a,b", "group"),
        ("order=name", "order"),
        ("limit=1&limit=2", "limit"),
    ] {
        let (status, v) = app.get(ALICE, &format!("/api/projects?{query}")).await;
        assert_eq!(
            (status, v["field"].as_str()),
            (400, Some(field)),
            "{query}: {v}"
        );
    }
    // An over-large body is refused before it is read.
    let huge = json!({"name": "a", "description": "x".repeat(70_000), "meta_group_id": "team-a"});
    let (status, v) = app
        .call(
            ALICE,
            Method::POST,
            "/api/projects",
            Some(&huge.to_string()),
        )
        .await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (413, Some("payload_too_large"))
    );
    // Unknown routes and methods answer JSON too.
    assert_eq!(
        app.get(ALICE, "/api/projects/a/b").await.1["reason"],
        "no_such_route"
    );
    assert_eq!(
        app.call(ALICE, Method::PUT, &path, Some("{}")).await.1["reason"],
        "method_not_allowed"
    );
}
both_backends!(bad_input_names_the_field, bad_input);
