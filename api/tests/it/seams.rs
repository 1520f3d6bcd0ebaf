//! Findings of a security review, each held by a test: `ipm-api gc --apply` pointed at the
//! wrong database must not delete every stored image.

use std::process::Command;
use std::time::Duration;

use ipm_api::db::Db;
use ipm_api::gc::GcOptions;
use ipm_api::image_store::ImageStore;
use ipm_api::storage::LocalStorage;
use ipm_testkit::files_under;

use crate::support::*;

const IMAGES: usize = 8;

/// A PNG header for a 1 × 1 image, padded to `size` bytes.
fn png(size: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
    v.resize(size, 0);
    v
}

async fn gc(db: &Db, storage: &LocalStorage, force: bool) -> (Result<usize, String>, String) {
    let mut out = Vec::new();
    let result = ipm_api::gc::run(
        &ImageStore::new(db.clone()),
        storage,
        GcOptions {
            apply: true,
            min_age: Duration::ZERO,
            force,
        },
        &mut out,
    )
    .await;
    (
        result.map(|r| r.removed).map_err(|e| e.to_string()),
        String::from_utf8(out).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_on_the_wrong_database_refuses_to_remove_most_objects() {
    let app = spawn_api(Backend::Sqlite).await;
    let project = app.create(ALICE, "team-a", "photos").await;
    let project = project["id"].as_str().unwrap();
    for i in 0..IMAGES {
        let r = app
            .client
            .post(app.url(&format!("/api/projects/{project}/images?filename=p{i}.png")))
            .header("x-proxy-secret", SECRET)
            .header("x-user-email", ALICE)
            .header("content-type", "application/octet-stream")
            .body(png(100 + i))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let root = app.policy_dir.parent().unwrap().to_path_buf();
    let storage_dir = root.join("data/images");
    let stored = storage_dir.join("objects");
    assert_eq!(objects(&app).len(), IMAGES);
    let storage = LocalStorage::open(&storage_dir).unwrap();

    // Another deployment's database: migrated, without any of these images.
    let elsewhere = tempfile::tempdir().unwrap();
    let wrong_url = format!("sqlite://{}/other.db?mode=rwc", elsewhere.path().display());
    let wrong = Db::open(&wrong_url, 2, Duration::from_secs(5)).unwrap();
    wrong.migrate().await.unwrap();

    let (result, text) = gc(&wrong, &storage, false).await;
    let e = result.expect_err("gc --apply refuses");
    assert!(e.contains("refusing"), "{e}");
    assert!(e.contains("--force"), "{e}");
    assert!(text.contains("object without a row"), "{text}");
    assert_eq!(objects(&app).len(), IMAGES, "nothing was removed");

    // The operator's command exits non-zero and says why.
    let out = Command::new(env!("CARGO_BIN_EXE_ipm-api"))
        .args(["gc", "--apply", "--min-age=0"])
        .current_dir(&root)
        .env("DATABASE_URL", &wrong_url)
        .env("STORAGE_DIR", &storage_dir)
        .env_remove("STORAGE_BACKEND")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("refusing"), "{stderr}");
    assert_eq!(objects(&app).len(), IMAGES, "nothing was removed");

    // The right database: a few leftovers are still collected.
    let right_url = format!("sqlite://{}/data/ipm.db?mode=rwc", root.display());
    let right = Db::open(&right_url, 2, Duration::from_secs(5)).unwrap();
    let leftover = ipm_api::storage::ObjectKey::for_image(uuid::Uuid::now_v7());
    let leftover = stored.join(leftover.as_str());
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, png(100)).unwrap();
    let (result, text) = gc(&right, &storage, false).await;
    assert_eq!(result, Ok(1), "{text}");
    assert!(!leftover.exists());
    right.close().await;

    // `--force` is the operator saying they mean it.
    // (Each image's thumbnail, here an empty marker, goes with it.)
    let (result, text) = gc(&wrong, &storage, true).await;
    assert_eq!(result, Ok(2 * IMAGES), "{text}");
    assert!(files_under(&stored).is_empty());
    wrong.close().await;
}
