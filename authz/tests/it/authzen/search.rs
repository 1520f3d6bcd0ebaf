//! The search endpoints: every result is a candidate the real decision allows.

use serde_json::{Value, json};

use super::{BETH, MORTY, RICK};
use crate::support::{spawn_app, spawn_authzen};

fn ids(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().or(r["name"].as_str()).unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn resource_search_finds_what_the_subject_may_act_on() {
    let app = spawn_authzen(|_| {}).await;
    let q = |who: &str| {
        json!({
            "subject": { "type": "user", "id": who },
            "action": { "name": "can_update_todo" },
            "resource": { "type": "todo" },
        })
    };
    let (status, body) = app.authzen("/access/v1/search/resource", &q(MORTY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["7240d0db-8ff0-41ec-98b2-34a096273b91"]);
    assert_eq!(body["results"][0]["type"], "todo");
    assert_eq!(body["page"]["next_token"], "");
    let (_, body) = app.authzen("/access/v1/search/resource", &q(RICK)).await;
    assert_eq!(ids(&body).len(), 5);
    let (_, body) = app.authzen("/access/v1/search/resource", &q(BETH)).await;
    assert!(ids(&body).is_empty());

    // Every result, asked back, is allowed.
    let (_, body) = app.authzen("/access/v1/search/resource", &q(RICK)).await;
    for id in ids(&body) {
        let ask = json!({
            "subject": { "type": "user", "id": RICK },
            "action": { "name": "can_update_todo" },
            "resource": { "type": "todo", "id": id },
        });
        let (_, d) = app.authzen("/access/v1/evaluation", &ask).await;
        assert_eq!(d["decision"], true, "{id}");
    }
}

#[tokio::test]
async fn subject_search_finds_who_may_act_and_action_search_what_they_may_do() {
    let app = spawn_authzen(|_| {}).await;
    let q = json!({
        "subject": { "type": "identity" },
        "action": { "name": "POST" },
        "resource": { "type": "route", "id": "/todos" },
    });
    let (status, body) = app.authzen("/access/v1/search/subject", &q).await;
    assert_eq!(status, 200, "{body}");
    let mut expected = vec![
        RICK.to_string(),
        MORTY.to_string(),
        super::SUMMER.to_string(),
    ];
    expected.sort();
    assert_eq!(ids(&body), expected);
    assert_eq!(body["results"][0]["type"], "identity");

    let q = json!({
        "subject": { "type": "user", "id": MORTY },
        "resource": { "type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b91" },
    });
    let (status, body) = app.authzen("/access/v1/search/action", &q).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&body),
        [
            "can_create_todo",
            "can_delete_todo",
            "can_read_todos",
            "can_update_todo"
        ]
    );
    let q = json!({
        "subject": { "type": "user", "id": BETH },
        "resource": { "type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b94" },
    });
    let (_, body) = app.authzen("/access/v1/search/action", &q).await;
    assert_eq!(ids(&body), ["can_read_todos"]);
}

#[tokio::test]
async fn searches_cover_the_groups_and_users_of_the_group_source() {
    // The shipped set: groups and users come from the groups file.
    let app = spawn_app().await;
    let q = json!({
        "subject": { "type": "User", "id": "bob@example.com" },
        "action": { "name": "CreateProjectInGroup" },
        "resource": { "type": "Group" },
        "context": { "method": "POST", "path": "/api/projects" },
    });
    let (status, body) = app.authzen("/access/v1/search/resource", &q).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["editors", "photographers"]);

    let q = json!({
        "subject": { "type": "User" },
        "action": { "name": "ListProjects" },
        "resource": { "type": "Application", "id": "ipm" },
        "context": { "method": "GET", "path": "/api/projects" },
    });
    let (_, body) = app.authzen("/access/v1/search/subject", &q).await;
    // mallory is suspended.
    assert_eq!(
        ids(&body),
        [
            "admin@example.com",
            "alice@example.com",
            "bob@example.com",
            "carol@example.com"
        ]
    );
}
