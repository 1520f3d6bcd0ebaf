//! The enforcer: authenticate, match the route, look up groups, ask Cedar.
//! Protocol adapters translate their wire format into an `AuthzRequest` and a `Decision` back.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use cedar_policy::Entity;
use serde::Serialize;

use crate::decision::{CedarQuery, decide};
use crate::groups::{GroupSource, Groups};
use crate::identity::{Email, EmailError};
use crate::metrics::{DecisionLabels, Metrics, SourceLabels};
use crate::routes::RouteMatch;
use crate::secret::SecretSet;
use crate::store::PolicyStore;

/// A header as the adapter found it: absent, present once, or present more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderField<'a> {
    Missing,
    One(&'a [u8]),
    Many,
}

impl<'a> HeaderField<'a> {
    /// Builds a field from every value a header map holds for one name.
    pub fn from_values<I: IntoIterator<Item = &'a [u8]>>(values: I) -> Self {
        let mut it = values.into_iter();
        match (it.next(), it.next()) {
            (None, _) => Self::Missing,
            (Some(v), None) => Self::One(v),
            (Some(_), Some(_)) => Self::Many,
        }
    }

    fn text(self) -> Option<&'a str> {
        match self {
            Self::One(v) => std::str::from_utf8(v).ok(),
            _ => None,
        }
    }
}

/// A request to decide, in protocol-neutral terms.
#[derive(Debug, Clone, Copy)]
pub struct AuthzRequest<'a> {
    /// The original request's method.
    pub method: HeaderField<'a>,
    /// The original request's URI (path and query).
    pub uri: HeaderField<'a>,
    /// The user's email header.
    pub user: HeaderField<'a>,
    /// The proxy's shared secret header.
    pub secret: HeaderField<'a>,
    /// The client's address, when the proxy sends one.
    pub client_ip: Option<IpAddr>,
}

/// Why a request was denied. The single source of every status authz answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    MissingSecret,
    DuplicateSecret,
    InvalidSecret,
    MissingUser,
    DuplicateUser,
    InvalidUser(EmailError),
    MissingOriginalRequest,
    NoRoute,
    PolicyDenied,
    PolicyError,
    GroupsUnavailable,
    ResourceUnavailable,
}

/// The three kinds of "no".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialKind {
    Unauthenticated,
    Forbidden,
    Unavailable,
}

impl DenialKind {
    pub fn status(self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::Unavailable => 503,
        }
    }

    pub fn error(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
        }
    }
}

impl Denial {
    pub fn kind(self) -> DenialKind {
        match self {
            Self::MissingSecret
            | Self::DuplicateSecret
            | Self::InvalidSecret
            | Self::MissingUser
            | Self::DuplicateUser
            | Self::InvalidUser(_) => DenialKind::Unauthenticated,
            Self::MissingOriginalRequest
            | Self::NoRoute
            | Self::PolicyDenied
            | Self::PolicyError => DenialKind::Forbidden,
            Self::GroupsUnavailable | Self::ResourceUnavailable => DenialKind::Unavailable,
        }
    }

    pub fn status(self) -> u16 {
        self.kind().status()
    }

    /// A stable, machine-readable reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingSecret => "missing_proxy_secret",
            Self::DuplicateSecret => "duplicate_proxy_secret",
            Self::InvalidSecret => "invalid_proxy_secret",
            Self::MissingUser => "missing_user",
            Self::DuplicateUser => "duplicate_user",
            Self::InvalidUser(_) => "invalid_user",
            Self::MissingOriginalRequest => "missing_original_request",
            Self::NoRoute => "no_route",
            Self::PolicyDenied => "policy_denied",
            Self::PolicyError => "policy_error",
            Self::GroupsUnavailable => "groups_unavailable",
            Self::ResourceUnavailable => "resource_unavailable",
        }
    }

    /// The JSON body every adapter sends with a denial.
    pub fn body(self) -> String {
        #[derive(Serialize)]
        struct Body {
            error: &'static str,
            reason: &'static str,
        }
        serde_json::to_string(&Body {
            error: self.kind().error(),
            reason: self.reason(),
        })
        .unwrap_or_default()
    }
}

