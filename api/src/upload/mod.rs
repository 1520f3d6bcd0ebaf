//! An upload streamed into storage: sniffed, hashed, measured and limited as it passes, in
//! bounded memory whatever its size; every failure discards what was written.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::sniff::{Dimensions, HeaderProbe, ImageType, SNIFF_BYTES, sniff};
use crate::storage::{ObjectKey, Storage, StorageError};

mod body;
mod pipeline;
mod slots;

pub use body::{BodyError, BodyLimits, Cut, GuardedBody};
use pipeline::Pipeline;
pub use slots::{Busy, UploadSlot, UploadSlots};

/// What an upload may be.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub max_bytes: u64,
    pub allow_svg: bool,
}

/// An object stored and what was learnt on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    pub sha256: String,
    pub kind: ImageType,
    pub dimensions: Option<Dimensions>,
}

/// Why an upload was not stored. Nothing of it remains in storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the file is empty")]
    Empty,
    #[error("the file is not an accepted image type")]
    UnsupportedType,
    #[error("SVG images are not accepted")]
    SvgRefused,
    #[error("the {} header is unreadable", .0.mime())]
    Unreadable(ImageType),
    /// The client stopped sending or sent a broken body.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl UploadError {
    /// Rejected for what was sent, while the client may still be sending.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::TooLarge(_)
                | Self::Empty
                | Self::UnsupportedType
                | Self::SvgRefused
                | Self::Unreadable(_)
        )
    }
}

/// Counts and probes the bytes as they arrive; refuses past the limit.
struct Meter {
    limits: UploadLimits,
    size: u64,
    probe: Option<HeaderProbe>,
}

impl Meter {
    fn count(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.size += chunk.len() as u64;
        if self.size > self.limits.max_bytes {
            return Err(UploadError::TooLarge(self.limits.max_bytes));
        }
        Ok(())
    }
}

/// Streams `body` into a new object at `key`. The object is complete and visible only when
/// this returns `Ok`; on any error nothing is left (the writer is aborted). `body` is
/// borrowed so the caller can drain what a refused client still sends.
pub async fn store<S, B, E>(
    storage: &dyn Storage,
    key: &ObjectKey,
    body: &mut S,
    limits: UploadLimits,
) -> Result<StoredObject, UploadError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Into<Bytes>,
    E: std::fmt::Display,
{
    let mut meter = Meter {
        limits,
        size: 0,
        probe: None,
    };
    let mut next = async |meter: &mut Meter| -> Result<Option<Bytes>, UploadError> {
        match body.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(UploadError::Interrupted(e.to_string())),
            Some(Ok(chunk)) => {
                let chunk: Bytes = chunk.into();
                meter.count(&chunk)?;
                if let Some(p) = &mut meter.probe {
                    p.feed(&chunk);
                }
                Ok(Some(chunk))
            }
        }
    };
    // The type is decided before anything is written.
    let mut head = BytesMut::new();
    while head.len() < SNIFF_BYTES {
        match next(&mut meter).await? {
            Some(chunk) => head.extend_from_slice(&chunk),
            None => break,
        }
    }
    if head.is_empty() {
        return Err(UploadError::Empty);
    }
    let kind = sniff(&head).ok_or(UploadError::UnsupportedType)?;
    if kind == ImageType::Svg && !limits.allow_svg {
        return Err(UploadError::SvgRefused);
    }
    let mut probe = HeaderProbe::new(kind);
    probe.feed(&head);
    meter.probe = Some(probe);

    let mut pipeline = Pipeline::new(storage.create(key).await?, storage.backend());
    let received = async {
        pipeline.push(&head).await?;
        while let Some(chunk) = next(&mut meter).await? {
            pipeline.push(&chunk).await?;
        }
        Ok::<_, UploadError>(())
    }
    .await;
    let dimensions = meter.probe.as_ref().and_then(HeaderProbe::dimensions);
    let checked = received.and_then(|()| match (dimensions, kind) {
        (None, k) if k != ImageType::Svg => Err(UploadError::Unreadable(k)),
        _ => Ok(()),
    });
    if let Err(e) = checked {
        pipeline.abort().await;
        return Err(e);
    }
    let sha256 = pipeline.finish().await?;
    Ok(StoredObject {
        size: meter.size,
        sha256,
        kind,
        dimensions,
    })
}

