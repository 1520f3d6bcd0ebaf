//! Where an evaluation's attributes come from besides the request: the entities file, which
//! reloads with the policies in the same snapshot, and the group source for `User` subjects.

use std::time::Duration;

use ipm_testkit::eventually;
use serde_json::{Value, json};

use super::BETH;
use crate::support::{TestApp, spawn_app, spawn_authzen};

const DEADLINE: Duration = Duration::from_secs(5);

async fn beth_may_create(app: &TestApp) -> bool {
    let q = json!({
        "subject": { "type": "user", "id": BETH },
        "action": { "name": "can_create_todo" },
        "resource": { "type": "todo", "id": "todo-1" },
    });
    let (status, body) = app.authzen("/access/v1/evaluation", &q).await;
    assert_eq!(status, 200, "{body}");
    body["decision"].as_bool().unwrap()
}

fn entities(app: &TestApp) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(app.policy_dir.join("entities.json")).unwrap())
        .unwrap()
}

#[tokio::test]
async fn the_entities_file_reloads_with_the_policies_and_a_broken_one_keeps_the_set() {
    let app = spawn_authzen(|c| c.policy_poll = Duration::ZERO).await;
    assert!(!beth_may_create(&app).await, "Beth is a viewer");
    let (_, before) = app.readyz().await;

    // Beth becomes an editor: her roles are parents in the entities file.
    let mut promoted = entities(&app);
    for e in &mut promoted {
        if e["uid"] == json!({ "type": "user", "id": BETH }) {
            e["parents"] = json!([{ "type": "role", "id": "editor" }]);
        }
    }
    app.save_policy(
        "entities.json",
        &serde_json::to_string_pretty(&promoted).unwrap(),
    );
    eventually(DEADLINE, || beth_may_create(&app))
        .await
        .expect("the new roles are in force");
    let (status, after) = app.readyz().await;
    assert_eq!(status, 200);
    assert_ne!(before["policies"]["hash"], after["policies"]["hash"]);

    // An attribute the schema does not declare: the whole set stays, the problem is shown.
    let mut broken = promoted.clone();
    broken[0]["attrs"] = json!({ "level": 3 });
    app.save_policy(
        "entities.json",
        &serde_json::to_string_pretty(&broken).unwrap(),
    );
    eventually(DEADLINE, || async { app.readyz().await.0 == 503 })
        .await
        .expect("the broken file is reported");
    let (_, ready) = app.readyz().await;
    let problems = ready["pending_error"]["problems"].to_string();
    assert!(problems.contains("entities.json"), "{problems}");
    assert!(
        beth_may_create(&app).await,
        "the last good set stays in force"
    );

    // Not JSON at all: the same.
    app.save_policy("entities.json", "[{");
    eventually(DEADLINE, || async {
        app.readyz().await.1["pending_error"]
            .to_string()
            .contains("not JSON")
    })
    .await
    .expect("the unparsable file is reported");
    assert!(beth_may_create(&app).await);
}

#[tokio::test]
async fn a_user_subject_gets_its_groups_as_auth_does() {
    // The shipped set: `User::"email"` in its groups, from the groups file.
    let app = spawn_app().await;
    for user in [
        "alice@example.com",
        "bob@example.com",
        "mallory@example.com",
        "nobody@example.com",
    ] {
        let routed = app.status_as(user, "GET", "/api/projects").await == 200;
        let q = json!({
            "subject": { "type": "User", "id": user },
            "action": { "name": "ListProjects" },
            "resource": { "type": "Application", "id": "ipm" },
            "context": { "method": "GET", "path": "/api/projects" },
            "options": { "reasons": true },
        });
        let (status, body) = app.authzen("/access/v1/evaluation", &q).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["decision"], routed, "{user}: {body}");
    }
    // The context is checked against the action's context type.
    let q = json!({
        "subject": { "type": "User", "id": "bob@example.com" },
        "action": { "name": "ListProjects" },
        "resource": { "type": "Application", "id": "ipm" },
        "context": { "method": 1 },
    });
    let (_, body) = app.authzen("/access/v1/evaluation", &q).await;
    assert_eq!(body["decision"], false);
}
