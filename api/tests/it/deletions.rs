//! Deleting images and projects never holds a database write across a storage call: the rows
//! go first and queue their objects' keys in the same statement; the objects go after the
//! commit; what storage refuses stays queued until the API's sweeper or `ipm-api gc` removes
//! it. Nothing is orphaned, and a storage brown-out does not stop other writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipm_api::db::Db;
use ipm_api::gc::GcOptions;
use ipm_api::image_store::ImageStore;
use ipm_api::storage::LocalStorage;
use ipm_testkit::{S3Server, eventually, require_postgres};
use reqwest::Method;

use crate::images::{on_s3, png, project, upload_raw};
use crate::support::*;

async fn queued(app: &TestApp) -> Vec<String> {
    let db = Db::open(&database_url(app), 1, Duration::from_secs(5)).unwrap();
    let keys = ImageStore::new(db.clone())
        .queued_deletions(1000)
        .await
        .unwrap();
    db.close().await;
    keys
}

async fn delete(app: &TestApp, user: &str, path: &str) -> u16 {
    app.client
        .delete(app.url(path))
        .header("x-proxy-secret", SECRET)
        .header("x-user-email", user)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The object file of image `id`.
fn object_of(app: &TestApp, id: &str) -> PathBuf {
    objects(app)
        .into_iter()
        .find(|f| f.ends_with(id))
        .unwrap_or_else(|| panic!("no object for {id}"))
}

/// Makes the object at `path` impossible to remove as a file (a non-empty folder in its
/// place), as a storage that refuses deletes would.
fn jam(path: &Path) {
    std::fs::remove_file(path).unwrap();
    std::fs::create_dir_all(path.join("stuck")).unwrap();
}

fn unjam(path: &Path) {
    std::fs::remove_dir_all(path).unwrap();
    std::fs::write(path, png(1, 1, 100)).unwrap();
}

/// Storage refusing the delete: the image is gone at once (204, 404 after), its object stays
/// queued, the API's sweeper removes it once storage works again; the same for a project's
/// images, whose other objects go at once.
async fn refused_deletes_stay_queued_until_swept(backend: Backend) {
    let app = spawn_with(backend, |c| {
        c.images.delete_retry = Duration::from_secs(1);
    })
    .await;
    let p = project(&app, ALICE, "team-a").await;
    let (status, img) = upload_raw(&app, ALICE, &p, "a.png", png(2, 2, 2000)).await;
    assert_eq!(status, 201, "{img}");
    let id = img["id"].as_str().unwrap().to_string();
    let path = object_of(&app, &id);
    jam(&path);

    assert_eq!(delete(&app, ALICE, &format!("/api/images/{id}")).await, 204);
    let (status, _) = app.get(ALICE, &format!("/api/images/{id}")).await;
    assert_eq!(status, 404, "the image is gone for its users at once");
    let keys = queued(&app).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(&id));
    assert!(path.exists(), "storage refused: the object is still there");

    // gc sees it as queued, not as an object without a row.
    let storage = LocalStorage::open(&storage_dir(&app)).unwrap();
    let db = Db::open(&database_url(&app), 1, Duration::from_secs(5)).unwrap();
    let mut out = Vec::new();
    let opts = GcOptions {
        apply: false,
        min_age: Duration::ZERO,
        force: false,
    };
    let report = ipm_api::gc::run(&ImageStore::new(db.clone()), &storage, opts, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        (report.queued_deletions, report.orphan_objects),
        (1, 0),
        "{text}"
    );
    assert!(text.contains("object of a deleted image"), "{text}");
    db.close().await;

    unjam(&path);
    assert!(
        eventually(Duration::from_secs(20), || async {
            !path.exists() && queued(&app).await.is_empty()
        })
        .await
        .is_some(),
        "the sweeper removes the object once storage works"
    );

    // A project: its rows go with it; the objects storage takes go at once, the rest stays
    // queued until swept.
    let mut paths = Vec::new();
    for i in 0..3 {
        let (status, img) = upload_raw(&app, ALICE, &p, &format!("p{i}.png"), png(2, 2, 900)).await;
        assert_eq!(status, 201, "{img}");
        paths.push(object_of(&app, img["id"].as_str().unwrap()));
    }
    jam(&paths[1]);
    assert_eq!(
        delete(&app, ALICE, &format!("/api/projects/{p}")).await,
        204
    );
    assert!(!paths[0].exists() && !paths[2].exists());
    assert_eq!(queued(&app).await.len(), 1);
    unjam(&paths[1]);
    assert!(
        eventually(Duration::from_secs(20), || async {
            objects(&app).is_empty() && queued(&app).await.is_empty()
        })
        .await
        .is_some(),
        "nothing of the project is left: {:?}",
        objects(&app)
    );
}
crate::both_backends!(refused_deletes, refused_deletes_stay_queued_until_swept);

