//! Thumbnails end to end: made on upload and stored beside the image, served with caching
//! headers, made on first request when missing, refused for what cannot be decoded or is too
//! large, and removed with the image by the delete, the deletion queue and `ipm-api gc`.

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Duration;

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
use ipm_api::db::Db;
use ipm_api::gc::GcOptions;
use ipm_api::image_store::ImageStore;
use ipm_api::storage::{LocalStorage, ObjectKey};
use reqwest::Method;
use serde_json::Value;

use crate::images::{png, project, upload_raw};
use crate::support::*;

/// A real PNG of `width` × `height`, a gradient.
pub(crate) fn picture(width: u32, height: u32) -> Vec<u8> {
    let image = DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    }));
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// The thumbnail's file beside image `id`'s object.
fn thumbnail_file(app: &TestApp, id: &str) -> PathBuf {
    let key = ObjectKey::for_image(id.parse().unwrap()).thumbnail();
    storage_dir(app).join("objects").join(key.as_str())
}

async fn thumbnail(
    app: &TestApp,
    user: &str,
    id: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut all = vec![("x-proxy-secret", SECRET), ("x-user-email", user)];
    all.extend_from_slice(headers);
    app.raw(
        Method::GET,
        &format!("/api/images/{id}/thumbnail"),
        &all,
        None,
    )
    .await
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn upload(app: &TestApp, p: &str, name: &str, bytes: Vec<u8>) -> String {
    let (status, image) = upload_raw(app, ALICE, p, name, bytes).await;
    assert_eq!(status, 201, "{image}");
    image["id"].as_str().unwrap().to_string()
}

async fn made_on_upload_served_and_removed(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = project(&app, ALICE, "team-a").await;
    let id = upload(&app, &p, "wide.png", picture(1200, 800)).await;
    // Made before the upload was answered, beside the object.
    let file = thumbnail_file(&app, &id);
    assert!(file.is_file(), "{}", file.display());

    let r = thumbnail(&app, ALICE, &id, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/jpeg");
    assert_eq!(header(&r, "cache-control"), "private, max-age=86400");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    let etag = header(&r, "etag");
    assert!(etag.starts_with("\"t1-"), "{etag}");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes, std::fs::read(&file).unwrap());
    let small = image::load_from_memory(&bytes).unwrap();
    assert_eq!((small.width(), small.height()), (320, 213));

    // Revalidated by its ETag; HEAD tells the size.
    let r = thumbnail(&app, ALICE, &id, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "etag"), etag);
    let r = app
        .raw(
            Method::HEAD,
            &format!("/api/images/{id}/thumbnail"),
            &[("x-proxy-secret", SECRET), ("x-user-email", ALICE)],
            None,
        )
        .await;
    assert_eq!(header(&r, "content-length"), bytes.len().to_string());
    // Another group's member: as if there were no image.
    let r = thumbnail(&app, BOB, &id, &[]).await;
    assert_eq!(r.status(), 404);
    assert!(!header(&r, "cache-control").contains("max-age"));
    assert_eq!(thumbnail(&app, ALICE, "nope", &[]).await.status(), 400);

    // An image without one (stored before thumbnails): made on its first request.
    let older = upload(&app, &p, "tall.png", picture(300, 900)).await;
    std::fs::remove_file(thumbnail_file(&app, &older)).unwrap();
    let r = thumbnail(&app, ALICE, &older, &[]).await;
    assert_eq!(r.status(), 200);
    let small = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((small.width(), small.height()), (107, 320));
    assert!(thumbnail_file(&app, &older).is_file());

    // Deleting the image removes its thumbnail.
    let (status, _) = app
        .call(ALICE, Method::DELETE, &format!("/api/images/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert!(!file.exists());
    assert_eq!(objects(&app).len(), 1, "{:?}", objects(&app));
}
crate::both_backends!(made_on_upload, made_on_upload_served_and_removed);

async fn refused_when_none_can_be_made(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = project(&app, ALICE, "team-a").await;
    // Claims 10,000 × 10,000 pixels: refused from the row, never read back.
    let huge = upload(&app, &p, "huge.png", png(10_000, 10_000, 4096)).await;
    let r = thumbnail(&app, ALICE, &huge, &[]).await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "no_thumbnail");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("10000×10000 pixels"),
        "{body}"
    );
    assert!(!thumbnail_file(&app, &huge).exists());
    // Looks like a PNG, does not decode: an empty marker, so it is not decoded again.
    let broken = upload(&app, &p, "broken.png", png(64, 64, 4096)).await;
    let marker = thumbnail_file(&app, &broken);
    assert_eq!(std::fs::read(&marker).unwrap(), b"");
    for _ in 0..2 {
        let r = thumbnail(&app, ALICE, &broken, &[]).await;
        assert_eq!(r.status(), 404);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["reason"], "no_thumbnail", "{body}");
    }
    // A lower limit refuses what the default allows.
    let app = spawn_with(backend, |c| c.images.thumbnails.max_pixels = 1000).await;
    let p = project(&app, ALICE, "team-a").await;
    let id = upload(&app, &p, "a.png", picture(40, 30)).await;
    assert_eq!(thumbnail(&app, ALICE, &id, &[]).await.status(), 404);
    assert!(!thumbnail_file(&app, &id).exists());
}
crate::both_backends!(none_can_be_made, refused_when_none_can_be_made);

