//! Images end to end: uploads streamed to local disk or to a real S3-compatible server
//! (s3s-fs on loopback), downloads with ranges, limits, cut-off clients, storage outages, gc.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ipm_api::config::Config;
use ipm_api::db::Db;
use ipm_api::gc::{GcOptions, GcReport};
use ipm_api::image_config::{DownloadMode, S3Config, StorageConfig};
use ipm_api::image_store::ImageStore;
use ipm_api::storage::{LocalStorage, S3Storage, Storage};
use ipm_testkit::{S3Server, eventually, files_under, require_postgres};
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const MIB: usize = 1 << 20;

/// A PNG header for `width` × `height`, then `size` bytes in all of noise (the API reads
/// only the header, so the rest need not be image data).
pub(crate) fn png(width: u32, height: u32, size: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ size as u64;
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size);
    v
}

fn gif(width: u16, height: u16) -> Vec<u8> {
    let mut v = b"GIF89a".to_vec();
    v.extend_from_slice(&width.to_le_bytes());
    v.extend_from_slice(&height.to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0x3b]);
    v
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn temp_files(app: &TestApp) -> Vec<PathBuf> {
    files_under(&storage_dir(app).join("tmp"))
}

fn auth(user: &str) -> [(&'static str, String); 2] {
    [
        ("x-proxy-secret", SECRET.to_string()),
        ("x-user-email", user.to_string()),
    ]
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, v)
}

/// `POST …/images?filename=` with the file as the whole body.
pub(crate) async fn upload_raw(
    app: &TestApp,
    user: &str,
    project: &str,
    filename: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url(&format!(
            "/api/projects/{project}/images?filename={}",
            percent_encoding::utf8_percent_encode(filename, percent_encoding::NON_ALPHANUMERIC)
        )))
        .header("content-type", "application/octet-stream")
        .body(body);
    for (k, v) in auth(user) {
        req = req.header(k, v);
    }
    json_of(req.send().await.unwrap()).await
}

const BOUNDARY: &str = "----ipm-test-boundary-7MA4YWxkTrZu0gW";

/// A browser-like form: a text field, then the file part.
fn form(filename: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nholiday\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_form(
    app: &TestApp,
    user: &str,
    project: &str,
    filename: &str,
    bytes: &[u8],
) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/api/projects/{project}/images")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(form(filename, bytes));
    for (k, v) in auth(user) {
        req = req.header(k, v);
    }
    json_of(req.send().await.unwrap()).await
}

