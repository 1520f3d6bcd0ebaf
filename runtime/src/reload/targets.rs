//! The two reload targets both binaries have: the policy directory and the groups file,
//! each with the file events that can change it.

use std::path::{Path, PathBuf};

use notify::RecursiveMode;

use super::{Reload, parent_of};
use crate::metrics::{Metrics, ResultLabels};
use ipm_policy::groups::FileGroups;
use ipm_policy::snapshot::affects_dir;
use ipm_policy::store::{PolicyStore, ReloadOutcome};

impl Reload for PolicyStore {
    fn name(&self) -> &'static str {
        "policies"
    }

    fn watched(&self) -> Vec<(PathBuf, RecursiveMode)> {
        vec![
            (parent_of(self.dir()), RecursiveMode::NonRecursive),
            (self.dir().to_path_buf(), RecursiveMode::Recursive),
        ]
    }

    fn affected_by(&self, path: &Path) -> bool {
        affects_dir(&super::absolute(self.dir()), path)
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

/// Whether a change at `path` can change what reading `file` gives: the file, a folder on
/// its way (moved, deleted), or a `..` entry beside it (Kubernetes' `..data` swap).
fn affects_file(file: &Path, path: &Path) -> bool {
    let folder = parent_of(file);
    path == file
        || folder.starts_with(path)
        || (path.parent() == Some(folder.as_path())
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("..")))
}

impl Reload for FileGroups {
    fn name(&self) -> &'static str {
        "groups_file"
    }

    fn watched(&self) -> Vec<(PathBuf, RecursiveMode)> {
        vec![(parent_of(self.path()), RecursiveMode::NonRecursive)]
    }

    fn affected_by(&self, path: &Path) -> bool {
        affects_file(&super::absolute(self.path()), path)
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn only_the_file_its_folders_and_a_configmap_swap_affect_a_file() {
        let file = Path::new("/srv/ipm/policies/groups.toml");
        for p in [
            "/srv/ipm/policies/groups.toml",
            "/srv/ipm/policies",
            "/srv/ipm",
            "/srv/ipm/policies/..data",
        ] {
            assert!(affects_file(file, Path::new(p)), "{p}");
        }
        for p in [
            "/srv/ipm/policies/.groups.toml.swp",
            "/srv/ipm/policies/guards.cedar",
            "/srv/ipm/authz.log",
            "/srv/ipm/policies/..data/groups.toml",
        ] {
            assert!(!affects_file(file, Path::new(p)), "{p}");
        }
    }
}
