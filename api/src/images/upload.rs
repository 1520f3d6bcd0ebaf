//! `POST /api/projects/{id}/images`: the file from a multipart form or a raw body, streamed
//! into storage by `crate::upload` in its own task, then its row; refusals close the connection.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use uuid::Uuid;
use warp::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};

use super::existing_project;
use crate::access::{Caller, RequestMeta, audit};
use crate::csrf::check_raw_upload;
use crate::error::ApiError;
use crate::filename::{DEFAULT_FILENAME, clean_filename};
use crate::image_store::{Image, ImageDbError};
use crate::models::now;
use crate::reply::{Reply, created, db_error, parse_query, path_id, respond, storage_error};
use crate::state::ApiState;
use crate::storage::ObjectKey;
use crate::thumbnails::ThumbnailError;
use crate::upload::{
    BodyError, BodyLimits, Cut, GuardedBody, UploadError, UploadLimits, UploadSlot, drain, store,
};

/// Room for a multipart body's boundaries and part headers beyond the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// What a refused client may still send, and for how long, before the connection is closed
/// on it.
const DRAIN_BYTES: u64 = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The query of an upload, as sent: the file's name, required with a raw body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadParams {
    filename: Option<String>,
}

/// Where the file's bytes come from.
enum Source<S> {
    /// The whole body is the file.
    Raw(S),
    /// A `multipart/form-data` body with the file in a part named `file` (or any part with a
    /// filename).
    Multipart(multer::Multipart<'static>),
}

/// Hands over one chunk per poll. multer reads its input until it would block, so behind a
/// fast client it would otherwise gather much of the body in its buffer.
struct OneAtATime<S> {
    inner: S,
    yielded: bool,
}

impl<S> OneAtATime<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            yielded: false,
        }
    }
}

impl<S: Stream + Unpin> Stream for OneAtATime<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.yielded {
            self.yielded = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = Pin::new(&mut self.inner).poll_next(cx);
        self.yielded = next.is_ready();
        next
    }
}

fn header(meta: &RequestMeta, name: warp::http::header::HeaderName) -> Option<&str> {
    meta.headers.get(name).and_then(|v| v.to_str().ok())
}

/// What an upload is, once everything that can be judged before its body has been.
struct Admitted {
    caller: Caller,
    project: Uuid,
    named: Option<String>,
    slot: UploadSlot,
    /// The multipart boundary; `None` for a raw body.
    boundary: Option<String>,
}

/// Every check that needs no byte of the body, in the order a caller's mistakes are told.
async fn admit(s: &ApiState, project: &str, meta: &RequestMeta) -> Result<Admitted, ApiError> {
    let caller = s.access.authorize(meta).await?;
    let project = path_id(project)?;
    let UploadParams { filename: named } = parse_query(meta.query())?;
    existing_project(s, project).await?;
    // Taken before any of the body is read, held by the upload's task to its end.
    let slot = s
        .images
        .slots
        .try_take(caller.user.as_str())
        .map_err(ApiError::TooManyUploads)?;
    let config = &s.images.config;
    let content_type = header(meta, CONTENT_TYPE).unwrap_or_default();
    let multipart = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data"));
    let length: Option<u64> = header(meta, CONTENT_LENGTH).and_then(|v| v.parse().ok());
    let allowance = if multipart { MULTIPART_OVERHEAD } else { 0 };
    if length.is_some_and(|n| n > config.max_upload_bytes.saturating_add(allowance)) {
        return Err(ApiError::UploadTooLarge(config.max_upload_bytes));
    }
    let boundary =
        if multipart {
            Some(multer::parse_boundary(content_type).map_err(|_| {
                ApiError::invalid_param("content-type", "has no multipart boundary")
            })?)
        } else {
            if named.is_none() {
                return Err(ApiError::invalid_param(
                    "filename",
                    "is required with a raw body (or send multipart/form-data)",
                ));
            }
            check_raw_upload(&meta.headers)?;
            None
        };
    Ok(Admitted {
        caller,
        project,
        named,
        slot,
        boundary,
    })
}

