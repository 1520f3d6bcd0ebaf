//! Redis is not trusted: an entry written there by anyone without `REDIS_HMAC_KEY`, or one
//! dated in the future, is never used; the directory answers instead, or nobody does.

use ipm_runtime::groups::redis::EntrySeal;
use ipm_testkit::directory::{Directory, Mode};
use ipm_testkit::{redis_url, require_redis};

use super::{REDIS_KEY, RedisPrefix, spawn};

const EVE: &str = "eve@example.com";
const MALLORY: &str = "mallory@example.com";
/// The test clock's start (see `spawn`), in milliseconds.
const NOW_MS: u64 = 1_800_000_000_000;

/// What authz stores for a user, with the flush counters of a fresh prefix.
fn entry(groups: &[&str], fetched_at_ms: u64) -> String {
    serde_json::json!({
        "groups": groups,
        "fetched_at_ms": fetched_at_ms,
        "user_flushes": 0,
        "all_flushes": 0,
    })
    .to_string()
}

fn entry_key(prefix: &RedisPrefix, user: &str) -> String {
    format!("{}groups:{user}", prefix.0)
}

/// `json` as stored under `user`'s key, with a MAC under `key`.
fn sealed(key: &str, prefix: &RedisPrefix, user: &str, json: &str) -> String {
    EntrySeal::new(key.as_bytes())
        .unwrap()
        .seal(&entry_key(prefix, user), json)
}

/// Writes `value` as `user`'s entry, straight into Redis, as an attacker with access would.
async fn forge(prefix: &RedisPrefix, user: &str, value: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg(entry_key(prefix, user))
        .arg(value)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_entry_written_without_the_key_is_not_used() {
    require_redis!();
    let prefix = RedisPrefix::new("forged");
    let dir = Directory::start(&[(EVE, &["photographers"])]).await;
    let app = spawn(&dir, |d| d.cache = prefix.backend()).await;

    // No MAC at all, fresh now and for ever after.
    forge(&prefix, EVE, &entry(&["admins"], u64::MAX / 2)).await;
    assert_eq!(app.groups_header(EVE).await, "photographers");
    assert_eq!(dir.calls(), 1, "the directory answered");

    // The directory down: no answer, never the forged one, whatever key signed it.
    dir.set_mode(Mode::Status(503));
    let admins = entry(&["admins"], NOW_MS);
    forge(&prefix, MALLORY, &admins).await;
    assert_eq!(app.list(MALLORY).await, 503);
    let wrong_key = "not-the-key-0123456789abcdef0123456789";
    forge(
        &prefix,
        MALLORY,
        &sealed(wrong_key, &prefix, MALLORY, &admins),
    )
    .await;
    assert_eq!(app.list(MALLORY).await, 503);
    // Eve's genuine entry, moved under Mallory's name, does not verify either.
    let eve = sealed(REDIS_KEY, &prefix, EVE, &entry(&["admins"], NOW_MS));
    forge(&prefix, MALLORY, &eve).await;
    assert_eq!(app.list(MALLORY).await, 503);
    assert_eq!(
        app.metric(
            "authz_redis_rejected_entries_total",
            &[("result", "bad_mac")]
        )
        .await,
        Some(4.0)
    );
}

#[tokio::test]
async fn an_entry_dated_in_the_future_is_not_used() {
    require_redis!();
    let prefix = RedisPrefix::new("future");
    let dir = Directory::start(&[(EVE, &["photographers"])]).await;
    let app = spawn(&dir, |d| d.cache = prefix.backend()).await;
    // Correctly signed, but it would be fresh for ever.
    let future = entry(&["admins"], NOW_MS + 3_600_000);
    forge(&prefix, EVE, &sealed(REDIS_KEY, &prefix, EVE, &future)).await;
    assert_eq!(app.groups_header(EVE).await, "photographers");
    assert_eq!(dir.calls(), 1, "the directory answered");
    assert_eq!(
        app.metric(
            "authz_redis_rejected_entries_total",
            &[("result", "future")]
        )
        .await,
        Some(1.0)
    );
    // Within the clocks' skew it is used, as written by a replica slightly ahead.
    let ahead = entry(&["editors"], NOW_MS + 2_000);
    forge(
        &prefix,
        MALLORY,
        &sealed(REDIS_KEY, &prefix, MALLORY, &ahead),
    )
    .await;
    assert_eq!(app.groups_header(MALLORY).await, "editors");
    assert_eq!(dir.calls(), 1, "answered from Redis");
}

#[test]
fn a_redis_cache_without_a_key_refuses_to_start_naming_it() {
    let env = |key: Option<&str>| {
        let mut env: ipm_runtime::config::Env = [
            ("PROXY_SHARED_SECRET", crate::support::SECRET),
            ("GROUP_SOURCE", "http"),
            ("AUTH_SERVER_URL", "https://dir.example.com"),
            ("AUTH_API_TOKEN", "t0ken"),
            ("GROUP_CACHE", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(key) = key {
            env.insert("REDIS_HMAC_KEY".into(), key.into());
        }
        authz::config::Config::from_map(&env)
    };
    let refusal = env(None).map(|_| ()).unwrap_err().to_string();
    assert!(refusal.starts_with("REDIS_HMAC_KEY"), "{refusal}");
    assert!(env(Some("0123456789abcdef0123456789abcdef")).is_ok());
}
