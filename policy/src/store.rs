//! The policy store: the snapshot in force, swapped whole on reload, and the state of the
//! last reload for `/readyz`. A failed reload keeps the previous snapshot in force.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use serde::Serialize;

use crate::settle::PAUSE;
use cedar_policy::Policy;

use crate::snapshot::{
    LoadError, ParseCache, PolicySnapshot, SourceFiles, hash_sources, read_dir,
    read_dir_settled_with,
};

/// What changed between two snapshots, by policy id.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    pub old_hash: String,
    pub new_hash: String,
    pub files_changed: Vec<String>,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// The result of one reload attempt.
#[derive(Debug)]
pub enum ReloadOutcome {
    Unchanged,
    /// The files are the same broken ones as last time: already reported.
    StillFailing,
    Reloaded(ReloadReport),
    Failed(LoadError),
}

/// A pending load failure, as shown on `/readyz`.
#[derive(Debug, Clone)]
pub struct PendingError {
    pub error: LoadError,
    pub at: SystemTime,
    pub hash: String,
}

#[derive(Debug)]
pub struct PolicyStore {
    dir: PathBuf,
    current: ArcSwap<PolicySnapshot>,
    pending: ArcSwapOption<PendingError>,
    /// One reload at a time; it holds what the last load parsed, so a reload re-reads only
    /// the files that changed.
    reload_lock: std::sync::Mutex<ParseCache>,
}

