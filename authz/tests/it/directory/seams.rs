//! A deprovisioned user: the directory's "no such user" (404, 410) is an answer, not an
//! outage, so the stale grace never brings back the groups of someone who was removed.

use std::time::Duration;

use super::{Directory, Mode, TTL, spawn};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

#[tokio::test]
async fn a_user_the_directory_no_longer_knows_has_no_groups_despite_the_grace() {
    let dir = Directory::start(&[
        (ALICE, &["photographers"]),
        (BOB, &["photographers"]),
        (CAROL, &["photographers"]),
    ])
    .await;
    let app = spawn(&dir, |d| d.cache_stale = Duration::from_secs(600)).await;
    for user in [ALICE, BOB, CAROL] {
        assert_eq!(app.list(user).await, 200, "{user}");
    }
    assert_eq!(dir.calls(), 3);
    app.clock.advance(TTL);

    // Alice and Bob were removed: the directory says so, with 404 and 410.
    dir.set_mode(Mode::Status(404));
    assert_eq!(app.list(ALICE).await, 403);
    dir.set_mode(Mode::Status(410));
    assert_eq!(app.list(BOB).await, 403);
    assert_eq!(dir.calls(), 5);
    assert_eq!(
        app.metric(
            "authz_directory_requests_total",
            &[("result", "no_such_user")]
        )
        .await,
        Some(2.0)
    );

    // An outage is not an answer: Carol's last known groups are served within the grace.
    dir.set_mode(Mode::Status(503));
    assert_eq!(app.groups_header(CAROL).await, "photographers");
    assert_eq!(
        app.metric("authz_group_cache_lookups_total", &[("result", "stale")])
            .await,
        Some(1.0)
    );
    // "No groups" was cached like any answer: no new call for Alice, and no stale groups.
    let calls = dir.calls();
    assert_eq!(app.list(ALICE).await, 403);
    assert_eq!(dir.calls(), calls);
}

/// A per-user `forbid` holds whatever case the proxy sends the address in: a directory that
/// ignores case gives `Bob@` bob's groups, so `Bob@` must be bob to the policies too
/// (EMAIL_LOCAL_PART_CASE=insensitive), and share bob's cache entry and flush.
#[tokio::test]
async fn a_per_user_forbid_is_not_evaded_by_case() {
    let dir = Directory::start(&[(ALICE, &["photographers"]), (BOB, &["photographers"])]).await;
    let app = spawn(&dir, |_| {}).await;
    std::fs::write(
        app.policy_dir.join("zz-bob.cedar"),
        "@id(\"bob-suspended\")\nforbid (principal == User::\"bob@example.com\", action, resource);\n",
    )
    .unwrap();
    app.handle.reload_now();
    let in_force = ipm_testkit::eventually(Duration::from_secs(10), || async {
        app.list(BOB).await == 403
    })
    .await;
    assert!(in_force.is_some(), "the forbid is loaded");
    for user in ["Bob@example.com", "BOB@EXAMPLE.COM", "bOb@Example.com"] {
        assert_eq!(app.list(user).await, 403, "{user}");
    }
    let r = app
        .auth_as("Alice@Example.com", "GET", "/api/projects")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-authz-user"], ALICE);
    assert_eq!(app.list(ALICE).await, 200);
    // One cache entry per person: bob and alice were each asked for once.
    assert_eq!(dir.calls(), 2);
    let (path, _) = dir.last_request();
    assert_eq!(path, "/api/user/alice%40example.com/groups");

    // A flush named in any case reaches the one entry.
    let (status, _) = app
        .admin(
            "/admin/groups/flush?user=ALICE%40example.com",
            Some(super::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.list("alice@EXAMPLE.com").await, 200);
    assert_eq!(dir.calls(), 3, "the flushed entry is fetched again");
}
