//! Writing an object to S3: a file that fits in one part goes up in a single PUT, a larger
//! one as a multipart upload of bounded parts, aborted on any failure or drop.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};

use super::unavailable;
use crate::storage::{BoxFuture, ObjectWriter, StorageError};

/// Size of each part of a multipart upload (S3's minimum is 5 MiB): one part fills while the
/// previous one is sent, so this bounds an upload's memory.
pub const PART_BYTES: usize = 8 << 20;

/// An upload in progress. A file that fits in one part is sent with a single PUT in `finish`,
/// a larger one as a multipart upload started when the first part is full.
pub(super) struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    part: BytesMut,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    /// The part being sent while the next one fills: at most two parts in memory.
    in_flight: Option<tokio::task::JoinHandle<Result<(CompletedPart, Bytes), StorageError>>>,
    /// A sent part's buffer, filled again: the same two buffers serve the whole upload, so
    /// the allocator keeps no trail of freed parts.
    spare: Option<BytesMut>,
}

impl S3Writer {
    /// A writer for `key` in `bucket`; nothing is sent before the first part is full.
    pub(super) fn new(client: Client, bucket: String, key: String) -> Self {
        Self {
            client,
            bucket,
            key,
            part: BytesMut::new(),
            upload_id: None,
            parts: Vec::new(),
            in_flight: None,
            spare: None,
        }
    }

    /// Waits for the part in flight and records it.
    async fn settle(&mut self) -> Result<(), StorageError> {
        if let Some(job) = self.in_flight.take() {
            let (part, bytes) = job.await.map_err(|e| StorageError::Unavailable {
                backend: "s3",
                message: format!("a part upload failed: {e}"),
            })??;
            self.parts.push(part);
            if let Ok(mut buffer) = bytes.try_into_mut() {
                buffer.clear();
                self.spare = Some(buffer);
            }
        }
        Ok(())
    }

    /// Starts sending `bytes` as the next part, once the previous part is stored.
    async fn send_part(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        self.settle().await?;
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .send()
                    .await
                    .map_err(|e| unavailable("cannot start the upload", &e))?;
                let id = out.upload_id().ok_or_else(|| StorageError::Unavailable {
                    backend: "s3",
                    message: "the server gave no upload id".into(),
                })?;
                self.upload_id = Some(id.to_string());
                id.to_string()
            }
        };
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes.clone()));
        self.in_flight = Some(tokio::spawn(async move {
            let out = request
                .send()
                .await
                .map_err(|e| unavailable("cannot upload a part", &e))?;
            let part = CompletedPart::builder()
                .set_e_tag(out.e_tag().map(str::to_string))
                .part_number(number)
                .build();
            Ok((part, bytes))
        }));
        Ok(())
    }

    async fn complete(&mut self) -> Result<(), StorageError> {
        let rest = self.part.split().freeze();
        let Some(upload_id) = self.upload_id.clone() else {
            return self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .body(ByteStream::from(rest))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| unavailable("cannot store the object", &e));
        };
        if !rest.is_empty() {
            self.send_part(rest).await?;
        }
        self.settle().await?;
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| unavailable("cannot complete the upload", &e))?;
        self.upload_id = None;
        Ok(())
    }

    /// Aborts the multipart upload, if one was started, so the server frees its parts.
    async fn abort_upload(&mut self) {
        // A part still being sent would land after the abort.
        let _ = self.settle().await;
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let abort = Abort {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            upload_id,
        };
        if let Err(e) = abort.send().await {
            tracing::warn!(
                key = %abort.key,
                error = %DisplayErrorContext(&e),
                code = e.code().unwrap_or_default(),
                "cannot abort a multipart upload; retrying in the background"
            );
            abort.retry_in_background();
        }
    }
}

/// How long an abort that fails is retried: storage down that long is an outage for
/// `ipm-api gc` to clean up after.
const ABORT_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(600);
const ABORT_RETRY_MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(10);

/// A multipart upload to abort.
struct Abort {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
}

impl Abort {
    async fn send(
        &self,
    ) -> Result<
        (),
        aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadError,
        >,
    > {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map(|_| ())
    }

    /// Retries the abort until it is done or the upload is gone, so storage that was down
    /// when an upload failed keeps none of its parts once it is back.
    fn retry_in_background(self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let give_up = tokio::time::Instant::now() + ABORT_RETRY_FOR;
            let mut pause = std::time::Duration::from_millis(250);
            loop {
                match self.send().await {
                    Ok(()) => return,
                    Err(e) if e.code() == Some("NoSuchUpload") => return,
                    Err(_) if tokio::time::Instant::now() + pause < give_up => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(ABORT_RETRY_MAX_PAUSE);
                    }
                    Err(_) => break,
                }
            }
            tracing::warn!(key = %self.key, "gave up aborting a multipart upload; `ipm-api gc` finds it");
        });
    }
}

impl ObjectWriter for S3Writer {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let mut chunk = chunk;
            while !chunk.is_empty() {
                if self.part.capacity() < PART_BYTES {
                    match self.spare.take() {
                        Some(spare) if self.part.is_empty() => self.part = spare,
                        // One allocation per part, not a doubling series of copies.
                        _ => self.part.reserve(PART_BYTES - self.part.len()),
                    }
                }
                let room = PART_BYTES - self.part.len();
                let take = room.min(chunk.len());
                self.part.extend_from_slice(&chunk.split_to(take));
                if self.part.len() == PART_BYTES {
                    let part = self.part.split().freeze();
                    self.send_part(part).await?;
                }
            }
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            let result = self.complete().await;
            if result.is_err() {
                self.abort_upload().await;
            }
            result
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.abort_upload().await })
    }
}

impl Drop for S3Writer {
    /// An upload dropped half-way (a cancelled request) is aborted in the background.
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        Abort {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            upload_id,
        }
        .retry_in_background();
    }
}
