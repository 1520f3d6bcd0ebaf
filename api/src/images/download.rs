//! `GET /api/images/{id}/content` (and HEAD): the bytes streamed from storage with an ETag,
//! `If-None-Match`, single `Range` and `If-Range` support; or a redirect to a presigned URL.

use std::ops::Bound;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use headers::{AcceptRanges, ContentRange, ETag, HeaderMapExt, IfNoneMatch, IfRange, Range};
use warp::Reply as _;
use warp::http::header::{
    CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION,
};
use warp::http::{Method, StatusCode};

use super::image_row;
use crate::access::RequestMeta;
use crate::error::ApiError;
use crate::filename::content_disposition;
use crate::image_config::DownloadMode;
use crate::reply::{Reply, empty, error_response, respond, storage_error};
use crate::state::ApiState;
use crate::storage::{ByteRange, ObjectKey, ObjectStream, PresignRequest, StorageError};

/// Chunks of a download read ahead of the client (1 MiB each from disk).
const DOWNLOAD_QUEUE: usize = 2;

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No range, several ranges or one that does not parse: the whole object (RFC 9110
    /// lets a server ignore what it does not support).
    Full,
    Partial(ByteRange),
    /// A valid range that lies outside the object: 416.
    Unsatisfiable,
}

/// The one byte range of a `Range` header (`a-b`, `a-` or `-n`) within `size` bytes.
pub(crate) fn range_request(range: &Range, size: u64) -> RangeRequest {
    // `satisfiable_ranges` skips specs that do not parse, and a suffix longer than the length
    // it is given; with the largest length, only the ones that do not parse.
    if range.satisfiable_ranges(u64::MAX).count() != 1 {
        return RangeRequest::Full;
    }
    let Some(last_byte) = size.checked_sub(1) else {
        return RangeRequest::Unsatisfiable;
    };
    let (first, last) = match range.satisfiable_ranges(size).next() {
        // A suffix longer than the object: all of it (RFC 9110 section 14.1.2).
        None => (0, last_byte),
        Some((Bound::Included(first), Bound::Included(last))) if first <= last => (first, last),
        Some((Bound::Included(first), Bound::Unbounded)) => (first, last_byte),
        Some(_) => return RangeRequest::Full,
    };
    if first > last_byte {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial(ByteRange {
        first,
        last: last.min(last_byte),
    })
}

/// What the request asks for: its `Range`, when its `If-Range` (if any) names this version
/// with a strong ETag; a date, another tag or an unreadable value asks for everything.
fn wanted(headers: &HeaderMap, etag: Option<&ETag>, size: u64) -> RangeRequest {
    let Some(range) = headers.typed_get::<Range>() else {
        return RangeRequest::Full;
    };
    let current = match headers.typed_try_get::<IfRange>() {
        Ok(None) => true,
        Ok(Some(if_range)) => etag.is_some_and(|e| !if_range.is_modified(Some(e), None)),
        Err(_) => false,
    };
    if current {
        range_request(&range, size)
    } else {
        RangeRequest::Full
    }
}

/// Whether `If-None-Match` names this version (weak comparison) or is `*`.
pub(super) fn not_modified(headers: &HeaderMap, etag: &ETag) -> bool {
    headers
        .typed_get::<IfNoneMatch>()
        .is_some_and(|h| !h.precondition_passes(etag))
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

fn set(r: &mut Reply, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// `GET /api/images/{id}/content`: the bytes, with `ETag` (the SHA-256), `Range` support
/// and a safe `Content-Disposition`; or a redirect to a presigned URL.
pub(super) async fn image_content(id: String, meta: RequestMeta, s: ApiState) -> Reply {
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
                let url = presign.await.map_err(storage_error)?;
                let mut r = empty(StatusCode::FOUND);
                set(&mut r, LOCATION, &url);
                return Ok(r);
            }
            let size = u64::try_from(image.size_bytes).unwrap_or(0);
            // A SHA-256 in hex always makes a valid tag.
            let etag: Option<ETag> = format!("\"{}\"", image.sha256).parse().ok();
            let mut r = empty(StatusCode::OK);
            if let Some(etag) = &etag {
                r.headers_mut().typed_insert(etag.clone());
            }
            r.headers_mut().typed_insert(AcceptRanges::bytes());
            if etag.as_ref().is_some_and(|e| not_modified(&meta.headers, e)) {
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                return Ok(r);
            }
            let (status, part) = match wanted(&meta.headers, etag.as_ref(), size) {
                RangeRequest::Full => (StatusCode::OK, None),
                RangeRequest::Partial(p) => (StatusCode::PARTIAL_CONTENT, Some(p)),
                RangeRequest::Unsatisfiable => {
                    let mut r = error_response(&ApiError::RangeNotSatisfiable);
                    r.headers_mut()
                        .typed_insert(ContentRange::unsatisfied_bytes(size));
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
                    other => storage_error(other),
                })?;
                let headers = std::mem::take(r.headers_mut());
                r = streamed(stream);
                r.headers_mut().extend(headers);
            }
            *r.status_mut() = status;
            set(&mut r, CONTENT_TYPE, &image.content_type);
            set(&mut r, CONTENT_LENGTH, &length.to_string());
            set(&mut r, CONTENT_DISPOSITION, &disposition);
            if let Some(content_range) =
                part.and_then(|p| ContentRange::bytes(p.first..=p.last, size).ok())
            {
                r.headers_mut().typed_insert(content_range);
            }
            Ok(r)
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first: u64, last: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { first, last })
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                h.append(n, v);
            }
        }
        h
    }

    fn parse_range(header: &str, size: u64) -> RangeRequest {
        wanted(&headers(&[("range", header)]), None, size)
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
        assert_eq!(parse_range("bytes= 0-99", size), part(0, 99));
        // Rust's integer parser, and so `headers`, takes a leading `+`.
        assert_eq!(parse_range("bytes=+1-2", size), part(1, 2));
        assert_eq!(
            parse_range("bytes=1000-", size),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range("bytes=1000-1001", size),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", size), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), RangeRequest::Unsatisfiable);
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,5-6",
            "bytes=0-1, -5",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse_range(ignored, size), RangeRequest::Full, "{ignored}");
        }
    }

    #[test]
    fn if_range_needs_the_strong_etag() {
        let etag: Option<ETag> = "\"abc\"".parse().ok();
        let with = |if_range: &str| {
            let h = headers(&[("range", "bytes=0-9"), ("if-range", if_range)]);
            wanted(&h, etag.as_ref(), 1000)
        };
        assert_eq!(with("\"abc\""), part(0, 9));
        for other in [
            "\"other\"",
            "W/\"abc\"",
            "Sat, 29 Oct 1994 19:43:31 GMT",
            "abc",
        ] {
            assert_eq!(with(other), RangeRequest::Full, "{other}");
        }
        let h = headers(&[("range", "bytes=0-9")]);
        assert_eq!(wanted(&h, etag.as_ref(), 1000), part(0, 9));
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let Ok(etag) = "\"abc\"".parse::<ETag>() else {
            unreachable!("a valid tag")
        };
        let matches = |value: &str| not_modified(&headers(&[("if-none-match", value)]), &etag);
        assert!(matches("\"abc\""));
        assert!(matches("W/\"abc\""));
        assert!(matches("\"x\", \"abc\""));
        assert!(matches("*"));
        assert!(!matches("\"abcd\""));
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }
}
