//! With `GROUP_SOURCE=http` the API asks the organisation's directory, as authz does: the same
//! memberships decide, and a directory that cannot answer is a 503, never an allow.

use ipm_policy::secret::Secret;
use ipm_runtime::config::{DirectoryConfig, GroupSourceKind};
use ipm_testkit::directory::{Directory, Mode, TOKEN};
use reqwest::Method;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_decides_group_membership() {
    let dir = Directory::start(&[(ALICE, &["team-b"]), (BOB, &["team-b"])]).await;
    let url = dir.url();
    let app = spawn_with(Backend::Sqlite, |c| {
        c.directory = DirectoryConfig {
            source: GroupSourceKind::Http,
            server_url: Some(url),
            api_token: Some(Secret::new(TOKEN.as_bytes().to_vec())),
            ..DirectoryConfig::default()
        };
    })
    .await;
    // The groups file says team-a; the directory says team-b, and wins.
    let p = app.create(ALICE, "team-b", "from the directory").await;
    let body = serde_json::json!({"name": "x", "meta_group_id": "team-a"}).to_string();
    assert_eq!(
        app.call(ALICE, Method::POST, "/api/projects", Some(&body))
            .await
            .0,
        403
    );
    let path = format!("/api/projects/{}", p["id"].as_str().unwrap());
    assert_eq!(app.get(BOB, &path).await.0, 200);
    // A user the directory cannot answer for: 503, not a guess.
    dir.set_mode(Mode::Status(503));
    let (status, v) = app.get(CAROL_UNKNOWN, &path).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (503, Some("groups_unavailable"))
    );
}

const CAROL_UNKNOWN: &str = "carol@example.com";