/// Reads and discards what a refused client is still sending, up to `max_bytes` or `max_time`,
/// so it reads the answer instead of a reset connection.
pub async fn drain<S, B, E>(body: &mut S, max_bytes: u64, max_time: Duration)
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    let deadline = Instant::now() + max_time;
    let mut seen = 0u64;
    while seen < max_bytes {
        match tokio::time::timeout_at(deadline.into(), body.next()).await {
            Ok(Some(Ok(chunk))) => seen += chunk.as_ref().len() as u64,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::sniff::samples;
    use crate::storage::LocalStorage;

    fn chunks(bytes: &[u8], size: usize) -> Vec<Result<Bytes, String>> {
        bytes
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    fn limits(max_bytes: u64) -> UploadLimits {
        UploadLimits {
            max_bytes,
            allow_svg: false,
        }
    }

    async fn run(
        storage: &LocalStorage,
        items: Vec<Result<Bytes, String>>,
        limits: UploadLimits,
    ) -> (ObjectKey, Result<StoredObject, UploadError>) {
        let key = ObjectKey::for_image(uuid::Uuid::now_v7());
        let mut body = futures_util::stream::iter(items);
        let r = store(storage, &key, &mut body, limits).await;
        (key, r)
    }

    fn leftovers(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join("tmp")).map_or(0, |d| d.count())
    }

    #[tokio::test]
    async fn stores_and_describes_what_it_stored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let storage = LocalStorage::open(dir.path()).unwrap_or_else(|e| unreachable!("{e}"));
        let png = samples::png(3, 2, 3 << 20);
        let (key, r) = run(&storage, chunks(&png, 65536), limits(10 << 20)).await;
        let stored = r.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(stored.size, png.len() as u64);
        assert_eq!(stored.kind, ImageType::Png);
        assert_eq!(
            stored.dimensions,
            Some(Dimensions {
                width: 3,
                height: 2
            })
        );
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&png)));
        let on_disk = std::fs::read(dir.path().join("objects").join(key.as_str()))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(on_disk == png);
        assert_eq!(leftovers(dir.path()), 0);
    }

    #[tokio::test]
    async fn refusals_and_interruptions_leave_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let storage = LocalStorage::open(dir.path()).unwrap_or_else(|e| unreachable!("{e}"));
        let png = samples::png(3, 2, 2 << 20);
        let mut cut = chunks(&png, 65536);
        cut.truncate(10);
        cut.push(Err("connection reset".into()));
        let svg = b"<svg width=\"1\" height=\"1\"/>";
        let cases = [
            (
                chunks(&png, 65536),
                limits(1 << 20),
                UploadError::TooLarge(1 << 20),
            ),
            (Vec::new(), limits(100), UploadError::Empty),
            (
                chunks(b"%PDF-1.7 ....", 4),
                limits(100),
                UploadError::UnsupportedType,
            ),
            (chunks(svg, 5), limits(100), UploadError::SvgRefused),
            (
                chunks(&png[..20], 7),
                limits(100),
                UploadError::Unreadable(ImageType::Png),
            ),
            (
                cut,
                limits(10 << 20),
                UploadError::Interrupted("connection reset".into()),
            ),
        ];
        for (items, limits, want) in cases {
            let (key, r) = run(&storage, items, limits).await;
            assert_eq!(r, Err(want));
            assert!(!dir.path().join("objects").join(key.as_str()).exists());
            assert_eq!(leftovers(dir.path()), 0);
        }
        let allowed = UploadLimits {
            max_bytes: 100,
            allow_svg: true,
        };
        let (_, r) = run(&storage, chunks(svg, 5), allowed).await;
        assert_eq!(
            r.map(|s| s.dimensions),
            Ok(Some(Dimensions {
                width: 1,
                height: 1
            }))
        );
    }
}
