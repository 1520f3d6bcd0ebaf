//! Hot reload while the files around the policies never stop changing: a log appended
//! beside the policy directory, an editor's swap file inside it. An edit must be in force
//! within a second whatever else is written (issue 18: each unrelated write restarted the
//! debounce, so no edit landed while the writes went on).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ipm_testkit::eventually;

use crate::support::spawn_app;

const ALICE: &str = "alice@example.com";
const CAROL: &str = "carol@example.com";
/// The requirement: an edit is in force within a second.
pub const IN_FORCE: Duration = Duration::from_secs(1);

/// Writes to `files` in turn every `every` until dropped, as a busy log or an editor's
/// autosave would.
pub struct Noise {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Noise {
    pub fn start(files: Vec<PathBuf>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for f in &files {
                    let mut out = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(f)
                        .unwrap();
                    writeln!(out, "{{\"line\":{n}}}").unwrap();
                }
                n += 1;
                // Paces the writer; nothing waits on it.
                std::thread::sleep(every);
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Noise {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The usual neighbours of a policy directory: a log beside it, and inside it a vim swap
/// file and vim's write test file.
pub fn neighbours(policy_dir: &Path) -> Vec<PathBuf> {
    let parent = policy_dir.parent().unwrap();
    vec![
        parent.join("authz.log"),
        policy_dir.join(".guards.cedar.swp"),
        policy_dir.join("4913"),
    ]
}

/// Waits until `check` holds, at most `IN_FORCE`; the time it took.
pub async fn in_force<F, Fut>(what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let took = eventually(IN_FORCE, check)
        .await
        .unwrap_or_else(|| panic!("{what}: not in force within {IN_FORCE:?}"));
    eprintln!("{what}: in force after {took:?}");
    took
}

#[tokio::test]
async fn edits_land_while_the_neighbouring_files_are_written_without_pause() {
    let app = spawn_app().await;
    let _noise = Noise::start(neighbours(&app.policy_dir), Duration::from_millis(2));
    assert_eq!(app.status_as(ALICE, "GET", "/api/projects").await, 200);

    app.save_policy(
        "photographers.cedar",
        "@id(\"photographers-may-not-list\")\nforbid (principal in Group::\"photographers\", action == Action::\"ListProjects\", resource);\n",
    );
    in_force("policy edit", || async {
        app.status_as(ALICE, "GET", "/api/projects").await == 403
    })
    .await;

    assert_eq!(app.status_as(CAROL, "GET", "/api/projects").await, 200);
    let groups = std::fs::read_to_string(&app.groups_file).unwrap();
    let tmp = app.policy_dir.join(".groups.toml.tmp");
    std::fs::write(
        &tmp,
        groups.replace(
            "suspended = [\"mallory@example.com\"]",
            "suspended = [\"mallory@example.com\", \"carol@example.com\"]",
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, &app.groups_file).unwrap();
    in_force("groups edit", || async {
        app.status_as(CAROL, "GET", "/api/projects").await == 403
    })
    .await;

    // Nothing is left waiting: the busy neighbours are not changes.
    let (status, ready) = app.readyz().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["pending_changes"], serde_json::json!({}), "{ready}");
    for target in ["policies", "groups_file"] {
        assert_eq!(
            app.metric("authz_reload_pending_seconds", &[("target", target)])
                .await,
            Some(0.0)
        );
    }
}
