//! Soak: authz under paced load with decision logging on, its output appended beside the
//! policy directory, and an edit every two seconds (saved, removed, broken, swapped through
//! a symlink, the groups file). Every valid edit is in force within a second, every broken
//! one is refused with the old set kept, no request fails, memory stays flat.

use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipm_testkit::eventually;

use crate::child::{Authz, save};
use crate::reload_busy::IN_FORCE;

const ALICE: &str = "alice@example.com"; // photographers
const CAROL: &str = "carol@example.com"; // editors
const MALLORY: &str = "mallory@example.com"; // suspended
/// Requests per second, spread over the workers: paced, well under what two cores serve.
const RATE: u64 = 400;
const WORKERS: u64 = 8;
/// One edit per step; each round runs every kind of edit once.
const STEP: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;
/// Resident memory may move by allocator noise, not grow with the edits and requests.
const RSS_SLACK_KIB: u64 = 16 * 1024;

const NO_LISTING: &str = "@id(\"photographers-may-not-list\")\nforbid (principal in Group::\"photographers\", action == Action::\"ListProjects\", resource);\n";
const BROKEN_GUARDS: &str = "@id(\"suspended-forbid-all\")\nforbid (principal in Group::\"suspended\", action, resource)\n  when { principal.nope ==  };\n";

/// What a step does, and what must be true once it is in force.
#[derive(Debug, Clone, Copy)]
enum Edit {
    /// `extra.cedar` saved: alice may no longer list.
    Save,
    /// `extra.cedar` removed: alice lists again.
    Remove,
    /// `guards.cedar` broken: refused, the whole old set stays (mallory still denied).
    Break,
    /// `guards.cedar` repaired.
    Repair,
    /// `extra.cedar` becomes a symlink swapped to a version that forbids.
    SwapIn,
    /// The symlink swapped to an empty version.
    SwapOut,
    /// carol suspended in `groups.toml`.
    Suspend,
    /// carol back.
    Reinstate,
}

