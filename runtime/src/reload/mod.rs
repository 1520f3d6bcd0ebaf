//! Hot reload: file events (including Kubernetes' `..data` symlink swap and a deleted and
//! recreated directory), a periodic rescan as a safety net, and explicit triggers (SIGHUP).

pub mod pending;
mod targets;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use notify::RecursiveMode;
use notify::{RecommendedWatcher, Watcher};
use tokio::sync::{Notify, mpsc};

use crate::metrics::Metrics;

/// Quiet period after the last file event before reloading, so an editor's
/// truncate-then-write is read once, complete.
const QUIET: Duration = Duration::from_millis(50);
/// The longest a reload waits for the events to pause: files that never stop changing
/// cannot hold an edit back longer (the settled read still refuses a half-written file).
const MAX_WAIT: Duration = Duration::from_millis(250);

/// Something that can be reloaded from disk.
pub trait Reload: Send + Sync + 'static {
    /// The target's name in `/readyz` and the metrics: `policies`, `groups_file`, ….
    fn name(&self) -> &'static str;
    /// Paths to watch: the files or directories, and their parents.
    fn watched(&self) -> Vec<(PathBuf, RecursiveMode)>;
    /// Whether a change at `path` (absolute) can change what a reload reads. Everything
    /// else written under the watched paths (a busy log beside the directory, an editor's
    /// swap file) is let go by, so it neither delays nor starts a reload.
    fn affected_by(&self, path: &Path) -> bool {
        let _ = path;
        true
    }
    fn reload(&self, metrics: &Metrics);
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `p` made absolute without touching the disk, so a relative `POLICY_DIR` compares with the
/// paths events carry.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A watched path, and which file it was when the watch was set.
struct Watched {
    path: PathBuf,
    mode: RecursiveMode,
    identity: Option<(u64, u64)>,
}

/// The device and inode `path` leads to now, if it exists.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Lets a burst of events end before reading: returns once `quiet` passes without an event,
/// or `max_wait` after it was called, whichever comes first.
async fn settle(rx: &mut mpsc::Receiver<()>, quiet: Duration, max_wait: Duration) {
    let deadline = tokio::time::Instant::now() + max_wait;
    loop {
        let until = (tokio::time::Instant::now() + quiet).min(deadline);
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(())) if tokio::time::Instant::now() < deadline => {}
            _ => return,
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
    /// Starts watching. `poll` rescans at that interval even without events (zero disables);
    /// a rescan reloads when the content differs from what is in force.
    pub fn spawn(target: Arc<dyn Reload>, metrics: Arc<Metrics>, poll: Duration) -> Self {
        let trigger = Arc::new(Notify::new());
        let pending = metrics.pending_changes.register(target.name());
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let filter = target.clone();
        let seen = pending.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            // Opening and reading files are events too: counting them, each reload's own
            // reads would start the next one.
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            // An event without paths (the kernel's queue overflowed) may be anything.
            if !event.paths.is_empty()
                && !event.paths.iter().any(|p| filter.affected_by(&absolute(p)))
            {
                return;
            }
            seen.seen(Instant::now());
            let _ = tx.try_send(());
        });
        let mut watcher: Option<RecommendedWatcher> = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; relying on the periodic rescan and SIGHUP");
                None
            }
        };
        let mut watched: Vec<Watched> = target
            .watched()
            .into_iter()
            .map(|(p, mode)| Watched {
                path: absolute(&p),
                mode,
                identity: None,
            })
            .collect();
        // Watches what is not watched yet or was replaced: a directory deleted and
        // recreated loses its watch. A watch in place is left alone, since the moment
        // between unwatching and watching again would miss an edit.
        let mut rewatch = move |w: &mut Option<RecommendedWatcher>| {
            let Some(w) = w else { return };
            for entry in &mut watched {
                let now = identity(&entry.path);
                if now.is_some() && now == entry.identity {
                    continue;
                }
                let _ = w.unwatch(&entry.path);
                entry.identity = w.watch(&entry.path, entry.mode).ok().and(now);
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
                    settle(&mut rx, QUIET, MAX_WAIT).await;
                }
                pending.reload_started();
                let t = target.clone();
                let m = metrics.clone();
                let _ = tokio::task::spawn_blocking(move || t.reload(&m)).await;
                pending.reload_finished();
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Far above `MAX_WAIT`: only a wait that never ends misses it.
    const NEVER: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn events_that_never_pause_do_not_hold_a_reload_back() {
        let (tx, mut rx) = mpsc::channel(1);
        let writer = tokio::spawn(async move {
            loop {
                let _ = tx.try_send(());
                // Far more often than `QUIET`: before, each event restarted the wait.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let ended = tokio::time::timeout(NEVER, settle(&mut rx, QUIET, MAX_WAIT)).await;
        writer.abort();
        assert!(ended.is_ok(), "the events held the reload back");
    }

    #[tokio::test]
    async fn a_burst_is_read_once_it_is_over() {
        let (tx, mut rx) = mpsc::channel(1);
        let writer = tokio::spawn(async move {
            for _ in 0..3 {
                tx.send(()).await.unwrap();
            }
            tx
        });
        tokio::time::timeout(NEVER, settle(&mut rx, QUIET, NEVER))
            .await
            .unwrap();
        let tx = writer.await.unwrap();
        assert!(
            rx.try_recv().is_err(),
            "an event of the burst was left over"
        );
        drop(tx);
    }

    /// A target whose reloads wait for the test's go-ahead.
    struct Held {
        dir: PathBuf,
        go: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl Reload for Held {
        fn name(&self) -> &'static str {
            "held"
        }

        fn watched(&self) -> Vec<(PathBuf, RecursiveMode)> {
            vec![(self.dir.clone(), RecursiveMode::NonRecursive)]
        }

        fn affected_by(&self, path: &Path) -> bool {
            path.extension().is_some_and(|e| e == "cedar")
        }

        fn reload(&self, _metrics: &Metrics) {
            let _ = self.go.lock().unwrap().recv();
        }
    }

    async fn until(check: impl Fn() -> bool) {
        tokio::time::timeout(NEVER, async {
            while !check() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_change_shows_as_pending_until_its_reload_ends_and_other_files_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (go, held) = std::sync::mpsc::channel();
        let metrics = Arc::new(Metrics::new());
        let _reloader = Reloader::spawn(
            Arc::new(Held {
                dir: dir.path().to_path_buf(),
                go: std::sync::Mutex::new(held),
            }),
            metrics.clone(),
            Duration::ZERO,
        );
        let age = || metrics.pending_changes.ages(Instant::now())[0].1;
        // Watching starts within `spawn`: a write now is seen.
        std::fs::write(dir.path().join("notes.txt"), "not a policy").unwrap();
        std::fs::write(dir.path().join("a.cedar"), "// a policy").unwrap();
        until(|| age().is_some()).await;
        let shown = metrics.render();
        assert!(
            shown.contains("authz_reload_pending_seconds{target=\"held\"}"),
            "{shown}"
        );
        go.send(()).unwrap();
        until(|| age().is_none()).await;
        // Another file's writes are no change: nothing waits, no reload starts.
        std::fs::write(dir.path().join("notes.txt"), "still not a policy").unwrap();
        tokio::time::sleep(QUIET * 2).await;
        assert_eq!(age(), None);
    }
}
