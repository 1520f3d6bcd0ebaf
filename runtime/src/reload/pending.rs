//! Changes on disk not yet in force: since when each reload target has seen one that no
//! reload has taken in, for `/readyz` and the `authz_reload_pending_seconds` gauge.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

/// A change waiting longer than this means reloads are stuck, not busy: a reload takes well
/// under a second, so `/readyz` then answers not ready.
pub const STALLED_AFTER: Duration = Duration::from_secs(5);

/// One target's waiting change, if any.
#[derive(Debug, Default)]
pub struct PendingChange {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The first change seen since the last reload began.
    seen: Option<Instant>,
    /// The first change the reload under way takes in.
    reading: Option<Instant>,
}

impl PendingChange {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A change was seen at `now`; an older one still waiting keeps its time.
    pub fn seen(&self, now: Instant) {
        self.state().seen.get_or_insert(now);
    }

    /// A reload starts: it reads every change seen so far.
    pub fn reload_started(&self) {
        let mut s = self.state();
        s.reading = s.seen.take();
    }

    /// The reload is done: what it read is in force, or refused and shown as a load error.
    pub fn reload_finished(&self) {
        self.state().reading = None;
    }

    /// How long the oldest change not yet in force has waited at `now`.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        let s = self.state();
        let oldest = match (s.seen, s.reading) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        oldest.map(|t| now.saturating_duration_since(t))
    }
}

/// Every reload target's waiting change, by the target's name.
#[derive(Debug, Default)]
pub struct PendingChanges {
    targets: Mutex<Vec<(&'static str, Arc<PendingChange>)>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
}

impl PendingChanges {
    /// The tracker of the target `name`: one per name, however often asked.
    pub fn register(&self, name: &'static str) -> Arc<PendingChange> {
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, t)) = targets.iter().find(|(n, _)| *n == name) {
            return t.clone();
        }
        let t = Arc::new(PendingChange::default());
        targets.push((name, t.clone()));
        t
    }

    /// Each target's waiting time at `now`, `None` when nothing waits.
    pub fn ages(&self, now: Instant) -> Vec<(&'static str, Option<Duration>)> {
        let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        targets.iter().map(|(n, t)| (*n, t.age(now))).collect()
    }

    /// `/readyz`'s `pending_changes`: each target with a change waiting, and its age.
    pub fn to_json(&self, now: Instant) -> serde_json::Value {
        self.ages(now)
            .into_iter()
            .filter_map(|(target, age)| {
                let age = age?;
                Some((
                    target.to_string(),
                    serde_json::json!({ "age_seconds": age.as_secs_f64() }),
                ))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Whether some change has waited longer than [`STALLED_AFTER`] at `now`.
    pub fn stalled(&self, now: Instant) -> bool {
        self.ages(now)
            .iter()
            .any(|(_, age)| age.is_some_and(|a| a > STALLED_AFTER))
    }
}

/// `authz_reload_pending_seconds{target}`: computed at each scrape, so the age is current.
impl Collector for PendingChanges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "reload_pending_seconds",
            "Age of the oldest file change not yet in force, by reload target; 0 when none waits",
            None,
            MetricType::Gauge,
        )?;
        for (target, age) in self.ages(Instant::now()) {
            let labels = TargetLabels { target };
            let seconds = age.map_or(0.0, |a| a.as_secs_f64());
            ConstGauge::new(seconds).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_change_waits_from_when_it_was_first_seen_until_a_reload_that_read_it_ends() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let p = PendingChange::default();
        assert_eq!(p.age(at(0)), None);
        p.seen(at(0));
        p.seen(at(30));
        assert_eq!(p.age(at(100)), Some(Duration::from_millis(100)));
        p.reload_started();
        // Seen during the reload: it waits for the next one, the first still counts.
        p.seen(at(150));
        assert_eq!(p.age(at(200)), Some(Duration::from_millis(200)));
        p.reload_finished();
        assert_eq!(p.age(at(200)), Some(Duration::from_millis(50)));
        p.reload_started();
        p.reload_finished();
        assert_eq!(p.age(at(300)), None);
    }

    #[test]
    fn a_change_waiting_too_long_is_a_stall() {
        let all = PendingChanges::default();
        let policies = all.register("policies");
        assert!(Arc::ptr_eq(&policies, &all.register("policies")));
        let _groups = all.register("groups_file");
        let t0 = Instant::now();
        policies.seen(t0);
        assert!(!all.stalled(t0 + STALLED_AFTER));
        assert!(all.stalled(t0 + STALLED_AFTER + Duration::from_millis(1)));
        assert_eq!(
            all.to_json(t0 + Duration::from_secs(1)),
            serde_json::json!({ "policies": { "age_seconds": 1.0 } })
        );
        assert_eq!(
            all.ages(t0 + Duration::from_secs(1)),
            vec![
                ("policies", Some(Duration::from_secs(1))),
                ("groups_file", None)
            ]
        );
    }
}
