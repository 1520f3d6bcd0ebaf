//! Hot reload through the real file watcher: saves, broken edits, deleted directories,
//! Kubernetes ConfigMap symlink swaps. The periodic rescan is off, so only file events count.

use std::os::unix::fs::symlink;
use std::time::Duration;

use ipm_testkit::{copy_policies, eventually};

use crate::support::{TestApp, spawn_with};

const ALICE: &str = "alice@example.com";
const MALLORY: &str = "mallory@example.com";
const DEADLINE: Duration = Duration::from_secs(5);

async fn spawn_events_only() -> TestApp {
    spawn_with(|c| c.policy_poll = Duration::ZERO).await
}

async fn wait_status(app: &TestApp, user: &str, want: u16) -> Duration {
    eventually(DEADLINE, || async {
        app.status_as(user, "GET", "/api/projects").await == want
    })
    .await
    .unwrap_or_else(|| panic!("{user} never got {want}"))
}

#[tokio::test]
async fn a_saved_policy_changes_the_decision() {
    let app = spawn_events_only().await;
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects").await, 200);
    let (_, before) = app.readyz().await;
    app.save_policy(
        "photographers.cedar",
        "@id(\"photographers-may-not-list\")\nforbid (principal in Group::\"photographers\", action == Action::\"ListProjects\", resource);\n",
    );
    let took = wait_status(&app, ALICE, 403).await;
    eprintln!("reload in force after {took:?}");
    let (status, after) = app.readyz().await;
    assert_eq!(status, 200);
    assert_ne!(before["policies"]["hash"], after["policies"]["hash"]);
    assert_eq!(
        after["policies"]["count"].as_u64(),
        before["policies"]["count"].as_u64().map(|n| n + 1)
    );
    let body: serde_json::Value = app
        .auth_as(ALICE, "GET", "/api/projects")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["reason"], "policy_denied");
}

#[tokio::test]
async fn a_broken_edit_keeps_the_whole_previous_set() {
    let app = spawn_events_only().await;
    assert_eq!(app.status_as(MALLORY, "GET", "/api/projects").await, 403);
    // Break the file that holds the forbid: if the other files were loaded alone,
    // mallory would be allowed.
    app.save_policy("guards.cedar", "@id(\"suspended-forbid-all\")\nforbid (principal in Group::\"suspended\", action, resource)\n  when { principal.nope ==  };\n");
    let seen = eventually(DEADLINE, || async { app.readyz().await.0 == 503 }).await;
    assert!(seen.is_some(), "the load error never showed on /readyz");
    let (_, ready) = app.readyz().await;
    let problems = ready["pending_error"]["problems"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!problems.is_empty());
    assert!(
        problems[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("guards.cedar")
    );
    assert_eq!(problems[0]["line"], 3);
    assert!(problems[0]["column"].as_u64().is_some());
    assert_eq!(app.status_as(MALLORY, "GET", "/api/projects").await, 403);
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects").await, 200);

    // A type error against the schema is refused the same way.
    app.save_policy("guards.cedar", "@id(\"suspended-forbid-all\")\nforbid (principal in Group::\"suspended\", action, resource) when { principal.email == 3 };\n");
    let seen = eventually(DEADLINE, || async {
        let (_, r) = app.readyz().await;
        r["pending_error"]["problems"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("suspended-forbid-all"))
    })
    .await;
    assert!(
        seen.is_some(),
        "the validation error never showed on /readyz"
    );
    assert_eq!(app.status_as(MALLORY, "GET", "/api/projects").await, 403);

    // Fixing the file clears the error.
    let original =
        std::fs::read_to_string(ipm_testkit::shipped_policies().join("guards.cedar")).unwrap();
    app.save_policy("guards.cedar", &original);
    assert!(
        eventually(DEADLINE, || async { app.readyz().await.0 == 200 })
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_deleted_directory_keeps_the_last_good_set_until_it_returns() {
    let app = spawn_events_only().await;
    std::fs::remove_dir_all(&app.policy_dir).unwrap();
    assert!(
        eventually(DEADLINE, || async { app.readyz().await.0 == 503 })
            .await
            .is_some()
    );
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects").await, 200);
    assert_eq!(app.status_as(MALLORY, "GET", "/api/projects").await, 403);
    // groups.toml went with the directory: the last membership stays in force too.
    assert_eq!(
        app.auth_as(ALICE, "GET", "/api/projects").await.headers()["x-authz-groups"],
        "photographers"
    );

    // The directory comes back with a change: the watch on the parent picks it up.
    let staging = app.root.path().join("staging");
    copy_policies(&staging);
    std::fs::write(
        staging.join("extra.cedar"),
        "@id(\"no-listing\")\nforbid (principal, action == Action::\"ListProjects\", resource);\n",
    )
    .unwrap();
    std::fs::rename(&staging, &app.policy_dir).unwrap();
    wait_status(&app, ALICE, 403).await;
    assert!(
        eventually(DEADLINE, || async { app.readyz().await.0 == 200 })
            .await
            .is_some()
    );
}

/// Lays out a directory as a Kubernetes ConfigMap volume: `..data` points to a timestamped
/// folder, and each visible file is a symlink through `..data`.
fn configmap_version(dir: &std::path::Path, version: &str, extra: Option<&str>) {
    let folder = dir.join(version);
    copy_policies(&folder);
    if let Some(text) = extra {
        std::fs::write(folder.join("extra.cedar"), text).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let name = entry.unwrap().file_name();
        let link = dir.join(&name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(std::path::Path::new("..data").join(&name), &link).unwrap();
        }
    }
}

#[tokio::test]
async fn a_configmap_symlink_swap_reloads() {
    let root = tempfile::tempdir().unwrap();
    let cm = root.path().join("policies");
    std::fs::create_dir_all(&cm).unwrap();
    configmap_version(&cm, "..2026_11_27_10_00_00.1", None);
    let groups = cm.join("groups.toml");
    let app = spawn_with(|c| {
        c.policy_dir = cm.clone();
        c.groups_file = groups.clone();
        c.policy_poll = Duration::ZERO;
    })
    .await;
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects").await, 200);
    configmap_version(
        &cm,
        "..2026_11_27_10_05_00.2",
        Some(
            "@id(\"no-listing\")\nforbid (principal, action == Action::\"ListProjects\", resource);\n",
        ),
    );
    std::fs::remove_dir_all(cm.join("..2026_11_27_10_00_00.1")).unwrap();
    let took = wait_status(&app, ALICE, 403).await;
    eprintln!("configmap swap in force after {took:?}");
}
