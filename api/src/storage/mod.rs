//! Where image bytes live: a folder on local disk or an S3 bucket, behind one `Storage` trait.
//! Object keys are made here from server-generated ids, never from anything a client sent.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use uuid::Uuid;

pub mod local;
#[cfg(feature = "s3")]
pub mod s3;

pub use local::LocalStorage;
#[cfg(feature = "s3")]
pub use s3::S3Storage;

use crate::image_config::StorageConfig;

/// Opens the configured store and checks that it works: a missing bucket or an unwritable
/// folder refuses the start rather than failing the first upload.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Storage>, StorageError> {
    let storage: Arc<dyn Storage> = match config {
        StorageConfig::Local { dir } => Arc::new(LocalStorage::open(dir)?),
        #[cfg(feature = "s3")]
        StorageConfig::S3(s3) => Arc::new(S3Storage::new(s3)),
        #[cfg(not(feature = "s3"))]
        StorageConfig::S3(_) => {
            return Err(StorageError::Setup {
                var: "STORAGE_BACKEND",
                message: "this ipm-api was built without the `s3` feature".into(),
            });
        }
    };
    storage.check().await?;
    Ok(storage)
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An object's bytes as they arrive from storage.
pub type ObjectStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// Why storage failed. Messages name the backend and never carry credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Unreachable, refusing, failing: the request may succeed later (503).
    #[error("{backend} storage is unavailable: {message}")]
    Unavailable {
        backend: &'static str,
        message: String,
    },
    #[error("object `{0}` does not exist")]
    NotFound(String),
    /// A setting that cannot work, found at start.
    #[error("{var}: {message}")]
    Setup { var: &'static str, message: String },
}

/// An object's name in storage: `<shard>/<image id>` for an image, `<shard>/<image id>.thumb`
/// for its thumbnail, beside it. The shard (two hex digits from the id's random tail) keeps
/// local folders small. Only these shapes are ever read or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

/// What a thumbnail's key adds to its image's.
const THUMBNAIL_SUFFIX: &str = ".thumb";

impl ObjectKey {
    pub fn for_image(id: Uuid) -> Self {
        let shard = id.as_bytes()[15];
        Self(format!("{shard:02x}/{}", id.hyphenated()))
    }

    /// A key as stored in a row or listed by storage; anything not of a generated shape
    /// (another application's object, a path with `..`) is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let (image, thumbnail) = match s.strip_suffix(THUMBNAIL_SUFFIX) {
            Some(image) => (image, true),
            None => (s, false),
        };
        let (shard, id) = image.split_once('/')?;
        let id = ipm_policy::entities::parse_id(id)?;
        let key = Self::for_image(id);
        if key.0.split_once('/').map(|(s, _)| s) != Some(shard) {
            return None;
        }
        Some(if thumbnail { key.thumbnail() } else { key })
    }

    /// The key of this image's thumbnail (a thumbnail's is its own).
    pub fn thumbnail(&self) -> Self {
        if self.is_thumbnail() {
            self.clone()
        } else {
            Self(format!("{}{THUMBNAIL_SUFFIX}", self.0))
        }
    }

    pub fn is_thumbnail(&self) -> bool {
        self.0.ends_with(THUMBNAIL_SUFFIX)
    }

    /// The key of the image this object belongs to: itself, or a thumbnail's image.
    pub fn image(&self) -> Self {
        match self.0.strip_suffix(THUMBNAIL_SUFFIX) {
            Some(image) => Self(image.to_string()),
            None => self.clone(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: ObjectKey,
    pub size: u64,
    pub modified: SystemTime,
}

/// An upload that never finished: a temporary file or an S3 multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    TempFile {
        path: PathBuf,
        modified: SystemTime,
    },
    Multipart {
        key: String,
        upload_id: String,
        initiated: SystemTime,
    },
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TempFile { path, .. } => write!(f, "temporary file {}", path.display()),
            Self::Multipart { key, upload_id, .. } => {
                write!(f, "multipart upload of {key} (upload id {upload_id})")
            }
        }
    }
}