/// `POST /api/projects/{id}/images`.
pub(super) async fn upload_image<S, B>(
    project: String,
    meta: RequestMeta,
    body: S,
    s: ApiState,
) -> Reply
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    let mut body = Box::pin(body.map(|r| r.map(|mut b| b.copy_to_bytes(b.remaining()))));
    let result = match admit(&s, &project, &meta).await {
        Ok(admitted) => receive_body(&s, admitted, body).await,
        Err(e) => {
            // Answering while the client (or nginx, unbuffered) still sends would reset the
            // connection and lose the answer (nginx: a 502): the rest is read first, bounded.
            drain(&mut body, DRAIN_BYTES, DRAIN_TIME).await;
            Err(e)
        }
    };
    let mut r = respond(result);
    // A refused upload may leave part of its body unread: the connection cannot carry
    // another request.
    if !r.status().is_success() {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// Streams an admitted upload's body into storage in its own task, and answers with its row.
async fn receive_body<S>(s: &ApiState, admitted: Admitted, body: S) -> Result<Reply, ApiError>
where
    S: Stream<Item = Result<Bytes, warp::Error>> + Send + Unpin + 'static,
{
    let Admitted {
        caller,
        project,
        named,
        slot,
        boundary,
    } = admitted;
    let config = &s.images.config;
    // Counted and timed before any parser reads it: multer would otherwise buffer a part
    // header or preamble that never ends, and wait forever on a silent client.
    let limits = BodyLimits {
        max_bytes: config.max_upload_bytes.saturating_add(MULTIPART_OVERHEAD),
        idle: config.upload_idle_timeout,
        drain_bytes: DRAIN_BYTES,
        drain_time: DRAIN_TIME,
    };
    let body = GuardedBody::new(body, limits);
    let cut = body.cut_flag();
    let source = match boundary {
        Some(boundary) => {
            let constraints = multer::Constraints::new()
                .size_limit(multer::SizeLimit::new().whole_stream(limits.max_bytes));
            Source::Multipart(multer::Multipart::with_constraints(
                OneAtATime::new(body),
                boundary,
                constraints,
            ))
        }
        None => Source::Raw(body),
    };
    // Its own task: a client that goes away cannot cancel it half-way (say between storing
    // the object and writing its row); it sees the body end in an error and cleans up.
    let task = tokio::spawn(receive(s.clone(), caller, project, named, source, slot));
    let image = task
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "upload task failed");
            ApiError::StorageUnavailable
        })?
        .map_err(|e| match (e, cut.get()) {
            // The body ended because the guard cut it: say why.
            (ApiError::UploadInterrupted, Some(cut)) => cut_error(cut, config.max_upload_bytes),
            (e, _) => e,
        })?;
    Ok(created(&image, &format!("/api/images/{}", image.id)))
}

/// Stores the file, then its row; removes the object when the row cannot be written.
async fn receive<S>(
    s: ApiState,
    caller: Caller,
    project: Uuid,
    named: Option<String>,
    source: Source<S>,
    _slot: UploadSlot,
) -> Result<Image, ApiError>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Send + Unpin + 'static,
{
    let images = &s.images;
    let id = Uuid::now_v7();
    let key = ObjectKey::for_image(id);
    let limits = UploadLimits {
        max_bytes: images.config.max_upload_bytes,
        allow_svg: images.config.allow_svg,
    };
    let storage = images.storage.as_ref();
    let (filename, stored) = match source {
        Source::Raw(mut body) => {
            let stored = store(storage, &key, &mut body, limits).await;
            if stored.as_ref().is_err_and(UploadError::is_refusal) {
                drain(&mut body, DRAIN_BYTES, DRAIN_TIME).await;
            }
            (named.unwrap_or_default(), stored)
        }
        Source::Multipart(mut form) => {
            let (field, filename) = file_field(&mut form, named).await?;
            let mut field = Box::pin(field);
            let stored = store(storage, &key, &mut field, limits).await;
            drop(field);
            // Read the rest (the closing boundary, or what a refused client still sends).
            drain_form(&mut form).await;
            (filename, stored)
        }
    };
    let stored = stored.map_err(upload_error)?;
    let image = Image {
        id,
        project_id: project,
        storage_key: key.to_string(),
        filename: clean_filename(&filename),
        content_type: stored.kind.mime().to_string(),
        size_bytes: i64::try_from(stored.size).unwrap_or(i64::MAX),
        sha256: stored.sha256,
        width: stored.dimensions.map(|d| i64::from(d.width)),
        height: stored.dimensions.map(|d| i64::from(d.height)),
        uploaded_by: caller.user.as_str().to_string(),
        created_at: now(),
    };
    match images.store.insert(&image).await {
        Ok(row) => {
            audit!(
                caller,
                project = %project,
                image = %row.id,
                size = row.size_bytes,
                content_type = %row.content_type,
                "image uploaded"
            );
            // The thumbnail now, while the upload is answered; one that cannot be made now
            // is made on its first request.
            match images.thumbnails.make(&images.storage, &row).await {
                Ok(_) | Err(ThumbnailError::Refused(_)) => {}
                Err(e) => tracing::warn!(image = %row.id, error = %e, "thumbnail not made now"),
            }
            Ok(row)
        }
        Err(e) => {
            // The object must not outlive its failed row.
            if let Err(d) = storage.delete(&key).await {
                tracing::error!(key = %key, error = %d, "cannot remove the object of a failed upload; `ipm-api gc` will");
            }
            Err(match e {
                ImageDbError::ProjectGone => ApiError::ProjectNotFound,
                ImageDbError::Db(e) => db_error(e),
            })
        }
    }
}

