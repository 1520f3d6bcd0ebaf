//! The image routes: upload (multipart or raw body, streamed into storage), list, metadata,
//! download (streamed, ranged, or a redirect to a presigned URL) and delete.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use ipm_policy::entities::parse_id;
use uuid::Uuid;
use warp::Filter;
use warp::Reply as _;
use warp::http::header::{
    ACCEPT_RANGES, CONNECTION, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, HeaderValue, IF_NONE_MATCH, IF_RANGE, LOCATION, RANGE,
};
use warp::http::{Method, Response, StatusCode};

use crate::access::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::filename::{DEFAULT_FILENAME, clean_filename, content_disposition};
use crate::filters::{request_meta, with_state};
use crate::handlers::{ApiState, decode_cursor, encode_cursor, error_response};
use crate::image_config::{DownloadMode, ImageConfig};
use crate::image_store::{DeleteError, Image, ImageDbError, ImagePage, ImageStore};
use crate::models::{DEFAULT_LIMIT, MAX_LIMIT, now};
use crate::storage::{ByteRange, ObjectKey, ObjectStream, PresignRequest, Storage, StorageError};
use crate::upload::{UploadError, UploadLimits, drain, store};

/// Room for a multipart body's boundaries and part headers beyond the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// What a refused client may still send, and for how long, before the connection is closed
/// on it.
const DRAIN_BYTES: u64 = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);
/// Chunks of a download read ahead of the client (1 MiB each from disk).
const DOWNLOAD_QUEUE: usize = 2;

/// Image storage and settings, shared by the image routes.
#[derive(Debug)]
pub struct Images {
    pub storage: Arc<dyn Storage>,
    pub store: ImageStore,
    pub config: ImageConfig,
}

type Reply = warp::reply::Response;

fn respond(result: Result<Reply, ApiError>) -> Reply {
    result.unwrap_or_else(|e| error_response(&e).into_response())
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut r = Response::new(body.into());
            *r.status_mut() = status;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(_) => error_response(&ApiError::DatabaseUnavailable).into_response(),
    }
}

fn storage_error(e: &StorageError) -> ApiError {
    tracing::error!(error = %e, "storage call failed");
    ApiError::StorageUnavailable
}

fn db_error(e: &crate::db::DbError) -> ApiError {
    tracing::error!(error = %e, "database call failed");
    ApiError::DatabaseUnavailable
}

fn path_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_id(raw).ok_or_else(|| {
        ApiError::invalid_param("id", "must be a UUID in lower-case hyphenated form")
    })
}

/// The query of a route: only the named parameters, each at most once.
fn query_params<'a>(query: &str, allowed: &[&'a str]) -> Result<Vec<(&'a str, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::invalid_param("query", "is not a valid query string"))?;
    let mut out: Vec<(&'a str, String)> = Vec::new();
    for (k, v) in pairs {
        let Some(name) = allowed.iter().find(|a| **a == k) else {
            let name: String = k.chars().take(64).collect();
            return Err(ApiError::invalid_param(
                &name,
                format!(
                    "is not a parameter of this route (use {})",
                    allowed.join(", ")
                ),
            ));
        };
        if out.iter().any(|(n, _)| n == name) {
            return Err(ApiError::invalid_param(name, "is given more than once"));
        }
        out.push((name, v));
    }
    Ok(out)
}

/// Checks the project exists (policies may allow an admin on an id that names nothing).
async fn existing_project(s: &ApiState, id: Uuid) -> Result<(), ApiError> {
    match s.db.get(id).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::ProjectNotFound),
        Err(e) => Err(db_error(&e)),
    }
}

// === upload ===

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

