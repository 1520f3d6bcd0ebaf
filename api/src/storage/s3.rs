//! Images in an S3 bucket (AWS, MinIO, any S3-compatible server): small files in one PUT,
//! large ones as multipart uploads of bounded parts, aborted on any failure.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};

use super::{
    BoxFuture, ByteRange, Incomplete, ObjectInfo, ObjectKey, ObjectStream, ObjectWriter,
    PresignRequest, Storage, StorageError,
};
use crate::image_config::S3Config;

/// Size of each part of a multipart upload (S3's minimum is 5 MiB): one part fills while the
/// previous one is sent, so this bounds an upload's memory.
pub const PART_BYTES: usize = 8 << 20;

/// A bucket of images.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    /// Prepended to every key, so the bucket may hold other things.
    prefix: String,
}

fn unavailable<E: std::error::Error + 'static>(what: &str, e: &E) -> StorageError {
    StorageError::Unavailable {
        backend: "s3",
        message: format!("{what}: {}", DisplayErrorContext(e)),
    }
}

impl S3Storage {
    /// A client for `config`; nothing is contacted until `check`.
    pub fn new(config: &S3Config) -> Self {
        let secret = String::from_utf8_lossy(config.secret_access_key.expose()).into_owned();
        let credentials = Credentials::new(
            config.access_key_id.clone(),
            secret,
            None,
            None,
            "ipm-api-config",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.force_path_style)
            // Our own SHA-256 covers the content; optional checksums only trip up
            // S3-compatible servers that do not implement them.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .read_timeout(Duration::from_secs(30))
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(2)),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        Self {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
        }
    }

    fn object(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    /// Our key from a listed object name: under the prefix and of the generated shape.
    fn key_of(&self, name: &str) -> Option<ObjectKey> {
        ObjectKey::parse(name.strip_prefix(&self.prefix)?)
    }
}

fn system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

impl Storage for S3Storage {
    fn backend(&self) -> &'static str {
        "s3"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            match self.client.head_bucket().bucket(&self.bucket).send().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    let message = match status {
                        Some(404) => {
                            format!("S3_BUCKET: the bucket `{}` does not exist", self.bucket)
                        }
                        Some(401 | 403) => format!(
                            "S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY: access to the bucket `{}` is denied",
                            self.bucket
                        ),
                        Some(s) => format!("S3_BUCKET: the bucket `{}` answered {s}", self.bucket),
                        None => {
                            format!("S3_ENDPOINT: cannot reach S3: {}", DisplayErrorContext(&e))
                        }
                    };
                    Err(StorageError::Unavailable {
                        backend: "s3",
                        message,
                    })
                }
            }
        })
    }

    fn create<'a>(
        &'a self,
        key: &'a ObjectKey,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, StorageError>> {
        Box::pin(async move {
            Ok(Box::new(S3Writer {
                client: self.client.clone(),
                bucket: self.bucket.clone(),
                key: self.object(key),
                part: BytesMut::new(),
                upload_id: None,
                parts: Vec::new(),
                in_flight: None,
                spare: None,
            }) as Box<dyn ObjectWriter>)
        })
    }

    fn read<'a>(
        &'a self,
        key: &'a ObjectKey,
        range: Option<ByteRange>,
    ) -> BoxFuture<'a, Result<ObjectStream, StorageError>> {
        Box::pin(async move {
            let mut req = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.object(key));
            if let Some(r) = range {
                req = req.range(format!("bytes={}-{}", r.first, r.last));
            }
            let out = match req.send().await {
                Ok(out) => out,
                Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => {
                    return Err(StorageError::NotFound(key.to_string()));
                }
                Err(e) => return Err(unavailable("cannot read the object", &e)),
            };
            let stream = futures_util::stream::unfold(Some(out.body), |body| async move {
                let mut body = body?;
                match body.next().await? {
                    Ok(chunk) => Some((Ok(chunk), Some(body))),
                    Err(e) => Some((Err(unavailable("reading the object failed", &e)), None)),
                }
            });
            Ok(Box::pin(stream) as ObjectStream)
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.object(key))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| unavailable("cannot delete the object", &e))
        })
    }

    fn exists<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(self.object(key))
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(false),
                Err(e) => Err(unavailable("cannot look up the object", &e)),
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ObjectInfo>, StorageError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&self.prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| unavailable("cannot list the bucket", &e))?;
                for o in page.contents() {
                    if let Some(key) = o.key().and_then(|k| self.key_of(k)) {
                        out.push(ObjectInfo {
                            key,
                            size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                            modified: system_time(o.last_modified()),
                        });
                    }
                }
                match page.next_continuation_token() {
                    Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                    _ => break,
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
    }

    fn incomplete(
        &self,
        before: SystemTime,
    ) -> BoxFuture<'_, Result<Vec<Incomplete>, StorageError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut markers: (Option<String>, Option<String>) = (None, None);
            loop {
                let page = self
                    .client
                    .list_multipart_uploads()
                    .bucket(&self.bucket)
                    .prefix(&self.prefix)
                    .set_key_marker(markers.0.take())
                    .set_upload_id_marker(markers.1.take())
                    .send()
                    .await
                    .map_err(|e| unavailable("cannot list multipart uploads", &e))?;
                for u in page.uploads() {
                    let initiated = system_time(u.initiated());
                    if let (Some(key), Some(id)) = (u.key(), u.upload_id())
                        && self.key_of(key).is_some()
                        && initiated < before
                    {
                        out.push(Incomplete::Multipart {
                            key: key.to_string(),
                            upload_id: id.to_string(),
                            initiated,
                        });
                    }
                }
                if page.is_truncated() != Some(true) {
                    break;
                }
                markers = (
                    page.next_key_marker().map(str::to_string),
                    page.next_upload_id_marker().map(str::to_string),
                );
                if markers.0.is_none() {
                    break;
                }
            }
            Ok(out)
        })
    }

    fn remove_incomplete<'a>(
        &'a self,
        item: &'a Incomplete,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            match item {
                Incomplete::Multipart { key, upload_id, .. } => self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| unavailable("cannot abort the multipart upload", &e)),
                other => Err(StorageError::Unavailable {
                    backend: "s3",
                    message: format!("not a multipart upload: {other}"),
                }),
            }
        })
    }

    fn presign_read<'a>(
        &'a self,
        request: PresignRequest<'a>,
    ) -> Option<BoxFuture<'a, Result<String, StorageError>>> {
        Some(Box::pin(async move {
            let config = PresigningConfig::expires_in(request.expires_in).map_err(|e| {
                StorageError::Unavailable {
                    backend: "s3",
                    message: format!("cannot presign: {e}"),
                }
            })?;
            let presigned = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.object(request.key))
                .response_content_type(request.content_type)
                .response_content_disposition(request.content_disposition)
                .presigned(config)
                .await
                .map_err(|e| unavailable("cannot presign", &e))?;
            Ok(presigned.uri().to_string())
        }))
    }
}

/// An upload in progress. A file that fits in one part is sent with a single PUT in `finish`,
/// a larger one as a multipart upload started when the first part is full.
struct S3Writer {
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
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .send()
            .await
        {
            // `ipm-api gc` aborts it later.
            tracing::warn!(
                key = %self.key,
                error = %DisplayErrorContext(&e),
                code = e.code().unwrap_or_default(),
                "cannot abort a multipart upload"
            );
        }
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
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .send()
                    .await;
            });
        }
    }
}
