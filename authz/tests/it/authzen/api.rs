//! The AuthZEN wire contract: decisions, reasons on request, 400s that say what is wrong,
//! unknown fields ignored, `X-Request-ID` echoed, caller authentication, batch semantics,
//! the metadata document and its own listener.

use serde_json::{Value, json};

use super::{BETH, MORTY, RICK, todo_question};
use crate::support::{SECRET, TestApp, spawn_authzen};

const TODO_91: &str = "7240d0db-8ff0-41ec-98b2-34a096273b91";
const TODO_92: &str = "7240d0db-8ff0-41ec-98b2-34a096273b92";

async fn raw(app: &TestApp, path: &str, headers: &[(&str, &str)], body: &str) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_denial_is_200_false_and_reasons_come_only_when_asked() {
    let app = spawn_authzen(|_| {}).await;
    let q = todo_question(MORTY, "can_update_todo", TODO_92, "rick@the-citadel.com");
    let (status, body) = app.authzen("/access/v1/evaluation", &q).await;
    assert_eq!((status, body), (200, json!({ "decision": false })));

    let mut asked = todo_question(MORTY, "can_update_todo", TODO_91, "morty@the-citadel.com");
    asked["options"] = json!({ "reasons": true });
    let (status, body) = app.authzen("/access/v1/evaluation", &asked).await;
    assert_eq!(status, 200);
    assert_eq!(body["decision"], true);
    assert_eq!(
        body["context"]["policies"],
        json!(["todo-editor-changes-own"])
    );
    assert_eq!(body["context"]["errors"], json!([]));
    assert!(
        body["context"]["reason_admin"]["en"]
            .as_str()
            .unwrap()
            .contains("todo-editor-changes-own")
    );
    // Nothing of the caller's credentials ever comes back.
    assert!(!body.to_string().contains(SECRET));
}

#[tokio::test]
async fn unknown_actions_types_and_properties_are_false_decisions_not_errors() {
    let app = spawn_authzen(|_| {}).await;
    let mut unknown_action = todo_question(RICK, "can_fly", TODO_92, "rick@the-citadel.com");
    unknown_action["options"] = json!({ "reasons": true });
    let (status, body) = app.authzen("/access/v1/evaluation", &unknown_action).await;
    assert_eq!(status, 200);
    assert_eq!(body["decision"], false);
    assert!(
        body["context"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("can_fly"),
        "{body}"
    );

    let unknown_type = json!({
        "subject": { "type": "robot", "id": RICK },
        "action": { "name": "can_read_todos" },
        "resource": { "type": "todo", "id": "todo-1" },
    });
    let (status, body) = app.authzen("/access/v1/evaluation", &unknown_type).await;
    assert_eq!((status, body), (200, json!({ "decision": false })));

    // A property the schema does not declare, or of the wrong type, is refused, not ignored.
    for props in [
        json!({ "ownerID": 42 }),
        json!({ "ownerID": "rick@the-citadel.com", "color": "red" }),
    ] {
        let q = json!({
            "subject": { "type": "user", "id": RICK },
            "action": { "name": "can_update_todo" },
            "resource": { "type": "todo", "id": "new", "properties": props },
            "options": { "reasons": true },
        });
        let (status, body) = app.authzen("/access/v1/evaluation", &q).await;
        assert_eq!(status, 200);
        assert_eq!(body["decision"], false, "{body}");
        assert!(
            !body["context"]["errors"].as_array().unwrap().is_empty(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn malformed_requests_are_400_with_a_message_naming_the_field() {
    let app = spawn_authzen(|_| {}).await;
    let h = [("x-proxy-secret", SECRET)];
    let cases: &[(&str, &str, &str)] = &[
        ("/access/v1/evaluation", "", "empty"),
        ("/access/v1/evaluation", "not json", "expected"),
        ("/access/v1/evaluation", "[1]", "expected"),
        (
            "/access/v1/evaluation",
            r#"{"action":{"name":"can_read_todos"},"resource":{"type":"todo","id":"1"}}"#,
            "`subject` is missing",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"id":"x"},"action":{"name":"a"},"resource":{"type":"todo","id":"1"}}"#,
            "subject",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":7},"action":{"name":"a"},"resource":{"type":"todo","id":"1"}}"#,
            "subject.id",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user"},"action":{"name":"a"},"resource":{"type":"todo","id":"1"}}"#,
            "`subject.id` is missing",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":"x"},"action":{"name":"a"},"resource":{"type":"todo","id":"1"},"context":[]}"#,
            "context",
        ),
        (
            "/access/v1/evaluations",
            r#"{"subject":{"type":"user","id":"x"},"evaluations":[{"resource":{"type":"todo","id":"1"}}]}"#,
            "evaluations[0].action",
        ),
        (
            "/access/v1/evaluations",
            r#"{"evaluations":[],"options":{"evaluations_semantic":"sometimes"}}"#,
            "evaluations_semantic",
        ),
        (
            "/access/v1/search/resource",
            r#"{"subject":{"type":"user","id":"x"},"resource":{"type":"todo"}}"#,
            "`action` is missing",
        ),
    ];
    for (path, body, needle) in cases {
        let r = raw(&app, path, &h, body).await;
        assert_eq!(r.status(), 400, "{body}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["error"], "bad_request");
        let message = answer["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}: {answer}"));
        assert!(message.contains(needle), "{body}: {message}");
    }
    let many = json!({
        "subject": { "type": "user", "id": RICK },
        "action": { "name": "can_read_todos" },
        "evaluations": vec![json!({ "resource": { "type": "todo", "id": "1" } }); 1001],
    });
    let (status, body) = app.authzen("/access/v1/evaluations", &many).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("at most 1000"),
        "{body}"
    );
    // Over 1 MiB.
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(1024 * 1024));
    let r = raw(&app, "/access/v1/evaluation", &h, &huge).await;
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_the_request_id_is_echoed() {
    let app = spawn_authzen(|_| {}).await;
    let mut q = todo_question(MORTY, "can_update_todo", TODO_91, "morty@the-citadel.com");
    q["subject"]["_note"] = json!("ID for Morty");
    q["action"]["verb"] = json!("update");
    q["extension"] = json!({ "anything": [1, 2, 3] });
    let id = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716";
    let h = [("x-proxy-secret", SECRET), ("x-request-id", id)];
    let r = raw(&app, "/access/v1/evaluation", &h, &q.to_string()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], id);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "decision": true })
    );

    // On errors too.
    let r = raw(&app, "/access/v1/evaluations", &h, "{").await;
    assert_eq!(
        (r.status().as_u16(), &r.headers()["x-request-id"]),
        (400, &id.parse().unwrap())
    );
    let r = raw(&app, "/access/v1/evaluation", &[("x-request-id", id)], "{}").await;
    assert_eq!(
        (r.status().as_u16(), &r.headers()["x-request-id"]),
        (401, &id.parse().unwrap())
    );
}

