//! Every case of the OpenID AuthZEN interop decision files (copies and provenance in
//! `authz/tests/data/authzen-interop/`), one by one and as one batch per file, against the
//! example set `policies/examples/authzen-todo`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::{TestApp, spawn_authzen};

fn data(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/authzen-interop")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The cases of a file: (request, expected decision).
fn cases(file: &Value, key: &str) -> Vec<(Value, bool)> {
    file[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["request"].clone(), c["expected"].as_bool().unwrap()))
        .collect()
}

/// The pre-1.0 shapes of the two oldest files, in 1.0 shape: the subject's opaque id was in
/// `subject.identity` (its `id` was the email), the owner in `resource.ownerID`.
fn to_1_0(mut request: Value) -> Value {
    if let Some(identity) = request["subject"].get("identity").cloned() {
        request["subject"] = json!({ "type": request["subject"]["type"], "id": identity });
    }
    if let Some(owner) = request["resource"].get("ownerID").cloned() {
        request["resource"]["properties"] = json!({ "ownerID": owner });
    }
    request
}

/// Sends each case alone, then all of them as one batch; returns how many passed each way
/// and every failure.
async fn run(app: &TestApp, cases: &[(Value, bool)]) -> (usize, usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut single = 0;
    for (i, (request, expected)) in cases.iter().enumerate() {
        let (status, body) = app.authzen("/access/v1/evaluation", request).await;
        if status == 200 && body == json!({ "decision": expected }) {
            single += 1;
        } else {
            failures.push(format!(
                "case {i}: {status} {body} for {request}, expected {expected}"
            ));
        }
    }
    let batch = json!({
        "evaluations": cases.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
    });
    let (status, body) = app.authzen("/access/v1/evaluations", &batch).await;
    assert_eq!(status, 200, "{body}");
    let answers = body["evaluations"].as_array().unwrap();
    assert_eq!(answers.len(), cases.len(), "{body}");
    let mut batched = 0;
    for (i, ((request, expected), answer)) in cases.iter().zip(answers).enumerate() {
        if answer == &json!({ "decision": expected }) {
            batched += 1;
        } else {
            failures.push(format!(
                "batch item {i}: {answer} for {request}, expected {expected}"
            ));
        }
    }
    (single, batched, failures)
}

#[tokio::test]
async fn todo_1_0_02_every_single_and_batch_case() {
    let app = spawn_authzen(|_| {}).await;
    let file = data("todo/decisions-authorization-api-1_0-02.json");
    let cases = cases(&file, "evaluation");
    assert_eq!(cases.len(), 40);
    let (single, batched, failures) = run(&app, &cases).await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!((single, batched), (40, 40));

    // The file's own batch cases: defaults at the top, resources per item; the upstream check
    // compares whole `evaluations` arrays.
    let batches = file["evaluations"].as_array().unwrap();
    assert_eq!(batches.len(), 3);
    for case in batches {
        let (status, body) = app
            .authzen("/access/v1/evaluations", &case["request"])
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["evaluations"], case["expected"], "{}", case["request"]);
    }
}

#[tokio::test]
async fn todo_1_0_01_every_single_and_batch_case() {
    let app = spawn_authzen(|_| {}).await;
    let cases = cases(
        &data("todo/decisions-authorization-api-1_0-01.json"),
        "evaluation",
    );
    assert_eq!(cases.len(), 40);
    let (single, batched, failures) = run(&app, &cases).await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!((single, batched), (40, 40));
}

#[tokio::test]
async fn todo_pre_1_0_files_converted_to_1_0_shape() {
    let app = spawn_authzen(|_| {}).await;
    for (file, key) in [
        ("todo/decisions-authorization-api-1_0-00.json", "evaluation"),
        ("todo/decisions.json", "decisions"),
    ] {
        let cases: Vec<(Value, bool)> = cases(&data(file), key)
            .into_iter()
            .map(|(r, e)| (to_1_0(r), e))
            .collect();
        assert_eq!(cases.len(), 40, "{file}");
        let (single, batched, failures) = run(&app, &cases).await;
        assert!(failures.is_empty(), "{file}: {failures:#?}");
        assert_eq!((single, batched), (40, 40), "{file}");
    }
}

#[tokio::test]
async fn gateway_every_single_and_batch_case() {
    let app = spawn_authzen(|_| {}).await;
    let cases = cases(&data("gateway/decisions.json"), "evaluation");
    assert_eq!(cases.len(), 25);
    let (single, batched, failures) = run(&app, &cases).await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!((single, batched), (25, 25));
}
