//! Every way an API request can fail, and the one place that maps each to a status and a
//! JSON body. Authorization failures keep authz's statuses and bodies (`Denial`).

use ipm_policy::denial::Denial;
use serde::Serialize;
use warp::http::StatusCode;

/// Why a request failed. The body never carries secrets, SQL or database addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Authentication, policy or dependency failure, exactly as authz would answer.
    #[error("denied: {}", .0.reason())]
    Denied(Denial),
    /// No such project, or one the caller may not see: the two look the same.
    #[error("project not found")]
    ProjectNotFound,
    /// The body's group is not one the caller may create projects in.
    #[error("may not create projects in this group")]
    GroupForbidden,
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A well-formed value that breaks a rule (400 in the path or query, 422 in a body).
    #[error("`{field}` {message}")]
    InvalidParam { field: String, message: String },
    #[error("`{field}` {message}")]
    InvalidField { field: String, message: String },
    #[error("`{field}` {message}")]
    Conflict { field: String, message: String },
    #[error("the database is unavailable")]
    DatabaseUnavailable,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the body is too large")]
    PayloadTooLarge,
    /// No such image, or one the caller may not see: the two look the same.
    #[error("image not found")]
    ImageNotFound,
    /// The row is there but storage has no object for it (see `ipm-api gc`).
    #[error("the image's content is missing")]
    ImageContentMissing,
    /// An upload over `MAX_UPLOAD_BYTES` (the limit).
    #[error("the file is larger than {0} bytes")]
    UploadTooLarge(u64),
    /// Not an accepted image type, judged from the bytes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The client stopped sending before the upload was complete.
    #[error("the upload was interrupted")]
    UploadInterrupted,
    /// Nothing of the upload arrived for this long (`API_UPLOAD_IDLE_TIMEOUT_SECONDS`).
    #[error("the upload sent nothing for {0:?}")]
    UploadTimedOut(std::time::Duration),
    #[error("the requested range is outside the image")]
    RangeNotSatisfiable,
    #[error("image storage is unavailable")]
    StorageUnavailable,
    /// Too many uploads in progress: this user's (429) or the server's (503).
    #[error("too many uploads in progress")]
    TooManyUploads(crate::upload::Busy),
    /// An unsafe request a browser sent for another site (`csrf`).
    #[error("cross-site request refused")]
    CrossSiteRequest,
    /// A body whose declared `Content-Type` a form could have sent (`csrf`).
    #[error("{0}")]
    UnsupportedContentType(String),
    /// The image exists, but no thumbnail can be made of it (why, for people).
    #[error("no thumbnail: {0}")]
    NoThumbnail(String),
    /// Every thumbnail slot stayed busy while the request waited.
    #[error("too many thumbnails are being made")]
    ThumbnailsBusy,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl ApiError {
    /// A value in the path or the query string that is not acceptable (400).
    pub fn invalid_param(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidParam {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A body field that is not acceptable (422).
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Denied(d) => StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN),
            Self::ProjectNotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::GroupForbidden | Self::CrossSiteRequest => StatusCode::FORBIDDEN,
            Self::InvalidJson(_) | Self::InvalidParam { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge | Self::UploadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ImageNotFound | Self::ImageContentMissing | Self::NoThumbnail(_) => {
                StatusCode::NOT_FOUND
            }
            Self::UnsupportedMediaType(_) | Self::UnsupportedContentType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::UploadInterrupted => StatusCode::BAD_REQUEST,
            Self::UploadTimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            Self::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::StorageUnavailable | Self::ThumbnailsBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyUploads(crate::upload::Busy::User) => StatusCode::TOO_MANY_REQUESTS,
            Self::TooManyUploads(crate::upload::Busy::Server) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`), where that helps.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::TooManyUploads(_) => Some(5),
            Self::ThumbnailsBusy => Some(2),
            _ => None,
        }
    }

    /// The JSON body: `error` (the kind), `reason` (stable, machine-readable), and for
    /// input errors the `field` and a `message`.
    pub fn body(&self) -> String {
        let (error, reason, field, message): (&str, &str, Option<&str>, Option<String>) = match self
        {
            Self::Denied(d) => (d.kind().error(), d.reason(), None, None),
            Self::ProjectNotFound => ("not_found", "project_not_found", None, None),
            Self::GroupForbidden => (
                "forbidden",
                "policy_denied",
                Some("meta_group_id"),
                Some("you may not create projects in this group".into()),
            ),
            Self::InvalidJson(m) => ("bad_request", "invalid_json", None, Some(m.clone())),
            Self::InvalidParam { field, message } => (
                "bad_request",
                "invalid_parameter",
                Some(field),
                Some(message.clone()),
            ),
            Self::InvalidField { field, message } => (
                "unprocessable_entity",
                "invalid_field",
                Some(field),
                Some(message.clone()),
            ),
            Self::Conflict { field, message } => {
                ("conflict", "conflict", Some(field), Some(message.clone()))
            }
            Self::DatabaseUnavailable => (
                "unavailable",
                "database_unavailable",
                None,
                Some("the database is unavailable; try again later".into()),
            ),
            Self::RouteNotFound => ("not_found", "no_such_route", None, None),
            Self::MethodNotAllowed => ("method_not_allowed", "method_not_allowed", None, None),
            Self::PayloadTooLarge => ("payload_too_large", "payload_too_large", None, None),
            Self::ImageNotFound => ("not_found", "image_not_found", None, None),
            Self::ImageContentMissing => (
                "not_found",
                "image_content_missing",
                None,
                Some("the image's content is missing from storage".into()),
            ),
            Self::UploadTooLarge(max) => (
                "payload_too_large",
                "payload_too_large",
                Some("file"),
                Some(format!("the file is larger than the limit of {max} bytes")),
            ),
            Self::UnsupportedMediaType(m) => (
                "unsupported_media_type",
                "unsupported_media_type",
                Some("file"),
                Some(m.clone()),
            ),
            Self::UploadInterrupted => (
                "bad_request",
                "upload_interrupted",
                None,
                Some("the upload ended before the file was complete".into()),
            ),
            Self::UploadTimedOut(after) => (
                "request_timeout",
                "upload_timeout",
                None,
                Some(format!(
                    "nothing of the upload arrived for {} s; send it again",
                    after.as_secs()
                )),
            ),
            Self::RangeNotSatisfiable => (
                "range_not_satisfiable",
                "range_not_satisfiable",
                Some("range"),
                Some("the requested range starts past the end of the image".into()),
            ),
            Self::StorageUnavailable => (
                "unavailable",
                "storage_unavailable",
                None,
                Some("image storage is unavailable; try again later".into()),
            ),
            Self::TooManyUploads(crate::upload::Busy::User) => (
                "too_many_requests",
                "too_many_uploads",
                None,
                Some("you have too many uploads in progress; wait for one to finish".into()),
            ),
            Self::TooManyUploads(crate::upload::Busy::Server) => (
                "unavailable",
                "server_busy",
                None,
                Some("the server has too many uploads in progress; try again shortly".into()),
            ),
            Self::CrossSiteRequest => (
                "forbidden",
                "cross_site_request",
                None,
                Some("unsafe requests are accepted from this site's own pages only".into()),
            ),
            Self::UnsupportedContentType(m) => (
                "unsupported_media_type",
                "unsupported_content_type",
                Some("content-type"),
                Some(m.clone()),
            ),
            Self::NoThumbnail(m) => ("not_found", "no_thumbnail", None, Some(m.clone())),
            Self::ThumbnailsBusy => (
                "unavailable",
                "server_busy",
                None,
                Some("the server is busy making thumbnails; try again shortly".into()),
            ),
        };
        serde_json::to_string(&Body {
            error,
            reason,
            field,
            message,
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_answer_as_authz_does() {
        for d in [
            Denial::MissingSecret,
            Denial::InvalidSecret,
            Denial::PolicyDenied,
            Denial::GroupsUnavailable,
        ] {
            let e = ApiError::Denied(d);
            assert_eq!(e.status().as_u16(), d.status());
            assert_eq!(e.body(), d.body());
        }
    }

    #[test]
    fn input_errors_name_the_field() {
        let e = ApiError::invalid_field("name", "must not be empty");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.body(),
            r#"{"error":"unprocessable_entity","reason":"invalid_field","field":"name","message":"must not be empty"}"#
        );
    }
}