/// The verdict and what it was based on.
#[derive(Debug, Clone)]
pub struct Decision {
    /// `None` means allow.
    pub denial: Option<Denial>,
    pub user: Option<Email>,
    pub groups: Groups,
    pub route: Option<RouteMatch>,
    pub policies: Vec<String>,
    pub errors: Vec<String>,
}

impl Decision {
    fn deny(denial: Denial) -> Self {
        Self {
            denial: Some(denial),
            user: None,
            groups: Arc::from([]),
            route: None,
            policies: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn is_allowed(&self) -> bool {
        self.denial.is_none()
    }

    /// The status an HTTP adapter answers with.
    pub fn status(&self) -> u16 {
        self.denial.map_or(200, Denial::status)
    }

    /// The identity headers for an allowed request: the user, and the groups joined with
    /// commas, cut at a group boundary to at most `max` bytes (the flag says whether it was cut).
    pub fn identity(&self, max: usize) -> Option<(String, String, bool)> {
        if self.denial.is_some() {
            return None;
        }
        let user = self.user.as_ref()?.to_string();
        let mut groups = String::new();
        let mut truncated = false;
        for g in self.groups.iter() {
            let extra = g.len() + usize::from(!groups.is_empty());
            if groups.len() + extra > max {
                truncated = true;
                break;
            }
            if !groups.is_empty() {
                groups.push(',');
            }
            groups.push_str(g);
        }
        Some((user, groups, truncated))
    }
}

/// Validates the secret and the user header. Pure: the first step of every decision.
pub fn authenticate(secrets: Option<&SecretSet>, req: &AuthzRequest<'_>) -> Result<Email, Denial> {
    if let Some(secrets) = secrets {
        match req.secret {
            HeaderField::Missing => return Err(Denial::MissingSecret),
            HeaderField::Many => return Err(Denial::DuplicateSecret),
            HeaderField::One(v) if !secrets.verify(v) => return Err(Denial::InvalidSecret),
            HeaderField::One(_) => {}
        }
    }
    match req.user {
        HeaderField::Missing => Err(Denial::MissingUser),
        HeaderField::Many => Err(Denial::DuplicateUser),
        HeaderField::One(v) => Email::parse_bytes(v).map_err(Denial::InvalidUser),
    }
}

/// Finds entities for a route's resource (a project and its group), for policies that need them.
pub trait EntityResolver: Send + Sync + 'static {
    fn resolve<'a>(
        &'a self,
        route: &'a RouteMatch,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Entity>, String>> + Send + 'a>>;
}

/// Everything a decision needs, shared by every adapter.
pub struct Enforcer {
    pub store: Arc<PolicyStore>,
    pub groups: Arc<dyn GroupSource>,
    pub resolver: Option<Arc<dyn EntityResolver>>,
    /// A candidate policy set decided beside the live one, never enforced.
    pub shadow: Option<Arc<crate::shadow::Shadow>>,
    /// `None` only in debug mode with `SKIP_HEADER_CHECK=true`.
    secrets: Option<SecretSet>,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer")
            .field("policy_dir", &self.store.dir())
            .field("groups", &self.groups.kind())
            .field("skip_header_check", &self.secrets.is_none())
            .finish()
    }
}

