//! A caching `GroupSource`: memberships kept for a TTL by an injected clock, one upstream call
//! per user however many ask at once, the last known value on failure within a grace, flushes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cached::{Cached, LruCache};
use futures_util::FutureExt;

use ipm_policy::groups::{GroupError, GroupFuture, GroupSource, Groups};
use ipm_policy::identity::Email;

use crate::clock::Clock;
use crate::config::{CacheBackend, DirectoryConfig, GroupSourceKind};
use crate::groups::directory::{Directory, DirectoryError};
use crate::groups::redis::{Flush, RedisCache, RedisCacheError};
use crate::metrics::{Metrics, ResultLabels};

mod flight;

use flight::{FlightSlot, Inner, Outcome, fetch, lock};

/// How long memberships are used.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Used without asking again for this long.
    pub ttl: Duration,
    /// Used for this long past the TTL while the directory fails; zero is off.
    pub stale: Duration,
    /// Users kept in memory; the least recently used go first.
    pub max_users: usize,
}

/// Why a cache could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GroupCacheError {
    #[error("GROUP_CACHE_MAX_USERS: {0}")]
    Size(String),
    #[error("AUTH_SERVER_URL: {0}")]
    Directory(#[from] DirectoryError),
    #[error("REDIS_URL: {0}")]
    Redis(#[from] RedisCacheError),
}

/// What a flush reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushReach {
    /// This process holds the only cache.
    Local,
    /// Every replica sharing the Redis cache.
    Shared,
    /// This process only: Redis did not take the flush, so other replicas keep their copies
    /// until it does or their entries expire.
    LocalOnly(String),
}

/// Group memberships from a slower source, cached. Cheap to clone.
#[derive(Clone)]
pub struct GroupCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GroupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCache")
            .field("kind", &self.inner.kind)
            .field("source", &self.inner.source.kind())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl GroupCache {
    /// A cache in front of `source`; with `shared`, memberships are also kept in Redis for
    /// every replica, and flushes announced there reach this cache (see `listen_for_flushes`).
    pub fn new(
        source: Arc<dyn GroupSource>,
        shared: Option<Arc<RedisCache>>,
        settings: CacheSettings,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, GroupCacheError> {
        let local = LruCache::builder()
            .max_size(settings.max_users)
            .build()
            .map_err(|e| GroupCacheError::Size(e.to_string()))?;
        let kind = if shared.is_some() {
            "http+redis"
        } else {
            "http+memory"
        };
        Ok(Self {
            inner: Arc::new(Inner {
                source,
                shared,
                clock,
                settings,
                local: Mutex::new(local),
                flights: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
                next_flight: AtomicU64::new(0),
                listener: Mutex::new(None),
                counters: Outcome::ALL.map(|o| {
                    metrics
                        .group_cache
                        .get_or_create(&ResultLabels { result: o.label() })
                        .clone()
                }),
                kind,
            }),
        })
    }

    /// The cached directory `GROUP_SOURCE=http` asks for, or `None` for the groups file.
    /// With Redis, it starts listening for flushes, so it must run inside the runtime.
    pub fn from_config(
        config: &DirectoryConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Self>, GroupCacheError> {
        if config.source == GroupSourceKind::File {
            return Ok(None);
        }
        let directory = Directory::new(config, metrics.clone())?;
        tracing::info!(
            target: "authz::groups",
            directory = %directory.url_template(),
            ttl_s = config.cache_ttl.as_secs(),
            stale_s = config.cache_stale.as_secs(),
            max_users = config.cache_max_users,
            shared = matches!(config.cache, CacheBackend::Redis(_)),
            "groups from the directory, cached"
        );
        let settings = CacheSettings {
            ttl: config.cache_ttl,
            stale: config.cache_stale,
            max_users: config.cache_max_users,
        };
        let shared = match &config.cache {
            CacheBackend::Memory => None,
            CacheBackend::Redis(redis) => Some(Arc::new(RedisCache::new(
                redis,
                settings.ttl + settings.stale,
                metrics.clone(),
            )?)),
        };
        let cache = Self::new(Arc::new(directory), shared, settings, clock, metrics)?;
        cache.listen_for_flushes();
        Ok(Some(cache))
    }

    /// Subscribes to the flushes other replicas announce. Call once, inside the runtime.
    pub fn listen_for_flushes(&self) {
        let Some(shared) = &self.inner.shared else {
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let task = shared.subscribe(Arc::new(move |flush: &Flush| {
            if let Some(inner) = weak.upgrade() {
                match flush {
                    Flush::User(user) => inner.flush_local_user(user),
                    Flush::All => inner.flush_local_all(),
                }
            }
        }));
        if let Some(old) = lock(&self.inner.listener).replace(task) {
            old.abort();
        }
    }

    pub fn settings(&self) -> CacheSettings {
        self.inner.settings
    }

    /// Users held in memory.
    pub fn len(&self) -> usize {
        lock(&self.inner.local).cache_size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The user's groups: from memory while fresh, otherwise from one fetch shared by every
    /// caller asking for that user meanwhile.
    pub async fn lookup(&self, user: &Email) -> Result<Groups, GroupError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        if let Some(groups) = inner.fresh_local(user, now) {
            inner.count(Outcome::Hit);
            return Ok(groups);
        }
        let (flight, result) = {
            let mut flights = lock(&inner.flights);
            if let Some(slot) = flights.get(user) {
                (slot.flight.clone(), Outcome::Coalesced)
            } else if let Some(groups) = inner.fresh_local(user, inner.clock.now()) {
                // A fetch finished between the first look and taking the lock.
                drop(flights);
                inner.count(Outcome::Hit);
                return Ok(groups);
            } else {
                let id = inner.next_flight.fetch_add(1, Ordering::Relaxed);
                // Spawned, so the fetch completes and fills the cache even if every caller
                // gives up waiting.
                let task = tokio::spawn(fetch(self.inner.clone(), user.clone(), id));
                let flight = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(GroupError::Unavailable(format!(
                            "the group lookup stopped: {e}"
                        )))
                    })
                }
                .boxed()
                .shared();
                flights.insert(
                    user.clone(),
                    FlightSlot {
                        id,
                        flight: flight.clone(),
                    },
                );
                (flight, Outcome::Miss)
            }
        };
        inner.count(result);
        flight.await
    }

    /// Forgets one user here and, with Redis, on every replica.
    pub async fn flush_user(&self, user: &Email) -> FlushReach {
        self.inner.flush_local_user(user);
        match &self.inner.shared {
            None => FlushReach::Local,
            Some(shared) => match shared.flush_user(user).await {
                Ok(()) => FlushReach::Shared,
                Err(e) => FlushReach::LocalOnly(e.to_string()),
            },
        }
    }

    /// Forgets everyone here and, with Redis, on every replica.
    pub async fn flush_all(&self) -> FlushReach {
        self.inner.flush_local_all();
        match &self.inner.shared {
            None => FlushReach::Local,
            Some(shared) => match shared.flush_all().await {
                Ok(()) => FlushReach::Shared,
                Err(e) => FlushReach::LocalOnly(e.to_string()),
            },
        }
    }
}

