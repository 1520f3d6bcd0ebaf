//! The API's enforcement point: authz's enforcer run in-process on the API request itself, plus
//! what only the API can answer (404 for hidden projects, the target group of a create).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use authz::db_entities::{DbEntityResolver, parse_id};
use authz::decision::{CedarQuery, decide};
use authz::enforcer::{AuthzRequest, Denial, DenialKind, Enforcer, EntityResolver, HeaderField};
use authz::groups::Groups;
use authz::identity::Email;
use authz::routes::RouteMatch;
use cedar_policy::Entity;
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::{HeaderMap, Method};

use crate::error::ApiError;

/// The action a resource type is read with: a denied write on something the caller cannot
/// read answers 404, as a read would.
fn read_action(resource_type: &str) -> Option<&'static str> {
    match resource_type {
        "Project" => Some("ReadProject"),
        "Image" => Some("ReadImage"),
        _ => None,
    }
}

/// The answer for a resource the caller may not see: the same as for one that does not exist.
fn not_found(resource_type: &str) -> ApiError {
    match resource_type {
        "Image" => ApiError::ImageNotFound,
        _ => ApiError::ProjectNotFound,
    }
}

/// What the API saw of a request, before any decision.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub method: Method,
    /// Path and query, as received.
    pub uri: String,
    pub headers: HeaderMap,
    pub remote: Option<SocketAddr>,
}

impl RequestMeta {
    pub fn path(&self) -> &str {
        self.uri.split(['?', '#']).next().unwrap_or_default()
    }

    pub fn query(&self) -> &str {
        self.uri
            .split_once('?')
            .map_or("", |(_, q)| q.split('#').next().unwrap_or_default())
    }
}

/// An authenticated, authorized caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Email,
    pub groups: Groups,
    pub route: RouteMatch,
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

/// authz's enforcer with the API's own database as the entity source.
pub struct Access {
    pub enforcer: Arc<Enforcer>,
    resolver: Arc<DbEntityResolver>,
    names: HeaderNames,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("enforcer", &self.enforcer)
            .finish_non_exhaustive()
    }
}

fn field<'a>(headers: &'a HeaderMap, name: &HeaderName) -> HeaderField<'a> {
    HeaderField::from_values(headers.get_all(name).iter().map(HeaderValue::as_bytes))
}

impl Access {
    /// `enforcer` must already carry `resolver`, so both decisions read the same rows.
    pub fn new(
        enforcer: Arc<Enforcer>,
        resolver: Arc<DbEntityResolver>,
        names: HeaderNames,
    ) -> Self {
        Self {
            enforcer,
            resolver,
            names,
        }
    }

    /// The client address: the proxy's header when it holds one valid IP, else the peer.
    fn client_ip(&self, meta: &RequestMeta) -> Option<IpAddr> {
        let from_header =
            self.names
                .client_ip
                .as_ref()
                .and_then(|name| match field(&meta.headers, name) {
                    HeaderField::One(v) => std::str::from_utf8(v).ok()?.trim().parse().ok(),
                    _ => None,
                });
        from_header.or_else(|| meta.remote.map(|a| a.ip()))
    }

    /// Runs authz's checks on this request: secret, user, route, groups, Cedar. A denied
    /// request on a project answers 404 unless the caller may read it (then 403), so
    /// project ids do not leak; a malformed project id answers 400 once authenticated.
    pub async fn authorize(&self, meta: &RequestMeta) -> Result<Caller, ApiError> {
        let req = AuthzRequest {
            method: HeaderField::One(meta.method.as_str().as_bytes()),
            uri: HeaderField::One(meta.uri.as_bytes()),
            user: field(&meta.headers, &self.names.user),
            secret: field(&meta.headers, &self.names.secret),
            client_ip: self.client_ip(meta),
        };
        let d = self.enforcer.authorize(&req, "api").await;
        let Some(denial) = d.denial else {
            return match (d.user, d.route) {
                (Some(user), Some(route)) => Ok(Caller {
                    user,
                    groups: d.groups,
                    route,
                }),
                // An allow always carries both; never serve without them.
                _ => Err(ApiError::Denied(Denial::PolicyError)),
            };
        };
        if denial.kind() != DenialKind::Forbidden {
            return Err(ApiError::Denied(denial));
        }
        let (Some(user), Some(route)) = (&d.user, &d.route) else {
            return Err(ApiError::Denied(denial));
        };
        let Some(read) = read_action(&route.resource_type) else {
            return Err(ApiError::Denied(denial));
        };
        if parse_id(&route.resource_id).is_none() {
            return Err(ApiError::invalid_param(
                "id",
                "must be a UUID in lower-case hyphenated form",
            ));
        }
        if denial != Denial::PolicyDenied {
            return Err(ApiError::Denied(denial));
        }
        if route.action == read {
            return Err(not_found(&route.resource_type));
        }
        let read_route = RouteMatch {
            action: read.to_string(),
            ..route.clone()
        };
        let entities = self.resolver.resolve(&read_route).await.map_err(|e| {
            tracing::warn!(error = %e, "resource lookup failed");
            ApiError::Denied(Denial::ResourceUnavailable)
        })?;
        if self.allows(user, &d.groups, &read_route, meta, &entities) {
            Err(ApiError::Denied(Denial::PolicyDenied))
        } else {
            Err(not_found(&route.resource_type))
        }
    }

    /// Whether policies let the caller create a project in `group` (the body's group; the
    /// route itself only speaks of the application).
    pub fn may_create_in(&self, caller: &Caller, meta: &RequestMeta, group: &str) -> bool {
        let route = RouteMatch {
            action: "CreateProjectInGroup".into(),
            resource_type: "Group".into(),
            resource_id: group.to_string(),
            pattern: caller.route.pattern.clone(),
        };
        let entities = [Entity::new_no_attrs(
            match authz::policy::entity_uid("Group", group) {
                Ok(uid) => uid,
                Err(_) => return false,
            },
            Default::default(),
        )];
        self.allows(&caller.user, &caller.groups, &route, meta, &entities)
    }

    /// One more Cedar question on the snapshot in force, logged like authz's decisions.
    fn allows(
        &self,
        user: &Email,
        groups: &[String],
        route: &RouteMatch,
        meta: &RequestMeta,
        entities: &[Entity],
    ) -> bool {
        let snapshot = self.enforcer.store.snapshot();
        let q = CedarQuery {
            user,
            groups,
            route,
            method: meta.method.as_str(),
            path: meta.path(),
            client_ip: self.client_ip(meta),
            resource_entities: entities,
        };
        let resource = format!("{}::\"{}\"", route.resource_type, route.resource_id);
        match decide(&snapshot, &q) {
            Ok(v) => {
                tracing::info!(
                    target: "authz::decision",
                    adapter = "api",
                    user = user.as_str(),
                    action = %format_args!("Action::\"{}\"", route.action),
                    resource = %resource,
                    decision = if v.allowed { "allow" } else { "deny" },
                    policies = v.policies.join(","),
                    errors = v.errors.join("; "),
                    "decision"
                );
                v.allowed
            }
            Err(e) => {
                tracing::warn!(
                    target: "authz::decision",
                    adapter = "api",
                    user = user.as_str(),
                    resource = %resource,
                    error = %e,
                    "decision failed; denying"
                );
                false
            }
        }
    }
}
