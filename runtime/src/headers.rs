//! Reading the identity headers an HTTP enforcement point receives, the same way in authz's
//! adapters and in ipm-api: every value of a name (so duplicates are seen), the client address.

use std::net::IpAddr;

use ipm_policy::request::HeaderField;
use warp::http::HeaderMap;
use warp::http::header::{HeaderName, HeaderValue};

/// Every value a header map holds for `name`: missing, one, or many.
pub fn field<'a>(headers: &'a HeaderMap, name: &HeaderName) -> HeaderField<'a> {
    HeaderField::from_values(headers.get_all(name).iter().map(HeaderValue::as_bytes))
}

/// The client address from the proxy's header, when it holds exactly one valid IP.
pub fn client_ip(headers: &HeaderMap, name: Option<&HeaderName>) -> Option<IpAddr> {
    match field(headers, name?) {
        HeaderField::One(v) => std::str::from_utf8(v).ok()?.trim().parse().ok(),
        _ => None,
    }
}