async fn download(
    app: &TestApp,
    user: &str,
    id: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .client
        .get(app.url(&format!("/api/images/{id}/content")));
    for (k, v) in auth(user) {
        req = req.header(k, v);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

pub(crate) async fn project(app: &TestApp, user: &str, group: &str) -> String {
    let name = format!("p-{}", uuid::Uuid::now_v7().simple());
    app.create(user, group, &name).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An HTTP/1.1 exchange on a plain socket, for what reqwest will not do: a body cut off half
/// way, a `Content-Length` without the body. Returns the status and the body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn request_head(app: &TestApp, project: &str, extra: &str) -> String {
    format!(
        "POST /api/projects/{project}/images?filename=cut.png HTTP/1.1\r\nHost: {}\r\n\
         x-proxy-secret: {SECRET}\r\nx-user-email: {ALICE}\r\n\
         content-type: image/png\r\nconnection: close\r\n{extra}\r\n",
        app.addr
    )
}

// === the whole life of an image ===

async fn upload_list_get_range_delete(app: &TestApp) {
    let p = project(app, ALICE, "team-a").await;
    let bytes = png(640, 480, 3 * MIB + 17);
    let (status, img) = upload_raw(app, ALICE, &p, "holiday.png", bytes.clone()).await;
    assert_eq!(status, 201, "{img}");
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(img["project_id"], p.as_str());
    assert_eq!(img["filename"], "holiday.png");
    assert_eq!(img["content_type"], "image/png");
    assert_eq!(img["size_bytes"], bytes.len());
    assert_eq!(img["sha256"], sha256(&bytes));
    assert_eq!(
        (img["width"].as_i64(), img["height"].as_i64()),
        (Some(640), Some(480))
    );
    assert_eq!(img["uploaded_by"], ALICE);
    assert!(img.get("storage_key").is_none(), "{img}");

    // A multipart form from a browser, declared as something else: the bytes decide.
    let small = gif(32, 16);
    let (status, img2) = upload_form(app, ALICE, &p, "été.gif", &small).await;
    assert_eq!(status, 201, "{img2}");
    assert_eq!(img2["content_type"], "image/gif");
    assert_eq!(img2["filename"], "été.gif");
    assert_eq!(
        (img2["width"].as_i64(), img2["height"].as_i64()),
        (Some(32), Some(16))
    );

    let (status, page) = app
        .get(ALICE, &format!("/api/projects/{p}/images?limit=1"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["id"], id.as_str());
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, page) = app
        .get(
            ALICE,
            &format!("/api/projects/{p}/images?limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(page["items"][0]["id"], img2["id"]);
    assert_eq!(page["next_cursor"], Value::Null);
    let (status, _) = app
        .get(ALICE, &format!("/api/projects/{p}/images?sort=name"))
        .await;
    assert_eq!(status, 400);

    let (status, meta) = app.get(ALICE, &format!("/api/images/{id}")).await;
    assert_eq!((status, &meta), (200, &img));

    let r = download(app, ALICE, &id, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/png");
    assert_eq!(header(&r, "content-length"), bytes.len().to_string());
    assert_eq!(header(&r, "etag"), format!("\"{}\"", sha256(&bytes)));
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    assert_eq!(
        header(&r, "content-disposition"),
        "attachment; filename=\"holiday.png\"; filename*=UTF-8''holiday.png"
    );
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert!(r.bytes().await.unwrap() == bytes);

    let etag = format!("\"{}\"", sha256(&bytes));
    let r = download(app, ALICE, &id, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes 1000-1999/{}", bytes.len())
    );
    assert_eq!(header(&r, "content-length"), "1000");
    assert!(r.bytes().await.unwrap() == bytes[1000..2000]);
    let r = download(app, ALICE, &id, &[("range", "bytes=-10")]).await;
    assert_eq!(r.status(), 206);
    assert!(r.bytes().await.unwrap() == bytes[bytes.len() - 10..]);
    let r = download(
        app,
        ALICE,
        &id,
        &[("range", &format!("bytes={}-", bytes.len()))],
    )
    .await;
    assert_eq!(r.status(), 416);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes */{}", bytes.len())
    );
    // A range against another version is ignored: the whole image.
    let r = download(
        app,
        ALICE,
        &id,
        &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = download(app, ALICE, &id, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    let head = app
        .raw(
            Method::HEAD,
            &format!("/api/images/{id}/content"),
            &[("x-proxy-secret", SECRET), ("x-user-email", ALICE)],
            None,
        )
        .await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), bytes.len().to_string());

    assert_eq!(objects(app).len(), 2);
    let (status, _) = app
        .call(ALICE, Method::DELETE, &format!("/api/images/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = app.get(ALICE, &format!("/api/images/{id}")).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (404, Some("image_not_found"))
    );
    assert_eq!(download(app, ALICE, &id, &[]).await.status(), 404);
    assert_eq!(objects(app).len(), 1, "the object went with the row");
    let (status, _) = app
        .call(ALICE, Method::DELETE, &format!("/api/images/{id}"), None)
        .await;
    assert_eq!(status, 404);

    // Deleting the project takes its images' objects along.
    let (status, _) = app
        .call(ALICE, Method::DELETE, &format!("/api/projects/{p}"), None)
        .await;
    assert_eq!(status, 204);
    assert!(objects(app).is_empty());
    assert!(temp_files(app).is_empty());
}

async fn lifecycle(backend: Backend) {
    let app = spawn_api(backend).await;
    upload_list_get_range_delete(&app).await;
}
crate::both_backends!(local_lifecycle, lifecycle);

// === limits ===

async fn limits(backend: Backend) {
    let app = spawn_with(backend, |c| c.images.max_upload_bytes = 256 * 1024).await;
    let p = project(&app, ALICE, "team-a").await;

    let (status, body) = upload_raw(&app, ALICE, &p, "big.png", png(8, 8, 300 * 1024)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["reason"], "payload_too_large");
    assert!(
        body["message"].as_str().unwrap().contains("262144"),
        "{body}"
    );
    let (status, _) = upload_raw(&app, ALICE, &p, "ok.png", png(8, 8, 256 * 1024)).await;
    assert_eq!(status, 201, "exactly the limit is allowed");

    // A body that says nothing of its size is counted as it streams.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(request_head(&app, &p, "transfer-encoding: chunked\r\n").as_bytes())
        .await
        .unwrap();
    for chunk in png(8, 8, 512 * 1024).chunks(16 * 1024) {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(chunk).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let (status, body) = read_response(&mut s).await;
    assert_eq!(status, 413, "{body}");

    // A declared size over the limit is refused before any byte is read.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let head = request_head(&app, &p, "content-length: 10737418240\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut s).await;
    assert_eq!(status, 413, "{body}");

    for (name, bytes, want, reason) in [
        ("doc.pdf", b"%PDF-1.7\n%\xe2\xe3".to_vec(), 415, "unsupported_media_type"),
        (
            "logo.svg",
            b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec(),
            415,
            "unsupported_media_type",
        ),
        ("fake.png", b"\x89PNG\r\n\x1a\n\0\0".to_vec(), 415, "unsupported_media_type"),
        ("empty.png", Vec::new(), 422, "invalid_field"),
    ] {
        let (status, body) = upload_raw(&app, ALICE, &p, name, bytes).await;
        assert_eq!((status, body["reason"].as_str()), (want, Some(reason)), "{name}: {body}");
    }
    let (status, body) = app
        .call(
            ALICE,
            Method::POST,
            &format!("/api/projects/{p}/images"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("filename")),
        "{body}"
    );

    let (_, page) = app.get(ALICE, &format!("/api/projects/{p}/images")).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "only the allowed one"
    );
    assert_eq!(objects(&app).len(), 1);
    assert!(temp_files(&app).is_empty(), "{:?}", temp_files(&app));
}
crate::both_backends!(local_limits, limits);

// === cut-off clients, filenames, other groups ===

/// A client that sends part of its body and goes away leaves no row, object or temp file.
async fn client_disconnects(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = project(&app, ALICE, "team-a").await;
    let bytes = png(8, 8, 8 * MIB);
    for multipart in [false, true] {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        let (head, body) = if multipart {
            let body = form("cut.png", &bytes);
            let head = request_head(&app, &p, &format!("content-length: {}\r\n", body.len()))
                .replace(
                    "content-type: image/png",
                    &format!("content-type: multipart/form-data; boundary={BOUNDARY}"),
                );
            (head, body)
        } else {
            let head = request_head(&app, &p, &format!("content-length: {}\r\n", bytes.len()));
            (head, bytes.clone())
        };
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body[..3 * MIB]).await.unwrap();
        // The upload has begun: its temporary file is there.
        assert!(
            eventually(Duration::from_secs(10), || async {
                !temp_files(&app).is_empty()
            })
            .await
            .is_some()
        );
        drop(s);
        assert!(
            eventually(Duration::from_secs(10), || async {
                temp_files(&app).is_empty()
            })
            .await
            .is_some(),
            "left {:?}",
            temp_files(&app)
        );
    }
    assert!(objects(&app).is_empty());
    let (_, page) = app.get(ALICE, &format!("/api/projects/{p}/images")).await;
    assert_eq!(page["items"], serde_json::json!([]));
}
crate::both_backends!(local_client_disconnects, client_disconnects);

async fn filenames(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = project(&app, ALICE, "team-a").await;
    for (raw, stored, disposition) in [
        (
            "../../etc/passwd.png",
            "passwd.png",
            "attachment; filename=\"passwd.png\"; filename*=UTF-8''passwd.png",
        ),
        (
            "a\0b\r\nc.png",
            "abc.png",
            "attachment; filename=\"abc.png\"; filename*=UTF-8''abc.png",
        ),
        (
            "say \"cheese\"; x=1.png",
            "say \"cheese\"; x=1.png",
            "attachment; filename=\"say _cheese_; x=1.png\"; filename*=UTF-8''say%20%22cheese%22%3B%20x%3D1.png",
        ),
        (
            "日本の夏.png",
            "日本の夏.png",
            "attachment; filename=\"____.png\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E3%81%AE%E5%A4%8F.png",
        ),
        (
            "..",
            "image",
            "attachment; filename=\"image\"; filename*=UTF-8''image",
        ),
    ] {
        let (status, img) = upload_raw(&app, ALICE, &p, raw, gif(1, 1)).await;
        assert_eq!(status, 201, "{raw:?}: {img}");
        assert_eq!(img["filename"], stored, "{raw:?}");
        let r = download(&app, ALICE, img["id"].as_str().unwrap(), &[]).await;
        assert_eq!(header(&r, "content-disposition"), disposition, "{raw:?}");
    }
    // A multipart filename is treated the same way.
    let (status, img) = upload_form(&app, ALICE, &p, "..\\..\\win.gif", &gif(1, 1)).await;
    assert_eq!(
        (status, img["filename"].as_str()),
        (201, Some("win.gif")),
        "{img}"
    );
    // Nothing landed outside the objects folder, and keys are not names.
    for f in objects(&app) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(uuid::Uuid::parse_str(&name).is_ok(), "{}", f.display());
    }
    assert!(!root_of(&app).join("data/etc").exists());
}
crate::both_backends!(local_filenames, filenames);

async fn other_groups_images(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = project(&app, ALICE, "team-a").await;
    let (_, img) = upload_raw(&app, ALICE, &p, "a.png", png(2, 2, 1000)).await;
    let id = img["id"].as_str().unwrap();
    let paths = [
        (Method::GET, format!("/api/images/{id}")),
        (Method::GET, format!("/api/images/{id}/content")),
        (Method::DELETE, format!("/api/images/{id}")),
        (Method::GET, format!("/api/projects/{p}/images")),
    ];
    for (method, path) in &paths {
        let (status, body) = app.call(BOB, method.clone(), path, None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        let reason = if path.starts_with("/api/images") {
            "image_not_found"
        } else {
            "project_not_found"
        };
        assert_eq!(body["reason"], reason);
    }
    let (status, _) = upload_raw(&app, BOB, &p, "b.png", png(2, 2, 1000)).await;
    assert_eq!(status, 404);
    // The same answer as for an id that names nothing.
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = app.get(BOB, &format!("/api/images/{unknown}")).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (404, Some("image_not_found"))
    );
    let (status, _) = app.get(ALICE, "/api/images/not-a-uuid").await;
    assert_eq!(status, 400);
    // Still there for its owners and for admins.
    assert_eq!(download(&app, ANN, id, &[]).await.status(), 200);
    assert_eq!(download(&app, ADMIN, id, &[]).await.status(), 200);
    assert_eq!(objects(&app).len(), 1);
}
crate::both_backends!(local_other_groups, other_groups_images);

/// The storage folder vanishing: uploads answer 503 with a clear message, `/readyz` too.
async fn local_storage_down(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = project(&app, ALICE, "team-a").await;
    std::fs::remove_dir_all(storage_dir(&app)).unwrap();
    let (status, body) = upload_raw(&app, ALICE, &p, "a.png", png(2, 2, 1000)).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("storage_unavailable")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "image storage is unavailable; try again later"
    );
    let r = app.raw(Method::GET, "/readyz", &[], None).await;
    assert_eq!(r.status(), 503);
    let (_, page) = app.get(ALICE, &format!("/api/projects/{p}/images")).await;
    assert_eq!(page["items"], serde_json::json!([]));
}
crate::both_backends!(local_storage_outage, local_storage_down);

// === gc ===

async fn gc_run(
    app: &TestApp,
    storage: &dyn Storage,
    apply: bool,
    min_age: u64,
) -> (GcReport, String) {
    let db = Db::open(&database_url(app), 2, Duration::from_secs(5)).unwrap();
    let mut out = Vec::new();
    let report = ipm_api::gc::run(
        &ImageStore::new(db.clone()),
        storage,
        GcOptions {
            apply,
            min_age: Duration::from_secs(min_age),
            force: false,
        },
        &mut out,
    )
    .await
    .unwrap();
    db.close().await;
    (report, String::from_utf8(out).unwrap())
}

async fn gc_finds_what_a_crash_leaves(backend: Backend) {
    let app = spawn_api(backend).await;
    let p = project(&app, ALICE, "team-a").await;
    let (_, kept) = upload_raw(&app, ALICE, &p, "kept.png", png(2, 2, 5000)).await;
    let (_, lost) = upload_raw(&app, ALICE, &p, "lost.png", png(2, 2, 5000)).await;
    let dir = storage_dir(&app);
    // A crash after storing an object, before its row; one that lost an object; a temporary
    // file of an upload that never finished.
    let orphan = ipm_api::storage::ObjectKey::for_image(uuid::Uuid::now_v7());
    let orphan_path = dir.join("objects").join(orphan.as_str());
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, png(1, 1, 100)).unwrap();
    let lost_id = lost["id"].as_str().unwrap();
    let lost_file = objects(&app)
        .into_iter()
        .find(|f| f.ends_with(lost_id))
        .unwrap();
    std::fs::remove_file(lost_file).unwrap();
    std::fs::write(dir.join("tmp/crashed.part"), b"half").unwrap();

    let storage = LocalStorage::open(&dir).unwrap();
    // Young objects may belong to uploads in progress: left alone.
    let (report, _) = gc_run(&app, &storage, false, 3600).await;
    assert_eq!((report.young_objects, report.orphan_objects), (1, 0));
    assert!(orphan_path.exists());

    let (report, text) = gc_run(&app, &storage, false, 0).await;
    assert_eq!(
        (
            report.orphan_objects,
            report.missing_objects,
            report.incomplete_uploads,
            report.removed
        ),
        (1, 1, 1, 0),
        "{text}"
    );
    assert!(
        text.contains(&format!("object without a row: {orphan}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("row without an object: image {lost_id}")),
        "{text}"
    );
    assert!(text.contains("dry run"), "{text}");
    assert!(orphan_path.exists(), "a dry run removes nothing");

    // The binary, as an operator runs it: a dry run by default.
    let out = Command::new(env!("CARGO_BIN_EXE_ipm-api"))
        .arg("gc")
        .arg("--min-age=0")
        .current_dir(root_of(&app))
        .env("DATABASE_URL", database_url(&app))
        .env("STORAGE_DIR", &dir)
        .env_remove("STORAGE_BACKEND")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 objects without a row"), "{stdout}");
    assert!(orphan_path.exists());

    let (report, text) = gc_run(&app, &storage, true, 0).await;
    assert_eq!((report.removed, report.failed), (3, 0), "{text}");
    assert!(!orphan_path.exists());
    assert!(temp_files(&app).is_empty());
    let (status, _) = app.get(ALICE, &format!("/api/images/{lost_id}")).await;
    assert_eq!(status, 404);
    let kept_id = kept["id"].as_str().unwrap();
    assert_eq!(download(&app, ALICE, kept_id, &[]).await.status(), 200);
    let (report, _) = gc_run(&app, &storage, false, 0).await;
    assert_eq!(
        (
            report.orphan_objects,
            report.missing_objects,
            report.incomplete_uploads
        ),
        (0, 0, 0)
    );
}
crate::both_backends!(local_gc, gc_finds_what_a_crash_leaves);

// === S3 ===

pub(crate) fn on_s3(server: &S3Server) -> impl FnOnce(&mut Config) + use<> {
    let s3 = s3_config(server);
    move |c| c.images.storage = StorageConfig::S3(s3)
}

async fn s3_lifecycle(backend: Backend) {
    let server = S3Server::start().await;
    let app = spawn_with(backend, on_s3(&server)).await;
    let p = project(&app, ALICE, "team-a").await;
    // Larger than two parts: a multipart upload.
    let big = png(4000, 3000, 20 * MIB + 5);
    let (status, img) = upload_raw(&app, ALICE, &p, "big.png", big.clone()).await;
    assert_eq!(status, 201, "{img}");
    assert_eq!(img["sha256"], sha256(&big));
    let id = img["id"].as_str().unwrap().to_string();
    let r = download(&app, ALICE, &id, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), big.len().to_string());
    assert!(r.bytes().await.unwrap() == big);
    let r = download(&app, ALICE, &id, &[("range", "bytes=9000000-9000099")]).await;
    assert_eq!(r.status(), 206);
    assert!(r.bytes().await.unwrap() == big[9_000_000..9_000_100]);
    // Small enough for a single PUT.
    let (status, small) = upload_form(&app, ALICE, &p, "s.gif", &gif(3, 4)).await;
    assert_eq!(status, 201, "{small}");
    assert_eq!(server.objects().len(), 2);
    assert!(server.parts().is_empty(), "{:?}", server.parts());

    // Each has its thumbnail beside it (an empty marker: neither decodes); a real picture's
    // is made, stored in the bucket and served.
    assert_eq!(server.thumbnails().len(), 2, "{:?}", server.thumbnails());
    let (status, pic) = upload_raw(
        &app,
        ALICE,
        &p,
        "pic.png",
        crate::thumbnails::picture(64, 48),
    )
    .await;
    assert_eq!(status, 201, "{pic}");
    let r = app
        .raw(
            Method::GET,
            &format!("/api/images/{}/thumbnail", pic["id"].as_str().unwrap()),
            &[("x-proxy-secret", SECRET), ("x-user-email", ALICE)],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/jpeg");
    assert_eq!(server.thumbnails().len(), 3);
    let (status, _) = app
        .call(
            ALICE,
            Method::DELETE,
            &format!("/api/images/{}", pic["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 204);

    let (status, _) = app
        .call(ALICE, Method::DELETE, &format!("/api/images/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(server.objects().len(), 1);
    assert_eq!(
        server.thumbnails().len(),
        1,
        "the thumbnail goes with its image"
    );
    let (status, _) = app
        .get(
            BOB,
            &format!("/api/images/{}", small["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 404);

    // gc sees the bucket as it is.
    let storage = S3Storage::new(&s3_config(&server));
    let (report, text) = gc_run(&app, &storage, false, 0).await;
    assert_eq!(
        (
            report.objects,
            report.rows,
            report.orphan_objects,
            report.missing_objects
        ),
        (1, 1, 0, 0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs s3s-fs: run scripts/test"]
async fn s3_lifecycle_sqlite() {
    s3_lifecycle(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs s3s-fs: run scripts/test"]
async fn s3_lifecycle_postgres() {
    require_postgres!();
    s3_lifecycle(Backend::Postgres).await;
}

/// S3 dying half-way through a multipart upload: 503, no row, no object; the API works again
/// once S3 is back.
async fn s3_outage(backend: Backend) {
    let mut server = S3Server::start().await;
    let app = spawn_with(backend, on_s3(&server)).await;
    let p = project(&app, ALICE, "team-a").await;
    let bytes = png(8, 8, 40 * MIB);
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let head = request_head(&app, &p, &format!("content-length: {}\r\n", bytes.len()));
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&bytes[..12 * MIB]).await.unwrap();
    // The first part is stored: the multipart upload is under way.
    assert!(
        eventually(Duration::from_secs(20), || async {
            !server.parts().is_empty()
        })
        .await
        .is_some()
    );
    server.kill();
    // The server may answer before it has read everything.
    let _ = s.write_all(&bytes[12 * MIB..]).await;
    let (status, body) = read_response(&mut s).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("storage_unavailable"), "{body}");
    assert!(server.objects().is_empty(), "{:?}", server.objects());

    let (status, body) = upload_raw(&app, ALICE, &p, "a.png", png(2, 2, 1000)).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("storage_unavailable"))
    );
    let r = app.raw(Method::GET, "/readyz", &[], None).await;
    assert_eq!(r.status(), 503);

    server.spawn().await;
    let (_, page) = app.get(ALICE, &format!("/api/projects/{p}/images")).await;
    assert_eq!(
        page["items"],
        serde_json::json!([]),
        "no row for the failed upload"
    );
    let (status, body) = upload_raw(&app, ALICE, &p, "a.png", png(2, 2, 1000)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(server.objects().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs s3s-fs: run scripts/test"]
async fn s3_stopped_mid_upload_sqlite() {
    s3_outage(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs s3s-fs: run scripts/test"]
async fn s3_stopped_mid_upload_postgres() {
    require_postgres!();
    s3_outage(Backend::Postgres).await;
}

/// `IMAGE_DOWNLOAD=redirect`: a 302 to a presigned URL that S3 itself serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs s3s-fs: run scripts/test"]
async fn s3_redirects_to_a_presigned_url() {
    let server = S3Server::start().await;
    let s3 = on_s3(&server);
    let app = spawn_with(Backend::Sqlite, |c| {
        s3(c);
        c.images.download = DownloadMode::Redirect;
        c.images.redirect_expiry = Duration::from_secs(30);
    })
    .await;
    let p = project(&app, ALICE, "team-a").await;
    let bytes = png(5, 5, 70_000);
    let (_, img) = upload_raw(&app, ALICE, &p, "say \"hi\".png", bytes.clone()).await;
    let id = img["id"].as_str().unwrap();
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(app.url(&format!("/api/images/{id}/content")))
        .header("x-proxy-secret", SECRET)
        .header("x-user-email", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = header(&r, "location").to_string();
    assert!(
        location.starts_with(&format!("http://127.0.0.1:{}/", server.port)),
        "{location}"
    );
    assert!(location.contains("X-Amz-Expires=30"), "{location}");
    let direct = no_redirects.get(&location).send().await.unwrap();
    assert_eq!(direct.status(), 200);
    assert!(direct.bytes().await.unwrap() == bytes);
    // Another group gets no URL.
    let r = no_redirects
        .get(app.url(&format!("/api/images/{id}/content")))
        .header("x-proxy-secret", SECRET)
        .header("x-user-email", BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A missing bucket or wrong keys refuse the start with a message naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs s3s-fs: run scripts/test"]
async fn s3_is_checked_at_start() {
    let server = S3Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let policy_dir = root.path().join("policies");
    policies_with_test_groups(&policy_dir);
    let url = format!("sqlite://{}/ipm.db?mode=rwc", root.path().display());
    let start = |s3: S3Config| {
        let mut c = Config::for_test(&policy_dir, &policy_dir.join("groups.toml"), SECRET, &url);
        c.images.storage = StorageConfig::S3(s3);
        ipm_api::server::run(c)
    };
    let mut missing = s3_config(&server);
    missing.bucket = "no-such-bucket".into();
    let err = start(missing)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("S3_BUCKET: the bucket `no-such-bucket` does not exist"),
        "{err}"
    );
    let mut wrong = s3_config(&server);
    wrong.secret_access_key = ipm_policy::secret::Secret::new(b"wrong-secret-key".to_vec());
    let err = start(wrong)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(!err.contains("wrong-secret-key"), "{err}");
    let handle = start(s3_config(&server)).await.unwrap();
    handle.shutdown().await;
}
