//! Uploads in progress under `tmp/`: a temporary file written in large blocks, synced, then
//! linked into place as the object; and the stale ones a crash leaves there, for gc.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;

use super::{blocking, unavailable};
use crate::storage::{BoxFuture, Incomplete, ObjectWriter, StorageError};

/// Bytes gathered before one write to disk: large writes, few thread hand-offs.
const WRITE_BLOCK: usize = 1 << 20;

/// Temporary files in `tmp` last changed before `before`.
pub(super) fn stale(tmp: &Path, before: SystemTime) -> Result<Vec<Incomplete>, StorageError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(tmp).map_err(|e| unavailable("cannot list", tmp, &e))? {
        let entry = entry.map_err(|e| unavailable("cannot list", tmp, &e))?;
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if meta.is_file() && modified < before {
            out.push(Incomplete::TempFile {
                path: entry.path(),
                modified,
            });
        }
    }
    Ok(out)
}

/// The path of `item` when it is a file directly in our own temporary folder `tmp`: nothing
/// else is ever removed as an incomplete upload.
pub(super) fn own_file(tmp: &Path, item: &Incomplete) -> Result<PathBuf, StorageError> {
    match item {
        Incomplete::TempFile { path, .. } if path.parent() == Some(tmp) => Ok(path.clone()),
        other => Err(StorageError::Unavailable {
            backend: "local",
            message: format!("not a local temporary file: {other}"),
        }),
    }
}

/// Starts an upload: creates the temporary file `tmp`, to become `dest` in `finish`.
pub(super) async fn create(
    tmp: PathBuf,
    dest: PathBuf,
) -> Result<Box<dyn ObjectWriter>, StorageError> {
    let path = tmp.clone();
    let file = blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| unavailable("cannot create", &path, &e))
    })
    .await?;
    Ok(Box::new(LocalWriter {
        file: Some(file),
        block: Vec::with_capacity(WRITE_BLOCK),
        tmp,
        dest,
        done: false,
    }))
}

/// An upload in progress: a temporary file that only becomes the object in `finish`.
struct LocalWriter {
    /// Away while a block is being written on the blocking pool.
    file: Option<std::fs::File>,
    block: Vec<u8>,
    tmp: PathBuf,
    dest: PathBuf,
    /// Finished or aborted: nothing left to clean up.
    done: bool,
}

impl LocalWriter {
    /// Writes `data` on the blocking pool.
    async fn write_out(&mut self, data: Bytes) -> Result<(), StorageError> {
        let Some(mut file) = self.file.take() else {
            return Err(unavailable(
                "a previous write failed on",
                &self.tmp,
                &std::io::ErrorKind::BrokenPipe.into(),
            ));
        };
        let path = self.tmp.clone();
        let file = blocking(move || {
            file.write_all(&data)
                .map_err(|e| unavailable("cannot write", &path, &e))?;
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        Ok(())
    }

    async fn flush_block(&mut self) -> Result<(), StorageError> {
        if self.block.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(WRITE_BLOCK));
        self.write_out(Bytes::from(block)).await
    }
}

impl ObjectWriter for LocalWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            // A large chunk goes out as it is; small ones are gathered first.
            if self.block.is_empty() && chunk.len() >= WRITE_BLOCK {
                return self.write_out(chunk).await;
            }
            self.block.extend_from_slice(&chunk);
            if self.block.len() >= WRITE_BLOCK {
                self.flush_block().await?;
            }
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            self.flush_block().await?;
            let file = self.file.take();
            let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
            let result = blocking(move || {
                if let Some(file) = file {
                    file.sync_all()
                        .map_err(|e| unavailable("cannot sync", &tmp, &e))?;
                }
                let parent = dest.parent().unwrap_or(Path::new("."));
                std::fs::create_dir_all(parent)
                    .map_err(|e| unavailable("cannot create", parent, &e))?;
                // A link never replaces an existing object; fall back to a rename where the
                // filesystem has no links (keys are fresh ids, so nothing is there).
                match std::fs::hard_link(&tmp, &dest) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&tmp);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(unavailable("refusing to replace", &dest, &e));
                    }
                    Err(_) if !dest.exists() => std::fs::rename(&tmp, &dest)
                        .map_err(|e| unavailable("cannot store", &dest, &e))?,
                    Err(e) => return Err(unavailable("cannot store", &dest, &e)),
                }
                // The new name must survive a crash as well as the bytes.
                if let Ok(dir) = std::fs::File::open(parent) {
                    let _ = dir.sync_all();
                }
                Ok(())
            })
            .await;
            if result.is_ok() {
                self.done = true;
            }
            // On failure, dropping `self` removes the temporary file.
            result
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.done = true;
            self.file.take();
            let tmp = self.tmp.clone();
            let _ = blocking(move || {
                let _ = std::fs::remove_file(&tmp);
                Ok(())
            })
            .await;
        })
    }
}

impl Drop for LocalWriter {
    /// An upload dropped half-way (a cancelled request) leaves no file behind.
    fn drop(&mut self) {
        if !self.done {
            self.file.take();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
