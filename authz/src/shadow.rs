//! Shadow mode: a candidate policy set (`POLICY_SHADOW_DIR`) decided beside the live one on
//! every request and never enforced; disagreements are logged and counted for the author.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use ipm_policy::cedar::{CedarQuery, CedarVerdict, QueryError, decide};
use ipm_policy::snapshot::{
    LoadError, PolicySnapshot, SourceFiles, affects_dir, hash_sources, read_dir, read_dir_settled,
    short_hash,
};
use ipm_policy::store::{PolicyStore, ReloadOutcome};
use ipm_runtime::enforcer::DecisionObserver;
use ipm_runtime::metrics::{Metrics, ResultLabels};
use ipm_runtime::reload::{RecursiveMode, Reload};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShadowLabels {
    /// `agree` or `disagree`.
    pub agreement: &'static str,
    /// `allow`, `deny` or `error`.
    pub live: &'static str,
    pub shadow: &'static str,
}

/// The candidate set and its counters. Nothing here can change a live answer: it only reads
/// the query the live decision was made from.
pub struct Shadow {
    dir: PathBuf,
    /// `None` until the directory loads once.
    store: ArcSwapOption<PolicyStore>,
    /// Why the directory has not loaded yet, and the hash of the files that failed.
    first_load_error: Mutex<Option<(String, LoadError)>>,
    decisions: Family<ShadowLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
}

impl std::fmt::Debug for Shadow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadow")
            .field("dir", &self.dir)
            .field("loaded", &self.store.load().is_some())
            .finish()
    }
}

/// What `/readyz` shows about the shadow set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShadowStatus {
    pub dir: String,
    pub loaded: bool,
    pub hash: Option<String>,
    pub count: Option<usize>,
    /// The problems of the last load that failed, while it is not fixed.
    pub problems: Vec<ipm_policy::diagnostics::Problem>,
}

fn label(v: &Result<CedarVerdict, QueryError>) -> &'static str {
    match v {
        Ok(v) if v.allowed => "allow",
        Ok(_) => "deny",
        Err(_) => "error",
    }
}

impl Shadow {
    /// Loads the candidate set and registers its metrics. A set that does not load is logged
    /// and tried again on every reload; serving goes on either way.
    pub fn new(dir: &Path, registry: &mut Registry) -> Self {
        let decisions = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "shadow_decisions",
            "Decisions of the shadow policy set next to the live one, by agreement",
            decisions.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "shadow_policy_reloads",
            "Shadow policy set loads by result",
            reloads.clone(),
        );
        let shadow = Self {
            dir: dir.to_path_buf(),
            store: ArcSwapOption::empty(),
            first_load_error: Mutex::new(None),
            decisions,
            reloads,
        };
        shadow.load_first(read_dir);
        shadow
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The candidate set in force, once it has loaded.
    pub fn snapshot(&self) -> Option<Arc<PolicySnapshot>> {
        self.store.load().as_ref().map(|s| s.snapshot().clone())
    }