const EDITS: [Edit; 8] = [
    Edit::Save,
    Edit::Remove,
    Edit::Break,
    Edit::Repair,
    Edit::SwapIn,
    Edit::SwapOut,
    Edit::Suspend,
    Edit::Reinstate,
];

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Sends `RATE` requests a second until aborted; an answer other than 200 or 403, or none,
/// is a failure.
fn load(app: &Arc<Authz>, tally: &Arc<Tally>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WORKERS)
        .map(|w| {
            let (app, tally) = (app.clone(), tally.clone());
            tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval(Duration::from_micros(1_000_000 * WORKERS / RATE));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let users = [ALICE, CAROL, MALLORY];
                for n in 0usize.. {
                    tick.tick().await;
                    let user = users[(n + w as usize) % users.len()];
                    match app.status_as(user, "GET", "/api/projects").await {
                        Some(200 | 403) => tally.ok.fetch_add(1, Ordering::Relaxed),
                        _ => tally.failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect()
}

async fn status(app: &Authz, user: &str) -> u16 {
    app.status_as(user, "GET", "/api/projects").await.unwrap()
}

/// Makes the edit, then waits until it is in force (or, broken, refused); the time it took.
async fn apply(app: &Authz, edit: Edit, version: usize, guards: &str, groups: &str) -> Duration {
    let dir = &app.policy_dir;
    let check = async |want_alice: u16, want_carol: u16| {
        let took = eventually(IN_FORCE, || async {
            status(app, ALICE).await == want_alice
                && status(app, CAROL).await == want_carol
                && app.readyz().await.0 == 200
        })
        .await;
        match took {
            Some(t) => t,
            None => panic!(
                "{edit:?}: not in force within {IN_FORCE:?}: alice {}, carol {}, readyz {:?}",
                status(app, ALICE).await,
                status(app, CAROL).await,
                app.readyz().await
            ),
        }
    };
    match edit {
        Edit::Save => {
            save(dir, "extra.cedar", NO_LISTING);
            check(403, 200).await
        }
        Edit::Remove => {
            std::fs::remove_file(dir.join("extra.cedar")).unwrap();
            check(200, 200).await
        }
        Edit::Break => {
            let before = app.readyz().await.1["policies"]["hash"].clone();
            save(dir, "guards.cedar", BROKEN_GUARDS);
            let refused = eventually(IN_FORCE, || async {
                let (code, ready) = app.readyz().await;
                code == 503 && !ready["pending_error"].is_null()
            })
            .await
            .unwrap_or_else(|| panic!("the broken edit was not refused within {IN_FORCE:?}"));
            // The whole old set stays: mallory's forbid lives in the broken file.
            assert_eq!(app.readyz().await.1["policies"]["hash"], before);
            assert_eq!(status(app, MALLORY).await, 403);
            assert_eq!(status(app, ALICE).await, 200);
            refused
        }
        Edit::Repair => {
            save(dir, "guards.cedar", guards);
            check(200, 200).await
        }
        Edit::SwapIn | Edit::SwapOut => {
            let versions = dir.join(".versions");
            std::fs::create_dir_all(&versions).unwrap();
            let name = format!("v{version}.cedar");
            let text = match edit {
                Edit::SwapIn => NO_LISTING,
                _ => "// nothing forbidden in this version\n",
            };
            std::fs::write(versions.join(&name), text).unwrap();
            let tmp = dir.join(".extra.cedar.link");
            let _ = std::fs::remove_file(&tmp);
            symlink(format!(".versions/{name}"), &tmp).unwrap();
            std::fs::rename(&tmp, dir.join("extra.cedar")).unwrap();
            match edit {
                Edit::SwapIn => check(403, 200).await,
                _ => check(200, 200).await,
            }
        }
        Edit::Suspend => {
            let suspended = groups.replace(
                "suspended = [\"mallory@example.com\"]",
                "suspended = [\"mallory@example.com\", \"carol@example.com\"]",
            );
            save(dir, "groups.toml", &suspended);
            check(200, 403).await
        }
        Edit::Reinstate => {
            save(dir, "groups.toml", groups);
            check(200, 200).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: about 50 s under load; scripts/test runs it"]
async fn edits_land_within_a_second_under_load_with_logs_written_beside_the_policies() {
    let app = Arc::new(Authz::start(&[]).await);
    let guards = std::fs::read_to_string(app.policy_dir.join("guards.cedar")).unwrap();
    let groups = std::fs::read_to_string(app.policy_dir.join("groups.toml")).unwrap();
    let tally = Arc::new(Tally::default());
    let workers = load(&app, &tally);

    let mut took = Vec::new();
    let mut rss = Vec::new();
    let mut next = tokio::time::Instant::now();
    for (n, edit) in EDITS.iter().cycle().take(EDITS.len() * ROUNDS).enumerate() {
        // Paces the edits: one per step, as the operator made them.
        tokio::time::sleep_until(next).await;
        next += STEP;
        took.push((*edit, apply(&app, *edit, n, &guards, &groups).await));
        rss.push(app.usage().rss_kib);
    }
    for w in &workers {
        w.abort();
    }

    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    let slowest = took.iter().max_by_key(|(_, t)| *t).unwrap();
    let log_lines = std::fs::read_to_string(&app.log).unwrap().lines().count();
    // After the first round the process is warm; from then on it must not grow.
    let warm = rss[EDITS.len() - 1];
    let last = *rss.last().unwrap();
    eprintln!(
        "soak: {ok} answered, {failed} failed, {log_lines} log lines beside the policies; \
         slowest edit {slowest:?}; rss KiB warm {warm}, last {last}, max {}",
        rss.iter().max().unwrap()
    );
    assert_eq!(failed, 0, "requests failed during the soak");
    assert!(ok > RATE * 10, "the load did not run: {ok} answers");
    assert!(
        log_lines as u64 > ok / 2,
        "decisions were not logged beside the policies: {log_lines} lines"
    );
    assert!(
        last <= warm + RSS_SLACK_KIB,
        "resident memory grew from {warm} KiB to {last} KiB: {rss:?}"
    );
}