/// What the client is told about a body the guard cut (`max` is `MAX_UPLOAD_BYTES`; the
/// guard allows a little more, for a form's boundaries and part headers).
fn cut_error(cut: Cut, max: u64) -> ApiError {
    match cut {
        Cut::TooLarge(_) => ApiError::UploadTooLarge(max),
        Cut::Idle(after) => ApiError::UploadTimedOut(after),
    }
}

/// What the client is told about an upload that was not stored.
fn upload_error(e: UploadError) -> ApiError {
    match e {
        UploadError::TooLarge(max) => ApiError::UploadTooLarge(max),
        UploadError::Empty => ApiError::invalid_field("file", "is empty"),
        UploadError::UnsupportedType => ApiError::UnsupportedMediaType(format!(
            "the file is not an accepted image ({})",
            crate::sniff::ACCEPTED
        )),
        UploadError::SvgRefused => {
            ApiError::UnsupportedMediaType("SVG images are not accepted".into())
        }
        UploadError::Unreadable(kind) => ApiError::UnsupportedMediaType(format!(
            "the file looks like {} but its header is unreadable",
            kind.mime()
        )),
        UploadError::Interrupted(why) => {
            tracing::info!(reason = %why, "upload interrupted");
            ApiError::UploadInterrupted
        }
        UploadError::Storage(e) => storage_error(e),
    }
}

/// Largest non-file part read (and discarded) before the file part.
const FIELD_BYTES: u64 = 64 * 1024;

/// The file part and its name (the query's `filename` wins over the part's).
async fn file_field(
    form: &mut multer::Multipart<'static>,
    named: Option<String>,
) -> Result<(multer::Field<'static>, String), ApiError> {
    let malformed = |e: multer::Error| match e {
        multer::Error::StreamReadFailed(_) => ApiError::UploadInterrupted,
        // The guard beneath multer cuts the body first; multer's own limit is a second line.
        multer::Error::StreamSizeExceeded { .. } => ApiError::PayloadTooLarge,
        other => {
            ApiError::invalid_field("body", format!("is not valid multipart/form-data: {other}"))
        }
    };
    loop {
        let Some(mut field) = form.next_field().await.map_err(malformed)? else {
            return Err(ApiError::invalid_field(
                "file",
                "is missing: send the image in a part named `file`",
            ));
        };
        if field.name() == Some("file") || field.file_name().is_some() {
            let name = named
                .or_else(|| field.file_name().map(str::to_string))
                .unwrap_or_else(|| DEFAULT_FILENAME.to_string());
            return Ok((field, name));
        }
        let mut seen = 0u64;
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            seen += chunk.len() as u64;
            if seen > FIELD_BYTES {
                return Err(ApiError::invalid_field(
                    "body",
                    format!("parts other than the file must be under {FIELD_BYTES} bytes"),
                ));
            }
        }
    }
}

async fn drain_form(form: &mut multer::Multipart<'static>) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut seen = 0u64;
    while seen < DRAIN_BYTES {
        let Ok(Ok(Some(mut field))) = tokio::time::timeout_at(deadline, form.next_field()).await
        else {
            return;
        };
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, field.chunk()).await {
            seen += chunk.len() as u64;
            if seen >= DRAIN_BYTES {
                return;
            }
        }
    }
}
