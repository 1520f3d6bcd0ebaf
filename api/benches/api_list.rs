//! `GET /api/projects` latency with 100k projects across 1k groups in PostgreSQL, for a user
//! in 10 groups and for an admin (who may read every project), with the shipped policies and
//! then with 1,000 per-project policies added; `/healthz` on the same server in the same run
//! is the baseline.
//!
//! `cargo bench -p ipm-api --bench api_list` (or `benches/api_list.sh`). Needs PostgreSQL at
//! `TEST_PG_ADMIN_URL` [postgres://postgres@127.0.0.1:5432/postgres] (says so and does nothing
//! without it); creates and drops its own database. `BENCH_REQUESTS` [3000] requests per measurement, one at a time. Results go to
//! stderr; the server's JSON logs to stdout (the script discards them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use ipm_api::config::Config;
use ipm_testkit::{PgDatabase, copy_policies, require_postgres};
use sqlx::Connection;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
const USER: &str = "ten@example.com";
const ADMIN: &str = "admin@example.com";
/// Per-project policies in the second round.
const PER_PROJECT: usize = 1_000;
const PROJECTS: usize = 100_000;
const GROUPS: usize = 1_000;
const USER_GROUPS: usize = 10;

/// 100 projects per group, ids in creation order, inserted 10k at a time; returns the ids.
async fn seed(url: &str) -> Vec<uuid::Uuid> {
    let mut all = Vec::with_capacity(PROJECTS);
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    for chunk in 0..PROJECTS / 10_000 {
        let mut ids = Vec::with_capacity(10_000);
        let mut groups = Vec::with_capacity(10_000);
        let mut names = Vec::with_capacity(10_000);
        for i in chunk * 10_000..(chunk + 1) * 10_000 {
            ids.push(uuid::Uuid::now_v7());
            groups.push(format!("g{}", i % GROUPS));
            names.push(format!("project {i}"));
        }
        sqlx::query(
            "INSERT INTO projects (id, meta_group_id, name, description, created_by, created_at, updated_at) \
             SELECT id, g, n, '', 'seed@example.com', $4, $4 FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS t(id, g, n)",
        )
        .bind(&ids)
        .bind(&groups)
        .bind(&names)
        .bind(now)
        .execute(&mut conn)
        .await
        .unwrap();
        all.extend(ids);
    }
    sqlx::raw_sql("ANALYZE projects")
        .execute(&mut conn)
        .await
        .unwrap();
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Stats {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn measure(client: &reqwest::Client, url: &str, user: Option<&str>, n: usize) -> Stats {
    let send = || {
        let mut r = client.get(url);
        if let Some(user) = user {
            r = r
                .header("x-proxy-secret", SECRET)
                .header("x-user-email", user);
        }
        r.send()
    };
    for _ in 0..200 {
        let r = send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        r.bytes().await.unwrap();
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let r = send().await.unwrap();
        let status = r.status();
        r.bytes().await.unwrap();
        times.push(start.elapsed());
        assert_eq!(status, 200);
    }
    times.sort();
    Stats {
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        max: times[times.len() - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    require_postgres!();
    let requests: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    // Dropped (connections and all) when `run` returns or panics.
    let db = PgDatabase::create().await;
    run(db.url.clone(), requests).await;
}

async fn run(url: String, requests: usize) {
    let root = tempfile::tempdir().unwrap();
    let policy_dir = root.path().join("policies");
    copy_policies(&policy_dir);
    // 1k groups; the user is in 10 of them (g0, g100, …, g900).
    let mut groups = String::from("[groups]\n");
    for g in 0..GROUPS {
        let members = if g % (GROUPS / USER_GROUPS) == 0 {
            format!("[\"{USER}\"]")
        } else {
            "[\"someone@example.com\"]".into()
        };
        groups.push_str(&format!("g{g} = {members}\n"));
    }
    groups.push_str(&format!("admins = [\"{ADMIN}\"]\n"));
    let groups_file = policy_dir.join("groups.toml");
    std::fs::write(&groups_file, groups).unwrap();

    // Logged as in production (JSON to stdout and a file), so the figures include it.
    let _logs = ipm_runtime::telemetry::init(Some(&root.path().join("app.json"))).unwrap();
    let mut config = Config::for_test(&policy_dir, &groups_file, SECRET, &url);
    config.db_max_connections = 10;
    let handle = ipm_api::server::run(config).await.unwrap();
    let started = Instant::now();
    let ids = seed(&url).await;
    eprintln!(
        "seeded {PROJECTS} projects in {GROUPS} groups in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let addr = handle.tcp_addr().unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    eprintln!(
        "\n{requests} sequential requests each, after 200 warm-up; PostgreSQL, {PROJECTS} projects, {USER} in {USER_GROUPS} of {GROUPS} groups, {ADMIN} in admins\n"
    );
    eprintln!(
        "{:<58} {:>10} {:>10} {:>10} {:>8}",
        "request", "p50", "p99", "max", "p50/base"
    );
    let base = measure(&client, &format!("http://{addr}/healthz"), None, requests).await;
    report(
        "GET /healthz (baseline: no auth, no database)",
        &base,
        &base,
    );
    round(
        &client,
        &addr.to_string(),
        requests,
        &base,
        "shipped policies",
    )
    .await;

    // Every 103rd project gets its own policy, hidden from everyone but admins: about 1,000,
    // in every group, ten of them in the user's.
    let mut text = String::new();
    for (n, id) in ids.iter().step_by(PROJECTS / PER_PROJECT + 3).enumerate() {
        text.push_str(&format!(
            "@id(\"hide-{n}\")\nforbid (principal, action == Action::\"ReadProject\", resource == Project::\"{id}\") unless {{ principal in Group::\"admins\" }};\n"
        ));
    }
    std::fs::write(policy_dir.join("per-project.cedar"), text).unwrap();
    handle.reload_now();
    let want =
        ipm_policy::snapshot::hash_sources(&ipm_policy::snapshot::read_dir(&policy_dir).unwrap());
    let ready = ipm_testkit::eventually(Duration::from_secs(30), || async {
        let v: serde_json::Value = client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["policies"]["hash"] == want.as_str()
    })
    .await;
    if ready.is_none() {
        let v: serde_json::Value = client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        panic!("the per-project policies did not load within 30 s: {v}");
    }
    round(
        &client,
        &addr.to_string(),
        requests,
        &base,
        &format!("+{PER_PROJECT} per-project policies"),
    )
    .await;
    handle.shutdown().await;
}

fn report(label: &str, s: &Stats, base: &Stats) {
    eprintln!(
        "{label:<58} {:>10} {:>10} {:>10} {:>7.1}x",
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        s.p50.as_secs_f64() / base.p50.as_secs_f64()
    );
}

/// The cursor after the first 500 projects `user` sees.
async fn deep_cursor(client: &reqwest::Client, addr: &str, user: &str) -> String {
    let mut cursor = String::new();
    for _ in 0..5 {
        let after = if cursor.is_empty() {
            String::new()
        } else {
            format!("&cursor={cursor}")
        };
        let page: serde_json::Value = client
            .get(format!("http://{addr}/api/projects?limit=100{after}"))
            .header("x-proxy-secret", SECRET)
            .header("x-user-email", user)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 100, "{user}");
        cursor = page["next_cursor"].as_str().unwrap().to_string();
    }
    cursor
}

/// The first page and a page after 500, for the user in 10 groups and for the admin.
async fn round(
    client: &reqwest::Client,
    addr: &str,
    requests: usize,
    base: &Stats,
    policies: &str,
) {
    for user in [USER, ADMIN] {
        let deep = deep_cursor(client, addr, user).await;
        let cases = [
            ("first page, 50", format!("http://{addr}/api/projects")),
            (
                "page after 500, 50",
                format!("http://{addr}/api/projects?cursor={deep}"),
            ),
        ];
        for (what, url) in cases {
            let s = measure(client, &url, Some(user), requests).await;
            let who = if user == ADMIN { "admin" } else { "10 groups" };
            report(&format!("{who}, {what} ({policies})"), &s, base);
        }
    }
}
