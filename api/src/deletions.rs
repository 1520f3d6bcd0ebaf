//! Removing the objects of deleted rows. A row's delete commits first and queues its key
//! (`object_deletions`); the object and its thumbnail are removed afterwards, outside any
//! transaction, and the entry last. A storage outage or a crash in between leaves the key queued: the sweeper
//! ([`spawn_sweeper`]) and `ipm-api gc --apply` finish the job, so nothing is orphaned and no
//! write waits on storage.

use std::sync::Arc;
use std::time::Duration;

use crate::db::DbError;
use crate::image_store::ImageStore;
use crate::storage::{ObjectKey, Storage, StorageError};

/// Keys read from the queue per round trip.
const BATCH: u32 = 100;

/// What a pass removed and what is still queued.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub removed: usize,
    /// Still queued: storage refused (the pass stops at the first refusal).
    pub left: bool,
}

/// Why a pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Storage(#[from] StorageError),
}

/// Removes one queued key's object and its thumbnail, then its entry. A key not of the
/// generated shape was never handed to storage: only its entry goes.
pub async fn finish(
    store: &ImageStore,
    storage: &dyn Storage,
    key: &str,
) -> Result<(), SweepError> {
    if let Some(object) = ObjectKey::parse(key) {
        storage.delete(&object).await?;
        storage.delete(&object.thumbnail()).await?;
    }
    store.deletion_done(key).await?;
    Ok(())
}

/// Removes `keys` (just deleted rows' objects). A failure is logged and left queued.
pub async fn finish_all(store: &ImageStore, storage: &dyn Storage, keys: &[String]) {
    for key in keys {
        if let Err(e) = finish(store, storage, key).await {
            tracing::warn!(key = %key, error = %e, "a deleted image's object is still stored; it stays queued and is retried");
        }
    }
}

/// Removes everything queued, oldest first, until the queue is empty or storage refuses.
pub async fn sweep(store: &ImageStore, storage: &dyn Storage) -> Result<Swept, SweepError> {
    let mut swept = Swept::default();
    loop {
        let keys = store.queued_deletions(BATCH).await?;
        if keys.is_empty() {
            return Ok(swept);
        }
        for key in &keys {
            if let Err(e) = finish(store, storage, key).await {
                swept.left = true;
                return match e {
                    SweepError::Storage(_) => Ok(swept),
                    SweepError::Db(_) => Err(e),
                };
            }
            swept.removed += 1;
        }
    }
}

/// Sweeps at start and every `every` (`API_DELETE_RETRY_SECONDS`) until the handle is aborted.
pub fn spawn_sweeper(
    store: ImageStore,
    storage: Arc<dyn Storage>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sweep(&store, storage.as_ref()).await {
                Ok(Swept {
                    removed: 0,
                    left: false,
                }) => {}
                Ok(Swept { removed, left }) => {
                    tracing::info!(removed, left, "removed the objects of deleted images")
                }
                Err(e) => tracing::warn!(error = %e, "cannot sweep the objects of deleted images"),
            }
        }
    })
}
