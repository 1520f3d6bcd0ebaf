//! Hot reload: file events (including Kubernetes' `..data` symlink swap and a deleted and
//! recreated directory), a periodic rescan as a safety net, and explicit triggers (SIGHUP).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use notify::RecursiveMode;
use notify::{RecommendedWatcher, Watcher};
use tokio::sync::{Notify, mpsc};

use crate::metrics::{Metrics, ResultLabels};
use ipm_policy::groups::FileGroups;
use ipm_policy::store::{PolicyStore, ReloadOutcome};

/// Quiet period after the last file event before reloading, so an editor's
/// truncate-then-write is read once, complete.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Something that can be reloaded from disk.
pub trait Reload: Send + Sync + 'static {
    /// Paths to watch: the files or directories, and their parents.
    fn watched(&self) -> Vec<(PathBuf, RecursiveMode)>;
    fn reload(&self, metrics: &Metrics);
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Reload for PolicyStore {
    fn watched(&self) -> Vec<(PathBuf, RecursiveMode)> {
        vec![
            (parent_of(self.dir()), RecursiveMode::NonRecursive),
            (self.dir().to_path_buf(), RecursiveMode::Recursive),
        ]
    }

    fn reload(&self, metrics: &Metrics) {
        match PolicyStore::reload(self) {
            ReloadOutcome::Unchanged | ReloadOutcome::StillFailing => {}
            ReloadOutcome::Reloaded(report) => {
                metrics
                    .policy_reloads
                    .get_or_create(&ResultLabels { result: "success" })
                    .inc();
                let snapshot = self.snapshot();
                metrics
                    .policies_loaded
                    .set(i64::try_from(snapshot.policy_count()).unwrap_or(i64::MAX));
                tracing::info!(
                    target: "authz::reload",
                    dir = %self.dir().display(),
                    old_hash = %report.old_hash,
                    new_hash = %report.new_hash,
                    files_changed = ?report.files_changed,
                    added = ?report.added,
                    changed = ?report.changed,
                    removed = ?report.removed,
                    policies = snapshot.policy_count(),
                    "policies reloaded"
                );
            }
            ReloadOutcome::Failed(e) => {
                metrics
                    .policy_reloads
                    .get_or_create(&ResultLabels { result: "failure" })
                    .inc();
                for p in &e.problems {
                    tracing::error!(
                        target: "authz::reload",
                        file = %p.file, line = p.line, column = p.column, message = %p.message,
                        "policy reload failed; the previous policies stay in force"
                    );
                }
            }
        }
    }
}

impl Reload for FileGroups {
    fn watched(&self) -> Vec<(PathBuf, RecursiveMode)> {
        vec![(parent_of(self.path()), RecursiveMode::NonRecursive)]
    }

    fn reload(&self, metrics: &Metrics) {
        match FileGroups::reload(self) {
            Ok(false) => {}
            Ok(true) => {
                metrics
                    .groups_reloads
                    .get_or_create(&ResultLabels { result: "success" })
                    .inc();
                tracing::info!(target: "authz::reload", file = %self.path().display(), users = self.current().user_count(), "groups file reloaded");
            }
            Err(e) => {
                metrics
                    .groups_reloads
                    .get_or_create(&ResultLabels { result: "failure" })
                    .inc();
                tracing::error!(target: "authz::reload", error = %e, "groups file reload failed; the previous membership stays in force");
            }
        }
    }
}

/// Keeps a reloadable value in step with its files. Dropping it stops the watching.
pub struct Reloader {
    trigger: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reloader {
    /// Starts watching. `poll` rescans at that interval even without events (zero disables).
    pub fn spawn(target: Arc<dyn Reload>, metrics: Arc<Metrics>, poll: Duration) -> Self {
        let trigger = Arc::new(Notify::new());
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Opening and reading files are events too: counting them, each reload's own
            // reads would start the next one.
            if res.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
                let _ = tx.try_send(());
            }
        });
        let mut watcher: Option<RecommendedWatcher> = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; relying on the periodic rescan and SIGHUP");
                None
            }
        };
        let watched = target.watched();
        let rewatch = move |w: &mut Option<RecommendedWatcher>| {
            if let Some(w) = w {
                for (path, mode) in &watched {
                    let _ = w.unwatch(path);
                    let _ = w.watch(path, *mode);
                }
            }
        };
        rewatch(&mut watcher);
        let explicit = trigger.clone();
        let task = tokio::spawn(async move {
            let mut tick = (!poll.is_zero()).then(|| {
                let mut t = tokio::time::interval(poll);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                let from_event = tokio::select! {
                    Some(()) = rx.recv() => true,
                    () = explicit.notified() => false,
                    _ = async { match tick.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => false,
                };
                if from_event {
                    // Let a burst of events settle before reading the files.
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                }
                let t = target.clone();
                let m = metrics.clone();
                let _ = tokio::task::spawn_blocking(move || t.reload(&m)).await;
                // A directory deleted and recreated loses its watch; set it again.
                rewatch(&mut watcher);
            }
        });
        Self { trigger, task }
    }

    /// Asks for a reload now (SIGHUP).
    pub fn trigger(&self) {
        self.trigger.notify_one();
    }
}
