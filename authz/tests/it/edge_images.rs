//! Edge decisions on image routes: authz finds an image's project and that project's group in
//! the API's database, so another group's image is denied before the API is reached.

use std::time::Duration;

use ipm_runtime::db::{DbPool, PoolSettings};
use sqlx::Connection;

use crate::support::spawn_with;

const ALICE: &str = "alice@example.com"; // photographers
const CAROL: &str = "carol@example.com"; // editors
const MALLORY: &str = "mallory@example.com"; // photographers, suspended
const ADMIN: &str = "admin@example.com";

const PHOTOS: &str = "0190f0c4-6c3e-7b3a-8f00-000000000001";
const PHOTO_IMAGE: &str = "0190f0c4-6c3e-7b3a-8f00-0000000000a1";
const UNKNOWN_IMAGE: &str = "0190f0c4-6c3e-7b3a-8f00-0000000000ff";

fn migrations(backend: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The API's schema, a photographers project and one image in it.
async fn seed(url: &str) {
    let db = DbPool::open_lazy(
        url,
        PoolSettings {
            read_only: false,
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        },
    )
    .unwrap();
    let backend = db.backend();
    let project = uuid::Uuid::parse_str(PHOTOS).unwrap();
    let image = uuid::Uuid::parse_str(PHOTO_IMAGE).unwrap();
    ipm_runtime::with_pool!(&db, pool => {
        sqlx::raw_sql(sqlx::AssertSqlSafe(migrations(backend)))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO projects (id, name, description, meta_group_id, created_by, created_at, updated_at) \
             VALUES ($1, 'photos', '', 'photographers', 'seed@example.com', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        )
        .bind(project)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO images (id, project_id, storage_key, filename, content_type, size_bytes, sha256, \
             width, height, uploaded_by, created_at) \
             VALUES ($1, $2, 'a1/x', 'a.png', 'image/png', 10, $3, 1, 1, 'seed@example.com', '2026-01-01T00:00:00Z')",
        )
        .bind(image)
        .bind(project)
        .bind("0".repeat(64))
        .execute(pool)
        .await
        .unwrap();
    });
    db.close().await;
}

async fn edge_decisions(url: &str) {
    seed(url).await;
    let app = spawn_with(|c| c.database_url = Some(url.to_string())).await;
    let meta = format!("/api/images/{PHOTO_IMAGE}");
    let content = format!("/api/images/{PHOTO_IMAGE}/content");
    let unknown = format!("/api/images/{UNKNOWN_IMAGE}");
    let cases = [
        (ALICE, "GET", meta.as_str(), 200),
        (ALICE, "GET", content.as_str(), 200),
        (ALICE, "DELETE", meta.as_str(), 200),
        (CAROL, "GET", meta.as_str(), 403),
        (CAROL, "GET", content.as_str(), 403),
        (CAROL, "DELETE", meta.as_str(), 403),
        (ADMIN, "GET", content.as_str(), 200),
        (MALLORY, "GET", content.as_str(), 403),
        // An image that does not exist, or an id that cannot be one: no group, denied.
        (ALICE, "GET", unknown.as_str(), 403),
        (ALICE, "GET", "/api/images/not-a-uuid/content", 403),
    ];
    for (user, method, path, want) in cases {
        assert_eq!(
            app.status_as(user, method, path).await,
            want,
            "{user} {method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_the_images_group_only_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ipm.db?mode=rwc", dir.path().display());
    edge_decisions(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_the_images_group_only_postgres() {
    let admin = std::env::var("TEST_PG_ADMIN_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("ipm_test_{}", uuid::Uuid::now_v7().simple());
    let run = |sql: String| {
        let admin = admin.clone();
        async move {
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed: {e}"));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    };
    run(format!("CREATE DATABASE {name}")).await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let result = tokio::spawn(async move { edge_decisions(&url).await }).await;
    run(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    result.unwrap();
}
