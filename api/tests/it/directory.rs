//! With `GROUP_SOURCE=http` the API asks the organisation's directory, as authz does: the same
//! memberships decide, and a directory that cannot answer is a 503, never an allow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ipm_policy::secret::Secret;
use ipm_runtime::config::{DirectoryConfig, GroupSourceKind};
use reqwest::Method;
use warp::Filter;

use crate::support::*;

const TOKEN: &str = "directory-token-0123456789";

/// A directory on loopback: `GET /api/user/{email}/groups` with the bearer token.
async fn directory(members: Arc<Mutex<HashMap<String, Vec<String>>>>) -> String {
    let route = warp::path!("api" / "user" / String / "groups")
        .and(warp::header::<String>("authorization"))
        .map(move |email: String, auth: String| {
            let email = email.replace("%40", "@");
            let groups = members.lock().unwrap().get(&email).cloned();
            match groups {
                Some(g) if auth == format!("Bearer {TOKEN}") => warp::reply::with_status(
                    warp::reply::json(&serde_json::json!({ "groups": g })),
                    warp::http::StatusCode::OK,
                ),
                Some(_) => warp::reply::with_status(
                    warp::reply::json(&serde_json::json!({})),
                    warp::http::StatusCode::UNAUTHORIZED,
                ),
                None => warp::reply::with_status(
                    warp::reply::json(&serde_json::json!({})),
                    warp::http::StatusCode::SERVICE_UNAVAILABLE,
                ),
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_decides_group_membership() {
    let members = Arc::new(Mutex::new(HashMap::from([
        ("alice@example.com".to_string(), vec!["team-b".to_string()]),
        ("bob@example.com".to_string(), vec!["team-b".to_string()]),
    ])));
    let url = directory(members.clone()).await;
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
    let (status, v) = app.get(CAROL_UNKNOWN, &path).await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (503, Some("groups_unavailable"))
    );
}

const CAROL_UNKNOWN: &str = "carol@example.com";
