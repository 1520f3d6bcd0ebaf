//! Upload bodies of any shape stay within their limit: a multipart body whose part header
//! never ends, or whose parts are never the file, is cut once `MAX_UPLOAD_BYTES` and a little
//! more have arrived (413), and a client that stops sending is answered (408) instead of held
//! forever.

use std::path::PathBuf;
use std::time::Duration;

use ipm_testkit::files_under;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const LIMIT: u64 = 256 * 1024;
const BOUNDARY: &str = "limit-test-boundary";

fn storage_files(app: &TestApp) -> Vec<PathBuf> {
    let root = app.policy_dir.parent().unwrap().join("data/images");
    let mut files = files_under(&root.join("objects"));
    files.extend(files_under(&root.join("tmp")));
    files
}

async fn new_project(app: &TestApp) -> String {
    app.create(ALICE, "team-a", "limits").await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Opens `POST …/images` with a chunked body of `content_type` (no length: the server counts).
async fn open_upload(app: &TestApp, project: &str, query: &str, content_type: &str) -> TcpStream {
    open_upload_as(app, ALICE, project, query, content_type).await
}

/// `open_upload` for `user`.
async fn open_upload_as(
    app: &TestApp,
    user: &str,
    project: &str,
    query: &str,
    content_type: &str,
) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/projects/{project}/images{query} HTTP/1.1\r\nHost: {}\r\n\
         x-proxy-secret: {SECRET}\r\nx-user-email: {user}\r\n\
         content-type: {content_type}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        app.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Sends `bytes` as one chunk; false once the server no longer reads.
async fn chunk(s: &mut TcpStream, bytes: &[u8]) -> bool {
    let mut frame = format!("{:x}\r\n", bytes.len()).into_bytes();
    frame.extend_from_slice(bytes);
    frame.extend_from_slice(b"\r\n");
    s.write_all(&frame).await.is_ok()
}

/// The status and body of the answer, or `None` when none comes within `wait`.
async fn answer(s: &mut TcpStream, wait: Duration) -> Option<(u16, String)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(wait, read).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The first bytes of a multipart body whose `file` part header never ends.
fn endless_header() -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nX-Padding: "
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_body_of_any_shape_stops_at_the_limit() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.images.max_upload_bytes = LIMIT;
        // A client that stops sending is let go after this; the test waits no longer.
        c.images.upload_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let p = new_project(&app).await;
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    let padding = vec![b'a'; 16 * 1024];
    // 2 MiB: eight times the limit, far past its allowance for boundaries and part headers.
    let rounds = 128;

    // A part header without its blank line; parts that are never the file. Each body ends.
    let note = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n{}\r\n",
        "n".repeat(16 * 1024)
    );
    for (first, then) in [
        (endless_header(), padding.clone()),
        (String::new(), note.into_bytes()),
    ] {
        let mut s = open_upload(&app, &p, "", &multipart).await;
        let mut sent = first.is_empty() || chunk(&mut s, first.as_bytes()).await;
        for _ in 0..rounds {
            sent = sent && chunk(&mut s, &then).await;
        }
        if sent {
            let _ = s.write_all(b"0\r\n\r\n").await;
        }
        let got = answer(&mut s, Duration::from_secs(20)).await;
        let (status, body) = got.unwrap_or_else(|| panic!("no answer ({first:?})"));
        assert_eq!(status, 413, "{first:?}: {body}");
        assert!(body.contains("payload_too_large"), "{body}");
    }

    // The same header, the client still connected but sending no more: answered all the same.
    let mut s = open_upload(&app, &p, "", &multipart).await;
    chunk(&mut s, endless_header().as_bytes()).await;
    for _ in 0..rounds {
        if !chunk(&mut s, &padding).await {
            break;
        }
    }
    let got = answer(&mut s, Duration::from_secs(20)).await;
    let (status, body) = got.expect("an answer while the client waits");
    assert_eq!(status, 413, "{body}");

    let (_, page) = app.get(ALICE, &format!("/api/projects/{p}/images")).await;
    assert_eq!(page["items"], serde_json::json!([]));
    assert!(storage_files(&app).is_empty(), "{:?}", storage_files(&app));

    // Within the limit, the same server stores a form as before.
    let gif = b"GIF89a\x01\0\x01\0\0\0\0;";
    let mut form = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.gif\"\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(gif);
    form.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let mut s = open_upload(&app, &p, "", &multipart).await;
    assert!(chunk(&mut s, &form).await);
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let (status, body) = answer(&mut s, Duration::from_secs(20)).await.unwrap();
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_answered_and_discarded() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.images.upload_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let p = new_project(&app).await;
    // A PNG's first bytes, then nothing: raw and multipart alike.
    let png_head = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x08\0\0\0\x08\x08\x06\0\0\0";
    let mut part = endless_header().replace("X-Padding: ", "\r\n").into_bytes();
    part.extend_from_slice(png_head);
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    for (query, content_type, first) in [
        ("?filename=a.png", "image/png", png_head.to_vec()),
        ("", multipart.as_str(), part),
    ] {
        let mut s = open_upload(&app, &p, query, content_type).await;
        assert!(chunk(&mut s, &first).await);
        // Well past the timeout, well before the test gives up.
        let got = answer(&mut s, Duration::from_secs(20)).await;
        let (status, body) = got.unwrap_or_else(|| panic!("no answer ({content_type})"));
        assert_eq!(status, 408, "{content_type}: {body}");
        assert!(body.contains("upload_timeout"), "{body}");
    }
    let (_, page) = app.get(ALICE, &format!("/api/projects/{p}/images")).await;
    assert_eq!(page["items"], serde_json::json!([]));
    assert!(
        ipm_testkit::eventually(Duration::from_secs(10), || async {
            storage_files(&app).is_empty()
        })
        .await
        .is_some(),
        "{:?}",
        storage_files(&app)
    );
}