async fn gc(app: &TestApp, apply: bool) -> (ipm_api::gc::GcReport, String) {
    let db = Db::open(&database_url(app), 2, Duration::from_secs(5)).unwrap();
    let storage = LocalStorage::open(&storage_dir(app)).unwrap();
    let mut out = Vec::new();
    let report = ipm_api::gc::run(
        &ImageStore::new(db.clone()),
        &storage,
        GcOptions {
            apply,
            min_age: Duration::ZERO,
            force: false,
        },
        &mut out,
    )
    .await
    .unwrap();
    db.close().await;
    (report, String::from_utf8(out).unwrap())
}

async fn the_queue_and_gc_remove_thumbnails(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = project(&app, ALICE, "team-a").await;
    let kept = upload(&app, &p, "kept.png", picture(64, 64)).await;
    let queued = upload(&app, &p, "queued.png", picture(64, 64)).await;
    // A crash right after the delete committed: the key is queued, the files are still there.
    let db = Db::open(&database_url(&app), 2, Duration::from_secs(5)).unwrap();
    let store = ImageStore::new(db.clone());
    store
        .delete(queued.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    db.close().await;
    let queued_thumb = thumbnail_file(&app, &queued);
    assert!(queued_thumb.is_file());
    // A thumbnail whose image has no row at all.
    let stray = uuid::Uuid::now_v7().to_string();
    let stray_thumb = thumbnail_file(&app, &stray);
    std::fs::create_dir_all(stray_thumb.parent().unwrap()).unwrap();
    std::fs::write(&stray_thumb, b"\xff\xd8\xff").unwrap();

    let (report, text) = gc(&app, false).await;
    assert_eq!(
        (
            report.objects,
            report.thumbnails,
            report.queued_deletions,
            report.orphan_objects
        ),
        (2, 3, 1, 1),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "thumbnail without a row: {}",
            ObjectKey::for_image(stray.parse().unwrap()).thumbnail()
        )),
        "{text}"
    );
    let (report, text) = gc(&app, true).await;
    assert_eq!(report.failed, 0, "{text}");
    assert!(!queued_thumb.exists() && !stray_thumb.exists(), "{text}");
    assert!(
        thumbnail_file(&app, &kept).is_file(),
        "a live image's thumbnail stays"
    );
    let (report, text) = gc(&app, false).await;
    assert_eq!(
        (
            report.objects,
            report.thumbnails,
            report.orphan_objects,
            report.queued_deletions
        ),
        (1, 1, 0, 0),
        "{text}"
    );
}
crate::both_backends!(queue_and_gc, the_queue_and_gc_remove_thumbnails);
