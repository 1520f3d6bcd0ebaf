//! The database going away: every route answers 503 with a clear JSON error, `/readyz`
//! says so, and a start that must migrate refuses instead of serving half a service.

use std::time::Duration;

use ipm_testkit::{PgDatabase, require_postgres};
use reqwest::Method;

use crate::support::*;

async fn assert_all_unavailable(app: &TestApp, project_id: &str) {
    let path = format!("/api/projects/{project_id}");
    let create = r#"{"name":"x","meta_group_id":"team-a"}"#;
    for (method, path, body) in [
        (Method::GET, "/api/projects".to_string(), None),
        (Method::POST, "/api/projects".to_string(), Some(create)),
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(r#"{"name":"y"}"#)),
        (Method::DELETE, path.clone(), None),
    ] {
        let (status, v) = app.call(ALICE, method.clone(), &path, body).await;
        assert_eq!(status, 503, "{method} {path}: {v}");
        assert_eq!(v["error"], "unavailable", "{method} {path}");
        let reason = v["reason"].as_str().unwrap();
        assert!(
            reason == "database_unavailable" || reason == "resource_unavailable",
            "{method} {path}: {v}"
        );
        let text = v.to_string();
        assert!(
            !text.contains("127.0.0.1") && !text.contains("postgres://"),
            "{text}"
        );
    }
    let r = app.raw(Method::GET, "/readyz", &[], None).await;
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["database"]["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dropped_under_the_api() {
    require_postgres!();
    let app = spawn_with(Backend::Postgres, |c| {
        c.db_acquire_timeout = Duration::from_millis(500);
    })
    .await;
    let p = app.create(ALICE, "team-a", "p").await;
    assert_eq!(
        app.raw(Method::GET, "/readyz", &[], None).await.status(),
        200
    );
    PgDatabase::drop_now(&app.pg.as_ref().unwrap().name).await;
    assert_all_unavailable(&app, p["id"].as_str().unwrap()).await;
    // The API still authenticates first: no secret is 401, not 503.
    let r = app.raw(Method::GET, "/api/projects", &[], None).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_not_listening() {
    let app = spawn_with(Backend::Sqlite, |c| {
        // Port 9 (discard) is closed on this machine; nothing listens there.
        c.database_url = "postgres://postgres@127.0.0.1:9/ipm".into();
        c.db_auto_migrate = false;
        c.db_acquire_timeout = Duration::from_millis(300);
    })
    .await;
    assert_all_unavailable(&app, &uuid::Uuid::now_v7().to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_missing() {
    let app = spawn_with(Backend::Sqlite, |c| {
        // `mode=rw` does not create the file: every connection attempt fails.
        let dir = c.policy_dir.parent().unwrap().join("gone");
        c.database_url = format!("sqlite://{}/ipm.db?mode=rw", dir.display());
        c.db_auto_migrate = false;
        c.db_acquire_timeout = Duration::from_millis(300);
    })
    .await;
    assert_all_unavailable(&app, &uuid::Uuid::now_v7().to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrating_start_refuses_without_a_database() {
    let root = tempfile::tempdir().unwrap();
    let policy_dir = root.path().join("policies");
    policies_with_test_groups(&policy_dir);
    let mut config = ipm_api::config::Config::for_test(
        &policy_dir,
        &policy_dir.join("groups.toml"),
        SECRET,
        "postgres://postgres:hunter2@127.0.0.1:9/ipm",
    );
    config.db_acquire_timeout = Duration::from_millis(300);
    let err = match ipm_api::server::run(config).await {
        Ok(_) => panic!("started without a database"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("migrations failed on postgres"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
