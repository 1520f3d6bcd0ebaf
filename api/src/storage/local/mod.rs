//! Images in a local folder: `objects/<shard>/<id>` for stored images, read in large blocks;
//! `tmp/` for uploads in progress, which `staging` writes, syncs and links into place.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use uuid::Uuid;

use super::{
    BoxFuture, ByteRange, Incomplete, ObjectInfo, ObjectKey, ObjectStream, ObjectWriter, Storage,
    StorageError,
};

mod staging;

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

/// Removes a file; one that is not there is already removed.
fn remove_file(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(unavailable("cannot remove", path, &e)),
    }
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
        Box::pin(staging::create(tmp, dest))
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
        Box::pin(blocking(move || remove_file(&path)))
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
        Box::pin(blocking(move || staging::stale(&tmp, before)))
    }

    fn remove_incomplete<'a>(
        &'a self,
        item: &'a Incomplete,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        match staging::own_file(&self.tmp, item) {
            Ok(path) => Box::pin(blocking(move || remove_file(&path))),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}
