//! `GROUP_SOURCE=http`: authz against a real HTTP directory on loopback that counts its calls
//! and misbehaves on cue, with the cache's clock moved by hand; Redis mode against local Redis,
//! skipped when Redis is not running (except under CI).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipm_runtime::config::{
    CacheBackend, DirectoryConfig, GroupSourceKind, ListenAddr, RedisConfig,
};

use authz::config::Config;
use authz::server::{Overrides, run_with};
use ipm_policy::request::{AuthzRequest, HeaderField};
use ipm_policy::secret::Secret;
use ipm_runtime::clock::ManualClock;
use ipm_testkit::directory::{Directory, Mode, TOKEN};
use ipm_testkit::{copy_policies, eventually, redis_url, require_redis};

use crate::support::{SECRET, TestApp};

mod redis_integrity;
mod seams;

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789";
/// `REDIS_HMAC_KEY` of every replica in these tests.
const REDIS_KEY: &str = "redis-hmac-key-0123456789abcdef012345";
const TTL: Duration = Duration::from_secs(300);

// === authz in front of it ===

struct App {
    app: TestApp,
    clock: Arc<ManualClock>,
}

impl std::ops::Deref for App {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

fn http_source(dir: &Directory) -> DirectoryConfig {
    DirectoryConfig {
        source: GroupSourceKind::Http,
        server_url: Some(dir.url()),
        api_token: Some(Secret::new(TOKEN.as_bytes().to_vec())),
        timeout: Duration::from_millis(2000),
        admin_listen: Some(ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))),
        admin_token: Some(Secret::new(ADMIN_TOKEN.as_bytes().to_vec())),
        ..DirectoryConfig::default()
    }
}

/// authz with `GROUP_SOURCE=http` on `dir`, after `adjust`, on a clock the test moves.
async fn spawn(dir: &Directory, adjust: impl FnOnce(&mut DirectoryConfig)) -> App {
    let root = tempfile::tempdir().unwrap();
    let policy_dir = root.path().join("policies");
    copy_policies(&policy_dir);
    // No groups file: the directory is the only source.
    let groups_file = root.path().join("absent-groups.toml");
    let mut config = Config::for_test(&policy_dir, &groups_file, SECRET);
    config.directory = http_source(dir);
    adjust(&mut config.directory);
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_800_000_000)));
    let handle = run_with(
        config,
        Overrides {
            clock: Some(clock.clone()),
            ..Overrides::default()
        },
    )
    .await
    .expect("authz starts");
    let addr = handle.tcp_addr().unwrap();
    App {
        app: TestApp {
            addr,
            handle,
            root,
            policy_dir,
            groups_file,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        },
        clock,
    }
}

impl App {
    /// `GET /api/projects` as `user`: 200 for members of any group, 403 for none.
    async fn list(&self, user: &str) -> u16 {
        self.status_as(user, "GET", "/api/projects").await
    }

    async fn groups_header(&self, user: &str) -> String {
        let r = self.auth_as(user, "GET", "/api/projects").await;
        assert_eq!(r.status(), 200);
        r.headers()["x-authz-groups"].to_str().unwrap().to_string()
    }

