//! A memo of the pure decision. Each snapshot keeps its own, so a reload starts with an empty
//! one; the key holds every other input of the decision (the user and groups, the action, the
//! resource and the entities resolved for it, the method, path and client address), so a
//! changed group, resource or request is a miss, never an old answer. Bounded: the least
//! recently used entry goes first, and a question too large to keep is decided and not kept.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cached::{Cached, LruCache};
use cedar_policy::Entity;

use crate::question::{CedarQuery, CedarVerdict, QueryError};

/// Entries a snapshot's memo keeps.
pub const CAPACITY: usize = 4096;
/// Longest text a kept question may carry (user, groups, path, resource id together), and
/// most entities: with [`CAPACITY`] and [`MAX_VERDICT_TEXT`], what bounds the memo's memory
/// (about 20 MiB at worst; a typical entry is well under 1 KiB).
const MAX_TEXT: usize = 1024;
const MAX_ENTITIES: usize = 4;
/// Longest answer kept (the ids of the policies that decided it and any errors, together):
/// a policy set where a thousand policies permit one request must not make each entry large.
const MAX_VERDICT_TEXT: usize = 2048;

/// Whether `v` is small enough to keep.
fn small(v: &Verdict) -> bool {
    let text = match v {
        Ok(v) => v.policies.iter().chain(&v.errors).map(String::len).sum(),
        Err(e) => e.0.len(),
    };
    text <= MAX_VERDICT_TEXT
}

/// Every input of a decision but the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    user: String,
    groups: Vec<String>,
    action: String,
    resource_type: String,
    resource_id: String,
    method: String,
    path: String,
    client_ip: Option<IpAddr>,
    entities: Vec<Whole>,
}

/// An entity compared by everything Cedar reads of it. `Entity`'s own `Eq` compares only the
/// uid: a project that moved to another group would be the same key, and get the old answer.
#[derive(Debug, Clone)]
struct Whole(Entity);

impl PartialEq for Whole {
    fn eq(&self, other: &Self) -> bool {
        self.0.deep_eq(&other.0)
    }
}

impl Eq for Whole {}

impl std::hash::Hash for Whole {
    /// The uid, as `Entity` hashes: entities `deep_eq` has equal have equal uids.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Key {
    /// The key of `q`, or `None` when it is too large to keep.
    fn of(q: &CedarQuery<'_>) -> Option<Self> {
        let text = q.user.as_str().len()
            + q.groups.iter().map(String::len).sum::<usize>()
            + q.path.len()
            + q.route.resource_id.len();
        if text > MAX_TEXT || q.resource_entities.len() > MAX_ENTITIES {
            return None;
        }
        Some(Self {
            user: q.user.as_str().to_string(),
            groups: q.groups.to_vec(),
            action: q.route.action.clone(),
            resource_type: q.route.resource_type.clone(),
            resource_id: q.route.resource_id.clone(),
            method: q.method.to_string(),
            path: q.path.to_string(),
            client_ip: q.client_ip,
            entities: q.resource_entities.iter().cloned().map(Whole).collect(),
        })
    }
}

type Verdict = Result<CedarVerdict, QueryError>;

/// A snapshot's decisions, by every other input.
pub struct DecisionMemo {
    /// `None` if the store could not be allocated: then nothing is kept.
    entries: Option<Mutex<LruCache<Key, Verdict>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for DecisionMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionMemo")
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .field("misses", &self.misses.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for DecisionMemo {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl DecisionMemo {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: LruCache::builder()
                .max_size(capacity.max(1))
                .build()
                .ok()
                .map(Mutex::new),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The verdict for `q`: the kept one, else `decide(q)`, then kept.
    pub fn get_or_decide(&self, q: &CedarQuery<'_>, decide: impl FnOnce() -> Verdict) -> Verdict {
        let Some(key) = Key::of(q) else {
            return decide();
        };
        // A poisoned lock (a panic elsewhere while holding it) only means no memo.
        if let Some(v) = self
            .entries
            .as_ref()
            .and_then(|m| m.lock().ok())
            .and_then(|mut m| m.cache_get(&key).cloned())
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return v;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let v = decide();
        if small(&v)
            && let Some(mut m) = self.entries.as_ref().and_then(|m| m.lock().ok())
        {
            m.cache_set(key, v.clone());
        }
        v
    }

    /// Questions answered from the memo, and decided, since the snapshot loaded.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.entries
            .as_ref()
            .and_then(|m| m.lock().ok())
            .map_or(0, |m| m.cache_size())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