impl PolicyStore {
    /// Loads the directory; a first load that fails refuses the start.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        // Read as a reload reads: a directory still being written at start is not loaded
        // half-done (a truncated `guards.cedar` would parse, without its forbid).
        let files = read_dir_settled_with(dir, read_dir, || std::thread::sleep(PAUSE))?;
        let mut cache = ParseCache::default();
        let snapshot = PolicySnapshot::from_sources_with(dir, files, &mut cache)?;
        let mut store = Self::from_snapshot(dir, snapshot);
        store.reload_lock = std::sync::Mutex::new(cache);
        Ok(store)
    }

    pub fn from_snapshot(dir: &Path, snapshot: PolicySnapshot) -> Self {
        Self {
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(snapshot),
            pending: ArcSwapOption::empty(),
            reload_lock: std::sync::Mutex::new(ParseCache::default()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The snapshot in force, for one request from start to finish.
    pub fn snapshot(&self) -> Guard<Arc<PolicySnapshot>> {
        self.current.load()
    }

    /// The snapshot in force, owned: a decision keeps it to the end, whatever reloads.
    pub fn snapshot_arc(&self) -> Arc<PolicySnapshot> {
        self.current.load_full()
    }

    pub fn pending_error(&self) -> Option<Arc<PendingError>> {
        self.pending.load_full()
    }

    /// Re-reads the directory, once it holds still, and swaps in the new snapshot if it
    /// loads completely.
    pub fn reload(&self) -> ReloadOutcome {
        self.reload_with(read_dir, || std::thread::sleep(PAUSE))
    }

    /// `reload` with the directory read by `read` and the pause between reads by `pause`.
    pub fn reload_with(
        &self,
        read: impl FnMut(&Path) -> Result<SourceFiles, LoadError>,
        pause: impl FnMut(),
    ) -> ReloadOutcome {
        // One reload at a time: a watcher event and a SIGHUP must not interleave.
        let mut cache = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let files = match read_dir_settled_with(&self.dir, read, pause) {
            Ok(f) => f,
            Err(e) => return self.fail(e, String::new()),
        };
        let hash = hash_sources(&files);
        let old = self.current.load_full();
        if hash == old.hash {
            // A reverted edit clears the pending error.
            self.pending.store(None);
            return ReloadOutcome::Unchanged;
        }
        if let Some(p) = self.pending.load().as_ref()
            && p.hash == hash
        {
            return ReloadOutcome::StillFailing;
        }
        match PolicySnapshot::from_sources_with(&self.dir, files, &mut cache) {
            Ok(next) => {
                let report = diff(&old, &next);
                self.current.store(Arc::new(next));
                self.pending.store(None);
                ReloadOutcome::Reloaded(report)
            }
            Err(e) => self.fail(e, hash),
        }
    }

    fn fail(&self, error: LoadError, hash: String) -> ReloadOutcome {
        self.pending.store(Some(Arc::new(PendingError {
            error: error.clone(),
            at: SystemTime::now(),
            hash,
        })));
        ReloadOutcome::Failed(error)
    }
}

/// Whether two policies mean the same: the same text, or else the same JSON form, which
/// leaves out layout and comments, so a reformatted file reports no changed policy. The text
/// is compared first: the JSON form re-parses the policy, and asking it of every policy made
/// a reload beside 10,000 policies take a second.
fn same_meaning(a: &Policy, b: &Policy) -> bool {
    let text = |p: &Policy| p.to_string();
    if text(a) == text(b) {
        return true;
    }
    match (a.to_json(), b.to_json()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Which files and which policy ids differ between two snapshots.
pub fn diff(old: &PolicySnapshot, new: &PolicySnapshot) -> ReloadReport {
    fn by_id(s: &PolicySnapshot) -> BTreeMap<String, &Policy> {
        s.policies
            .policies()
            .map(|p| (p.id().to_string(), p))
            .collect()
    }
    let (a, b) = (by_id(old), by_id(new));
    let mut files: Vec<String> = old
        .sources
        .iter()
        .filter(|(name, text)| new.sources.get(*name) != Some(*text))
        .map(|(name, _)| name.clone())
        .collect();
    files.extend(
        new.sources
            .keys()
            .filter(|name| !old.sources.contains_key(*name))
            .cloned(),
    );
    files.sort();
    ReloadReport {
        old_hash: old.hash.clone(),
        new_hash: new.hash.clone(),
        files_changed: files,
        added: b.keys().filter(|k| !a.contains_key(*k)).cloned().collect(),
        changed: b
            .iter()
            .filter(|(k, v)| a.get(*k).is_some_and(|old| !same_meaning(old, v)))
            .map(|(k, _)| k.clone())
            .collect(),
        removed: a.keys().filter(|k| !b.contains_key(*k)).cloned().collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const EXTRA: &str = "extra.cedar";

    fn shipped_store() -> (PolicyStore, SourceFiles) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        (PolicyStore::load(&dir).unwrap(), read_dir(&dir).unwrap())
    }

    /// A reader that returns `script` one entry per call, then repeats the last.
    fn scripted(
        script: Vec<Result<SourceFiles, LoadError>>,
    ) -> impl FnMut(&Path) -> Result<SourceFiles, LoadError> {
        let mut n = 0;
        move |_| {
            let r = script[n.min(script.len() - 1)].clone();
            n += 1;
            r
        }
    }

    fn has(store: &PolicyStore, id: &str) -> bool {
        store.snapshot().policy_files.contains_key(id)
    }

    #[test]
    fn a_half_done_deploy_is_not_loaded() {
        let (store, full) = shipped_store();
        // `rm *.cedar; cp new/*.cedar .`, caught between the two: guards.cedar not back yet.
        let mut half = full.clone();
        half.remove("guards.cedar");
        let mut new = full.clone();
        new.insert(
            EXTRA.into(),
            "@id(\"no-listing\")\nforbid (principal, action == Action::\"ListProjects\", resource);\n"
                .into(),
        );
        let mut pauses = 0;
        let outcome = store.reload_with(scripted(vec![Ok(half), Ok(new.clone()), Ok(new)]), || {
            pauses += 1
        });
        let ReloadOutcome::Reloaded(report) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(report.added, vec!["no-listing".to_string()]);
        assert!(report.removed.is_empty(), "{report:?}");
        assert!(has(&store, "suspended-forbid-all"));
        assert_eq!(pauses, 2);
    }

    #[test]
    fn files_that_keep_changing_keep_the_set_in_force() {
        let (store, full) = shipped_store();
        let before = store.snapshot().hash.clone();
        let mut n = 0;
        let outcome = store.reload_with(
            |_| {
                // A slow writer: guards.cedar grows on every read, the forbid not yet there.
                n += 1;
                let mut files = full.clone();
                files.insert("guards.cedar".into(), format!("// {}", "x".repeat(n)));
                Ok(files)
            },
            || {},
        );
        let ReloadOutcome::Failed(e) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(e.to_string().contains("kept changing"), "{e}");
        assert!(e.to_string().contains("`guards.cedar`"), "{e}");
        assert_eq!(store.snapshot().hash, before);
        assert!(has(&store, "suspended-forbid-all"));
        assert!(store.pending_error().is_some());
    }

    #[test]
    fn a_reformatted_policy_is_not_reported_as_changed() {
        let (store, full) = shipped_store();
        let guards = full["guards.cedar"].clone();
        let mut reformatted = full.clone();
        reformatted.insert(
            "guards.cedar".into(),
            guards.replace("forbid (", "forbid  (\n  // reflowed\n  "),
        );
        let outcome = store.reload_with(scripted(vec![Ok(reformatted)]), || {});
        let ReloadOutcome::Reloaded(report) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(report.files_changed, vec!["guards.cedar".to_string()]);
        assert!(report.changed.is_empty(), "{report:?}");
        // A change of meaning is one.
        let mut changed = full.clone();
        changed.insert(
            "guards.cedar".into(),
            guards.replacen("forbid (", "permit (", 1),
        );
        let outcome = store.reload_with(scripted(vec![Ok(changed)]), || {});
        let ReloadOutcome::Reloaded(report) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(report.changed.len(), 1, "{report:?}");
    }
}
