//! Thumbnails: made when an image is uploaded, or on first request for one stored before,
//! and kept beside the image's object (`ObjectKey::thumbnail`), removed with it (`deletions`,
//! `gc`). `render` is the pure part; here the image is read back from storage into an unnamed
//! temporary file (in `TMPDIR`) and decoded on the blocking pool, a bounded number at once.
//! A thumbnail made on request while its image is being deleted can outlive it: `ipm-api gc`
//! finds it (a thumbnail without a row) and removes it.

use std::io::{BufReader, Seek};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::image_config::ThumbnailConfig;
use crate::image_store::Image;
use crate::sniff::ImageType;
use crate::storage::{ObjectKey, Storage, StorageError};

mod render;

pub use render::{RenderError, RenderLimits};

/// Bumped when thumbnails change (size, format, quality): part of their `ETag`.
const VERSION: &str = "t1";
/// How long a request waits for its turn to make a thumbnail before giving up for now.
const WAIT: Duration = Duration::from_secs(20);
/// A stored thumbnail is never larger: anything else under its key is not read.
const MAX_THUMBNAIL_BYTES: usize = 4 << 20;

/// Why there is no thumbnail to show now.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// There never will be one for this image.
    #[error("{0}")]
    Refused(RenderError),
    /// Every slot stayed busy for as long as a request waits.
    #[error("too many thumbnails are being made")]
    Busy,
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The temporary file, or a task that failed.
    #[error("cannot make the thumbnail: {0}")]
    Local(String),
}

/// A thumbnail to send.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub bytes: Bytes,
    pub mime: &'static str,
}

/// Makes and finds thumbnails, at most `concurrency` at once.
#[derive(Debug)]
pub struct Thumbnails {
    permits: Arc<Semaphore>,
    limits: RenderLimits,
}

/// The `ETag` of an image's thumbnail: the image's content and the renderer's version decide
/// it, so it is known before storage is asked.
pub fn etag(image: &Image) -> String {
    format!("\"{VERSION}-{}\"", image.sha256)
}

fn kind_of(image: &Image) -> Result<ImageType, RenderError> {
    let kind = match image.content_type.as_str() {
        "image/png" => ImageType::Png,
        "image/jpeg" => ImageType::Jpeg,
        "image/gif" => ImageType::Gif,
        "image/webp" => ImageType::Webp,
        "image/tiff" => ImageType::Tiff,
        "image/avif" => ImageType::Avif,
        _ => ImageType::Svg,
    };
    render::format_of(kind)?;
    Ok(kind)
}