/// Uploads in progress are capped per user (429) and in all (503), both with `Retry-After`;
/// a finished or abandoned upload frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_in_progress_are_capped_per_user_and_in_all() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.images.max_uploads = 2;
        c.images.max_uploads_per_user = 1;
    })
    .await;
    let p = new_project(&app).await;
    // Past the sniffing window, so a held upload has begun streaming into storage.
    let image = crate::images::png(8, 8, 10_000);
    let tmp = app.policy_dir.parent().unwrap().join("data/images/tmp");
    let mut held = Vec::new();
    for user in [ALICE, ANN] {
        let mut s = open_upload_as(&app, user, &p, "?filename=held.png", "image/png").await;
        assert!(chunk(&mut s, &image[..5000]).await);
        held.push(s);
        let n = held.len();
        // Its temporary file exists once it streams, so its slot is taken.
        let streaming = ipm_testkit::eventually(Duration::from_secs(10), || async {
            files_under(&tmp).len() == n
        })
        .await;
        assert!(streaming.is_some(), "upload {n} streams");
    }
    let quick = |user: &'static str| {
        let (app, p, image) = (&app, p.clone(), image.clone());
        async move {
            let r = app
                .client
                .post(app.url(&format!("/api/projects/{p}/images?filename=q.png")))
                .header("x-proxy-secret", SECRET)
                .header("x-user-email", user)
                .header("content-type", "image/png")
                .body(image)
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry, r.text().await.unwrap())
        }
    };
    let (status, retry, body) = quick(ALICE).await;
    assert_eq!((status, retry.as_deref()), (429, Some("5")), "{body}");
    assert!(body.contains("too_many_uploads"), "{body}");
    let (status, retry, body) = quick(REF_USER).await;
    assert_eq!((status, retry.as_deref()), (503, Some("5")), "{body}");
    assert!(body.contains("server_busy"), "{body}");

    // Alice's finishes: 201, and her one slot is free again.
    let mut first = held.remove(0);
    assert!(chunk(&mut first, &image[5000..]).await);
    first.write_all(b"0\r\n\r\n").await.unwrap();
    let (status, body) = answer(&mut first, Duration::from_secs(20)).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = quick(ALICE).await;
    assert_eq!(status, 201, "{body}");

    // Ann goes away: her slot is freed when her upload's task ends.
    drop(held);
    let freed = ipm_testkit::eventually(Duration::from_secs(10), || async {
        quick(ANN).await.0 == 201
    })
    .await;
    assert!(freed.is_some(), "an abandoned upload frees its slot");
    let (_, page) = app
        .get(ALICE, &format!("/api/projects/{p}/images?limit=10"))
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(3), "{page}");
}
