//! The whole decision as a pure pipeline: `prepare` (secret, user, route, on one snapshot),
//! the caller's lookups (groups, resource entities), then `conclude` on that same snapshot.

use std::net::IpAddr;
use std::sync::Arc;

use cedar_policy::Entity;

use crate::cedar::{CedarQuery, CedarVerdict, QueryError, decide};
use crate::denial::Denial;
use crate::entities::group_entity;
use crate::groups::Groups;
use crate::identity::Email;
use crate::request::{AuthzRequest, authenticate};
use crate::routes::RouteMatch;
use crate::secret::SecretSet;
use crate::snapshot::PolicySnapshot;

/// A request that passed the pure checks, bound to the snapshot it will be decided on.
#[derive(Debug, Clone)]
pub struct Prepared {
    snapshot: Arc<PolicySnapshot>,
    pub user: Email,
    pub route: RouteMatch,
    pub method: String,
    /// The canonical path the route matched (`RouteMatch::path`): `context.path`.
    pub path: String,
    pub client_ip: Option<IpAddr>,
}

/// Authenticates the request and matches its route, on `snapshot`. A request that stops here
/// comes back as its (denied) decision.
pub fn prepare(
    snapshot: Arc<PolicySnapshot>,
    secrets: Option<&SecretSet>,
    req: &AuthzRequest<'_>,
) -> Result<Prepared, Box<Decision>> {
    let user = authenticate(secrets, req).map_err(|d| Box::new(Decision::deny(d)))?;
    let (Some(method), Some(uri)) = (req.method.text(), req.uri.text()) else {
        return Err(Box::new(Decision {
            user: Some(user),
            ..Decision::deny(Denial::MissingOriginalRequest)
        }));
    };
    prepare_for(snapshot, user, method, uri, req.client_ip)
}

/// Matches the route of `method uri` for `user`, whom the caller has already authenticated
/// (an AuthZEN client asking about a user, not a proxy passing one on), on `snapshot`.
pub fn prepare_for(
    snapshot: Arc<PolicySnapshot>,
    user: Email,
    method: &str,
    uri: &str,
    client_ip: Option<IpAddr>,
) -> Result<Prepared, Box<Decision>> {
    let Some(route) = snapshot.routes.matches(method, uri) else {
        return Err(Box::new(Decision {
            user: Some(user),
            ..Decision::deny(Denial::NoRoute)
        }));
    };
    Ok(Prepared {
        path: route.path.clone(),
        user,
        route,
        method: method.to_string(),
        client_ip,
        snapshot,
    })
}

impl Prepared {
    /// The snapshot every later step reads.
    pub fn snapshot(&self) -> &Arc<PolicySnapshot> {
        &self.snapshot
    }

    /// A lookup failed: the decision is this denial, with what was known so far.
    pub fn fail(self, denial: Denial, groups: Option<Groups>) -> Decision {
        Decision {
            user: Some(self.user),
            groups: groups.unwrap_or_else(no_groups),
            route: Some(self.route),
            ..Decision::deny(denial)
        }
    }

    fn query<'a>(&'a self, groups: &'a [String], entities: &'a [Entity]) -> CedarQuery<'a> {
        CedarQuery {
            user: &self.user,
            groups,
            route: &self.route,
            method: &self.method,
            path: &self.path,
            client_ip: self.client_ip,
            resource_entities: entities,
        }
    }
}

/// Asks Cedar on the prepared snapshot and returns the decision, which keeps that snapshot,
/// the groups and the entities for the questions that follow it (`conceals`, `allows_target`).
/// `observe` sees the exact query and verdict (shadow evaluation hooks in there).
pub fn conclude(
    prepared: Prepared,
    groups: Groups,
    entities: Vec<Entity>,
    observe: impl FnOnce(&PolicySnapshot, &CedarQuery<'_>, &Result<CedarVerdict, QueryError>),
) -> Decision {
    let verdict = {
        let query = prepared.query(&groups, &entities);
        let verdict = decide(&prepared.snapshot, &query);
        observe(&prepared.snapshot, &query, &verdict);
        verdict
    };
    let mut decision = Decision::from_verdict(verdict);
    decision.groups = groups;
    decision.user = Some(prepared.user.clone());
    decision.route = Some(prepared.route.clone());
    decision.basis = Some(Arc::new(Basis { prepared, entities }));
    decision
}

fn no_groups() -> Groups {
    Arc::from([])
}

/// What a concluded decision was based on, kept for the questions that follow it.
#[derive(Debug)]
struct Basis {
    prepared: Prepared,
    entities: Vec<Entity>,
}

/// The verdict and what it was based on.
#[derive(Clone)]
pub struct Decision {
    /// `None` means allow.
    pub denial: Option<Denial>,
    pub user: Option<Email>,
    pub groups: Groups,
    pub route: Option<RouteMatch>,
    pub policies: Vec<String>,
    pub errors: Vec<String>,
    basis: Option<Arc<Basis>>,
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decision")
            .field("denial", &self.denial)
            .field("user", &self.user)
            .field("groups", &self.groups)
            .field("route", &self.route)
            .field("policies", &self.policies)
            .field("errors", &self.errors)
            .field("snapshot", &self.snapshot().map(|s| s.hash.as_str()))
            .finish()
    }
}

