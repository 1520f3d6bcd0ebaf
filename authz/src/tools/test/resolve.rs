//! A case made concrete against one snapshot: the route, the groups, the resource's entities
//! (from the same vocabulary the live resolvers use), then decided through the server's core.

use std::net::IpAddr;
use std::str::FromStr;

use cedar_policy::{Entities, Entity, EntityUid};

use ipm_policy::cedar::{CedarQuery, decide, error_chain};
use ipm_policy::entities::{ImageParent, image_entities, project_entities};
use ipm_policy::groups::is_valid_group_name;
use ipm_policy::identity::Email;
use ipm_policy::routes::RouteMatch;
use ipm_policy::snapshot::PolicySnapshot;

use super::cases::{CaseSpec, Verdict};

/// Why a case cannot be put to the policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CaseError(pub String);

/// A case made concrete against one snapshot: exactly what `decide` is asked.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub user: Email,
    pub groups: Vec<String>,
    pub method: String,
    /// The path without its query string.
    pub path: String,
    /// `None` when no route matches: the server denies with `no_route`.
    pub route: Option<RouteMatch>,
    pub entities: Vec<Entity>,
    pub client_ip: Option<IpAddr>,
}

impl Resolved {
    pub fn query(&self) -> Option<CedarQuery<'_>> {
        Some(CedarQuery {
            user: &self.user,
            groups: &self.groups,
            route: self.route.as_ref()?,
            method: &self.method,
            path: &self.path,
            client_ip: self.client_ip,
            resource_entities: &self.entities,
        })
    }

    /// Decides through `decision::decide`, as the server does after its route and group lookup.
    pub fn decide(&self, snapshot: &PolicySnapshot) -> Outcome {
        let Some(q) = self.query() else {
            return Outcome {
                verdict: Verdict::Deny,
                reason: "no_route",
                policies: Vec::new(),
                errors: Vec::new(),
            };
        };
        match decide(snapshot, &q) {
            Ok(v) => Outcome {
                verdict: if v.allowed {
                    Verdict::Allow
                } else {
                    Verdict::Deny
                },
                reason: if v.allowed {
                    "policy_allowed"
                } else {
                    "policy_denied"
                },
                policies: v.policies,
                errors: v.errors,
            },
            Err(e) => Outcome {
                verdict: Verdict::Deny,
                reason: "policy_error",
                policies: Vec::new(),
                errors: vec![e.to_string()],
            },
        }
    }
}

/// A decision, in the server's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// `policy_allowed`, `policy_denied`, `no_route` or `policy_error`, as in the decision log.
    pub reason: &'static str,
    pub policies: Vec<String>,
    pub errors: Vec<String>,
}

impl Outcome {
    /// Who decided, in a few words.
    pub fn decided_by(&self) -> String {
        match self.reason {
            "no_route" => "(no route)".into(),
            "policy_error" => "(policy error)".into(),
            _ if self.policies.is_empty() => "(default deny)".into(),
            _ => self.policies.join(", "),
        }
    }
}

fn case_error(message: impl Into<String>) -> CaseError {
    CaseError(message.into())
}

/// Turns a case into the query the server would make against `snapshot`.
pub fn resolve(snapshot: &PolicySnapshot, spec: &CaseSpec) -> Result<Resolved, CaseError> {
    let user: Email = spec
        .user
        .parse()
        .map_err(|e| case_error(format!("`user`: {e}")))?;
    let mut groups = spec.groups.clone();
    if let Some(bad) = groups.iter().find(|g| !is_valid_group_name(g)) {
        return Err(case_error(format!("`groups`: `{bad}` is not a group name")));
    }
    groups.sort();
    groups.dedup();
    let uri = spec.path.clone().unwrap_or_default();
    let method = spec.method.clone().unwrap_or_default().to_ascii_uppercase();
    let raw_path = uri.split(['?', '#']).next().unwrap_or_default();
    let route = match (&spec.action, &spec.resource) {
        (Some(action), Some(resource)) => Some(direct_route(action, resource, raw_path)?),
        (Some(_), None) | (None, Some(_)) => {
            return Err(case_error("`action` and `resource` go together"));
        }
        (None, None) => {
            if spec.method.is_none() || spec.path.is_none() {
                return Err(case_error(
                    "give `method` and `path` (or `action` and `resource`)",
                ));
            }
            snapshot.routes.matches(&method, &uri)
        }
    };
    let entities = match (&spec.resource_group, &spec.entities, &route) {
        (Some(_), Some(_), _) => {
            return Err(case_error("use `resource_group` or `entities`, not both"));
        }
        (Some(group), None, Some(route)) => resource_in_group(route, group)?,
        (None, Some(json), _) => entities_from_json(snapshot, json)?,
        _ => Vec::new(),
    };
    // `context.path` as the server builds it: the route's canonical path.
    let path = route
        .as_ref()
        .map_or_else(|| raw_path.to_string(), |r| r.path.clone());
    Ok(Resolved {
        user,
        groups,
        method,
        path,
        route,
        entities,
        client_ip: spec.client_ip,
    })
}

/// Resolves and decides a case.
pub fn evaluate(snapshot: &PolicySnapshot, spec: &CaseSpec) -> Result<Outcome, CaseError> {
    resolve(snapshot, spec).map(|r| r.decide(snapshot))
}

/// A case that names its action and resource: the path, if any, only fills the context.
fn direct_route(action: &str, resource: &str, path: &str) -> Result<RouteMatch, CaseError> {
    let uid = EntityUid::from_str(resource).map_err(|_| {
        case_error(format!(
            "`resource`: `{resource}` is not an entity such as `Group::\"photographers\"`"
        ))
    })?;
    Ok(RouteMatch {
        action: action.to_string(),
        resource_type: uid.type_name().to_string(),
        resource_id: uid.id().unescaped().to_string(),
        pattern: String::new(),
        path: path.to_string(),
    })
}

/// The entities behind `resource_group`, from the same vocabulary the live resolvers use: a
/// project in that group; for an image, the image in its own project (`<id>-project`) there.
fn resource_in_group(route: &RouteMatch, group: &str) -> Result<Vec<Entity>, CaseError> {
    if !is_valid_group_name(group) {
        return Err(case_error(format!(
            "`resource_group`: `{group}` is not a group name"
        )));
    }
    let id = &route.resource_id;
    match route.resource_type.as_str() {
        "Project" => project_entities(id, group).map_err(case_error),
        "Image" => image_entities(
            id,
            &ImageParent {
                project: format!("{id}-project"),
                group: group.into(),
            },
        )
        .map_err(case_error),
        other => Err(case_error(format!(
            "`resource_group` describes a Project or an Image; this resource is {other}::\"{id}\""
        ))),
    }
}

fn entities_from_json(
    snapshot: &PolicySnapshot,
    json: &serde_json::Value,
) -> Result<Vec<Entity>, CaseError> {
    let parsed = match json {
        serde_json::Value::String(text) => Entities::from_json_str(text, Some(&snapshot.schema)),
        other => Entities::from_json_value(other.clone(), Some(&snapshot.schema)),
    }
    .map_err(|e| case_error(format!("`entities`: {}", error_chain(&e))))?;
    // The schema adds its actions; `decide` adds them again from the same schema.
    Ok(parsed
        .iter()
        .filter(|e| e.uid().type_name().basename() != "Action")
        .cloned()
        .collect())
}