/// `POST /api/projects/{id}/images`.
pub async fn upload_image<S, B>(project: String, meta: RequestMeta, body: S, s: ApiState) -> Reply
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    let mut r = respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let project = path_id(&project)?;
            let query = query_params(meta.query(), &["filename"])?;
            let named = query.into_iter().next().map(|(_, v)| v);
            existing_project(&s, project).await?;
            let config = &s.images.config;
            let content_type = header(&meta, CONTENT_TYPE).unwrap_or_default();
            let multipart = content_type
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data"));
            let length: Option<u64> = header(&meta, CONTENT_LENGTH).and_then(|v| v.parse().ok());
            let allowance = if multipart { MULTIPART_OVERHEAD } else { 0 };
            if length.is_some_and(|n| n > config.max_upload_bytes.saturating_add(allowance)) {
                return Err(ApiError::UploadTooLarge(config.max_upload_bytes));
            }
            let body = Box::pin(body.map(|r| r.map(|mut b| b.copy_to_bytes(b.remaining()))));
            let source = if multipart {
                let boundary = multer::parse_boundary(content_type).map_err(|_| {
                    ApiError::invalid_param("content-type", "has no multipart boundary")
                })?;
                Source::Multipart(multer::Multipart::new(OneAtATime::new(body), boundary))
            } else {
                if named.is_none() {
                    return Err(ApiError::invalid_param(
                        "filename",
                        "is required with a raw body (or send multipart/form-data)",
                    ));
                }
                Source::Raw(body)
            };
            // Its own task: a client that goes away cannot cancel it half-way (say between
            // storing the object and writing its row); it sees the body end in an error and
            // cleans up.
            let task = tokio::spawn(receive(s.clone(), caller, project, named, source));
            let image = task.await.map_err(|e| {
                tracing::error!(error = %e, "upload task failed");
                ApiError::StorageUnavailable
            })??;
            let mut r = json(StatusCode::CREATED, &image);
            if let Ok(v) = HeaderValue::from_str(&format!("/api/images/{}", image.id)) {
                r.headers_mut().insert(LOCATION, v);
            }
            Ok(r)
        }
        .await,
    );
    // A refused upload may leave part of its body unread: the connection cannot carry
    // another request.
    if !r.status().is_success() {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// Stores the file, then its row; removes the object when the row cannot be written.
async fn receive<S>(
    s: ApiState,
    caller: Caller,
    project: Uuid,
    named: Option<String>,
    source: Source<S>,
) -> Result<Image, ApiError>
where
    S: Stream<Item = Result<Bytes, warp::Error>> + Send + Unpin + 'static,
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
    let stored = stored.map_err(|e| upload_error(&e))?;
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
            tracing::info!(
                target: "ipm_api::audit",
                user = caller.user.as_str(),
                project = %project,
                image = %row.id,
                size = row.size_bytes,
                content_type = %row.content_type,
                "image uploaded"
            );
            Ok(row)
        }
        Err(e) => {
            // The object must not outlive its failed row.
            if let Err(d) = storage.delete(&key).await {
                tracing::error!(key = %key, error = %d, "cannot remove the object of a failed upload; `ipm-api gc` will");
            }
            Err(match e {
                ImageDbError::ProjectGone => ApiError::ProjectNotFound,
                ImageDbError::Db(e) => db_error(&e),
            })
        }
    }
}

/// Removes the objects of rows already deleted (a deleted project's images). Failures are
/// logged; `ipm-api gc` finds what is left.
pub async fn remove_objects(images: &Images, keys: &[String]) {
    for key in keys.iter().filter_map(|k| ObjectKey::parse(k)) {
        if let Err(e) = images.storage.delete(&key).await {
            tracing::error!(key = %key, error = %e, "cannot remove a deleted image's object; `ipm-api gc` will");
        }
    }
}

fn upload_error(e: &UploadError) -> ApiError {
    match e {
        UploadError::TooLarge(max) => ApiError::UploadTooLarge(*max),
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

// === list, metadata, delete ===

/// `GET /api/projects/{id}/images`: one page, oldest first.
pub async fn list_images(project: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            let project = path_id(&project)?;
            let mut limit = DEFAULT_LIMIT;
            let mut after = None;
            for (name, value) in query_params(meta.query(), &["limit", "cursor"])? {
                match name {
                    "limit" => {
                        limit = value
                            .parse()
                            .ok()
                            .filter(|n| (1..=MAX_LIMIT).contains(n))
                            .ok_or_else(|| {
                                ApiError::invalid_param(
                                    "limit",
                                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                                )
                            })?;
                    }
                    _ => {
                        after = Some(decode_cursor(&value).ok_or_else(|| {
                            ApiError::invalid_param(
                                "cursor",
                                "is not a cursor this API returned (pass `next_cursor` unchanged)",
                            )
                        })?);
                    }
                }
            }
            existing_project(&s, project).await?;
            let mut items = s
                .images
                .store
                .list(project, after, limit + 1)
                .await
                .map_err(|e| db_error(&e))?;
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let next_cursor = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|i| encode_cursor(i.id))
            } else {
                None
            };
            Ok(json(StatusCode::OK, &ImagePage { items, next_cursor }))
        }
        .await,
    )
}

