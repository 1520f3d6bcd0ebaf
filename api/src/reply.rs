//! How every handler answers: JSON replies, the error reply, database and storage failures
//! mapped to `ApiError`, ids from the path, query strings and cursor pagination.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use ipm_policy::entities::parse_id;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use warp::http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use warp::http::{Response, StatusCode};

use crate::db::DbError;
use crate::error::ApiError;
use crate::models::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::storage::StorageError;

/// What a handler answers.
pub(crate) type Reply = warp::reply::Response;

/// A reply with no body.
pub(crate) fn empty(status: StatusCode) -> Reply {
    let mut r = Response::new(Bytes::new().into());
    *r.status_mut() = status;
    r
}

/// A reply whose body is already JSON.
pub(crate) fn json_body(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `value` as JSON.
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => json_body(status, body),
        Err(_) => error_response(&ApiError::DatabaseUnavailable),
    }
}

/// `201 Created` with `value` and the `Location` it can be read at.
pub(crate) fn created<T: serde::Serialize>(value: &T, location: &str) -> Reply {
    let mut r = json(StatusCode::CREATED, value);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// The reply for an error: its status and JSON body.
pub(crate) fn error_response(e: &ApiError) -> Reply {
    let mut r = json_body(e.status(), e.body());
    if let Some(secs) = e.retry_after() {
        r.headers_mut()
            .insert(warp::http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// Every handler's last step: the reply, or the error's.
pub(crate) fn respond(result: Result<Reply, ApiError>) -> Reply {
    result.unwrap_or_else(|e| error_response(&e))
}

/// A database failure: logged here, never shown to the client.
pub(crate) fn db_error(e: DbError) -> ApiError {
    tracing::error!(error = %e, "database call failed");
    ApiError::DatabaseUnavailable
}

/// A storage failure: logged here, never shown to the client.
pub(crate) fn storage_error(e: StorageError) -> ApiError {
    tracing::error!(error = %e, "storage call failed");
    ApiError::StorageUnavailable
}

/// An id from the path: the canonical UUID form only.
pub(crate) fn path_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_id(raw).ok_or_else(|| {
        ApiError::invalid_param("id", "must be a UUID in lower-case hyphenated form")
    })
}

/// The query string of a route, into its parameter struct: `#[serde(deny_unknown_fields)]`,
/// each field an `Option<String>` checked afterwards. An unknown parameter, or one given
/// twice, is refused naming it.
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(query).map_err(|e| query_error(&e.to_string()))
}

/// Names the parameter serde refused. The derived struct visitor reports an unknown key as
/// ``unknown field `k`, expected …`` (the allowed names in backticks) and a repeated one as
/// ``duplicate field `k` ``.
fn query_error(message: &str) -> ApiError {
    if let Some((name, expected)) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.rsplit_once("`, expected "))
    {
        let name: String = name.chars().take(64).collect();
        let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return ApiError::invalid_param(
            &name,
            format!(
                "is not a parameter of this route (use {})",
                allowed.join(", ")
            ),
        );
    }
    if let Some(name) = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return ApiError::invalid_param(name, "is given more than once");
    }
    ApiError::invalid_param("query", "is not a valid query string")
}

/// The opaque cursor: a version byte and the last id of the page.
const CURSOR_VERSION: u8 = 1;

pub(crate) fn encode_cursor(id: Uuid) -> String {
    let mut raw = [0u8; 17];
    raw[0] = CURSOR_VERSION;
    raw[1..].copy_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn decode_cursor(s: &str) -> Option<Uuid> {
    let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
    match raw.split_first() {
        Some((&CURSOR_VERSION, id)) => Uuid::from_slice(id).ok(),
        _ => None,
    }
}

/// A list route's `limit` and `cursor`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub limit: u32,
    /// The last id of the previous page.
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Absent, `limit` is `DEFAULT_LIMIT`; absent, `cursor` starts at the first row.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let after = cursor
            .map(|raw| {
                decode_cursor(raw).ok_or_else(|| {
                    ApiError::invalid_param(
                        "cursor",
                        "is not a cursor this API returned (pass `next_cursor` unchanged)",
                    )
                })
            })
            .transpose()?;
        Ok(Self { limit, after })
    }
}

/// Cuts rows fetched one past `limit` down to the page; the cursor of the next page when
/// that extra row was there.
pub(crate) fn cut_page<T>(
    items: &mut Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> Uuid,
) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| encode_cursor(id(i)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
        for bad in ["", "x", "AAAA", &URL_SAFE_NO_PAD.encode([2u8; 17])] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    // Only their shape matters here.
    #[allow(dead_code)]
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Two {
        limit: Option<String>,
        cursor: Option<String>,
    }

    #[allow(dead_code)]
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct One {
        filename: Option<String>,
    }

    fn refusal<T: DeserializeOwned + std::fmt::Debug>(query: &str) -> (String, String) {
        match parse_query::<T>(query) {
            Err(ApiError::InvalidParam { field, message }) => (field, message),
            other => (format!("{other:?}"), String::new()),
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let unknown = |allowed: &str| format!("is not a parameter of this route (use {allowed})");
        assert_eq!(
            refusal::<Two>("sort=name"),
            ("sort".into(), unknown("limit, cursor"))
        );
        assert_eq!(
            refusal::<One>("name=x"),
            ("name".into(), unknown("filename"))
        );
        let long = "k".repeat(100);
        assert_eq!(refusal::<One>(&format!("{long}=1")).0, "k".repeat(64));
        assert_eq!(
            refusal::<One>("a%60%2C%20expected%20b=1").0,
            "a`, expected b"
        );
        let twice = "is given more than once".to_string();
        assert_eq!(refusal::<Two>("limit=1&limit=2"), ("limit".into(), twice));
        // The first offence in the query is the one reported.
        assert_eq!(refusal::<Two>("limit=1&sort=x&limit=2").0, "sort");
        assert_eq!(refusal::<Two>("cursor=a&cursor=b&x=1").0, "cursor");
        assert!(parse_query::<Two>("").is_ok());
        assert!(parse_query::<Two>("limit=&cursor").is_ok());
    }

    #[test]
    fn pages_are_checked_and_cut() {
        let field =
            |limit: Option<&str>, cursor: Option<&str>| match PageRequest::parse(limit, cursor) {
                Err(ApiError::InvalidParam { field, .. }) => field,
                other => format!("{other:?}"),
            };
        for bad in ["0", "201", "-1", "ten", ""] {
            assert_eq!(field(Some(bad), None), "limit", "{bad}");
        }
        assert_eq!(field(None, Some("")), "cursor");
        assert_eq!(field(None, Some("zzz")), "cursor");
        let id = Uuid::now_v7();
        assert_eq!(
            PageRequest::parse(Some("200"), Some(&encode_cursor(id))).ok(),
            Some(PageRequest {
                limit: 200,
                after: Some(id)
            })
        );
        assert_eq!(
            PageRequest::parse(None, None).map(|p| p.limit).ok(),
            Some(DEFAULT_LIMIT)
        );

        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut items = ids.clone();
        assert_eq!(cut_page(&mut items, 2, |i| *i), Some(encode_cursor(ids[1])));
        assert_eq!(items, ids[..2]);
        let mut items = ids.clone();
        assert_eq!(cut_page(&mut items, 3, |i| *i), None);
        assert_eq!(items, ids);
    }
}
