//! Cross-site request forgery: what another site can make a browser send with the user's
//! credentials (the identity layer's cookie, Basic auth), refused before any handler acts.
//!
//! Two rules, each enough against today's browsers, together for older ones:
//! - an unsafe method (anything but GET, HEAD, OPTIONS, TRACE) must come from the API's own
//!   origin or one listed in `API_ALLOWED_ORIGINS`, by `Origin` and `Sec-Fetch-Site` (403);
//! - a body must have a type that no HTML form and no preflight-free `fetch` can give it: JSON
//!   as `application/json`, a raw upload as anything but the CORS-"simple" types (415).
//!
//! Clients that are not browsers (curl, scripts, the proxy's own checks) send neither header
//! and are not affected.

use std::sync::Arc;

use warp::Filter;
use warp::filters::host::Authority;
use warp::http::header::{CONTENT_TYPE, HeaderName, ORIGIN};
use warp::http::{HeaderMap, Method};

use crate::error::ApiError;

/// `Sec-Fetch-Site`: the browser's own word on who initiated the request.
const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// Origins other than the API's own from which browsers may send unsafe requests
/// (`API_ALLOWED_ORIGINS`), each as a browser writes it: `https://app.example.com`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// A comma-separated list of `http(s)://host[:port]` origins; blank is none.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let origin = item.to_ascii_lowercase();
            let Some((scheme, authority)) = split_origin(&origin) else {
                return Err(format!(
                    "`{item}` is not an origin: write `https://host` or `https://host:port`, \
                     with no path, as the browser sends it in `Origin`"
                ));
            };
            let default_port = if scheme == "https" { ":443" } else { ":80" };
            if authority.ends_with(default_port) {
                return Err(format!(
                    "`{item}`: leave out the default port {default_port}; browsers do"
                ));
            }
            origins.push(origin);
        }
        Ok(Self(origins))
    }

    fn contains(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// `scheme://authority` with an http(s) scheme and a plain authority (no path, user, query,
/// wildcard or space), split in two.
fn split_origin(origin: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = origin.split_once("://")?;
    let plain = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    (matches!(scheme, "http" | "https") && plain).then_some((scheme, authority))
}

/// A request refused here; `recover` answers it with its `ApiError`.
#[derive(Debug)]
pub(crate) struct Refused(pub ApiError);
impl warp::reject::Reject for Refused {}

fn refuse(e: ApiError) -> warp::Rejection {
    warp::reject::custom(Refused(e))
}

/// Refuses unsafe requests a browser sends on another site's behalf; passes everything else.
/// Put in front of every route, so a route added later is covered too.
pub(crate) fn same_origin(
    allowed: Arc<AllowedOrigins>,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    // A Host that warp finds malformed is no origin to match: `None`, refused if it matters.
    let authority = warp::host::optional().or(warp::any().map(|| None)).unify();
    warp::method()
        .and(warp::header::headers_cloned())
        .and(authority)
        .and_then(
            move |method: Method, headers: HeaderMap, authority: Option<Authority>| {
                let verdict = check_origin(
                    &method,
                    &headers,
                    authority.as_ref().map(Authority::as_str),
                    &allowed,
                );
                async move { verdict.map_err(refuse) }
            },
        )
        .untuple_one()
}

/// The rule itself. `authority` is the `Host` the request was sent to (nginx passes the
/// client's own with `proxy_set_header Host $host`).
pub(crate) fn check_origin(
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&str>,
    allowed: &AllowedOrigins,
) -> Result<(), ApiError> {
    if matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return Ok(());
    }
    let origin = single(headers, &ORIGIN)?;
    let site = single(headers, &HeaderName::from_static(SEC_FETCH_SITE))?;
    if let Some(origin) = origin {
        if allowed.contains(origin) {
            return Ok(());
        }
        if !is_own(origin, authority) {
            return Err(ApiError::CrossSiteRequest);
        }
    }
    // `same-site` is refused too: a sibling subdomain may be someone else's (list it to allow
    // it). `none` is the user's own doing: typed, bookmarked.
    match site {
        None | Some("same-origin" | "none") => Ok(()),
        Some(_) => Err(ApiError::CrossSiteRequest),
    }
}

/// The one value of `name`; refused when sent twice or not as text.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::CrossSiteRequest);
    }
    first
        .map(|v| v.to_str().map_err(|_| ApiError::CrossSiteRequest))
        .transpose()
}

/// The origin names the host and port the request was sent to. The scheme is not compared:
/// behind a proxy that ends TLS the API cannot know it, and browsers that send `Origin`
/// also send `Sec-Fetch-Site`, which tells `http` from `https`.
fn is_own(origin: &str, authority: Option<&str>) -> bool {
    let (Some((scheme, host)), Some(authority)) = (split_origin(origin), authority) else {
        return false;
    };
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    authority.eq_ignore_ascii_case(host)
        || authority
            .strip_suffix(default_port)
            .is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// The `type/subtype` of a `Content-Type`, in lower case, and its parameters; `None` when the
/// header is missing, doubled, not text, or not `type/subtype`.
fn content_type(headers: &HeaderMap) -> Option<(String, Vec<String>)> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let mut parts = value.split(';').map(|p| p.trim().to_ascii_lowercase());
    let essence = parts.next().filter(|e| {
        e.split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty())
    })?;
    Some((essence, parts.collect()))
}