#[tokio::test]
async fn callers_authenticate_with_the_proxy_secret_by_default() {
    let app = spawn_authzen(|_| {}).await;
    let q = todo_question(RICK, "can_read_todos", "todo-1", "x").to_string();
    for (headers, reason) in [
        (vec![], "missing_proxy_secret"),
        (
            vec![("x-proxy-secret", "wrong-secret-0123456789abcdef0123456789")],
            "invalid_proxy_secret",
        ),
        (
            vec![("x-proxy-secret", SECRET), ("x-proxy-secret", SECRET)],
            "invalid_proxy_secret",
        ),
        (
            vec![("authorization", &*format!("Bearer {SECRET}"))],
            "missing_proxy_secret",
        ),
    ] {
        let r = raw(&app, "/access/v1/evaluation", &headers, &q).await;
        assert_eq!(r.status(), 401, "{headers:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["reason"], reason, "{headers:?}");
        assert!(!body.to_string().contains(SECRET));
    }
    // Every endpoint is guarded, search too.
    let r = raw(&app, "/access/v1/search/action", &[], &q).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn with_a_token_callers_send_it_as_a_bearer_token() {
    const TOKEN: &str = "authzen-token-0123456789abcdef0123456789";
    let app = spawn_authzen(|c| {
        c.authzen.token = Some(ipm_policy::secret::Secret::new(TOKEN));
    })
    .await;
    let q = todo_question(RICK, "can_read_todos", "todo-1", "x").to_string();
    let bearer = format!("Bearer {TOKEN}");
    let r = raw(
        &app,
        "/access/v1/evaluation",
        &[("authorization", &bearer)],
        &q,
    )
    .await;
    assert_eq!(r.status(), 200);
    let lower = format!("bearer {TOKEN}");
    let r = raw(
        &app,
        "/access/v1/evaluation",
        &[("authorization", &lower)],
        &q,
    )
    .await;
    assert_eq!(r.status(), 200);
    for headers in [
        vec![("x-proxy-secret", SECRET)],
        vec![("authorization", &*format!("Bearer {}", &TOKEN[1..]))],
        vec![("authorization", &*format!("Basic {TOKEN}"))],
    ] {
        let r = raw(&app, "/access/v1/evaluation", &headers, &q).await;
        assert_eq!(r.status(), 401, "{headers:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn batches_take_defaults_overrides_and_the_three_semantics() {
    let app = spawn_authzen(|_| {}).await;
    let batch = |semantic: &str| {
        json!({
            "subject": { "type": "user", "id": MORTY },
            "action": { "name": "can_update_todo" },
            "options": { "evaluations_semantic": semantic },
            "evaluations": [
                { "resource": { "type": "todo", "id": TODO_91, "properties": { "ownerID": "morty@the-citadel.com" } } },
                { "resource": { "type": "todo", "id": TODO_92, "properties": { "ownerID": "rick@the-citadel.com" } } },
                // The item's own subject and action win over the defaults.
                { "subject": { "type": "user", "id": RICK }, "resource": { "type": "todo", "id": TODO_92 } },
                { "action": { "name": "can_read_todos" }, "resource": { "type": "todo", "id": "todo-1" } },
            ],
        })
    };
    let decisions = |body: &Value| -> Vec<bool> {
        body["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["decision"].as_bool().unwrap())
            .collect()
    };
    let (_, all) = app
        .authzen("/access/v1/evaluations", &batch("execute_all"))
        .await;
    assert_eq!(decisions(&all), [true, false, true, true]);
    let (_, deny) = app
        .authzen("/access/v1/evaluations", &batch("deny_on_first_deny"))
        .await;
    assert_eq!(decisions(&deny), [true, false]);
    let (_, permit) = app
        .authzen("/access/v1/evaluations", &batch("permit_on_first_permit"))
        .await;
    assert_eq!(decisions(&permit), [true]);
    let mut default = batch("execute_all");
    default["options"] = json!({});
    let (_, body) = app.authzen("/access/v1/evaluations", &default).await;
    assert_eq!(decisions(&body), [true, false, true, true]);

    // Without `evaluations`, the batch endpoint answers as the single one.
    let q = todo_question(BETH, "can_create_todo", "todo-1", "x");
    let (status, body) = app.authzen("/access/v1/evaluations", &q).await;
    assert_eq!((status, body), (200, json!({ "decision": false })));
}

#[tokio::test]
async fn the_metadata_names_every_endpoint() {
    let app = spawn_authzen(|_| {}).await;
    let r = app
        .client
        .get(app.url("/.well-known/authzen-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let base = format!("http://{}", app.addr);
    assert_eq!(body["policy_decision_point"], base);
    for (key, path) in [
        ("access_evaluation_endpoint", "/access/v1/evaluation"),
        ("access_evaluations_endpoint", "/access/v1/evaluations"),
        ("search_subject_endpoint", "/access/v1/search/subject"),
        ("search_resource_endpoint", "/access/v1/search/resource"),
        ("search_action_endpoint", "/access/v1/search/action"),
    ] {
        assert_eq!(body[key], format!("{base}{path}"), "{key}");
    }

    let app = spawn_authzen(|c| c.authzen.pdp_url = Some("https://pdp.example.com".into())).await;
    let r = app
        .client
        .get(app.url("/.well-known/authzen-configuration"))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["policy_decision_point"], "https://pdp.example.com");
    assert_eq!(
        body["access_evaluation_endpoint"],
        "https://pdp.example.com/access/v1/evaluation"
    );
}

#[tokio::test]
async fn on_its_own_listener_the_main_one_does_not_serve_it() {
    use authz::config::AuthzenListen;
    use ipm_runtime::config::ListenAddr;
    let app = spawn_authzen(|c| {
        c.authzen.listen = AuthzenListen::Own(ListenAddr::Tcp(([127, 0, 0, 1], 0).into()));
    })
    .await;
    let own = app.handle.authzen_tcp_addr().unwrap();
    assert_ne!(own, app.addr);
    let q = todo_question(RICK, "can_read_todos", "todo-1", "x");
    let (status, _) = app.authzen("/access/v1/evaluation", &q).await;
    assert_eq!(status, 404);
    let r = app
        .client
        .post(format!("http://{own}/access/v1/evaluation"))
        .header("x-proxy-secret", SECRET)
        .json(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "decision": true })
    );
    // /auth stays where it was.
    assert_eq!(
        app.status_as("alice@example.com", "GET", "/api/projects")
            .await,
        403
    );

    let off = spawn_authzen(|c| c.authzen.listen = AuthzenListen::Off).await;
    assert_eq!(off.handle.authzen_tcp_addr(), None);
    let (status, _) = off.authzen("/access/v1/evaluation", &q).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn decisions_are_counted_and_logged_as_authzen() {
    let app = spawn_authzen(|_| {}).await;
    let allowed = todo_question(RICK, "can_read_todos", "todo-1", "x");
    let denied = todo_question(BETH, "can_create_todo", "todo-1", "x");
    app.authzen("/access/v1/evaluation", &allowed).await;
    app.authzen(
        "/access/v1/evaluations",
        &json!({ "evaluations": [allowed, denied] }),
    )
    .await;
    let count = |outcome: &'static str, reason: &'static str| {
        let app = &app;
        async move {
            app.metric(
                "authz_decisions_total",
                &[
                    ("adapter", "authzen"),
                    ("outcome", outcome),
                    ("status", "200"),
                    ("reason", reason),
                ],
            )
            .await
        }
    };
    assert_eq!(count("allow", "policy_allowed").await, Some(2.0));
    assert_eq!(count("deny", "policy_denied").await, Some(1.0));
}