/// A crash between a row's delete and its object's: `ipm-api gc --apply` finishes it.
async fn gc_finishes_queued_deletions(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = project(&app, ALICE, "team-a").await;
    let (_, img) = upload_raw(&app, ALICE, &p, "a.png", png(2, 2, 2000)).await;
    let id = img["id"].as_str().unwrap();
    let path = object_of(&app, id);
    // What the API does before it calls storage, and then nothing more.
    let db = Db::open(&database_url(&app), 1, Duration::from_secs(5)).unwrap();
    let store = ImageStore::new(db.clone());
    let row = store
        .delete(uuid::Uuid::parse_str(id).unwrap())
        .await
        .unwrap();
    assert!(row.is_some());
    assert!(path.exists());
    let storage = LocalStorage::open(&storage_dir(&app)).unwrap();
    let mut out = Vec::new();
    let opts = GcOptions {
        apply: true,
        min_age: Duration::from_secs(3600),
        force: false,
    };
    let report = ipm_api::gc::run(&store, &storage, opts, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!((report.queued_deletions, report.removed), (1, 1), "{text}");
    assert!(!path.exists(), "{text}");
    assert!(store.queued_deletions(10).await.unwrap().is_empty());
    db.close().await;
}
crate::both_backends!(gc_queued, gc_finishes_queued_deletions);

/// S3 frozen while an image is deleted: the image is gone at once and other writes (a new
/// project) go through; when S3 answers again the object goes and nothing stays queued.
async fn a_storage_brownout_holds_no_write(backend: Backend) {
    let server = S3Server::start().await;
    let app = spawn_with(backend, on_s3(&server)).await;
    let p = project(&app, ALICE, "team-a").await;
    let (status, img) = upload_raw(&app, ALICE, &p, "a.png", png(2, 2, 2000)).await;
    assert_eq!(status, 201, "{img}");
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(server.objects().len(), 1);

    server.pause();
    let deleting = {
        let client = app.client.clone();
        let url = app.url(&format!("/api/images/{id}"));
        tokio::spawn(async move {
            client
                .request(Method::DELETE, url)
                .header("x-proxy-secret", SECRET)
                .header("x-user-email", ALICE)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let gone = eventually(Duration::from_secs(10), || async {
        let (status, _) = app.get(ALICE, &format!("/api/images/{id}")).await;
        status == 404
    })
    .await;
    assert!(
        gone.is_some(),
        "the row is deleted before storage is called"
    );
    let created = app.create(ALICE, "team-a", "written meanwhile").await;
    assert!(created["id"].is_string(), "{created}");
    assert!(!deleting.is_finished(), "storage is still frozen");

    server.resume();
    assert_eq!(deleting.await.unwrap().unwrap(), 204);
    assert!(server.objects().is_empty(), "{:?}", server.objects());
    assert!(queued(&app).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs s3s-fs: run scripts/test"]
async fn a_storage_brownout_holds_no_write_sqlite() {
    a_storage_brownout_holds_no_write(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs s3s-fs: run scripts/test"]
async fn a_storage_brownout_holds_no_write_postgres() {
    require_postgres!();
    a_storage_brownout_holds_no_write(Backend::Postgres).await;
}