impl Enforcer {
    pub fn new(
        store: Arc<PolicyStore>,
        groups: Arc<dyn GroupSource>,
        secrets: Option<SecretSet>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            groups,
            resolver: None,
            shadow: None,
            secrets,
            metrics,
        }
    }

    pub fn with_resolver(mut self, resolver: Arc<dyn EntityResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    pub fn with_shadow(mut self, shadow: Arc<crate::shadow::Shadow>) -> Self {
        self.shadow = Some(shadow);
        self
    }

    pub fn skips_secret_check(&self) -> bool {
        self.secrets.is_none()
    }

    /// Decides one request, then logs and counts the decision.
    pub async fn authorize(&self, req: &AuthzRequest<'_>, adapter: &'static str) -> Decision {
        let started = Instant::now();
        let decision = self.decide(req).await;
        let elapsed = started.elapsed();
        self.record(req, adapter, &decision, elapsed);
        decision
    }

    async fn decide(&self, req: &AuthzRequest<'_>) -> Decision {
        let user = match authenticate(self.secrets.as_ref(), req) {
            Ok(u) => u,
            Err(d) => return Decision::deny(d),
        };
        let (Some(method), Some(uri)) = (req.method.text(), req.uri.text()) else {
            return Decision {
                user: Some(user),
                ..Decision::deny(Denial::MissingOriginalRequest)
            };
        };
        let snapshot = self.store.snapshot();
        let Some(route) = snapshot.routes.matches(method, uri) else {
            return Decision {
                user: Some(user),
                ..Decision::deny(Denial::NoRoute)
            };
        };
        let groups = match self.groups.groups(&user).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(source = self.groups.kind(), error = %e, "group lookup failed");
                return Decision {
                    user: Some(user),
                    route: Some(route),
                    ..Decision::deny(Denial::GroupsUnavailable)
                };
            }
        };
        let resource_entities = match &self.resolver {
            None => Vec::new(),
            Some(r) => match r.resolve(&route).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "resource lookup failed");
                    return Decision {
                        user: Some(user),
                        groups,
                        route: Some(route),
                        ..Decision::deny(Denial::ResourceUnavailable)
                    };
                }
            },
        };
        let path = uri.split(['?', '#']).next().unwrap_or_default();
        let query = CedarQuery {
            user: &user,
            groups: &groups,
            route: &route,
            method,
            path,
            client_ip: req.client_ip,
            resource_entities: &resource_entities,
        };
        let verdict = decide(&snapshot, &query);
        if let Some(shadow) = &self.shadow {
            shadow.compare(&snapshot, &query, &verdict);
        }
        let (denial, policies, errors) = match verdict {
            Ok(v) if v.allowed => (None, v.policies, v.errors),
            Ok(v) => (Some(Denial::PolicyDenied), v.policies, v.errors),
            Err(e) => (Some(Denial::PolicyError), Vec::new(), vec![e.to_string()]),
        };
        Decision {
            denial,
            user: Some(user),
            groups,
            route: Some(route),
            policies,
            errors,
        }
    }

    fn record(
        &self,
        req: &AuthzRequest<'_>,
        adapter: &'static str,
        d: &Decision,
        elapsed: std::time::Duration,
    ) {
        let outcome = if d.is_allowed() { "allow" } else { "deny" };
        let reason = d.denial.map_or("policy_allowed", Denial::reason);
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                adapter,
                outcome,
                status: d.status(),
                reason,
            })
            .inc();
        self.metrics.decision_seconds.observe(elapsed.as_secs_f64());
        if d.route.is_some() {
            let result = if d.denial == Some(Denial::GroupsUnavailable) {
                "error"
            } else {
                "ok"
            };
            self.metrics
                .group_lookups
                .get_or_create(&SourceLabels {
                    source: self.groups.kind(),
                    result,
                })
                .inc();
        }
        let method = req.method.text().map(|m| truncate(m, 16)).unwrap_or("");
        let path = req
            .uri
            .text()
            .and_then(|u| u.split(['?', '#']).next())
            .map(|p| truncate(p, 512))
            .unwrap_or("");
        let user = d.user.as_ref().map(Email::as_str).unwrap_or("");
        let (action, resource) = d
            .route
            .as_ref()
            .map_or((String::new(), String::new()), |r| {
                (
                    format!("Action::\"{}\"", r.action),
                    format!("{}::\"{}\"", r.resource_type, r.resource_id),
                )
            });
        let policies = d.policies.join(",");
        // Logged so `authz diff --log` can replay the request with the membership it had.
        let groups = d.groups.join(",");
        let errors = d.errors.join("; ");
        let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if self.secrets.is_none() {
            tracing::warn!(
                target: "authz::decision",
                adapter, user, groups, method, path, action, resource, decision = outcome,
                status = d.status(), reason, policies, errors, latency_us,
                insecure = "SKIP_HEADER_CHECK=true: the proxy secret is not checked",
                "decision"
            );
        } else {
            tracing::info!(
                target: "authz::decision",
                adapter, user, groups, method, path, action, resource, decision = outcome,
                status = d.status(), reason, policies, errors, latency_us,
                "decision"
            );
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
