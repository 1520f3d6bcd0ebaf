//! The writing side of an upload: blocks handed to storage while they are hashed on another
//! thread, and the next block arrives meanwhile; at most two blocks are held.

use bytes::BytesMut;
use sha2::{Digest, Sha256};

use super::UploadError;
use crate::storage::{ObjectWriter, StorageError};

/// Bytes gathered into one block, then hashed and stored side by side on other threads while
/// the next block arrives: receiving, hashing and writing overlap, and at most two blocks are
/// held.
const BLOCK: usize = 1 << 20;

/// A block's hashing and storing: the writer and hasher come back with the outcome.
type Done = (Box<dyn ObjectWriter>, Sha256, Result<(), StorageError>);

enum Stage {
    Idle(Box<dyn ObjectWriter>, Sha256),
    Busy(tokio::task::JoinHandle<Done>),
    /// The task holding the writer failed; dropping it there discarded the upload.
    Lost,
}

/// The writing side of an upload: blocks in, one at a time, in order.
pub(super) struct Pipeline {
    stage: Stage,
    block: BytesMut,
    backend: &'static str,
}

impl Pipeline {
    pub(super) fn new(writer: Box<dyn ObjectWriter>, backend: &'static str) -> Self {
        Self {
            stage: Stage::Idle(writer, Sha256::new()),
            block: BytesMut::with_capacity(BLOCK),
            backend,
        }
    }

    fn failed(&self, what: &str) -> UploadError {
        UploadError::Storage(StorageError::Unavailable {
            backend: self.backend,
            message: format!("the upload's {what} task failed"),
        })
    }

    /// Waits for the block in flight.
    async fn settle(&mut self) -> Result<(), UploadError> {
        match std::mem::replace(&mut self.stage, Stage::Lost) {
            Stage::Busy(job) => {
                let (writer, hasher, result) = job.await.map_err(|_| self.failed("writing"))?;
                self.stage = Stage::Idle(writer, hasher);
                Ok(result?)
            }
            idle @ Stage::Idle(..) => {
                self.stage = idle;
                Ok(())
            }
            Stage::Lost => Err(self.failed("writing")),
        }
    }

    /// Hands the gathered block over, once the previous one is done.
    async fn send(&mut self) -> Result<(), UploadError> {
        self.settle().await?;
        let Stage::Idle(mut writer, mut hasher) = std::mem::replace(&mut self.stage, Stage::Lost)
        else {
            return Err(self.failed("writing"));
        };
        let block = self.block.split().freeze();
        self.block.reserve(BLOCK);
        let backend = self.backend;
        self.stage = Stage::Busy(tokio::spawn(async move {
            // Hashing and storing the same bytes side by side.
            let hashing = tokio::task::spawn_blocking({
                let block = block.clone();
                move || {
                    hasher.update(&block);
                    hasher
                }
            });
            let result = writer.write(block).await;
            match hashing.await {
                Ok(hasher) => (writer, hasher, result),
                Err(_) => {
                    let e = StorageError::Unavailable {
                        backend,
                        message: "the upload's hashing task failed".into(),
                    };
                    (writer, Sha256::new(), Err(e))
                }
            }
        }));
        Ok(())
    }

    pub(super) async fn push(&mut self, mut chunk: &[u8]) -> Result<(), UploadError> {
        while !chunk.is_empty() {
            let take = (BLOCK - self.block.len()).min(chunk.len());
            self.block.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.block.len() == BLOCK {
                self.send().await?;
            }
        }
        Ok(())
    }

    /// Stores the rest and makes the object visible; the SHA-256 of everything pushed.
    pub(super) async fn finish(mut self) -> Result<String, UploadError> {
        let flushed = async {
            if !self.block.is_empty() {
                self.send().await?;
            }
            self.settle().await
        }
        .await;
        if let Err(e) = flushed {
            self.abort().await;
            return Err(e);
        }
        match std::mem::replace(&mut self.stage, Stage::Lost) {
            Stage::Idle(writer, hasher) => {
                writer.finish().await?;
                Ok(hex::encode(hasher.finalize()))
            }
            _ => Err(self.failed("writing")),
        }
    }

    /// Discards everything written.
    pub(super) async fn abort(mut self) {
        let _ = self.settle().await;
        if let Stage::Idle(writer, _) = std::mem::replace(&mut self.stage, Stage::Lost) {
            writer.abort().await;
        }
    }
}
