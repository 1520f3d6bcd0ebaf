//! The cache's moving parts: one fetch in flight per user (joined by concurrent misses), the
//! entries and their generation (bumped by flushes), the lookup counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cached::{Cached, LruCache};
use futures_util::future::{BoxFuture, Shared};
use ipm_policy::groups::{GroupError, GroupSource, Groups};
use ipm_policy::identity::Email;
use prometheus_client::metrics::counter::Counter;

use super::CacheSettings;
use crate::clock::Clock;
use crate::groups::CachedGroups;
use crate::groups::redis::RedisCache;

pub(super) type Flight = Shared<BoxFuture<'static, Result<Groups, GroupError>>>;

/// How a lookup was answered, for `authz_group_cache_lookups_total`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Outcome {
    /// Fresh in memory.
    Hit,
    /// Started a fetch.
    Miss,
    /// Joined a fetch already under way.
    Coalesced,
    /// A fetch answered from Redis.
    SharedHit,
    /// A fetch failed and the last known value was used.
    Stale,
}

impl Outcome {
    pub(super) const ALL: [Self; 5] = [
        Self::Hit,
        Self::Miss,
        Self::Coalesced,
        Self::SharedHit,
        Self::Stale,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Coalesced => "coalesced",
            Self::SharedHit => "shared_hit",
            Self::Stale => "stale",
        }
    }
}

pub(super) struct FlightSlot {
    pub(super) id: u64,
    pub(super) flight: Flight,
}

pub(super) struct Inner {
    pub(super) source: Arc<dyn GroupSource>,
    pub(super) shared: Option<Arc<RedisCache>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) settings: CacheSettings,
    pub(super) local: Mutex<LruCache<Email, CachedGroups>>,
    pub(super) flights: Mutex<HashMap<Email, FlightSlot>>,
    /// Bumped by every flush, under the `local` lock: a fetch that started before a flush
    /// must not store what it found.
    pub(super) generation: AtomicU64,
    pub(super) next_flight: AtomicU64,
    pub(super) listener: Mutex<Option<tokio::task::AbortHandle>>,
    /// Resolved once: a hit costs an atomic add, not a label lookup.
    pub(super) counters: [Counter; Outcome::ALL.len()],
    pub(super) kind: &'static str,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = lock(&self.listener).take() {
            h.abort();
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; if one ever did, the data is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    pub(super) fn count(&self, outcome: Outcome) {
        self.counters[outcome as usize].inc();
    }

    pub(super) fn is_fresh(&self, entry: &CachedGroups, now: Duration) -> bool {
        now.saturating_sub(entry.fetched_at) < self.settings.ttl
    }

    pub(super) fn fresh_local(&self, user: &Email, now: Duration) -> Option<Groups> {
        let mut local = lock(&self.local);
        let entry = local.cache_get(user)?;
        self.is_fresh(entry, now).then(|| entry.groups.clone())
    }

    /// Stores what a fetch found, unless a flush happened since it started.
    pub(super) fn store(&self, generation: u64, user: &Email, entry: CachedGroups) {
        let mut local = lock(&self.local);
        if self.generation.load(Ordering::SeqCst) == generation {
            local.cache_set(user.clone(), entry);
        }
    }

    /// The last known value, however old, unless a flush happened since `generation`.
    pub(super) fn last_known(&self, generation: u64, user: &Email) -> Option<CachedGroups> {
        let mut local = lock(&self.local);
        if self.generation.load(Ordering::SeqCst) != generation {
            return None;
        }
        local.cache_get(user).cloned()
    }

    pub(super) fn flush_local_user(&self, user: &Email) {
        {
            let mut local = lock(&self.local);
            self.generation.fetch_add(1, Ordering::SeqCst);
            let _ = local.cache_remove(user);
        }
        // Later callers must not join a fetch that may carry the old membership.
        lock(&self.flights).remove(user);
    }

    pub(super) fn flush_local_all(&self) {
        {
            let mut local = lock(&self.local);
            self.generation.fetch_add(1, Ordering::SeqCst);
            local.cache_clear();
        }
        lock(&self.flights).clear();
    }
}

/// Removes a fetch from the table of fetches in flight when it ends, however it ends.
pub(super) struct FlightGuard {
    pub(super) inner: Arc<Inner>,
    pub(super) user: Email,
    pub(super) id: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut flights = lock(&self.inner.flights);
        // A flush may have replaced it with a newer fetch, which stays.
        if flights.get(&self.user).is_some_and(|s| s.id == self.id) {
            flights.remove(&self.user);
        }
    }
}

/// One fetch for one user: Redis first when shared, then the source; on failure, the last
/// known value if it expired at most `stale` ago, else the error.
pub(super) async fn fetch(inner: Arc<Inner>, user: Email, id: u64) -> Result<Groups, GroupError> {
    let _guard = FlightGuard {
        inner: inner.clone(),
        user: user.clone(),
        id,
    };
    let generation = inner.generation.load(Ordering::SeqCst);
    let started = inner.clock.now();
    let mut tag = None;
    let mut shared_last = None;
    if let Some(shared) = &inner.shared {
        // Errors are counted and logged there; the directory answers instead.
        if let Ok(read) = shared.get(&user, inner.clock.now()).await {
            tag = Some(read.tag);
            if let Some(entry) = read.entry {
                if inner.is_fresh(&entry, inner.clock.now()) {
                    let groups = entry.groups.clone();
                    inner.store(generation, &user, entry);
                    inner.count(Outcome::SharedHit);
                    return Ok(groups);
                }
                shared_last = Some(entry);
            }
        }
    }
    match inner.source.groups(&user).await {
        Ok(groups) => {
            // Dated from the start of the call: the answer may be older than its arrival.
            let entry = CachedGroups {
                groups: groups.clone(),
                fetched_at: started,
            };
            inner.store(generation, &user, entry.clone());
            if let (Some(shared), Some(tag)) = (&inner.shared, tag) {
                let shared = shared.clone();
                tokio::spawn(async move { shared.put(&user, tag, &entry).await });
            }
            Ok(groups)
        }
        Err(err) => {
            let grace = inner.settings.stale;
            if grace.is_zero() {
                return Err(err);
            }
            let now = inner.clock.now();
            let limit = inner.settings.ttl + grace;
            let local = inner.last_known(generation, &user);
            // A flush since the start also voids what Redis said before it.
            let shared_last =
                shared_last.filter(|_| inner.generation.load(Ordering::SeqCst) == generation);
            let last = [local, shared_last]
                .into_iter()
                .flatten()
                .max_by_key(|e| e.fetched_at)
                .filter(|e| now.saturating_sub(e.fetched_at) <= limit);
            match last {
                Some(entry) => {
                    inner.count(Outcome::Stale);
                    let age_s = now.saturating_sub(entry.fetched_at).as_secs();
                    tracing::warn!(
                        target: "authz::groups",
                        user = user.as_str(), age_s, error = %err,
                        "group lookup failed; using the last known groups (stale)"
                    );
                    Ok(entry.groups)
                }
                None => Err(err),
            }
        }
    }
}
