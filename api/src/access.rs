//! The API's enforcement point: a thin adapter from the API request to the core's pipeline
//! (the same enforcer as authz's), and the core's follow-up questions on that same decision.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipm_policy::denial::{Denial, DenialKind};
use ipm_policy::entities::parse_id;
use ipm_policy::identity::Email;
use ipm_policy::pipeline::Decision;
use ipm_policy::request::{AuthzRequest, HeaderField};
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::headers::{client_ip, field};
use ipm_runtime::service::mark_sensitive;
use warp::http::header::{AUTHORIZATION, COOKIE, HeaderName, PROXY_AUTHORIZATION};
use warp::http::{HeaderMap, Method};

use crate::error::ApiError;

/// The adapter name in decision records and metrics.
pub const ADAPTER: &str = "api";

/// The answer for a resource the caller may not see: the same as for one that does not exist.
fn not_found(resource_type: &str) -> ApiError {
    match resource_type {
        "Image" => ApiError::ImageNotFound,
        _ => ApiError::ProjectNotFound,
    }
}

/// What the API saw of a request, before any decision. Its `Debug` shows credentials as
/// `[redacted]`: the proxy's secret and the standard credential headers.
#[derive(Clone)]
pub struct RequestMeta {
    pub method: Method,
    /// Path and query, as received.
    pub uri: String,
    pub headers: HeaderMap,
    pub remote: Option<SocketAddr>,
}

impl RequestMeta {
    /// The request as received; `secret` names the proxy's secret header.
    pub fn new(
        method: Method,
        uri: String,
        headers: HeaderMap,
        remote: Option<SocketAddr>,
        secret: &HeaderName,
    ) -> Self {
        let mut headers = headers;
        mark_sensitive(&mut headers, secret);
        Self {
            method,
            uri,
            headers,
            remote,
        }
    }

    pub fn query(&self) -> &str {
        self.uri
            .split_once('?')
            .map_or("", |(_, q)| q.split('#').next().unwrap_or_default())
    }
}

/// Headers that carry credentials whatever the configuration.
const CREDENTIALS: [HeaderName; 3] = [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION];

/// A header map's `Debug` with the credentials' values left out.
struct RedactedHeaders<'a>(&'a HeaderMap);

impl std::fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Redacted;
        impl std::fmt::Debug for Redacted {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[redacted]")
            }
        }
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            if value.is_sensitive() || CREDENTIALS.contains(name) {
                map.entry(name, &Redacted);
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

impl std::fmt::Debug for RequestMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMeta")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("remote", &self.remote)
            .finish()
    }
}

/// An authenticated, authorized caller, with the decision that let it in.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Email,
    decision: Decision,
}

impl Caller {
    /// The decision that let the caller in: its snapshot, groups and client context are
    /// what a list asks about each item (`lists`).
    pub fn decision(&self) -> &Decision {
        &self.decision
    }
}

/// One line in the audit log: the caller's user, then the fields and the message as
/// `tracing::info!` takes them.
macro_rules! audit {
    ($caller:expr, $($fields:tt)+) => {
        tracing::info!(target: "ipm_api::audit", user = $caller.user.as_str(), $($fields)+)
    };
}
pub(crate) use audit;

/// The header names the API reads, parsed once at start.
#[derive(Debug, Clone)]
pub struct HeaderNames {
    pub user: HeaderName,
    pub secret: HeaderName,
    pub client_ip: Option<HeaderName>,
}

/// The shared enforcer, with the API's own database as the entity source.
pub struct Access {
    pub enforcer: Arc<Enforcer>,
    names: HeaderNames,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("enforcer", &self.enforcer)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// `enforcer` carries the API's database resolver.
    pub fn new(enforcer: Arc<Enforcer>, names: HeaderNames) -> Self {
        Self { enforcer, names }
    }

    /// The proxy's secret header.
    pub fn secret_header(&self) -> &HeaderName {
        &self.names.secret
    }