/// A byte range, both ends included, inside the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never: a range holds at least its first byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// How a download is answered with a presigned URL.
#[derive(Debug, Clone)]
pub struct PresignRequest<'a> {
    pub key: &'a ObjectKey,
    pub expires_in: Duration,
    pub content_type: &'a str,
    pub content_disposition: &'a str,
}

/// Image bytes in some store. Writes go to a staging place (temporary file, multipart
/// upload) and become visible under their key only when `finish` succeeds.
pub trait Storage: Send + Sync + fmt::Debug {
    /// `local` or `s3`, for logs and messages.
    fn backend(&self) -> &'static str;

    /// Checks that the store answers and is usable (the bucket exists, the folder is writable).
    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>>;

    /// Starts writing a new object. Dropping the writer unfinished discards what it wrote.
    fn create<'a>(
        &'a self,
        key: &'a ObjectKey,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, StorageError>>;

    /// The object's bytes, all of them or one range, as they come.
    fn read<'a>(
        &'a self,
        key: &'a ObjectKey,
        range: Option<ByteRange>,
    ) -> BoxFuture<'a, Result<ObjectStream, StorageError>>;

    /// Removes the object; removing one that is not there succeeds.
    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Whether the object exists.
    fn exists<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<bool, StorageError>>;

    /// Every object with a key of the generated shape.
    fn list(&self) -> BoxFuture<'_, Result<Vec<ObjectInfo>, StorageError>>;

    /// Uploads that never finished and started before `before`.
    fn incomplete(
        &self,
        before: SystemTime,
    ) -> BoxFuture<'_, Result<Vec<Incomplete>, StorageError>>;

    fn remove_incomplete<'a>(
        &'a self,
        item: &'a Incomplete,
    ) -> BoxFuture<'a, Result<(), StorageError>>;

    /// A short-lived URL that lets a client fetch the object directly, where the store can
    /// make one (S3); `None` otherwise.
    fn presign_read<'a>(
        &'a self,
        _request: PresignRequest<'a>,
    ) -> Option<BoxFuture<'a, Result<String, StorageError>>> {
        None
    }
}

/// An object being written.
pub trait ObjectWriter: Send {
    /// Appends the next bytes. Callers hand over chunks as they arrive; the writer buffers
    /// at most a bounded amount.
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StorageError>>;

    /// Makes the object visible under its key, never replacing an existing one.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>>;

    /// Discards everything written.
    fn abort(self: Box<Self>) -> BoxFuture<'static, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_one_shape() {
        let id = Uuid::now_v7();
        let key = ObjectKey::for_image(id);
        assert_eq!(ObjectKey::parse(key.as_str()), Some(key.clone()));
        let thumb = key.thumbnail();
        assert_eq!(thumb.as_str(), format!("{key}.thumb"));
        assert_eq!(ObjectKey::parse(thumb.as_str()), Some(thumb.clone()));
        assert!(thumb.is_thumbnail() && !key.is_thumbnail());
        assert_eq!((thumb.image(), key.image()), (key.clone(), key.clone()));
        assert_eq!(thumb.thumbnail(), thumb);
        let (shard, rest) = key.as_str().split_once('/').unwrap_or_default();
        assert_eq!(shard.len(), 2);
        assert_eq!(rest, id.to_string());
        for bad in [
            "",
            "../x",
            "00/../../etc/passwd",
            &format!("zz/{id}"),
            &format!("{shard}/{}", id.to_string().to_uppercase()),
            &format!("{shard}/{id}/x"),
            &format!("{shard}/{id}.thumb.thumb"),
            &format!("{shard}/{id}.png"),
            &format!("zz/{id}.thumb"),
            &id.to_string(),
        ] {
            assert_eq!(ObjectKey::parse(bad), None, "{bad}");
        }
    }
}
