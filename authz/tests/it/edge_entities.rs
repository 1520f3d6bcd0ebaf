//! Edge decisions on per-project routes: with `DATABASE_URL`, authz reads each project's group
//! from the API's database (read-only) so the proxy denies before the API is reached.

use std::time::Duration;

use ipm_testkit::{PgDatabase, require_postgres};
use sqlx::Connection;

use crate::support::{insert_projects, migrated_db, spawn_with};

const ALICE: &str = "alice@example.com"; // photographers
const CAROL: &str = "carol@example.com"; // editors
const MALLORY: &str = "mallory@example.com"; // photographers, suspended
const ADMIN: &str = "admin@example.com";

const PHOTOS: &str = "0190f0c4-6c3e-7b3a-8f00-000000000001";
const EDITS: &str = "0190f0c4-6c3e-7b3a-8f00-000000000002";

/// Applies the API's migrations and inserts one project per group, as the API would.
pub async fn seed(url: &str) {
    let db = migrated_db(url).await;
    let project = |id| uuid::Uuid::parse_str(id).unwrap();
    insert_projects(
        &db,
        &[
            (project(PHOTOS), "photographers"),
            (project(EDITS), "editors"),
        ],
    )
    .await;
    db.close().await;
}

async fn edge_decisions(url: &str) {
    seed(url).await;
    let app = spawn_with(|c| c.database_url = Some(url.to_string())).await;
    let photos = format!("/api/projects/{PHOTOS}");
    let edits = format!("/api/projects/{EDITS}");
    let cases = [
        (ALICE, "GET", photos.as_str(), 200),
        (ALICE, "PATCH", photos.as_str(), 200),
        (ALICE, "DELETE", photos.as_str(), 200),
        (ALICE, "GET", edits.as_str(), 403),
        (ALICE, "DELETE", edits.as_str(), 403),
        (CAROL, "GET", edits.as_str(), 200),
        (CAROL, "GET", photos.as_str(), 403),
        (ADMIN, "GET", edits.as_str(), 200),
        (MALLORY, "GET", photos.as_str(), 403),
        // Unknown and malformed ids are no project: denied, without a database error.
        (
            ALICE,
            "GET",
            "/api/projects/0190f0c4-6c3e-7b3a-8f00-0000000000ff",
            403,
        ),
        (ALICE, "GET", "/api/projects/not-a-uuid", 403),
        (
            ALICE,
            "GET",
            "/api/projects/0190F0C4-6C3E-7B3A-8F00-000000000001",
            403,
        ),
    ];
    for (user, method, path, want) in cases {
        assert_eq!(
            app.status_as(user, method, path).await,
            want,
            "{user} {method} {path}"
        );
    }
    // The identity headers travel with an allow, as for any route.
    let r = app.auth_as(ALICE, "GET", &photos).await;
    assert_eq!(r.headers()["x-authz-user"], ALICE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_the_projects_group_only_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ipm.db?mode=rwc", dir.path().display());
    edge_decisions(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_the_projects_group_only_postgres() {
    require_postgres!();
    let db = PgDatabase::create().await;
    edge_decisions(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_503_on_project_routes_only() {
    let dir = tempfile::tempdir().unwrap();
    // Read-only never creates the file: every lookup fails.
    let url = format!("sqlite://{}/missing.db", dir.path().display());
    let app = spawn_with(|c| c.database_url = Some(url)).await;
    assert_eq!(
        app.status_as(ALICE, "GET", &format!("/api/projects/{PHOTOS}"))
            .await,
        503
    );
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects").await, 200);
    // Ids that cannot be projects never reach the database.
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects/nope").await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cache_a_moved_project_is_denied_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ipm.db?mode=rwc", dir.path().display());
    seed(&url).await;
    let app = spawn_with(|c| {
        c.database_url = Some(url.clone());
        c.entity_cache_ttl = Duration::ZERO;
    })
    .await;
    let photos = format!("/api/projects/{PHOTOS}");
    assert_eq!(app.status_as(ALICE, "GET", &photos).await, 200);
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE projects SET meta_group_id = 'editors' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(PHOTOS).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(app.status_as(ALICE, "GET", &photos).await, 403);
    assert_eq!(app.status_as(CAROL, "GET", &photos).await, 200);
}
