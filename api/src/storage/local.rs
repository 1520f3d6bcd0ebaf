//! Images in a local folder: `objects/<shard>/<id>` for stored images, `tmp/` for uploads in
//! progress, which are written in large blocks, synced, then linked into place.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use uuid::Uuid;

use super::{
    BoxFuture, ByteRange, Incomplete, ObjectInfo, ObjectKey, ObjectStream, ObjectWriter, Storage,
    StorageError,
};

/// Bytes gathered before one write to disk: large writes, few thread hand-offs.
const WRITE_BLOCK: usize = 1 << 20;
/// Bytes read from disk per chunk of a download: large reads, few thread hand-offs.
const READ_BLOCK: usize = 1 << 20;

/// A folder of images.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    objects: PathBuf,
    tmp: PathBuf,
}

fn unavailable(what: &str, path: &Path, e: &std::io::Error) -> StorageError {
    StorageError::Unavailable {
        backend: "local",
        message: format!("{what} `{}`: {e}", path.display()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StorageError::Unavailable {
            backend: "local",
            message: format!("disk task failed: {e}"),
        })
    })
}

impl LocalStorage {
    /// Uses `dir` (`STORAGE_DIR`), creating it and its subfolders when missing.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let objects = dir.join("objects");
        let tmp = dir.join("tmp");
        for d in [&objects, &tmp] {
            std::fs::create_dir_all(d).map_err(|e| StorageError::Setup {
                var: "STORAGE_DIR",
                message: format!("cannot create `{}`: {e}", d.display()),
            })?;
        }
        Ok(Self { objects, tmp })
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.objects.join(key.as_str())
    }
}

impl Storage for LocalStorage {
    fn backend(&self) -> &'static str {
        "local"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        let probe = self.tmp.join(format!(".probe-{}", Uuid::now_v7().simple()));
        let objects = self.objects.clone();
        Box::pin(blocking(move || {
            if !objects.is_dir() {
                return Err(unavailable(
                    "missing folder",
                    &objects,
                    &std::io::ErrorKind::NotFound.into(),
                ));
            }
            std::fs::write(&probe, b"")
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|e| unavailable("cannot write", &probe, &e))
        }))
    }

    fn create<'a>(
        &'a self,
        key: &'a ObjectKey,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, StorageError>> {
        let tmp = self.tmp.join(format!(
            "{}.{}.part",
            key.as_str().replace('/', "-"),
            Uuid::now_v7().simple()
        ));
        let dest = self.path(key);
        Box::pin(async move {
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
            }) as Box<dyn ObjectWriter>)
        })
    }

    fn read<'a>(
        &'a self,
        key: &'a ObjectKey,
        range: Option<ByteRange>,
    ) -> BoxFuture<'a, Result<ObjectStream, StorageError>> {
        let path = self.path(key);
        let name = key.to_string();
        Box::pin(async move {
            let (file, remaining) = blocking(move || {
                let mut file = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StorageError::NotFound(name));
                    }
                    Err(e) => return Err(unavailable("cannot open", &path, &e)),
                };
                let size = file
                    .metadata()
                    .map_err(|e| unavailable("cannot read", &path, &e))?
                    .len();
                let (first, len) = match range {
                    Some(r) => (r.first, r.len()),
                    None => (0, size),
                };
                if first.saturating_add(len) > size {
                    return Err(unavailable(
                        "shorter than recorded",
                        &path,
                        &std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                file.seek(SeekFrom::Start(first))
                    .map_err(|e| unavailable("cannot read", &path, &e))?;
                Ok((file, len))
            })
            .await?;
            let stream = futures_util::stream::unfold(
                (Some(file), remaining),
                |(file, remaining)| async move {
                    let mut file = file?;
                    if remaining == 0 {
                        return None;
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(READ_BLOCK);
                    // Allocated here, on a runtime thread, not on the blocking pool: each
                    // pool thread would keep an allocator arena of its own, and RSS would
                    // creep up with the number of threads that ever read.
                    let mut buf = Vec::with_capacity(n);
                    let chunk = blocking(move || {
                        // Read into spare capacity: no zeroing of a buffer about to be filled.
                        let read = (&mut file)
                            .take(n as u64)
                            .read_to_end(&mut buf)
                            .map_err(|e| e.to_string());
                        match read {
                            Ok(got) if got == n => Ok((file, buf)),
                            Ok(got) => Err(format!("the file ended {} bytes early", n - got)),
                            Err(e) => Err(e),
                        }
                        .map_err(|message| StorageError::Unavailable {
                            backend: "local",
                            message: format!("read failed: {message}"),
                        })
                    })
                    .await;
                    Some(match chunk {
                        Ok((file, buf)) => {
                            (Ok(Bytes::from(buf)), (Some(file), remaining - n as u64))
                        }
                        // One error ends the stream.
                        Err(e) => (Err(e), (None, 0)),
                    })
                },
            );
            Ok(Box::pin(stream) as ObjectStream)
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), StorageError>> {
        let path = self.path(key);
        Box::pin(blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable("cannot remove", &path, &e)),
        }))
    }

    fn exists<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<bool, StorageError>> {
        let path = self.path(key);
        Box::pin(blocking(move || match std::fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(unavailable("cannot read", &path, &e)),
        }))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ObjectInfo>, StorageError>> {
        let objects = self.objects.clone();
        Box::pin(blocking(move || {
            let read_dir =
                |d: &Path| std::fs::read_dir(d).map_err(|e| unavailable("cannot list", d, &e));
            let mut out = Vec::new();
            for shard in read_dir(&objects)? {
                let shard = shard.map_err(|e| unavailable("cannot list", &objects, &e))?;
                let shard_path = shard.path();
                if !shard_path.is_dir() {
                    continue;
                }
                let shard_name = shard.file_name().to_string_lossy().into_owned();
                for entry in read_dir(&shard_path)? {
                    let entry = entry.map_err(|e| unavailable("cannot list", &shard_path, &e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let Some(key) = ObjectKey::parse(&format!("{shard_name}/{name}")) else {
                        continue;
                    };
                    let meta = entry
                        .metadata()
                        .map_err(|e| unavailable("cannot read", &entry.path(), &e))?;
                    out.push(ObjectInfo {
                        key,
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        }))
    }

    fn incomplete(
        &self,
        before: SystemTime,
    ) -> BoxFuture<'_, Result<Vec<Incomplete>, StorageError>> {
        let tmp = self.tmp.clone();
        Box::pin(blocking(move || {
            let mut out = Vec::new();
            for entry in
                std::fs::read_dir(&tmp).map_err(|e| unavailable("cannot list", &tmp, &e))?
            {
                let entry = entry.map_err(|e| unavailable("cannot list", &tmp, &e))?;
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
        }))
    }

    fn remove_incomplete<'a>(
        &'a self,
        item: &'a Incomplete,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let path = match item {
            // Only files directly in our own temporary folder.
            Incomplete::TempFile { path, .. } if path.parent() == Some(self.tmp.as_path()) => {
                path.clone()
            }
            other => {
                let message = format!("not a local temporary file: {other}");
                return Box::pin(async move {
                    Err(StorageError::Unavailable {
                        backend: "local",
                        message,
                    })
                });
            }
        };
        Box::pin(blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable("cannot remove", &path, &e)),
        }))
    }
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
