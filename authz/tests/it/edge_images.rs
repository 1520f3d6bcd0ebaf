//! Edge decisions on image routes: authz finds an image's project and that project's group in
//! the API's database, so another group's image is denied before the API is reached.

use ipm_testkit::{PgDatabase, require_postgres};

use crate::support::{insert_projects, migrated_db, spawn_with};

const ALICE: &str = "alice@example.com"; // photographers
const CAROL: &str = "carol@example.com"; // editors
const MALLORY: &str = "mallory@example.com"; // photographers, suspended
const ADMIN: &str = "admin@example.com";

const PHOTOS: &str = "0190f0c4-6c3e-7b3a-8f00-000000000001";
const PHOTO_IMAGE: &str = "0190f0c4-6c3e-7b3a-8f00-0000000000a1";
const UNKNOWN_IMAGE: &str = "0190f0c4-6c3e-7b3a-8f00-0000000000ff";

/// The API's schema, a photographers project and one image in it.
async fn seed(url: &str) {
    let db = migrated_db(url).await;
    let project = uuid::Uuid::parse_str(PHOTOS).unwrap();
    let image = uuid::Uuid::parse_str(PHOTO_IMAGE).unwrap();
    insert_projects(&db, &[(project, "photographers")]).await;
    ipm_runtime::with_pool!(&db, pool => {
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
    require_postgres!();
    let db = PgDatabase::create().await;
    edge_decisions(&db.url).await;
}
