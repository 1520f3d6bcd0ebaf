//! Decision latency with groups from the directory cache (a hit) beside the groups file, in
//! one run, and the directory calls 10,000 requests over 1,000 users make.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use ipm_policy::groups::{FileGroups, GroupSource};
use ipm_policy::identity::Email;
use ipm_policy::request::{AuthzRequest, HeaderField};
use ipm_policy::secret::{Secret, SecretSet};
use ipm_policy::store::PolicyStore;
use ipm_runtime::clock::SystemClock;
use ipm_runtime::config::{DirectoryConfig, GroupSourceKind};
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::groups::cache::{CacheSettings, GroupCache};
use ipm_runtime::groups::directory::Directory;
use ipm_runtime::metrics::Metrics;
use warp::Filter;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| unreachable!("{e}"))
}

/// A directory on loopback giving everyone the groups bob has in the shipped groups file.
fn start_directory(rt: &tokio::runtime::Runtime, calls: Arc<AtomicUsize>) -> SocketAddr {
    let route = warp::path!("api" / "user" / String / "groups").map(move |_user: String| {
        calls.fetch_add(1, Ordering::Relaxed);
        warp::reply::json(&serde_json::json!({ "groups": ["photographers", "editors"] }))
    });
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| unreachable!("{e}"));
        tokio::spawn(warp::serve(route).incoming(l).run());
        addr
    })
}

fn cached_directory(addr: SocketAddr, metrics: Arc<Metrics>) -> GroupCache {
    let config = DirectoryConfig {
        source: GroupSourceKind::Http,
        server_url: Some(format!("http://{addr}")),
        api_token: Some(Secret::new("bench-token")),
        ..DirectoryConfig::default()
    };
    let directory =
        Directory::new(&config, metrics.clone()).unwrap_or_else(|e| unreachable!("{e}"));
    GroupCache::new(
        Arc::new(directory),
        None,
        CacheSettings {
            ttl: config.cache_ttl,
            stale: config.cache_stale,
            max_users: config.cache_max_users,
        },
        Arc::new(SystemClock::new()),
        metrics,
    )
    .unwrap_or_else(|e| unreachable!("{e}"))
}

/// Directory calls made by `requests` lookups spread over `users`, 25 callers at a time.
fn calls_for(rt: &tokio::runtime::Runtime, requests: usize, users: usize) -> (usize, Duration) {
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = start_directory(rt, calls.clone());
    let cache = cached_directory(addr, Arc::new(Metrics::new()));
    let workers = 25;
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..workers {
            let cache = cache.clone();
            tasks.spawn(async move {
                for n in 0..requests / workers {
                    let i = (w * (requests / workers) + n) * 7 % users;
                    let user: Email = format!("user{i}@example.com")
                        .parse()
                        .unwrap_or_else(|e| unreachable!("{e:?}"));
                    let _ = cache.lookup(&user).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    (calls.load(Ordering::Relaxed), started.elapsed())
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let store = Arc::new(PolicyStore::load(&policies).unwrap_or_else(|e| unreachable!("{e}")));
    let file = Arc::new(
        FileGroups::load(&policies.join("groups.toml")).unwrap_or_else(|e| unreachable!("{e}")),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = start_directory(&rt, calls.clone());
    let metrics = Arc::new(Metrics::new());
    let cache = cached_directory(addr, metrics.clone());
    let bob: Email = "bob@example.com"
        .parse()
        .unwrap_or_else(|e| unreachable!("{e}"));
    let warmed = rt
        .block_on(cache.lookup(&bob))
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(
        &*warmed,
        &["editors".to_string(), "photographers".to_string()]
    );

    let secrets = SecretSet::new(&Secret::new(SECRET), None);
    let with_file = Enforcer::new(
        store.clone(),
        file.clone(),
        Some(secrets.clone()),
        metrics.clone(),
    );
    let with_cache = Enforcer::new(store, Arc::new(cache.clone()), Some(secrets), metrics);
    let req = AuthzRequest {
        method: HeaderField::One(b"GET"),
        uri: HeaderField::One(b"/api/projects?limit=20"),
        user: HeaderField::One(b"bob@example.com"),
        secret: HeaderField::One(SECRET.as_bytes()),
        client_ip: Some([10, 0, 0, 1].into()),
    };
    // A hit never waits, so the future is ready at once, as the file source's is.
    let allowed = |e: &Enforcer| {
        e.authorize(&req, "bench")
            .now_or_never()
            .is_some_and(|d| d.is_allowed())
    };
    assert!(allowed(&with_file) && allowed(&with_cache));

    let mut g = c.benchmark_group("groups");
    g.bench_function("decision_file_source", |b| {
        b.iter(|| black_box(with_file.authorize(black_box(&req), "bench").now_or_never()))
    });
    g.bench_function("decision_directory_cache_hit", |b| {
        b.iter(|| {
            black_box(
                with_cache
                    .authorize(black_box(&req), "bench")
                    .now_or_never(),
            )
        })
    });
    g.bench_function("lookup_file", |b| {
        b.iter(|| black_box(file.groups(black_box(&bob)).now_or_never()))
    });
    g.bench_function("lookup_cache_hit", |b| {
        b.iter(|| black_box(cache.lookup(black_box(&bob)).now_or_never()))
    });
    // What a hit saves: a flush, then one call to the directory over loopback.
    g.bench_function("lookup_cache_miss_loopback_directory", |b| {
        b.iter(|| {
            rt.block_on(async {
                cache.flush_user(&bob).await;
                black_box(cache.lookup(&bob).await)
            })
        })
    });
    g.finish();

    // The machine is shared, so also alternate short batches of each and compare medians:
    // a burst of load then hits both sides alike.
    let mut file_ns = Vec::new();
    let mut cache_ns = Vec::new();
    let batch = |e: &Enforcer| {
        let started = Instant::now();
        for _ in 0..2_000 {
            black_box(e.authorize(black_box(&req), "bench").now_or_never());
        }
        started.elapsed().as_nanos() as f64 / 2_000.0
    };
    for _ in 0..41 {
        file_ns.push(batch(&with_file));
        cache_ns.push(batch(&with_cache));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, h) = (median(&mut file_ns), median(&mut cache_ns));
    println!(
        "groups/decision_paired: file source {:.2} µs, directory cache hit {:.2} µs, ratio {:.3}",
        f / 1000.0,
        h / 1000.0,
        h / f
    );

    let (calls, took) = calls_for(&rt, 10_000, 1_000);
    println!(
        "groups/directory_calls: {calls} directory calls for 10000 requests over 1000 users (target 1000), {took:?}"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