async fn image_row(s: &ApiState, raw: &str) -> Result<Image, ApiError> {
    let id = path_id(raw)?;
    s.images
        .store
        .get(id)
        .await
        .map_err(|e| db_error(&e))?
        .ok_or(ApiError::ImageNotFound)
}

/// `GET /api/images/{id}`.
pub async fn get_image(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            let image = image_row(&s, &id).await?;
            Ok(json(StatusCode::OK, &image))
        }
        .await,
    )
}

/// `DELETE /api/images/{id}`: the row and the object, or neither.
pub async fn delete_image(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let id = path_id(&id)?;
            let storage = s.images.storage.clone();
            let deleted = s
                .images
                .store
                .delete_with(id, |key| async move {
                    match ObjectKey::parse(&key) {
                        Some(key) => storage.delete(&key).await,
                        // Never handed to storage; the row goes, gc reports nothing for it.
                        None => Ok(()),
                    }
                })
                .await;
            let image = match deleted {
                Ok(Some(image)) => image,
                Ok(None) => return Err(ApiError::ImageNotFound),
                Err(DeleteError::Db(e)) => return Err(db_error(&e)),
                Err(DeleteError::Object(e)) => return Err(storage_error(&e)),
            };
            tracing::info!(
                target: "ipm_api::audit",
                user = caller.user.as_str(),
                image = %image.id,
                project = %image.project_id,
                "image deleted"
            );
            let mut r = Response::new(warp::hyper::body::Bytes::new().into());
            *r.status_mut() = StatusCode::NO_CONTENT;
            Ok(r)
        }
        .await,
    )
}

// === download ===

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No range, several ranges or one that does not parse: the whole object (RFC 9110
    /// lets a server ignore what it does not support).
    Full,
    Partial(ByteRange),
    /// A valid range that lies outside the object: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range: `a-b`, `a-` or `-n`.
pub fn parse_range(header: &str, size: u64) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.is_empty(), num(first), num(last)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                return RangeRequest::Unsatisfiable;
            }
            ByteRange {
                first: size.saturating_sub(n),
                last: size - 1,
            }
        }
        (false, Some(a), None) if last.is_empty() => {
            if a >= size {
                return RangeRequest::Unsatisfiable;
            }
            ByteRange {
                first: a,
                last: size - 1,
            }
        }
        (false, Some(a), Some(b)) if a <= b => {
            if a >= size {
                return RangeRequest::Unsatisfiable;
            }
            ByteRange {
                first: a,
                last: b.min(size - 1),
            }
        }
        _ => return RangeRequest::Full,
    };
    RangeRequest::Partial(range)
}

/// Whether an `If-None-Match` list names `etag` (weak comparison) or is `*`.
fn none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Storage chunks handed to the client through a small queue: memory stays bounded, and
/// the reading task ends when the client goes away.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, StorageError>>);

impl Stream for ChannelBody {
    type Item = Result<Bytes, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A response whose body is `stream`, pumped by its own task.
fn streamed(mut stream: ObjectStream) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::channel(DOWNLOAD_QUEUE);
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if let Err(e) = &item {
                tracing::error!(error = %e, "download failed mid-stream");
            }
            // The client went away, or storage failed: the connection is cut short, so the
            // client sees an incomplete body rather than a wrong one.
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    warp::reply::stream(ChannelBody(rx)).into_response()
}

