//! AuthZEN resource search for the projects a user may read, over the API's database: the
//! list engine ipm-api's project list runs on. Each user's search, page after page, must
//! return exactly the projects the item route (`GET /api/projects/{id}` through `/auth`, on
//! the same database) allows that user, whatever the policies say about single projects.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::support::{TestApp, insert_projects, migrated_db, spawn_with};

const USERS: &[&str] = &[
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "admin@example.com",
    "mallory@example.com",
    "nobody@example.com",
];
const GROUPS: &[&str] = &["photographers", "editors", "admins", "ghosts"];

fn project_id(n: u32) -> String {
    format!("0190f0c4-6c3e-7b3a-8f00-{n:012x}")
}

/// 40 projects spread over four groups (one of which nobody is in).
async fn seed(url: &str) {
    let db = migrated_db(url).await;
    let projects: Vec<(uuid::Uuid, &str)> = (1..=40u32)
        .map(|n| {
            let id = uuid::Uuid::parse_str(&project_id(n)).unwrap();
            (id, GROUPS[(n as usize * 7) % GROUPS.len()])
        })
        .collect();
    insert_projects(&db, &projects).await;
    db.close().await;
}

/// Every page of the user's search with `limit`; checks the pages are in order and disjoint.
async fn search_all(app: &TestApp, user: &str, limit: u32) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let q = json!({
            "subject": { "type": "User", "id": user },
            "action": { "name": "ReadProject" },
            "resource": { "type": "Project" },
            "page": { "token": token, "limit": limit },
        });
        let (status, body) = app.authzen("/access/v1/search/resource", &q).await;
        assert_eq!(status, 200, "{body}");
        let page: Vec<String> = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["type"], "Project");
                r["id"].as_str().unwrap().to_string()
            })
            .collect();
        assert!(page.len() <= limit as usize, "{body}");
        found.extend(page);
        token = body["page"]["next_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            let mut sorted = found.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, found, "pages out of order or repeated");
            return found;
        }
        assert_eq!(
            found.last(),
            Some(&token),
            "the token is the page's last result"
        );
    }
    panic!("the search never ended");
}

#[tokio::test]
async fn a_users_project_search_is_exactly_what_the_item_route_allows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ipm.db");
    seed(&format!("sqlite://{}?mode=rwc", db.display())).await;
    let url = format!("sqlite://{}", db.display());
    let app = spawn_with(move |c| c.database_url = Some(url)).await;
    // Single projects: one hidden from its own group, one shown to someone outside it.
    let photographers: Vec<u32> = (1..=40u32)
        .filter(|n| GROUPS[(*n as usize * 7) % GROUPS.len()] == "photographers")
        .collect();
    let (hidden, shown) = (project_id(photographers[0]), project_id(photographers[1]));
    app.save_policy(
        "single-projects.cedar",
        &format!(
            "@id(\"hide-one\")\nforbid (principal, action == Action::\"ReadProject\", resource == Project::\"{hidden}\") unless {{ principal in Group::\"admins\" }};\n\
             @id(\"show-one\")\npermit (principal == User::\"carol@example.com\", action == Action::\"ReadProject\", resource == Project::\"{shown}\");\n"
        ),
    );
    // The reload is in force once the item route says so.
    let path = |id: &str| format!("/api/projects/{id}");
    ipm_testkit::eventually(Duration::from_secs(10), || async {
        app.status_as("carol@example.com", "GET", &path(&shown))
            .await
            == 200
    })
    .await
    .expect("the new policies load");

    let mut compared = 0;
    for user in USERS {
        let mut allowed = BTreeSet::new();
        for n in 1..=40u32 {
            let id = project_id(n);
            if app.status_as(user, "GET", &path(&id)).await == 200 {
                allowed.insert(id);
            }
            compared += 1;
        }
        for limit in [1, 3, 100] {
            let found: BTreeSet<String> = search_all(&app, user, limit).await.into_iter().collect();
            assert_eq!(found, allowed, "{user}, pages of {limit}");
        }
    }
    assert_eq!(compared, 240);
    // The single-project policies did change the answers.
    let alice = search_all(&app, "alice@example.com", 100).await;
    assert!(!alice.contains(&hidden) && alice.contains(&shown));
    let carol = search_all(&app, "carol@example.com", 100).await;
    assert!(carol.contains(&shown));

    // A token this search never handed out is refused, not read as "from the start".
    let q = json!({
        "subject": { "type": "User", "id": "alice@example.com" },
        "action": { "name": "ReadProject" },
        "resource": { "type": "Project" },
        "page": { "token": "not-a-token" },
    });
    let (status, body) = app.authzen("/access/v1/search/resource", &q).await;
    assert_eq!(status, 400, "{body}");
}