    async fn admin(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let addr = self.handle.admin_tcp_addr().expect("an admin listener");
        let mut req = self.client.post(format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn body_reason(&self, user: &str) -> (u16, String) {
        let r = self.auth_as(user, "GET", "/api/projects").await;
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        (
            status,
            body["reason"].as_str().unwrap_or_default().to_string(),
        )
    }
}

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

// === Tests ===

#[tokio::test]
async fn hit_then_miss_after_the_ttl() {
    let dir = Directory::start(&[(ALICE, &["photographers", "editors"])]).await;
    let app = spawn(&dir, |_| {}).await;
    assert_eq!(app.groups_header(ALICE).await, "editors,photographers");
    assert_eq!(dir.calls(), 1);
    let (path, authorization) = dir.last_request();
    assert_eq!(path, "/api/user/alice%40example.com/groups");
    assert_eq!(authorization, format!("Bearer {TOKEN}"));
    assert_eq!(app.list(ALICE).await, 200);
    app.clock.advance(TTL - Duration::from_secs(1));
    assert_eq!(app.list(ALICE).await, 200);
    assert_eq!(dir.calls(), 1, "answered from the cache");
    dir.set_groups(ALICE, &["editors"]);
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(app.groups_header(ALICE).await, "editors");
    assert_eq!(dir.calls(), 2, "asked again once the TTL passed");
    assert_eq!(
        app.metric("authz_group_cache_lookups_total", &[("result", "hit")])
            .await,
        Some(2.0)
    );
    assert_eq!(
        app.metric("authz_group_cache_lookups_total", &[("result", "miss")])
            .await,
        Some(2.0)
    );
    assert_eq!(
        app.metric("authz_directory_requests_total", &[("result", "ok")])
            .await,
        Some(2.0)
    );
    let (_, ready) = app.readyz().await;
    assert_eq!(ready["groups"]["source"], "http+memory");
}

#[tokio::test]
async fn a_user_without_groups_is_cached_too() {
    let dir = Directory::start(&[]).await;
    let app = spawn(&dir, |_| {}).await;
    assert_eq!(app.list("nobody@example.com").await, 403);
    assert_eq!(app.list("nobody@example.com").await, 403);
    assert_eq!(dir.calls(), 1);
}

#[tokio::test]
async fn custom_path_and_field() {
    let dir = Directory::start(&[(ALICE, &["editors"])]).await;
    dir.set_field(&["data", "memberOf"]);
    let app = spawn(&dir, |d| {
        d.groups_path = "/v2/members/{email}?fields=groups".into();
        d.groups_field = "data.memberOf".into();
    })
    .await;
    assert_eq!(app.groups_header(ALICE).await, "editors");
    assert_eq!(
        dir.last_request().0,
        "/v2/members/alice%40example.com?fields=groups"
    );
}

#[tokio::test]
async fn a_hundred_concurrent_misses_make_one_call() {
    let dir = Directory::start(&[(ALICE, &["photographers"])]).await;
    dir.set_mode(Mode::Held);
    let app = spawn(&dir, |_| {}).await;
    let app = Arc::new(app);
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.list(ALICE).await })
        })
        .collect();
    // Hold the answer until all 100 are waiting inside authz.
    let waiting = eventually(Duration::from_secs(20), || {
        let app = app.clone();
        async move {
            app.metric(
                "authz_group_cache_lookups_total",
                &[("result", "coalesced")],
            )
            .await
                == Some(99.0)
        }
    })
    .await;
    assert!(waiting.is_some(), "99 requests join the first one's call");
    dir.release(100);
    for r in requests {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(dir.calls(), 1);
}

#[tokio::test]
async fn a_burst_of_new_users_is_queued_not_flooded() {
    let dir = Directory::start(&[]).await;
    dir.set_mode(Mode::Held);
    let app = spawn(&dir, |d| {
        d.max_concurrency = 2;
        d.timeout = Duration::from_secs(30);
    });
    let app = Arc::new(app.await);
    let requests: Vec<_> = (0..10)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { app.list(&format!("new{i}@example.com")).await })
        })
        .collect();
    let queued = eventually(Duration::from_secs(10), || {
        let app = app.clone();
        async move {
            app.metric("authz_group_cache_lookups_total", &[("result", "miss")])
                .await
                == Some(10.0)
        }
    })
    .await;
    assert!(queued.is_some(), "ten lookups under way");
    let two = eventually(Duration::from_secs(5), || async { dir.calls() == 2 }).await;
    assert!(two.is_some());
    dir.release(10);
    for r in requests {
        assert_eq!(r.await.unwrap(), 403);
    }
    assert_eq!(dir.calls(), 10);
    assert_eq!(dir.max_held(), 2, "at most two calls at once");
}