fn set(r: &mut Reply, name: warp::http::header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// `GET /api/images/{id}/content`: the bytes, with `ETag` (the SHA-256), `Range` support
/// and a safe `Content-Disposition`; or a redirect to a presigned URL.
pub async fn image_content(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            let image = image_row(&s, &id).await?;
            let key = ObjectKey::parse(&image.storage_key).ok_or_else(|| {
                tracing::error!(image = %image.id, "stored key has an unexpected shape");
                ApiError::ImageContentMissing
            })?;
            let disposition = content_disposition(&image.filename);
            let storage = &s.images.storage;
            if s.images.config.download == DownloadMode::Redirect
                && let Some(presign) = storage.presign_read(PresignRequest {
                    key: &key,
                    expires_in: s.images.config.redirect_expiry,
                    content_type: &image.content_type,
                    content_disposition: &disposition,
                })
            {
                let url = presign.await.map_err(|e| storage_error(&e))?;
                let mut r = Response::new(warp::hyper::body::Bytes::new().into());
                *r.status_mut() = StatusCode::FOUND;
                set(&mut r, LOCATION, &url);
                return Ok(r);
            }
            let size = u64::try_from(image.size_bytes).unwrap_or(0);
            let etag = format!("\"{}\"", image.sha256);
            let mut r = Response::new(warp::hyper::body::Bytes::new().into());
            set(&mut r, ETAG, &etag);
            set(&mut r, ACCEPT_RANGES, "bytes");
            if header(&meta, IF_NONE_MATCH).is_some_and(|h| none_match(h, &etag)) {
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                return Ok(r);
            }
            // A range only applies to the version the client has (`If-Range`).
            let range = match header(&meta, RANGE) {
                Some(h) if header(&meta, IF_RANGE).is_none_or(|v| v.trim() == etag) => {
                    parse_range(h, size)
                }
                _ => RangeRequest::Full,
            };
            let (status, part) = match range {
                RangeRequest::Full => (StatusCode::OK, None),
                RangeRequest::Partial(p) => (StatusCode::PARTIAL_CONTENT, Some(p)),
                RangeRequest::Unsatisfiable => {
                    let mut r = error_response(&ApiError::RangeNotSatisfiable).into_response();
                    set(&mut r, CONTENT_RANGE, &format!("bytes */{size}"));
                    return Ok(r);
                }
            };
            let length = part.map_or(size, |p| p.len());
            if meta.method != Method::HEAD {
                let stream = storage.read(&key, part).await.map_err(|e| match e {
                    StorageError::NotFound(_) => {
                        tracing::error!(image = %image.id, key = %key, "the image's object is missing; see `ipm-api gc`");
                        ApiError::ImageContentMissing
                    }
                    other => storage_error(&other),
                })?;
                let headers = std::mem::take(r.headers_mut());
                r = streamed(stream);
                r.headers_mut().extend(headers);
            }
            *r.status_mut() = status;
            set(&mut r, CONTENT_TYPE, &image.content_type);
            set(&mut r, CONTENT_LENGTH, &length.to_string());
            set(&mut r, CONTENT_DISPOSITION, &disposition);
            if let Some(p) = part {
                set(&mut r, CONTENT_RANGE, &format!("bytes {}-{}/{size}", p.first, p.last));
            }
            Ok(r)
        }
        .await,
    )
}

// === routes ===

fn get_or_head() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// The image routes.
pub fn routes(state: ApiState) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone {
    let project_images = || warp::path!("api" / "projects" / String / "images");
    let image = || warp::path!("api" / "images" / String);
    let upload = project_images()
        .and(warp::post())
        .and(request_meta())
        .and(warp::body::stream())
        .and(with_state(state.clone()))
        .then(upload_image);
    let list = project_images()
        .and(get_or_head())
        .and(request_meta())
        .and(with_state(state.clone()))
        .then(list_images);
    let get = image()
        .and(get_or_head())
        .and(request_meta())
        .and(with_state(state.clone()))
        .then(get_image);
    let delete = image()
        .and(warp::delete())
        .and(request_meta())
        .and(with_state(state.clone()))
        .then(delete_image);
    let content = warp::path!("api" / "images" / String / "content")
        .and(get_or_head())
        .and(request_meta())
        .and(with_state(state))
        .then(image_content);
    upload
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(delete)
        .unify()
        .or(content)
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first: u64, last: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { first, last })
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        let size = 1000;
        assert_eq!(parse_range("bytes=0-99", size), part(0, 99));
        assert_eq!(parse_range("bytes=900-", size), part(900, 999));
        assert_eq!(parse_range("bytes=-100", size), part(900, 999));
        assert_eq!(parse_range("bytes=-5000", size), part(0, 999));
        assert_eq!(parse_range("bytes=990-5000", size), part(990, 999));
        assert_eq!(parse_range("bytes=999-999", size), part(999, 999));
        assert_eq!(
            parse_range("bytes=1000-", size),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range("bytes=1000-1001", size),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", size), RangeRequest::Unsatisfiable);
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse_range(ignored, size), RangeRequest::Full, "{ignored}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = "\"abc\"";
        assert!(none_match("\"abc\"", etag));
        assert!(none_match("W/\"abc\"", etag));
        assert!(none_match("\"x\", \"abc\"", etag));
        assert!(none_match("*", etag));
        assert!(!none_match("\"abcd\"", etag));
    }
}
