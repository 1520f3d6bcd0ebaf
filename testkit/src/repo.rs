//! The repository's shipped files, which the tests run against as deployers get them:
//! `policies/`, `migrations/`, and copies a test may change.

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `testkit/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ sits in the workspace root")
        .to_path_buf()
}

/// The shipped `policies/` directory.
pub fn shipped_policies() -> PathBuf {
    repo_root().join("policies")
}

/// The API's migrations for `backend` (`sqlite` or `postgres`).
pub fn migrations_dir(backend: &str) -> PathBuf {
    repo_root().join("migrations").join(backend)
}

/// sqlx's migrator on the API's migrations for `backend`: what the API's `sqlx::migrate!`
/// embeds, read at run time.
pub async fn migrator(backend: &str) -> sqlx::migrate::Migrator {
    let dir = migrations_dir(backend);
    sqlx::migrate::Migrator::new(dir.clone())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Copies the shipped policies (top-level files, not `tests/`) into `dest`, creating it.
pub fn copy_policies(dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(shipped_policies()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
    }
}

/// Every file under `dir`, recursively and sorted; nothing when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