#[tokio::test]
async fn a_slow_directory_is_503_after_the_timeout() {
    let dir = Directory::start(&[(ALICE, &["photographers"])]).await;
    dir.set_mode(Mode::Slow(Duration::from_secs(30)));
    let app = spawn(&dir, |d| d.timeout = Duration::from_millis(200)).await;
    let started = Instant::now();
    assert_eq!(
        app.body_reason(ALICE).await,
        (503, "groups_unavailable".into())
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        app.metric("authz_directory_requests_total", &[("result", "timeout")])
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn directory_errors_are_503_and_counted_by_cause() {
    let dir = Directory::start(&[(ALICE, &["photographers"])]).await;
    let app = spawn(&dir, |d| d.max_body_bytes = 64 * 1024).await;
    let cases = [
        (Mode::Status(500), "status"),
        (Mode::Status(502), "status"),
        (Mode::BadJson, "bad_json"),
        (Mode::Huge(1024 * 1024), "too_large"),
        (Mode::HugeChunked(1024 * 1024), "too_large"),
    ];
    for (i, (mode, _)) in cases.iter().enumerate() {
        dir.set_mode(mode.clone());
        // A new user each time: nothing cached, nothing stale.
        let user = format!("user{i}@example.com");
        assert_eq!(
            app.body_reason(&user).await,
            (503, "groups_unavailable".into()),
            "{mode:?}"
        );
    }
    assert_eq!(
        app.metric("authz_directory_requests_total", &[("result", "status")])
            .await,
        Some(2.0)
    );
    assert_eq!(
        app.metric("authz_directory_requests_total", &[("result", "bad_json")])
            .await,
        Some(1.0)
    );
    assert_eq!(
        app.metric("authz_directory_requests_total", &[("result", "too_large")])
            .await,
        Some(2.0)
    );
    // The directory still works for answers that fit.
    dir.set_mode(Mode::Huge(1024));
    assert_eq!(app.list("small@example.com").await, 403);
}

#[tokio::test]
async fn a_refused_connection_is_503() {
    let mut dir = Directory::start(&[]).await;
    dir.wait_stopped().await;
    let app = spawn(&dir, |_| {}).await;
    assert_eq!(
        app.body_reason(ALICE).await,
        (503, "groups_unavailable".into())
    );
    assert_eq!(
        app.metric("authz_directory_requests_total", &[("result", "connect")])
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn directory_down_without_grace_is_503_at_expiry() {
    let mut dir = Directory::start(&[(ALICE, &["photographers"])]).await;
    let app = spawn(&dir, |_| {}).await;
    assert_eq!(app.list(ALICE).await, 200);
    dir.wait_stopped().await;
    assert_eq!(app.list(ALICE).await, 200, "still fresh");
    app.clock.advance(TTL);
    assert_eq!(
        app.body_reason(ALICE).await,
        (503, "groups_unavailable".into())
    );
}

#[tokio::test]
async fn directory_down_with_grace_serves_the_last_value_then_503() {
    let mut dir = Directory::start(&[(ALICE, &["photographers"])]).await;
    let app = spawn(&dir, |d| d.cache_stale = Duration::from_secs(60)).await;
    assert_eq!(app.list(ALICE).await, 200);
    dir.wait_stopped().await;
    app.clock.advance(TTL + Duration::from_secs(60));
    assert_eq!(app.groups_header(ALICE).await, "photographers");
    assert_eq!(
        app.metric("authz_group_cache_lookups_total", &[("result", "stale")])
            .await,
        Some(1.0)
    );
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        app.body_reason(ALICE).await,
        (503, "groups_unavailable".into())
    );
    // A user never seen has nothing to fall back on.
    assert_eq!(app.list(BOB).await, 503);
}

#[tokio::test]
async fn flush_one_user_then_everyone() {
    let dir = Directory::start(&[(ALICE, &["photographers"]), (BOB, &["editors"])]).await;
    let app = spawn(&dir, |_| {}).await;
    assert_eq!(app.list(ALICE).await, 200);
    assert_eq!(app.list(BOB).await, 200);
    dir.set_groups(ALICE, &[]);
    dir.set_groups(BOB, &[]);
    assert_eq!(app.list(ALICE).await, 200, "removed, but still cached");

    let (status, body) = app
        .admin("/admin/groups/flush?user=alice%40example.com", None)
        .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("missing_admin_token"))
    );
    let (status, _) = app
        .admin(
            "/admin/groups/flush?user=alice%40example.com",
            Some("wrong"),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .admin("/admin/groups/flush?user=nope", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 400);
    let (status, body) = app
        .admin(
            "/admin/groups/flush?user=alice%40example.com",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reach"], "local");

    assert_eq!(
        app.list(ALICE).await,
        403,
        "the removal takes effect at once"
    );
    assert_eq!(app.list(BOB).await, 200, "others stay cached");
    let (status, body) = app
        .admin("/admin/groups/flush-all", Some(ADMIN_TOKEN))
        .await;
    assert_eq!((status, body["flushed"].as_str()), (200, Some("all")));
    assert_eq!(app.list(BOB).await, 403);
    assert_eq!(dir.calls(), 4);
}

#[tokio::test]
async fn the_admin_listener_answers_nothing_else() {
    let dir = Directory::start(&[]).await;
    let app = spawn(&dir, |_| {}).await;
    let addr = app.handle.admin_tcp_addr().unwrap();
    let r = app
        .client
        .get(format!("http://{addr}/admin/groups/flush-all"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let r = app
        .client
        .get(format!("http://{addr}/auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // And the main listener has no admin routes.
    let r = app
        .client
        .post(app.url("/admin/groups/flush-all"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn ten_thousand_requests_over_a_thousand_users_make_a_thousand_calls() {
    let members: Vec<(String, Vec<&str>)> = (0..1000)
        .map(|i| (format!("user{i}@example.com"), vec!["photographers"]))
        .collect();
    let refs: Vec<(&str, &[&str])> = members
        .iter()
        .map(|(u, g)| (u.as_str(), g.as_slice()))
        .collect();
    let dir = Directory::start(&refs).await;
    let app = spawn(&dir, |_| {}).await;
    let enforcer = app.handle.enforcer.clone();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..25 {
        let enforcer = enforcer.clone();
        tasks.spawn(async move {
            let mut allowed = 0;
            for n in 0..400 {
                // Spread over the users, with repeats interleaved across workers.
                let user = format!("user{}@example.com", (worker * 400 + n) * 7 % 1000);
                let req = AuthzRequest {
                    method: HeaderField::One(b"GET"),
                    uri: HeaderField::One(b"/api/projects"),
                    user: HeaderField::One(user.as_bytes()),
                    secret: HeaderField::One(SECRET.as_bytes()),
                    client_ip: None,
                };
                allowed += usize::from(enforcer.authorize(&req, "test").await.is_allowed());
            }
            allowed
        });
    }
    let mut allowed = 0;
    while let Some(n) = tasks.join_next().await {
        allowed += n.unwrap();
    }
    assert_eq!(allowed, 10_000);
    println!(
        "directory calls for 10000 requests over 1000 users: {} ({:?})",
        dir.calls(),
        started.elapsed()
    );
    assert_eq!(dir.calls(), 1000);
}

// === Redis ===

/// A key prefix no other test uses; its keys are deleted when dropped.
struct RedisPrefix(String);

impl RedisPrefix {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(format!("authz-test:{name}:{}:{nanos}:", std::process::id()))
    }

    fn backend(&self) -> CacheBackend {
        CacheBackend::Redis(RedisConfig {
            url: redis_url(),
            hmac_key: Secret::new(REDIS_KEY.as_bytes().to_vec()),
            key_prefix: self.0.clone(),
            timeout: Duration::from_millis(500),
        })
    }

    async fn keys(&self) -> Vec<String> {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

#[tokio::test]
async fn redis_shares_memberships_and_flushes_between_replicas() {
    require_redis!();
    let prefix = RedisPrefix::new("shared");
    let dir = Directory::start(&[(ALICE, &["photographers"]), (BOB, &["editors"])]).await;
    let a = spawn(&dir, |d| d.cache = prefix.backend()).await;
    let b = spawn(&dir, |d| d.cache = prefix.backend()).await;
    assert_eq!(a.list(ALICE).await, 200);
    assert_eq!(dir.calls(), 1);
    // The entry is written to Redis after the answer; wait for it before asking B.
    let written = eventually(Duration::from_secs(5), || async {
        prefix
            .keys()
            .await
            .iter()
            .any(|k| k.ends_with("groups:alice@example.com"))
    })
    .await;
    assert!(written.is_some(), "A shares alice's groups");
    assert_eq!(b.list(ALICE).await, 200);
    assert_eq!(dir.calls(), 1, "B answered from Redis");
    assert_eq!(
        b.metric(
            "authz_group_cache_lookups_total",
            &[("result", "shared_hit")]
        )
        .await,
        Some(1.0)
    );
    let (_, ready) = b.readyz().await;
    assert_eq!(ready["groups"]["source"], "http+redis");

    dir.set_groups(ALICE, &[]);
    assert_eq!(b.list(ALICE).await, 200, "B still holds alice");
    let (status, body) = a
        .admin(
            "/admin/groups/flush?user=alice%40example.com",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(
        (status, body["reach"].as_str()),
        (200, Some("shared")),
        "{body}"
    );
    assert_eq!(a.list(ALICE).await, 403);
    let seen = eventually(Duration::from_secs(5), || async {
        b.list(ALICE).await == 403
    })
    .await;
    assert!(seen.is_some(), "the flush on A reaches B");

    assert_eq!(a.list(BOB).await, 200);
    assert_eq!(b.list(BOB).await, 200);
    dir.set_groups(BOB, &[]);
    let (status, _) = b.admin("/admin/groups/flush-all", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(b.list(BOB).await, 403);
    let seen = eventually(Duration::from_secs(5), || async {
        a.list(BOB).await == 403
    })
    .await;
    assert!(seen.is_some(), "the flush-all on B reaches A");
}

#[tokio::test]
async fn an_entry_fetched_before_a_flush_is_not_shared_after_it() {
    require_redis!();
    let prefix = RedisPrefix::new("late-write");
    let dir = Directory::start(&[(ALICE, &["photographers"])]).await;
    dir.set_mode(Mode::Held);
    let a = Arc::new(spawn(&dir, |d| d.cache = prefix.backend()).await);
    let b = spawn(&dir, |d| d.cache = prefix.backend()).await;
    // A asks the directory, which holds the old membership back...
    let early = {
        let a = a.clone();
        tokio::spawn(async move { a.list(ALICE).await })
    };
    let asked = eventually(Duration::from_secs(5), || async { dir.calls() == 1 }).await;
    assert!(asked.is_some());
    // ...while alice is removed and flushed on B.
    dir.set_groups(ALICE, &[]);
    dir.set_mode(Mode::Answer);
    let (status, _) = b
        .admin(
            "/admin/groups/flush?user=alice%40example.com",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    // The old answer (taken before the removal) arrives late: the request in flight may use
    // it, but the entry A writes to Redis afterwards carries the counters from before the flush.
    dir.release(1);
    assert_eq!(early.await.unwrap(), 200);
    let written = eventually(Duration::from_secs(5), || async {
        prefix
            .keys()
            .await
            .iter()
            .any(|k| k.ends_with("groups:alice@example.com"))
    })
    .await;
    assert!(written.is_some(), "A's late write lands in Redis");
    assert_eq!(
        b.list(ALICE).await,
        403,
        "B ignores the entry from before the flush"
    );
    let gone = eventually(Duration::from_secs(5), || async {
        a.list(ALICE).await == 403
    })
    .await;
    assert!(gone.is_some(), "A does not keep the old answer either");
}

#[tokio::test]
async fn redis_down_falls_back_to_the_directory_never_to_allow() {
    // Nothing listens on port 1.
    let backend = CacheBackend::Redis(RedisConfig {
        url: "redis://127.0.0.1:1".into(),
        hmac_key: Secret::new(REDIS_KEY.as_bytes().to_vec()),
        key_prefix: "authz-test-down:".into(),
        timeout: Duration::from_millis(200),
    });
    let mut dir = Directory::start(&[(ALICE, &["photographers"])]).await;
    let app = spawn(&dir, |d| d.cache = backend).await;
    assert_eq!(app.list(ALICE).await, 200);
    assert_eq!(dir.calls(), 1);
    assert!(
        app.metric("authz_redis_errors_total", &[("op", "get")])
            .await
            >= Some(1.0)
    );
    let (status, body) = app
        .admin(
            "/admin/groups/flush?user=alice%40example.com",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!((status, body["reach"].as_str()), (503, Some("local_only")));
    dir.wait_stopped().await;
    assert_eq!(
        app.list(ALICE).await,
        503,
        "Redis and the directory down: no answer"
    );
}

// === The binary ===

/// Waits for a stdout line of the running binary that holds `needle`.
async fn line_with(out: &std::path::Path, needle: &str) -> String {
    let mut found = None;
    let seen = eventually(Duration::from_secs(15), || {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        found = text.lines().find(|l| l.contains(needle)).map(String::from);
        let done = found.is_some();
        async move { done }
    })
    .await;
    let text = std::fs::read_to_string(out).unwrap_or_default();
    assert!(seen.is_some(), "no line with {needle:?} in:\n{text}");
    found.unwrap()
}

#[tokio::test]
async fn tokens_never_reach_the_logs_and_failures_say_why() {
    let dir = Directory::start(&[(ALICE, &["photographers"])]).await;
    dir.set_mode(Mode::Status(500));
    let work = tempfile::tempdir().unwrap();
    copy_policies(&work.path().join("policies"));
    let out = work.path().join("stdout.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authz"))
        .current_dir(work.path())
        .env_clear()
        .envs([
            ("PROXY_SHARED_SECRET", SECRET),
            ("RUST_LOG", "trace"),
            ("LOG_FILE", "logs/app.json"),
            ("AUTHZ_LISTEN", "127.0.0.1:0"),
            ("AUTHZ_GRPC_LISTEN", "off"),
            ("GROUP_SOURCE", "http"),
            ("AUTH_SERVER_URL", &dir.url()),
            ("AUTH_API_TOKEN", TOKEN),
            ("AUTHZ_ADMIN_LISTEN", "127.0.0.1:0"),
            ("AUTHZ_ADMIN_TOKEN", ADMIN_TOKEN),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let listen = |line: String| {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["listen"].as_str().unwrap().to_string()
    };
    let addr = listen(line_with(&out, "authz listening").await);
    let admin = listen(line_with(&out, "admin endpoints listening").await);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let status = client
        .get(format!("http://{addr}/auth"))
        .header("x-proxy-secret", SECRET)
        .header("x-user-email", ALICE)
        .header("x-original-method", "GET")
        .header("x-original-uri", "/api/projects")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503);
    let failure = line_with(&out, "directory lookup failed").await;
    assert!(
        failure.contains("HTTP 500"),
        "the cause is logged: {failure}"
    );
    let wrong = format!("{ADMIN_TOKEN}-wrong");
    for token in [ADMIN_TOKEN, wrong.as_str()] {
        client
            .post(format!("http://{admin}/admin/groups/flush-all"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    }
    line_with(&out, "group cache flushed").await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(
        child.wait().unwrap().success(),
        "SIGTERM drains and exits 0"
    );
    let stdout = std::fs::read_to_string(&out).unwrap();
    let log = std::fs::read_to_string(work.path().join("logs/app.json")).unwrap();
    for text in [stdout, log] {
        assert!(text.contains("directory lookup failed"));
        for secret in [TOKEN, ADMIN_TOKEN, SECRET] {
            assert!(!text.contains(secret), "{secret} leaked");
            assert!(!text.contains(&secret[..12]), "part of {secret} leaked");
        }
    }
}