impl Decision {
    /// A decision that stopped before Cedar was asked.
    pub fn deny(denial: Denial) -> Self {
        Self {
            denial: Some(denial),
            user: None,
            groups: no_groups(),
            route: None,
            policies: Vec::new(),
            errors: Vec::new(),
            basis: None,
        }
    }

    fn from_verdict(verdict: Result<CedarVerdict, QueryError>) -> Self {
        let (denial, policies, errors) = match verdict {
            Ok(v) if v.allowed => (None, v.policies, v.errors),
            Ok(v) => (Some(Denial::PolicyDenied), v.policies, v.errors),
            Err(e) => (Some(Denial::PolicyError), Vec::new(), vec![e.to_string()]),
        };
        Self {
            denial,
            policies,
            errors,
            ..Self::deny(Denial::PolicyError)
        }
    }

    pub fn is_allowed(&self) -> bool {
        self.denial.is_none()
    }

    /// The status an HTTP adapter answers with.
    pub fn status(&self) -> u16 {
        self.denial.map_or(200, Denial::status)
    }

    /// The snapshot Cedar was asked on, once the request reached it.
    pub fn snapshot(&self) -> Option<&Arc<PolicySnapshot>> {
        self.basis.as_ref().map(|b| &b.prepared.snapshot)
    }

    /// Whether a denied request should look like a missing resource (404): the caller may
    /// not even see the resource, asked with its type's visibility action (`[visibility]` in
    /// `routes.toml`) on the same snapshot, groups and entities. `None` when the question does
    /// not apply (allowed, not a policy denial, or no visibility action for the type). The
    /// answer is itself a decision, for the record.
    pub fn visibility(&self) -> Option<Decision> {
        if self.denial != Some(Denial::PolicyDenied) {
            return None;
        }
        let basis = self.basis.as_ref()?;
        let route = &basis.prepared.route;
        let action = basis
            .prepared
            .snapshot
            .routes
            .visibility(&route.resource_type)?;
        if action == route.action {
            return Some(self.clone());
        }
        let asked = RouteMatch {
            action: action.to_string(),
            ..route.clone()
        };
        Some(self.follow_up(basis, asked, basis.entities.clone()))
    }

    /// Asks the route's `target` question (`routes.toml`: e.g. creating a project is also
    /// `CreateProjectInGroup` on the group the body names) about `id`, on the same snapshot.
    /// `None` when the route declares no target.
    pub fn target(&self, id: &str) -> Option<Decision> {
        let basis = self.basis.as_ref()?;
        let target = basis
            .prepared
            .snapshot
            .routes
            .target_of(&basis.prepared.route)?;
        let asked = RouteMatch {
            action: target.action.clone(),
            resource_type: target.entity_type.clone(),
            resource_id: id.to_string(),
            pattern: basis.prepared.route.pattern.clone(),
            path: basis.prepared.route.path.clone(),
        };
        let entities = match target.entity_type.as_str() {
            "Group" => match group_entity(id) {
                Ok(g) => vec![g],
                Err(e) => {
                    return Some(Decision {
                        errors: vec![e],
                        ..self.follow_up(basis, asked, Vec::new())
                    });
                }
            },
            _ => Vec::new(),
        };
        Some(self.follow_up(basis, asked, entities))
    }

    /// Asks `action` on `resource_type::id` with `entities`, as a `GET` of `path`, on this
    /// decision's snapshot, groups and client context (what a list asks about each item).
    pub(crate) fn ask(
        &self,
        action: String,
        resource_type: &str,
        id: &str,
        path: String,
        entities: Vec<Entity>,
    ) -> Option<Decision> {
        let basis = self.basis.as_ref()?;
        let route = RouteMatch {
            action,
            resource_type: resource_type.to_string(),
            resource_id: id.to_string(),
            pattern: basis.prepared.route.pattern.clone(),
            path: path.clone(),
        };
        let prepared = Prepared {
            route,
            method: "GET".to_string(),
            path,
            ..basis.prepared.clone()
        };
        Some(conclude(
            prepared,
            self.groups.clone(),
            entities,
            |_, _, _| {},
        ))
    }

    fn follow_up(&self, basis: &Basis, route: RouteMatch, entities: Vec<Entity>) -> Decision {
        let prepared = Prepared {
            route,
            ..basis.prepared.clone()
        };
        conclude(prepared, self.groups.clone(), entities, |_, _, _| {})
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
