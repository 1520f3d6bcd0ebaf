//! Images through nginx: an upload streams on to ipm-api while the client is still sending
//! (not spooled to disk first), the download comes back byte for byte, and a member of another
//! group gets nothing through, not one byte to the API.

use ipm_testkit::eventually;

use crate::nginx::Setup;
use crate::stack::Stack;
use crate::support::{DEADLINE, Reply, SECRET, Upload, png};

const ALICE: &str = "alice@example.com";
const CAROL: &str = "carol@example.com";
const HALF: usize = 4 << 20;

/// An upload to `project` as the identity layer sends it for `email`.
fn start_upload(stack: &Stack, project: &str, email: &str) -> Upload {
    Upload::start(
        stack
            .as_layer
            .post(stack.nginx.url(&format!(
                "/api/projects/{project}/images?filename=photo.png"
            )))
            .header("x-forwarded-email", email)
            .header("content-type", "application/octet-stream"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn an_image_streams_up_and_down_through_nginx() {
    let stack = Stack::start(Setup::IdentityLayer).await;
    let project = stack
        .create_project(
            crate::stack::As::Session("alice"),
            "photos",
            "photographers",
        )
        .await;
    let relay = stack.relay.as_ref().unwrap();
    let image = png(2 * HALF);
    let (first, rest) = image.split_at(HALF);

    let before = relay.bytes_in();
    let upload = start_upload(&stack, &project, ALICE);
    upload.send(first).await;
    // The first half reaches the API while the client still holds the second.
    let streamed = eventually(DEADLINE, || async {
        relay.bytes_in() >= before + HALF as u64
    })
    .await;
    assert!(
        streamed.is_some(),
        "nginx held the body back; {} bytes reached the API\n{}",
        relay.bytes_in() - before,
        stack.nginx.error_log()
    );
    upload.send(rest).await;
    let r = upload.finish().await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["size_bytes"], image.len());
    assert_eq!(r.json()["content_type"], "image/png");
    assert_eq!(r.json()["uploaded_by"], ALICE);

    let download = |email: &'static str| {
        stack
            .as_layer
            .get(stack.nginx.url(&format!("/api/images/{id}/content")))
            .header("x-forwarded-email", email)
            .send()
    };
    let r = download(ALICE).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let bytes = r.bytes().await.unwrap();
    assert!(bytes == image, "the download differs from the upload");

    // Neither way did nginx write the bytes to a temporary file.
    let log = stack.nginx.error_log();
    assert!(!log.contains("buffered to a temporary file"), "{log}");

    // Another group's member: refused before a byte of the body goes anywhere.
    let before = relay.bytes_in();
    let upload = start_upload(&stack, &project, CAROL);
    upload.send(&png(64 * 1024)).await;
    let r = upload.finish().await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(download(CAROL).await.unwrap().status(), 403);
    assert_eq!(relay.bytes_in(), before, "carol's requests reached the API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn without_proxy_request_buffering_off_nginx_would_spool_the_upload() {
    // The shipped upload location minus the one line: the check above can fail.
    let stack = Stack::start_with(
        Setup::IdentityLayer,
        SECRET,
        &[("proxy_request_buffering off;", String::new())],
    )
    .await;
    let project = stack
        .create_project(
            crate::stack::As::Session("alice"),
            "photos",
            "photographers",
        )
        .await;
    let relay = stack.relay.as_ref().unwrap();
    let image = png(2 * HALF);
    let (first, rest) = image.split_at(HALF);

    let before = relay.bytes_in();
    let upload = start_upload(&stack, &project, ALICE);
    upload.send(first).await;
    let spooled = eventually(DEADLINE, || async {
        stack
            .nginx
            .error_log()
            .contains("a client request body is buffered to a temporary file")
    })
    .await;
    assert!(spooled.is_some(), "{}", stack.nginx.error_log());
    assert_eq!(
        relay.bytes_in(),
        before,
        "nothing goes on before the whole body is in"
    );
    upload.send(rest).await;
    let r = upload.finish().await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn an_upload_with_its_length_over_a_mebibyte_is_judged_by_the_api() {
    // Browsers send an upload's length up front; the authorization subrequest must not judge
    // it by the server's 1 MiB limit (that was a 500 for every such upload). And the API's
    // 413 must reach the client: answered while nginx was still relaying the body, the
    // connection was closed under nginx and the reset turned it into a 502.
    let stack = Stack::start_with_api(Setup::IdentityLayer, |c| {
        c.images.max_upload_bytes = 3 << 20;
    })
    .await;
    let alice = crate::stack::As::Session("alice");
    let project = stack.create_project(alice, "big", "photographers").await;
    let path = format!("/api/projects/{project}/images?filename=photo.png");
    for (len, status) in [(2 << 20, 201), (4 << 20, 413), (48 << 20, 413)] {
        let r = stack
            .request(alice, warp::http::Method::POST, &path)
            .header("content-type", "application/octet-stream")
            .body(png(len))
            .send()
            .await
            .unwrap();
        let r = Reply::read(r).await;
        assert_eq!(r.status, status, "{len} bytes: {}", r.body);
    }
}
