//! Images in an S3 bucket (AWS, MinIO, any S3-compatible server): the client, reads, deletes,
//! listings and presigned URLs; `multipart` writes objects (one PUT or a multipart upload).

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;

use super::{
    BoxFuture, ByteRange, Incomplete, ObjectInfo, ObjectKey, ObjectStream, ObjectWriter,
    PresignRequest, Storage, StorageError,
};
use crate::image_config::S3Config;

mod multipart;

pub use multipart::PART_BYTES;
use multipart::S3Writer;

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
        let writer = S3Writer::new(self.client.clone(), self.bucket.clone(), self.object(key));
        Box::pin(std::future::ready(Ok(
            Box::new(writer) as Box<dyn ObjectWriter>
        )))
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
