//! Envoy in front of the real ipm-api (SQLite, local storage), asking authz in each shipped
//! mode: the user journeys with signed tokens. A relay between Envoy and the API keeps what
//! arrives, so a test can say what never reached the API.

use authz::server::ServerHandle;
use ipm_api::server::ApiHandle;
use ipm_runtime::config::ListenAddr;
use ipm_testkit::{copy_policies, eventually};

use super::harness::{Envoy, Files, Mode, token, token_with_verified};
use crate::stand_ins::Relay;
use crate::support::{DEADLINE, Reply, SECRET, Upload, http_client, png};

const ALICE: &str = "alice@example.com";
const CAROL: &str = "carol@example.com";
const HALF: usize = 4 << 20;

struct Site {
    envoy: Envoy,
    relay: Relay,
    authz: Option<ServerHandle>,
    _api: ApiHandle,
    client: reqwest::Client,
    /// Holds the API's database, images and policies; authz has its own copy of the policies.
    _root: tempfile::TempDir,
    _authz_files: tempfile::TempDir,
}

async fn site(mode: Mode) -> Site {
    let root = tempfile::tempdir().unwrap();
    let policy_dir = root.path().join("policies");
    copy_policies(&policy_dir);
    let db = root.path().join("ipm.db");
    let config = ipm_api::config::Config::for_test(
        &policy_dir,
        &policy_dir.join("groups.toml"),
        SECRET,
        &format!("sqlite://{}?mode=rwc", db.display()),
    );
    let api = ipm_api::server::run(config).await.expect("ipm-api starts");
    let ListenAddr::Tcp(api_addr) = api.listen.clone() else {
        panic!("ipm-api on TCP");
    };
    let relay = Relay::start(api_addr).await;
    let files = Files::new();
    let database = format!("sqlite://{}", db.display());
    let app = mode
        .authz(&files, move |c| c.database_url = Some(database))
        .await;
    let config = mode.config(&app, &files, relay.addr);
    let envoy = Envoy::start(&config, files).await;
    Site {
        envoy,
        relay,
        authz: Some(app.handle),
        _api: api,
        client: http_client(),
        _root: root,
        _authz_files: app.root,
    }
}

impl Site {
    fn request(&self, email: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.envoy.url(path))
            .bearer_auth(token(email))
    }

    async fn get(&self, email: &str, path: &str) -> Reply {
        let r = self.request(email, reqwest::Method::GET, path).send().await;
        Reply::read(r.expect("Envoy answers")).await
    }

    /// Sends `req` and checks the API got not one byte of it.
    async fn refused(&self, req: reqwest::RequestBuilder, status: u16) -> Reply {
        let before = self.relay.bytes_in();
        let r = Reply::read(req.send().await.expect("Envoy answers")).await;
        assert_eq!(r.status, status, "{}\n{}", r.body, self.envoy.log());
        assert_eq!(
            self.relay.bytes_in(),
            before,
            "a refused request reached the API"
        );
        r
    }
}

/// An upload to `project` as `email`, through Envoy.
fn start_upload(site: &Site, project: &str, email: &str) -> Upload {
    let path = format!("/api/projects/{project}/images?filename=photo.png");
    Upload::start(
        site.request(email, reqwest::Method::POST, &path)
            .header("content-type", "application/octet-stream"),
    )
}