    pub fn status(&self) -> ShadowStatus {
        let store = self.store.load_full();
        let snapshot = store.as_ref().map(|s| s.snapshot().clone());
        let problems = match &store {
            Some(s) => s
                .pending_error()
                .map(|p| p.error.problems.clone())
                .unwrap_or_default(),
            None => self
                .first_load_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|(_, e)| e.problems.clone())
                .unwrap_or_default(),
        };
        ShadowStatus {
            dir: self.dir.display().to_string(),
            loaded: snapshot.is_some(),
            hash: snapshot.as_ref().map(|s| s.hash.clone()),
            count: snapshot.as_ref().map(|s| s.policy_count()),
            problems,
        }
    }

    /// Decides `q` against the candidate set and records whether it agrees with `live`, the
    /// verdict of the live snapshot `in_force`.
    pub fn compare(
        &self,
        in_force: &PolicySnapshot,
        q: &CedarQuery<'_>,
        live: &Result<CedarVerdict, QueryError>,
    ) {
        let guard = self.store.load();
        let Some(store) = guard.as_ref() else {
            return;
        };
        let snapshot = store.snapshot();
        let l = label(live);
        if snapshot.hash == in_force.hash {
            // The same files (a candidate just promoted): the same answer, without asking.
            self.decisions
                .get_or_create(&ShadowLabels {
                    agreement: "agree",
                    live: l,
                    shadow: l,
                })
                .inc();
            return;
        }
        let shadow = decide(&snapshot, q);
        let s = label(&shadow);
        let agreement = if l == s { "agree" } else { "disagree" };
        self.decisions
            .get_or_create(&ShadowLabels {
                agreement,
                live: l,
                shadow: s,
            })
            .inc();
        if l == s {
            return;
        }
        let policies = |v: &Result<CedarVerdict, QueryError>| match v {
            Ok(v) => v.policies.join(","),
            Err(_) => String::new(),
        };
        let errors = |v: &Result<CedarVerdict, QueryError>| match v {
            Ok(v) => v.errors.join("; "),
            Err(e) => e.to_string(),
        };
        tracing::info!(
            target: "authz::shadow",
            user = q.user.as_str(),
            method = q.method,
            path = q.path,
            action = %format_args!("Action::\"{}\"", q.route.action),
            resource = %format_args!("{}::\"{}\"", q.route.resource_type, q.route.resource_id),
            live = l,
            shadow = s,
            live_policies = policies(live),
            shadow_policies = policies(&shadow),
            shadow_errors = errors(&shadow),
            shadow_hash = short_hash(&snapshot.hash),
            "shadow policies disagree with the live ones"
        );
    }

    /// Loads the set with `read`: once at the start, then until it loads, at each reload
    /// with a settled read.
    fn load_first(&self, read: fn(&Path) -> Result<SourceFiles, LoadError>) {
        let files = match read(&self.dir) {
            Ok(f) => f,
            Err(e) => return self.first_load_failed(String::new(), e),
        };
        let hash = hash_sources(&files);
        let seen = self
            .first_load_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|(h, _)| *h == hash && !h.is_empty());
        if seen {
            return;
        }
        match PolicySnapshot::from_sources(&self.dir, files) {
            Ok(snapshot) => {
                self.count_reload("success");
                tracing::info!(
                    target: "authz::shadow",
                    dir = %self.dir.display(),
                    hash = %snapshot.hash,
                    policies = snapshot.policy_count(),
                    "shadow policies loaded; they are decided beside the live ones and never enforced"
                );
                let store = PolicyStore::from_snapshot(&self.dir, snapshot);
                self.store.store(Some(Arc::new(store)));
                *self
                    .first_load_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
            }
            Err(e) => self.first_load_failed(hash, e),
        }
    }

    fn first_load_failed(&self, hash: String, e: LoadError) {
        let mut last = self
            .first_load_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // The periodic rescan retries; say it once per distinct failure.
        if last
            .as_ref()
            .is_some_and(|(h, prev)| *h == hash && prev.problems == e.problems)
        {
            return;
        }
        self.count_reload("failure");
        for p in &e.problems {
            tracing::error!(
                target: "authz::shadow",
                file = %p.file, line = p.line, column = p.column, message = %p.message,
                "shadow policies do not load; serving goes on without them"
            );
        }
        *last = Some((hash, e));
    }

    fn count_reload(&self, result: &'static str) {
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }
}

impl DecisionObserver for Shadow {
    fn observe(
        &self,
        snapshot: &PolicySnapshot,
        query: &CedarQuery<'_>,
        verdict: &Result<CedarVerdict, QueryError>,
    ) {
        self.compare(snapshot, query, verdict);
    }
}

impl Reload for Shadow {
    fn name(&self) -> &'static str {
        "shadow_policies"
    }

    fn affected_by(&self, path: &Path) -> bool {
        let dir = std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone());
        affects_dir(&dir, path)
    }

    fn watched(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let parent = match self.dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        vec![
            (parent, RecursiveMode::NonRecursive),
            (self.dir.clone(), RecursiveMode::Recursive),
        ]
    }

    /// Like the live store's reload, but logged under `authz::shadow` and counted apart, so
    /// the live reload metrics stay about the live set.
    fn reload(&self, _metrics: &Metrics) {
        let Some(store) = self.store.load_full() else {
            return self.load_first(read_dir_settled);
        };
        match store.reload() {
            ReloadOutcome::Unchanged | ReloadOutcome::StillFailing => {}
            ReloadOutcome::Reloaded(report) => {
                self.count_reload("success");
                tracing::info!(
                    target: "authz::shadow",
                    dir = %self.dir.display(),
                    old_hash = %report.old_hash,
                    new_hash = %report.new_hash,
                    files_changed = ?report.files_changed,
                    added = ?report.added,
                    changed = ?report.changed,
                    removed = ?report.removed,
                    "shadow policies reloaded"
                );
            }
            ReloadOutcome::Failed(e) => {
                self.count_reload("failure");
                for p in &e.problems {
                    tracing::error!(
                        target: "authz::shadow",
                        file = %p.file, line = p.line, column = p.column, message = %p.message,
                        "shadow policy reload failed; the previous shadow set stays"
                    );
                }
            }
        }
    }
}