impl Thumbnails {
    pub fn new(config: ThumbnailConfig) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(config.concurrency)),
            limits: RenderLimits {
                max_pixels: config.max_pixels,
            },
        }
    }

    /// Whether a thumbnail can be made of `image`, from its row alone: its type, and its size
    /// when the upload read it from the header.
    pub fn judge(&self, image: &Image) -> Result<ImageType, RenderError> {
        let kind = kind_of(image)?;
        if let (Some(w), Some(h)) = (image.width, image.height) {
            let (w, h) = (
                u32::try_from(w).unwrap_or(u32::MAX),
                u32::try_from(h).unwrap_or(u32::MAX),
            );
            render::check_size(w, h, self.limits)?;
        }
        Ok(kind)
    }

    /// The stored thumbnail of `image`, or one made now (and stored) when there is none.
    pub async fn get(
        self: &Arc<Self>,
        storage: &Arc<dyn Storage>,
        image: &Image,
    ) -> Result<Thumbnail, ThumbnailError> {
        self.judge(image).map_err(ThumbnailError::Refused)?;
        let key = object_key(image)?;
        if let Some(found) = stored(storage.as_ref(), &key.thumbnail()).await? {
            return found;
        }
        self.make(storage, image).await
    }

    /// Makes, stores and returns the thumbnail of `image`, in a task of its own: a request
    /// that goes away does not cancel it half-way. An image no thumbnail can be made of gets
    /// an empty object in its place, so it is not decoded again.
    pub async fn make(
        self: &Arc<Self>,
        storage: &Arc<dyn Storage>,
        image: &Image,
    ) -> Result<Thumbnail, ThumbnailError> {
        let kind = self.judge(image).map_err(ThumbnailError::Refused)?;
        let key = object_key(image)?;
        let (this, storage) = (self.clone(), storage.clone());
        let task = tokio::spawn(async move { this.make_now(storage, key, kind).await });
        task.await
            .map_err(|e| ThumbnailError::Local(format!("the thumbnail task failed: {e}")))?
    }

    async fn make_now(
        &self,
        storage: Arc<dyn Storage>,
        key: ObjectKey,
        kind: ImageType,
    ) -> Result<Thumbnail, ThumbnailError> {
        let permit = tokio::time::timeout(WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ThumbnailError::Busy)?
            .map_err(|_| ThumbnailError::Busy)?;
        // Another request may have made it while this one waited.
        if let Some(found) = stored(storage.as_ref(), &key.thumbnail()).await? {
            return found;
        }
        let file = spool(storage.as_ref(), &key).await?;
        let limits = self.limits;
        // The permit goes with the decode: a request that stops waiting still counts it.
        let rendered = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut file = file;
            file.rewind().map_err(local)?;
            Ok::<_, ThumbnailError>(render::render(BufReader::new(file), kind, limits))
        })
        .await
        .map_err(|e| ThumbnailError::Local(format!("the decoder failed: {e}")))??;
        let thumb = key.thumbnail();
        match rendered {
            Ok(r) => {
                let bytes = Bytes::from(r.bytes);
                put(storage.as_ref(), &thumb, bytes.clone()).await;
                let mime = render::mime_of(&bytes).unwrap_or("image/jpeg");
                Ok(Thumbnail { bytes, mime })
            }
            Err(e) => {
                tracing::info!(key = %key, reason = %e, "no thumbnail can be made of this image");
                put(storage.as_ref(), &thumb, Bytes::new()).await;
                Err(ThumbnailError::Refused(e))
            }
        }
    }
}

fn object_key(image: &Image) -> Result<ObjectKey, ThumbnailError> {
    ObjectKey::parse(&image.storage_key)
        .ok_or_else(|| ThumbnailError::Storage(StorageError::NotFound(image.storage_key.clone())))
}

/// The thumbnail stored under `key`: `None` when there is none yet; an error for the empty
/// object that says none can be made.
async fn stored(
    storage: &dyn Storage,
    key: &ObjectKey,
) -> Result<Option<Result<Thumbnail, ThumbnailError>>, ThumbnailError> {
    let mut stream = match storage.read(key, None).await {
        Ok(s) => s,
        Err(StorageError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
        if bytes.len() > MAX_THUMBNAIL_BYTES {
            return Err(ThumbnailError::Local(format!("`{key}` is too large")));
        }
    }
    Ok(Some(match render::mime_of(&bytes) {
        Some(mime) => Ok(Thumbnail {
            bytes: Bytes::from(bytes),
            mime,
        }),
        None => Err(ThumbnailError::Refused(RenderError::Undecodable(
            "an earlier attempt failed".into(),
        ))),
    }))
}

/// Stores a thumbnail. A failure only costs making it again later.
async fn put(storage: &dyn Storage, key: &ObjectKey, bytes: Bytes) {
    let result = async {
        let mut writer = storage.create(key).await?;
        if !bytes.is_empty() {
            writer.write(bytes).await?;
        }
        writer.finish().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(key = %key, error = %e, "cannot store a thumbnail; it will be made again");
    }
}

fn local(e: std::io::Error) -> ThumbnailError {
    ThumbnailError::Local(format!("temporary file: {e}"))
}

/// The image's bytes in an unnamed temporary file (gone when closed), to be rewound: the
/// decoders read and seek in it, and only the pixels take memory.
async fn spool(storage: &dyn Storage, key: &ObjectKey) -> Result<std::fs::File, ThumbnailError> {
    let mut stream = storage.read(key, None).await?;
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| ThumbnailError::Local(e.to_string()))?
        .map_err(local)?;
    let mut file = tokio::fs::File::from_std(file);
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk?).await.map_err(local)?;
    }
    file.flush().await.map_err(local)?;
    Ok(file.into_std().await)
}