async fn journeys(mode: Mode) {
    let mut s = site(mode).await;

    // Alice lists, creates a project in her group, and finds it in her list.
    let r = s.get(ALICE, "/api/projects").await;
    assert_eq!(r.status, 200, "{mode:?}: {}\n{}", r.body, s.envoy.log());
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 0);
    let r = s
        .request(ALICE, reqwest::Method::POST, "/api/projects")
        .json(&serde_json::json!({ "name": "harbour", "meta_group_id": "photographers" }))
        .send()
        .await
        .unwrap();
    let r = Reply::read(r).await;
    assert_eq!(r.status, 201, "{mode:?}: {}", r.body);
    let project = r.json()["id"].as_str().unwrap().to_string();
    let r = s.get(ALICE, "/api/projects").await;
    assert_eq!(r.json()["items"][0]["id"], project.as_str(), "{}", r.body);

    // An 8 MiB image streams through: half of it is at the API before the client sends the
    // rest. The download comes back byte for byte.
    let image = png(2 * HALF);
    let (first, rest) = image.split_at(HALF);
    let before = s.relay.bytes_in();
    let upload = start_upload(&s, &project, ALICE);
    upload.send(first).await;
    let streamed = eventually(DEADLINE, || async {
        s.relay.bytes_in() >= before + HALF as u64
    })
    .await;
    assert!(streamed.is_some(), "{mode:?}: Envoy held the body back");
    upload.send(rest).await;
    let r = upload.finish().await;
    assert_eq!(r.status, 201, "{mode:?}: {}", r.body);
    assert_eq!(r.json()["uploaded_by"], ALICE);
    let image_id = r.json()["id"].as_str().unwrap().to_string();
    let content = format!("/api/images/{image_id}/content");
    let r = s
        .request(ALICE, reqwest::Method::GET, &content)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.bytes().await.unwrap() == image, "the download differs");

    // Carol (another group) learns nothing: the project and the image are missing to her,
    // as one that does not exist, and none of her requests reaches the API.
    let missing = "/api/projects/00000000-0000-4000-8000-000000000000";
    for path in [format!("/api/projects/{project}"), missing.to_string()] {
        let r = s
            .refused(s.request(CAROL, reqwest::Method::GET, &path), 404)
            .await;
        assert_eq!(r.json()["error"], "not_found", "{}", r.body);
    }
    let r = s
        .refused(s.request(CAROL, reqwest::Method::GET, &content), 404)
        .await;
    assert_eq!(r.json()["error"], "not_found");
    let r = s.get(CAROL, "/api/projects").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 0, "{}", r.body);

    // Spoofed identity, secret and address headers: the request is Alice's, and none of
    // what she sent in them reaches the API.
    let r = s
        .request(
            ALICE,
            reqwest::Method::GET,
            &format!("/api/projects/{project}"),
        )
        .header("x-user-email", "admin@example.com")
        .header("x-proxy-secret", "client-chosen-secret")
        .header("x-authz-user", "admin@example.com")
        .header("x-authz-groups", "admins")
        .header("x-real-ip", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let r = Reply::read(r).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for spoofed in [
        "client-chosen-secret",
        "admin@example.com",
        "203.0.113.9",
        "admins",
    ] {
        assert!(
            !s.relay.received(spoofed),
            "{mode:?}: `{spoofed}` reached the API"
        );
    }
    // What the API needs did arrive: the secret from Envoy's file, and no token.
    assert!(s.relay.received(&format!("x-proxy-secret: {SECRET}\r\n")));
    assert!(!s.relay.received("authorization:"));

    // An email the provider did not verify: refused before the API.
    let unverified = token_with_verified("alice@example.com", Some(false));
    let req = s
        .client
        .get(s.envoy.url("/api/projects"))
        .bearer_auth(unverified);
    s.refused(req, 403).await;

    // authz down: 503, and not one byte at the API.
    s.authz.take().unwrap().shutdown().await;
    s.refused(s.request(ALICE, reqwest::Method::GET, "/api/projects"), 503)
        .await;
    let upload = start_upload(&s, &project, ALICE);
    let before = s.relay.bytes_in();
    upload.send(&png(64 * 1024)).await;
    let r = upload.finish().await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        s.relay.bytes_in(),
        before,
        "an upload reached the API without authz"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Envoy: run scripts/test"]
async fn the_api_behind_envoy_grpc() {
    journeys(Mode::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Envoy: run scripts/test"]
async fn the_api_behind_envoy_http() {
    journeys(Mode::Http).await;
}
