//! Prometheus metrics: decisions by outcome, decision latency, policy reloads.
//! Labels carry only fixed vocabularies, never user input or secrets.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use ipm_policy::store::PolicyStore;

use crate::reload::pending::PendingChanges;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub adapter: &'static str,
    pub outcome: &'static str,
    pub status: u16,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: &'static str,
    pub result: &'static str,
}

/// Every metric authz exports.
pub struct Metrics {
    registry: Registry,
    pub decisions: Family<DecisionLabels, Counter>,
    pub decision_seconds: Histogram,
    pub policy_reloads: Family<ResultLabels, Counter>,
    pub groups_reloads: Family<ResultLabels, Counter>,
    pub policies_loaded: Gauge,
    pub group_lookups: Family<SourceLabels, Counter>,
    /// Directory calls by result: ok, no_such_user, timeout, connect, status, bad_json,
    /// too_large, other.
    pub directory_requests: Family<ResultLabels, Counter>,
    pub directory_seconds: Histogram,
    /// Cached lookups by result: hit, shared_hit, miss, coalesced, stale.
    pub group_cache: Family<ResultLabels, Counter>,
    /// Failed Redis operations by op: get, put, flush, subscribe.
    pub redis_errors: Family<OpLabels, Counter>,
    /// Shared entries ignored by result: bad_mac (not written with `REDIS_HMAC_KEY`), future
    /// (dated after now).
    pub redis_rejected_entries: Family<ResultLabels, Counter>,
    /// File changes not yet in force, by reload target (also shown on `/readyz`).
    pub pending_changes: Arc<PendingChanges>,
}

/// `authz_runtime_alive_tasks`: the async tasks alive at the scrape, so a leak of tasks
/// (a connection's, a watcher's) shows as growth.
#[derive(Debug)]
struct AliveTasks;

impl Collector for AliveTasks {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Ok(());
        };
        let tasks = i64::try_from(runtime.metrics().num_alive_tasks()).unwrap_or(i64::MAX);
        let metric = encoder.encode_descriptor(
            "runtime_alive_tasks",
            "Async tasks alive in the runtime",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(tasks).encode(metric)
    }
}

/// `authz_decision_memo_*`: how the snapshot in force answers, from its memo (`hits`) or from
/// Cedar (`misses`), since it loaded (a reload starts them again), and the entries it keeps.
#[derive(Debug)]
struct DecisionMemoCounts(Arc<PolicyStore>);

impl Collector for DecisionMemoCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.snapshot();
        let (hits, misses) = snapshot.memo.counts();
        let entries = u64::try_from(snapshot.memo.len()).unwrap_or(u64::MAX);
        for (name, help, value) in [
            (
                "decision_memo_hits",
                "Decisions answered from the snapshot's memo",
                hits,
            ),
            (
                "decision_memo_misses",
                "Decisions asked of Cedar, then kept",
                misses,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        let metric = encoder.encode_descriptor(
            "decision_memo_entries",
            "Decisions the snapshot's memo keeps",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(entries).unwrap_or(i64::MAX)).encode(metric)
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("authz");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Authorization decisions by outcome",
            decisions.clone(),
        );
        // 10 µs .. ~2.6 s
        let decision_seconds = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.00001, 2.0, 19),
        );
        registry.register(
            "decision_duration_seconds",
            "Time to decide, from request to verdict",
            decision_seconds.clone(),
        );
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reload attempts by result",
            policy_reloads.clone(),
        );
        let groups_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "groups_file_reloads",
            "Groups file reloads by result",
            groups_reloads.clone(),
        );
        let policies_loaded = Gauge::default();
        registry.register(
            "policies_loaded",
            "Policies in the snapshot in force",
            policies_loaded.clone(),
        );
        let group_lookups = Family::<SourceLabels, Counter>::default();
        registry.register(
            "group_lookups",
            "Group lookups by source and result",
            group_lookups.clone(),
        );
        let directory_requests = Family::<ResultLabels, Counter>::default();
        registry.register(
            "directory_requests",
            "Calls to the group directory by result",
            directory_requests.clone(),
        );
        // 1 ms .. ~16 s
        let directory_seconds = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15),
        );
        registry.register(
            "directory_request_duration_seconds",
            "Time for one directory call, body included",
            directory_seconds.clone(),
        );
        let group_cache = Family::<ResultLabels, Counter>::default();
        registry.register(
            "group_cache_lookups",
            "Group cache lookups by result",
            group_cache.clone(),
        );
        let redis_errors = Family::<OpLabels, Counter>::default();
        registry.register(
            "redis_errors",
            "Failed shared-cache operations by operation",
            redis_errors.clone(),
        );
        let redis_rejected_entries = Family::<ResultLabels, Counter>::default();
        registry.register(
            "redis_rejected_entries",
            "Shared-cache entries ignored, by why: bad_mac, future",
            redis_rejected_entries.clone(),
        );
        let pending_changes = Arc::new(PendingChanges::default());
        registry.register_collector(Box::new(pending_changes.clone()));
        registry.register_collector(Box::new(AliveTasks));
        Self {
            registry,
            decisions,
            decision_seconds,
            policy_reloads,
            groups_reloads,
            policies_loaded,
            group_lookups,
            directory_requests,
            directory_seconds,
            group_cache,
            redis_errors,
            redis_rejected_entries,
            pending_changes,
        }
    }

    /// Exports the decision memo of `store`'s snapshot in force.
    pub fn watch_memo(&mut self, store: Arc<PolicyStore>) {
        self.registry
            .register_collector(Box::new(DecisionMemoCounts(store)));
    }

    /// The registry, for sources that add their own metrics at start.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