/// A JSON route's body is `application/json`, with at most `charset=utf-8`: a form cannot
/// send that type, and a script on another site cannot either without CORS allowing it.
pub(crate) fn check_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = || ApiError::UnsupportedContentType("send the body as application/json".into());
    let (essence, params) = content_type(headers).ok_or_else(refused)?;
    let params_ok = match params.as_slice() {
        [] => true,
        [p] => matches!(p.as_str(), "charset=utf-8" | "charset=\"utf-8\""),
        _ => false,
    };
    if essence == "application/json" && params_ok {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Only JSON bodies (see [`check_json`]); before the body is read.
pub(crate) fn json_content() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::header::headers_cloned()
        .and_then(|headers: HeaderMap| async move { check_json(&headers).map_err(refuse) })
        .untuple_one()
}

/// The types a browser sends across sites without asking first (CORS "simple" types): a
/// text form's, a URL-encoded form's and a multipart form's. No type at all is as simple
/// (a `fetch` of a typeless `Blob`).
const SIMPLE_TYPES: &[&str] = &[
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// A raw upload (the body is the file) declares its type, and not one of [`SIMPLE_TYPES`]:
/// the bytes of a text form can look like an image.
pub(crate) fn check_raw_upload(headers: &HeaderMap) -> Result<(), ApiError> {
    match content_type(headers) {
        Some((essence, _)) if !SIMPLE_TYPES.contains(&essence.as_str()) => Ok(()),
        _ => Err(ApiError::UnsupportedContentType(
            "send the file with its own type (image/png, application/octet-stream, …), \
             or as multipart/form-data"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use warp::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn verdict(method: Method, pairs: &[(&'static str, &'static str)], allowed: &str) -> bool {
        let allowed = AllowedOrigins::parse(allowed).unwrap_or_else(|e| unreachable!("{e}"));
        check_origin(&method, &headers(pairs), Some("ipm.example.com"), &allowed).is_ok()
    }

    #[test]
    fn unsafe_methods_from_elsewhere_are_refused() {
        let evil = [
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ];
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!verdict(m.clone(), &evil, ""), "{m}");
            assert!(verdict(m.clone(), &[], ""), "{m}");
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(verdict(m, &evil, ""));
        }
        let post = |pairs: &[(&'static str, &'static str)]| verdict(Method::POST, pairs, "");
        assert!(post(&[("origin", "https://ipm.example.com")]));
        assert!(post(&[("origin", "http://IPM.example.com")]));
        assert!(!post(&[("origin", "https://ipm.example.com:8443")]));
        assert!(!post(&[("origin", "https://ipm.example.com.evil.example")]));
        assert!(!post(&[("origin", "null")]));
        assert!(!post(&[("origin", "")]));
        assert!(!post(&[("sec-fetch-site", "same-site")]));
        assert!(!post(&[("sec-fetch-site", "cross-site")]));
        assert!(post(&[("sec-fetch-site", "same-origin")]));
        assert!(post(&[("sec-fetch-site", "none")]));
        assert!(!post(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://evil.example")
        ]));
        // With no Host to compare with, no origin is the API's own.
        let allowed = AllowedOrigins::default();
        let h = headers(&[("origin", "https://ipm.example.com")]);
        assert!(check_origin(&Method::POST, &h, None, &allowed).is_err());
        let h = headers(&[("origin", "https://ipm.example.com")]);
        assert!(check_origin(&Method::POST, &h, Some("ipm.example.com:443"), &allowed).is_ok());
    }

    #[test]
    fn listed_origins_are_trusted() {
        let from_app = [
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "same-site"),
        ];
        let list = "https://app.example.com, http://localhost:3000";
        assert!(verdict(Method::POST, &from_app, list));
        assert!(!verdict(
            Method::POST,
            &from_app,
            "https://other.example.com"
        ));
        assert!(!verdict(Method::POST, &from_app, ""));
        assert!(verdict(
            Method::DELETE,
            &[("origin", "http://localhost:3000")],
            list
        ));
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://app.example.com:443",
            "https://",
        ] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(AllowedOrigins::parse(" , "), Ok(AllowedOrigins::default()));
    }

    #[test]
    fn bodies_need_a_type_no_form_can_send() {
        let json = |ct: &'static str| check_json(&headers(&[("content-type", ct)])).is_ok();
        assert!(json("application/json"));
        assert!(json("application/json; charset=utf-8"));
        assert!(json("Application/JSON;Charset=UTF-8"));
        assert!(!json("text/plain"));
        assert!(!json("application/json; charset=iso-8859-1"));
        assert!(!json("application/json; charset=utf-8; x=y"));
        assert!(check_json(&HeaderMap::new()).is_err());
        let raw = |ct: &'static str| check_raw_upload(&headers(&[("content-type", ct)])).is_ok();
        assert!(raw("image/png"));
        assert!(raw("application/octet-stream"));
        assert!(!raw("text/plain;charset=UTF-8"));
        assert!(!raw("Application/X-WWW-Form-Urlencoded"));
        assert!(!raw("multipart/form-data; boundary=x"));
        assert!(!raw("image"));
        assert!(check_raw_upload(&HeaderMap::new()).is_err());
        let two = headers(&[
            ("content-type", "image/png"),
            ("content-type", "text/plain"),
        ]);
        assert!(check_raw_upload(&two).is_err());
    }
}
