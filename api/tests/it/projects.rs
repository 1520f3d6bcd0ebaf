//! Every project route and status over real HTTP: create, read, change, delete, conflicts,
//! and the 403-versus-404 rule for writes.

use ipm_testkit::{PgDatabase, require_postgres};
use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::*;

async fn crud(backend: Backend) {
    let app = spawn_api(backend).await;
    // Create: 201, Location, the stored fields.
    let body = json!({"name": "  Harbour survey ", "description": "Drone shots", "meta_group_id": "team-a"});
    let r = app
        .raw(
            Method::POST,
            "/api/projects",
            &[("x-proxy-secret", SECRET), ("x-user-email", ALICE)],
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let p: serde_json::Value = r.json().await.unwrap();
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/projects/{id}"));
    assert_eq!(p["name"], "Harbour survey");
    assert_eq!(p["description"], "Drone shots");
    assert_eq!(p["meta_group_id"], "team-a");
    assert_eq!(p["created_by"], ALICE);
    assert_eq!(p["created_at"], p["updated_at"]);
    assert!(ipm_policy::entities::parse_id(&id).is_some());

    // Read it back, by another member of the group; HEAD too.
    let path = format!("/api/projects/{id}");
    assert_eq!(app.get(ANN, &path).await, (200, p.clone()));
    let head = app
        .raw(
            Method::HEAD,
            &path,
            &[("x-proxy-secret", SECRET), ("x-user-email", ANN)],
            None,
        )
        .await;
    assert_eq!(head.status(), 200);
    let head = app
        .raw(
            Method::HEAD,
            "/api/projects",
            &[("x-proxy-secret", SECRET), ("x-user-email", ANN)],
            None,
        )
        .await;
    assert_eq!(head.status(), 200);

    // Change the name only, then the description only.
    let (status, changed) = app
        .call(ANN, Method::PATCH, &path, Some(r#"{"name":"Harbour"}"#))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Harbour");
    assert_eq!(changed["description"], "Drone shots");
    assert_eq!(changed["created_at"], p["created_at"]);
    let (status, changed) = app
        .call(ANN, Method::PATCH, &path, Some(r#"{"description":""}"#))
        .await;
    assert_eq!(status, 200);
    assert_eq!(changed["name"], "Harbour");
    assert_eq!(changed["description"], "");
    assert_eq!(app.get(ALICE, &path).await, (200, changed));

    // Delete: 204, then gone for everyone, and a second delete is 404.
    let (status, _) = app.call(ALICE, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(app.get(ALICE, &path).await.0, 404);
    assert_eq!(app.get(ADMIN, &path).await.0, 404);
    assert_eq!(app.call(ALICE, Method::DELETE, &path, None).await.0, 404);
    assert_eq!(app.list_all(ALICE, 50).await.len(), 0);
}
both_backends!(create_read_update_delete, crud);

async fn names_are_unique_within_a_group(backend: Backend) {
    let app = spawn_api(backend).await;
    let a = app.create(ALICE, "team-a", "Survey").await;
    // The same name in another group is fine.
    app.create(BOB, "team-b", "Survey").await;
    let body = json!({"name": "Survey", "meta_group_id": "team-a"}).to_string();
    let (status, v) = app
        .call(ANN, Method::POST, "/api/projects", Some(&body))
        .await;
    assert_eq!(status, 409);
    assert_eq!(v["field"], "name");
    // The refused insert left nothing behind.
    assert_eq!(app.list_all(ALICE, 50).await.len(), 1);
    // Renaming onto a taken name is refused too, and changes nothing.
    let other = app.create(ALICE, "team-a", "Other").await;
    let path = format!("/api/projects/{}", other["id"].as_str().unwrap());
    let (status, v) = app
        .call(
            ALICE,
            Method::PATCH,
            &path,
            Some(r#"{"name":"Survey","description":"x"}"#),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (409, Some("name")));
    assert_eq!(app.get(ALICE, &path).await, (200, other));
    assert_eq!(
        app.get(
            ALICE,
            &format!("/api/projects/{}", a["id"].as_str().unwrap())
        )
        .await
        .0,
        200
    );
}
both_backends!(unique_names, names_are_unique_within_a_group);

async fn create_only_in_own_groups(backend: Backend) {
    let app = spawn_api(backend).await;
    for group in ["team-b", "admins", "no-such-group"] {
        let body = json!({"name": "x", "meta_group_id": group}).to_string();
        let (status, v) = app
            .call(ALICE, Method::POST, "/api/projects", Some(&body))
            .await;
        assert_eq!(status, 403, "{group}: {v}");
        assert_eq!(v["field"], "meta_group_id");
    }
    // Admins may, by policy.
    app.create(ADMIN, "team-b", "made by an admin").await;
    assert_eq!(app.list_all(BOB, 50).await.len(), 1);
    // Suspended members may not, whatever group.
    let body = json!({"name": "x", "meta_group_id": "team-a"}).to_string();
    assert_eq!(
        app.call(MALLORY, Method::POST, "/api/projects", Some(&body))
            .await
            .0,
        403
    );
}
both_backends!(create_in_group, create_only_in_own_groups);

/// A reader who may not write gets 403; someone who may not even read gets 404.
async fn write_denials(backend: Backend) {
    let app = spawn_with(backend, |c| {
        std::fs::write(
            c.policy_dir.join("readonly.cedar"),
            "@id(\"ann-read-only\")\nforbid (principal == User::\"ann@example.com\", action in Action::\"Write\", resource);\n",
        )
        .unwrap();
    })
    .await;
    let p = app.create(ALICE, "team-a", "p").await;
    let path = format!("/api/projects/{}", p["id"].as_str().unwrap());
    assert_eq!(app.get(ANN, &path).await.0, 200);
    for (method, body) in [
        (Method::PATCH, Some(r#"{"name":"q"}"#)),
        (Method::DELETE, None),
    ] {
        let (status, v) = app.call(ANN, method.clone(), &path, body).await;
        assert_eq!(
            (status, v["reason"].as_str()),
            (403, Some("policy_denied")),
            "{method}"
        );
        let (status, v) = app.call(BOB, method.clone(), &path, body).await;
        assert_eq!(
            (status, v["reason"].as_str()),
            (404, Some("project_not_found")),
            "{method}"
        );
    }
    assert_eq!(app.get(ALICE, &path).await, (200, p));
}
both_backends!(read_but_not_write, write_denials);

/// Every other PostgreSQL test runs on a copy of a template the migrations were already applied
/// to; this one starts on an empty database, so the API's own migrations run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_postgres_database_is_migrated_at_start() {
    require_postgres!();
    let app = spawn_on(PgDatabase::empty().await, |_| {}).await;
    let p = app.create(ALICE, "team-a", "first").await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(app.get(ALICE, &format!("/api/projects/{id}")).await.0, 200);
    let (status, images) = app.get(ALICE, &format!("/api/projects/{id}/images")).await;
    assert_eq!((status, &images["items"]), (200, &json!([])), "{images}");
}