    /// The client address: the proxy's header when it holds one valid IP, else the peer.
    fn client_ip(&self, meta: &RequestMeta) -> Option<IpAddr> {
        client_ip(&meta.headers, self.names.client_ip.as_ref())
            .or_else(|| meta.remote.map(|a| a.ip()))
    }

    /// Runs the shared checks on this request: secret, user, route, groups, Cedar. A denied
    /// request on a resource answers 404 unless the caller may see it (then 403), so ids do
    /// not leak; a malformed id answers 400 once authenticated.
    pub async fn authorize(&self, meta: &RequestMeta) -> Result<Caller, ApiError> {
        let req = AuthzRequest {
            method: HeaderField::One(meta.method.as_str().as_bytes()),
            uri: HeaderField::One(meta.uri.as_bytes()),
            user: field(&meta.headers, &self.names.user),
            secret: field(&meta.headers, &self.names.secret),
            client_ip: self.client_ip(meta),
        };
        let d = self.enforcer.authorize(&req, ADAPTER).await;
        let Some(denial) = d.denial else {
            return match (d.user.clone(), &d.route) {
                (Some(user), Some(_)) => Ok(Caller { user, decision: d }),
                // An allow always carries both; never serve without them.
                _ => Err(ApiError::Denied(Denial::PolicyError)),
            };
        };
        if denial.kind() != DenialKind::Forbidden {
            return Err(ApiError::Denied(denial));
        }
        let (Some(route), Some(snapshot)) = (&d.route, d.snapshot()) else {
            return Err(ApiError::Denied(denial));
        };
        if snapshot.routes.visibility(&route.resource_type).is_none() {
            return Err(ApiError::Denied(denial));
        }
        if parse_id(&route.resource_id).is_none() {
            return Err(ApiError::invalid_param(
                "id",
                "must be a UUID in lower-case hyphenated form",
            ));
        }
        let Some(visible) = d.visibility() else {
            return Err(ApiError::Denied(denial));
        };
        self.enforcer
            .record_follow_up(ADAPTER, &visible, meta.method.as_str(), &meta.uri);
        if visible.is_allowed() {
            Err(ApiError::Denied(denial))
        } else {
            Err(not_found(&route.resource_type))
        }
    }

    /// Whether policies let the caller act on the route's `target` named `id` (creating a
    /// project: `CreateProjectInGroup` on the body's group), asked on the caller's own
    /// decision, so on the same snapshot. A route without a target is refused.
    pub fn may_target(&self, caller: &Caller, meta: &RequestMeta, id: &str) -> bool {
        let Some(d) = caller.decision.target(id) else {
            return false;
        };
        self.enforcer
            .record_follow_up(ADAPTER, &d, meta.method.as_str(), &meta.uri);
        d.is_allowed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use warp::http::header::HeaderValue;

    #[test]
    fn debug_never_shows_credentials() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-ipm-secret", "proxy-secret-0123456789"),
            ("authorization", "Bearer bearer-token-0123456789"),
            ("cookie", "session=cookie-value-0123456789"),
            ("proxy-authorization", "Basic proxy-auth-0123456789"),
            ("x-user-email", "alice@example.com"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let meta = RequestMeta::new(
            Method::GET,
            "/api/projects".into(),
            headers,
            None,
            &HeaderName::from_static("x-ipm-secret"),
        );
        for shown in [format!("{meta:?}"), format!("{meta:#?}")] {
            for secret in [
                "proxy-secret",
                "bearer-token",
                "cookie-value",
                "proxy-auth-",
            ] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains("[redacted]"), "{shown}");
            assert!(shown.contains("alice@example.com"), "{shown}");
            assert!(shown.contains("/api/projects"), "{shown}");
        }
        // The header map itself hides the proxy's secret too, wherever it is logged.
        assert!(meta.headers.get("x-ipm-secret").unwrap().is_sensitive());
    }
}
