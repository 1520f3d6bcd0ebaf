//! Findings of a security review, each held by a test: policy entries that cannot be read fail
//! the reload instead of vanishing.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use ipm_testkit::{copy_policies, eventually};

use crate::support::{TestApp, spawn_with};

const ALICE: &str = "alice@example.com";
const MALLORY: &str = "mallory@example.com";
const DEADLINE: Duration = Duration::from_secs(5);

async fn spawn_events_only() -> TestApp {
    spawn_with(|c| c.policy_poll = Duration::ZERO).await
}

/// Replaces the whole policy directory at once with a copy changed by `edit`, so that the
/// watcher's reloads see either the old directory, none, or the edited one.
fn swap_in(app: &TestApp, edit: impl FnOnce(&Path)) {
    let staging = app.root.path().join("staging");
    copy_policies(&staging);
    edit(&staging);
    let old = app.root.path().join("old");
    std::fs::rename(&app.policy_dir, &old).unwrap();
    std::fs::rename(&staging, &app.policy_dir).unwrap();
    std::fs::remove_dir_all(&old).unwrap();
}

/// The pending problem on `/readyz` about `entry`, if any.
fn problem_about(ready: &serde_json::Value, entry: &str) -> Option<serde_json::Value> {
    ready["pending_error"]["problems"]
        .as_array()?
        .iter()
        .find(|p| {
            p["file"].as_str().is_some_and(|f| f.ends_with(entry))
                || p["message"].as_str().is_some_and(|m| m.contains(entry))
        })
        .cloned()
}

/// Waits until `/readyz` answers 503 with a problem about `entry`; returns that problem.
async fn wait_problem_about(app: &TestApp, entry: &str) -> serde_json::Value {
    let seen = eventually(DEADLINE, || async {
        let (status, ready) = app.readyz().await;
        status == 503 && problem_about(&ready, entry).is_some()
    })
    .await;
    assert!(seen.is_some(), "/readyz never reported `{entry}`");
    let (_, ready) = app.readyz().await;
    problem_about(&ready, entry).unwrap()
}

#[tokio::test]
async fn a_dangling_policy_symlink_fails_the_reload_and_keeps_the_forbid() {
    let app = spawn_events_only().await;
    assert_eq!(app.status_as(MALLORY, "GET", "/api/projects").await, 403);
    swap_in(&app, |dir| {
        std::fs::remove_file(dir.join("guards.cedar")).unwrap();
        symlink("../gone/guards.cedar", dir.join("guards.cedar")).unwrap();
    });
    let problem = wait_problem_about(&app, "guards.cedar").await;
    eprintln!("pending: {problem}");
    assert_eq!(app.status_as(MALLORY, "GET", "/api/projects").await, 403);
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects").await, 200);
}

#[tokio::test]
async fn a_directory_named_like_a_policy_fails_the_reload_and_keeps_the_old_set() {
    let app = spawn_events_only().await;
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects").await, 200);
    swap_in(&app, |dir| {
        // A change that would take effect if the directory entry were skipped.
        std::fs::write(
            dir.join("extra.cedar"),
            "@id(\"no-listing\")\nforbid (principal, action == Action::\"ListProjects\", resource);\n",
        )
        .unwrap();
        std::fs::create_dir(dir.join("more.cedar")).unwrap();
    });
    let problem = wait_problem_about(&app, "more.cedar").await;
    eprintln!("pending: {problem}");
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects").await, 200);
    assert_eq!(app.status_as(MALLORY, "GET", "/api/projects").await, 403);

    // Hidden entries stay skipped: removing the directory clears the error.
    std::fs::remove_dir(app.policy_dir.join("more.cedar")).unwrap();
    std::fs::create_dir(app.policy_dir.join(".hidden.cedar")).unwrap();
    let cleared = eventually(DEADLINE, || async {
        app.readyz().await.0 == 200 && app.status_as(ALICE, "GET", "/api/projects").await == 403
    })
    .await;
    assert!(cleared.is_some(), "the fixed directory never loaded");
}

const ADMIN: &str = "admin@example.com";
const IMAGE: &str = "0190f0c4-6c3e-7b3a-8f00-0000000000a1";

#[tokio::test]
async fn policies_see_the_canonical_path_whatever_the_encoding() {
    let app = spawn_events_only().await;
    let plain = format!("/api/images/{IMAGE}/content");
    let spellings = [
        format!("/api/images/{IMAGE}/%63ontent"),
        format!("/api/images/{IMAGE}/%63%6F%6e%74%65%6E%74"),
        format!("/api/%69mages/{IMAGE}/content"),
        format!("/api/images/{IMAGE}/content?x=%2F#frag"),
    ];
    // The same route either way: admins may read the image.
    assert_eq!(app.status_as(ADMIN, "GET", &plain).await, 200);
    for path in &spellings {
        assert_eq!(app.status_as(ADMIN, "GET", path).await, 200, "{path}");
    }
    app.save_policy(
        "no-content.cedar",
        "@id(\"no-image-content\")\nforbid (principal, action, resource) when { context.path like \"/api/images/*/content\" };\n",
    );
    let in_force = eventually(DEADLINE, || async {
        app.status_as(ADMIN, "GET", &plain).await == 403
    })
    .await;
    assert!(in_force.is_some(), "the forbid never took effect");
    for path in &spellings {
        let r = app.auth_as(ADMIN, "GET", path).await;
        assert_eq!(r.status().as_u16(), 403, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["reason"], "policy_denied", "{path}");
    }
    // Other routes are untouched.
    assert_eq!(
        app.status_as(ADMIN, "GET", &format!("/api/images/{IMAGE}"))
            .await,
        200
    );
}