impl GroupSource for GroupCache {
    fn groups<'a>(&'a self, user: &'a Email) -> GroupFuture<'a> {
        Box::pin(self.lookup(user))
    }

    fn kind(&self) -> &'static str {
        self.inner.kind
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;

    /// A source that answers from a script and counts its calls; a gate holds answers back.
    struct Scripted {
        calls: AtomicUsize,
        answers: Mutex<VecDeque<Result<Vec<&'static str>, &'static str>>>,
        gate: tokio::sync::Semaphore,
    }

    impl Scripted {
        fn new(answers: Vec<Result<Vec<&'static str>, &'static str>>, open: bool) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicUsize::new(0),
                answers: Mutex::new(answers.into()),
                gate: tokio::sync::Semaphore::new(if open { 1_000_000 } else { 0 }),
            })
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl GroupSource for Scripted {
        fn groups<'a>(&'a self, _user: &'a Email) -> GroupFuture<'a> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let _permit = self.gate.acquire().await.unwrap();
                let next = lock(&self.answers).pop_front().expect("a scripted answer");
                next.map(|g| g.into_iter().map(String::from).collect::<Vec<_>>().into())
                    .map_err(|e| GroupError::Unavailable(e.into()))
            })
        }

        fn kind(&self) -> &'static str {
            "scripted"
        }
    }

    /// Waits for `cond`, failing after ten seconds rather than hanging.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while !cond() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting: {what}");
    }

    fn cache(source: Arc<Scripted>, stale: u64) -> (GroupCache, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
        let c = GroupCache::new(
            source,
            None,
            CacheSettings {
                ttl: Duration::from_secs(300),
                stale: Duration::from_secs(stale),
                max_users: 2,
            },
            clock.clone(),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        (c, clock)
    }

    fn user(s: &str) -> Email {
        s.parse().unwrap()
    }

    fn names(g: &Groups) -> Vec<&str> {
        g.iter().map(String::as_str).collect()
    }

    #[tokio::test]
    async fn hits_until_the_clock_passes_the_ttl() {
        let src = Scripted::new(vec![Ok(vec!["a"]), Ok(vec!["b"])], true);
        let (c, clock) = cache(src.clone(), 0);
        let alice = user("alice@example.com");
        assert_eq!(names(&c.lookup(&alice).await.unwrap()), ["a"]);
        clock.advance(Duration::from_secs(299));
        assert_eq!(names(&c.lookup(&alice).await.unwrap()), ["a"]);
        assert_eq!(src.calls(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(names(&c.lookup(&alice).await.unwrap()), ["b"]);
        assert_eq!(src.calls(), 2);
    }

    #[tokio::test]
    async fn caches_an_empty_membership() {
        let src = Scripted::new(vec![Ok(vec![])], true);
        let (c, _) = cache(src.clone(), 0);
        let nobody = user("nobody@example.com");
        assert!(c.lookup(&nobody).await.unwrap().is_empty());
        assert!(c.lookup(&nobody).await.unwrap().is_empty());
        assert_eq!(src.calls(), 1);
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_call() {
        let src = Scripted::new(vec![Ok(vec!["a"])], false);
        let (c, _) = cache(src.clone(), 0);
        let alice = user("alice@example.com");
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let c = c.clone();
                let alice = alice.clone();
                tokio::spawn(async move { c.lookup(&alice).await })
            })
            .collect();
        // Every caller is waiting on the one call before it is allowed to answer.
        let joined = || c.inner.counters[Outcome::Coalesced as usize].get();
        until("all callers wait", || joined() == 99).await;
        src.gate.add_permits(1);
        for w in waiters {
            assert_eq!(names(&w.await.unwrap().unwrap()), ["a"]);
        }
        assert_eq!(src.calls(), 1);
    }

    #[tokio::test]
    async fn stale_grace_serves_the_last_value_then_stops() {
        let src = Scripted::new(vec![Ok(vec!["a"]), Err("down"), Err("down")], true);
        let (c, clock) = cache(src.clone(), 60);
        let alice = user("alice@example.com");
        c.lookup(&alice).await.unwrap();
        clock.advance(Duration::from_secs(300 + 60));
        assert_eq!(names(&c.lookup(&alice).await.unwrap()), ["a"]);
        clock.advance(Duration::from_secs(1));
        assert!(c.lookup(&alice).await.is_err());
    }

    #[tokio::test]
    async fn without_grace_a_failure_is_an_error() {
        let src = Scripted::new(vec![Ok(vec!["a"]), Err("down")], true);
        let (c, clock) = cache(src.clone(), 0);
        let alice = user("alice@example.com");
        c.lookup(&alice).await.unwrap();
        clock.advance(Duration::from_secs(300));
        assert!(c.lookup(&alice).await.is_err());
    }

    #[tokio::test]
    async fn a_flush_forgets_and_voids_stale() {
        let src = Scripted::new(
            vec![Ok(vec!["a"]), Ok(vec!["b"]), Err("down"), Ok(vec!["c"])],
            true,
        );
        let (c, _) = cache(src.clone(), 3600);
        let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
        c.lookup(&alice).await.unwrap();
        c.lookup(&bob).await.unwrap();
        assert_eq!(c.flush_user(&alice).await, FlushReach::Local);
        // Flushed, then the directory fails: no stale value for a flushed user.
        assert!(c.lookup(&alice).await.is_err());
        assert_eq!(names(&c.lookup(&bob).await.unwrap()), ["b"]);
        assert_eq!(c.flush_all().await, FlushReach::Local);
        assert!(c.is_empty());
        assert_eq!(names(&c.lookup(&bob).await.unwrap()), ["c"]);
        assert_eq!(src.calls(), 4);
    }

    #[tokio::test]
    async fn a_fetch_in_flight_during_a_flush_is_not_kept_nor_joined() {
        let src = Scripted::new(vec![Ok(vec!["old"]), Ok(vec!["new"])], false);
        let (c, _) = cache(src.clone(), 0);
        let alice = user("alice@example.com");
        let early = {
            let c = c.clone();
            let alice = alice.clone();
            tokio::spawn(async move { c.lookup(&alice).await })
        };
        until("the first call starts", || src.calls() == 1).await;
        c.flush_user(&alice).await;
        let late = {
            let c = c.clone();
            let alice = alice.clone();
            tokio::spawn(async move { c.lookup(&alice).await })
        };
        until("a second call starts", || src.calls() == 2).await;
        // The semaphore is fair: the first permit goes to the first call.
        src.gate.add_permits(1);
        assert_eq!(names(&early.await.unwrap().unwrap()), ["old"]);
        src.gate.add_permits(1);
        assert_eq!(names(&late.await.unwrap().unwrap()), ["new"]);
        assert_eq!(names(&c.lookup(&alice).await.unwrap()), ["new"]);
        assert_eq!(src.calls(), 2);
    }

    #[tokio::test]
    async fn a_fetch_that_straddles_a_flush_is_not_kept() {
        let src = Scripted::new(vec![Ok(vec!["old"]), Ok(vec!["new"])], false);
        let (c, _) = cache(src.clone(), 0);
        let alice = user("alice@example.com");
        let early = {
            let c = c.clone();
            let alice = alice.clone();
            tokio::spawn(async move { c.lookup(&alice).await })
        };
        until("the first call starts", || src.calls() == 1).await;
        c.flush_user(&alice).await;
        src.gate.add_permits(2);
        assert_eq!(names(&early.await.unwrap().unwrap()), ["old"]);
        assert_eq!(names(&c.lookup(&alice).await.unwrap()), ["new"]);
        assert_eq!(src.calls(), 2);
    }

    #[tokio::test]
    async fn keeps_at_most_max_users() {
        let src = Scripted::new(vec![Ok(vec![]), Ok(vec![]), Ok(vec![])], true);
        let (c, _) = cache(src.clone(), 0);
        for u in ["a@example.com", "b@example.com", "c@example.com"] {
            c.lookup(&user(u)).await.unwrap();
        }
        assert_eq!(c.len(), 2);
    }
}
