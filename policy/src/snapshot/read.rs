//! Reading a policy directory: every visible policy, schema and routes entry must be a
//! readable regular file, and a reload reads until the directory holds still.

use std::path::Path;

use super::{ENTITIES_FILE, LoadError, ROUTES_FILE, SCHEMA_FILE, SourceFiles};
use crate::diagnostics::Problem;
use crate::settle::{PAUSE, RETRIES, Unsettled, read_settled};

/// Whether an entry's name makes it part of a snapshot.
fn is_source_name(name: &str) -> bool {
    name.ends_with(".cedar") || name == SCHEMA_FILE || name == ROUTES_FILE || name == ENTITIES_FILE
}

/// Whether a change at `path` can change what `read_dir(dir)` reads, so a watcher can let the
/// rest go by: a log appended beside the directory, an editor's swap file or any other
/// hidden or foreign name inside it. What counts: the directory itself or one of its
/// ancestors (moved, deleted, a symlink swapped), a snapshot entry, anything under a `..`
/// name (Kubernetes' `..data` swap), and anything deeper in a visible subdirectory, which a
/// visible symlink may point into. Both paths must be absolute or both relative to the same
/// place; this only compares them.
pub fn affects_dir(dir: &Path, path: &Path) -> bool {
    if dir.starts_with(path) {
        return true;
    }
    let Ok(inside) = path.strip_prefix(dir) else {
        return false;
    };
    let mut parts = inside.components();
    let Some(first) = parts.next() else {
        return true;
    };
    let first = first.as_os_str().to_string_lossy();
    if first.starts_with("..") {
        return true;
    }
    !first.starts_with('.') && (parts.next().is_some() || is_source_name(&first))
}

/// Reads the snapshot's files from a directory: `*.cedar`, the schema, the routes and the
/// entities file when there is one.
/// Hidden entries (Kubernetes' `..data` and its timestamped folders) are skipped; the
/// visible symlinks that point into them are followed. An entry with a snapshot's name that
/// cannot be read, or is not a regular file once its symlinks are followed, fails the read:
/// skipping it could drop a `forbid` without a word.
pub fn read_dir(dir: &Path) -> Result<SourceFiles, LoadError> {
    let fail = |message: String| LoadError {
        dir: dir.to_path_buf(),
        problems: vec![Problem::whole_file(&dir.display().to_string(), message)],
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| fail(format!("cannot read the directory: {e}")))?;
    let mut files = SourceFiles::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| fail(format!("cannot list the directory: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !is_source_name(&name) {
            continue;
        }
        let path = entry.path();
        match read_entry(&path, &name) {
            Ok(text) => {
                files.insert(name, text);
            }
            Err(message) => {
                problems.push(Problem::whole_file(&path.display().to_string(), message))
            }
        }
    }
    if problems.is_empty() {
        return Ok(files);
    }
    problems.sort_by(|a, b| a.file.cmp(&b.file));
    Err(LoadError {
        dir: dir.to_path_buf(),
        problems,
    })
}

/// One entry's text, or why it cannot be part of the snapshot.
fn read_entry(path: &Path, name: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if std::fs::symlink_metadata(path).is_ok() {
            format!("cannot read `{name}`: a symlink whose target cannot be reached: {e}")
        } else {
            format!("cannot read `{name}`: {e}")
        }
    })?;
    if !meta.is_file() {
        return Err(format!(
            "`{name}` is not a regular file: policy, schema and routes entries must be files \
             (hide anything else with a leading `.`)"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read `{name}`: {e}"))
}

/// `read_dir` for a reload: reads until two reads a moment apart agree, so a file being
/// written or a deploy half done (`rm *.cedar; cp new/*.cedar .`) is never loaded. A
/// directory that keeps changing fails the read, and the reload keeps the set in force.
pub fn read_dir_settled(dir: &Path) -> Result<SourceFiles, LoadError> {
    read_dir_settled_with(dir, read_dir, || std::thread::sleep(PAUSE))
}

/// `read_dir_settled` with the reader and the pause given (tests script them).
pub fn read_dir_settled_with(
    dir: &Path,
    mut read: impl FnMut(&Path) -> Result<SourceFiles, LoadError>,
    pause: impl FnMut(),
) -> Result<SourceFiles, LoadError> {
    read_settled(|| read(dir), pause, RETRIES).map_err(|unsettled| match unsettled {
        Unsettled::Failed(e) => e,
        Unsettled::Changing { before, after } => {
            let before = before.unwrap_or_default();
            let mut changing: Vec<&String> = before
                .iter()
                .filter(|(name, text)| after.get(*name) != Some(*text))
                .map(|(name, _)| name)
                .chain(after.keys().filter(|name| !before.contains_key(*name)))
                .collect();
            changing.sort();
            changing.dedup();
            let names = changing
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            LoadError {
                dir: dir.to_path_buf(),
                problems: vec![Problem::whole_file(
                    &dir.display().to_string(),
                    format!(
                        "the files kept changing while being read ({names}); \
                         the set in force stays until the directory holds still"
                    ),
                )],
            }
        }
    })
}
