//! What a policy's scope can reach: which `permit` policies could apply to an action on a
//! resource type, so `check` warns about routes nothing can allow and `explain` names candidates.

use cedar_policy::{
    ActionConstraint, Effect, Entities, EntityTypeName, EntityUid, Policy, ResourceConstraint,
};

use ipm_policy::snapshot::{PolicySnapshot, entity_uid};

/// The schema's actions and action groups, to decide `action in [..]` scopes.
pub struct ActionTree(Entities);

impl ActionTree {
    pub fn new(snapshot: &PolicySnapshot) -> Self {
        // Without the action entities every `in` scope counts as a possible match, which
        // errs on the side of not warning.
        Self(
            snapshot
                .schema
                .action_entities()
                .unwrap_or_else(|_| Entities::empty()),
        )
    }

    /// `Some(true)` when `action` is `group` or one of its members, `None` when the schema
    /// does not know `action`.
    fn is_in(&self, action: &EntityUid, group: &EntityUid) -> Option<bool> {
        if action == group {
            return Some(true);
        }
        self.0
            .ancestors(action)
            .map(|mut ancestors| ancestors.any(|a| a == group))
    }

    /// Whether an action scope can include `action`.
    pub fn covers(&self, scope: &ActionConstraint, action: &EntityUid) -> bool {
        match scope {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(a) => a == action,
            ActionConstraint::In(groups) => {
                groups.iter().any(|g| self.is_in(action, g).unwrap_or(true))
            }
        }
    }
}

/// The resource a route or a case names: its type, and its id when it is fixed.
#[derive(Debug, Clone, Copy)]
pub struct ResourceShape<'a> {
    pub entity_type: &'a str,
    /// `None` when the id comes from the request path.
    pub id: Option<&'a str>,
}

/// Whether a resource scope can hold a resource of this shape. Errs towards `true`: a
/// warning built on it must never be wrong.
fn resource_in_scope(
    snapshot: &PolicySnapshot,
    scope: &ResourceConstraint,
    shape: ResourceShape<'_>,
) -> bool {
    let Ok(ty) = shape.entity_type.parse::<EntityTypeName>() else {
        return true;
    };
    let same_entity = |uid: &EntityUid| {
        uid.type_name() == &ty && shape.id.is_none_or(|id| uid.id().unescaped() == id)
    };
    // `resource in E` holds for E itself and for whatever the schema lets sit below E's type.
    let can_be_in = |uid: &EntityUid| {
        same_entity(uid)
            || snapshot
                .schema
                .ancestors(&ty)
                .is_none_or(|mut a| a.any(|t| t == uid.type_name()))
    };
    match scope {
        ResourceConstraint::Any => true,
        ResourceConstraint::Eq(uid) => same_entity(uid),
        ResourceConstraint::Is(t) => t == &ty,
        ResourceConstraint::In(uid) => can_be_in(uid),
        ResourceConstraint::IsIn(t, uid) => t == &ty && can_be_in(uid),
    }
}

/// The `permit` policies whose scope can apply to `action` on `resource`, by id.
pub fn permits_in_scope(
    snapshot: &PolicySnapshot,
    tree: &ActionTree,
    action: &str,
    resource: ResourceShape<'_>,
) -> Vec<String> {
    let Ok(action) = entity_uid("Action", action) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = snapshot
        .policies
        .policies()
        .filter(|p| p.effect() == Effect::Permit)
        .filter(|p| in_scope(snapshot, tree, p, &action, resource))
        .map(|p| p.id().to_string())
        .collect();
    ids.sort();
    ids
}

fn in_scope(
    snapshot: &PolicySnapshot,
    tree: &ActionTree,
    policy: &Policy,
    action: &EntityUid,
    resource: ResourceShape<'_>,
) -> bool {
    tree.covers(&policy.action_constraint(), action)
        && resource_in_scope(snapshot, &policy.resource_constraint(), resource)
}

/// One warning per route that no `permit` policy can ever allow: every request to it is
/// denied, which after an edit is usually a mistake.
pub fn unpermitted_routes(snapshot: &PolicySnapshot) -> Vec<String> {
    let tree = ActionTree::new(snapshot);
    snapshot
        .routes
        .routes()
        .iter()
        .enumerate()
        .filter_map(|(i, route)| {
            let spec = &route.spec;
            let shape = ResourceShape {
                entity_type: &spec.resource.entity_type,
                id: (!spec.resource.id.contains('{')).then_some(spec.resource.id.as_str()),
            };
            permits_in_scope(snapshot, &tree, &spec.action, shape)
                .is_empty()
                .then(|| {
                    format!(
                        "route {} (`{} {}`, Action::\"{}\" on {}): no permit policy can apply to it, so every request is denied",
                        i + 1,
                        spec.method.join("|"),
                        spec.path,
                        spec.action,
                        spec.resource.entity_type,
                    )
                })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    fn snapshot(policies: &str) -> PolicySnapshot {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let mut files = BTreeMap::new();
        for name in [
            ipm_policy::snapshot::SCHEMA_FILE,
            ipm_policy::snapshot::ROUTES_FILE,
        ] {
            files.insert(
                name.to_string(),
                std::fs::read_to_string(shipped.join(name)).unwrap(),
            );
        }
        files.insert("p.cedar".into(), policies.into());
        PolicySnapshot::from_sources(Path::new("policies"), files).unwrap()
    }

    #[test]
    fn action_groups_count_their_members() {
        let s =
            snapshot(r#"@id("readers") permit (principal, action in Action::"Read", resource);"#);
        let tree = ActionTree::new(&s);
        let project = ResourceShape {
            entity_type: "Project",
            id: None,
        };
        assert_eq!(
            permits_in_scope(&s, &tree, "ReadProject", project),
            ["readers"]
        );
        assert!(permits_in_scope(&s, &tree, "UpdateProject", project).is_empty());
        let warnings = unpermitted_routes(&s);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("Action::\"UpdateProject\"")),
            "{warnings:?}"
        );
        assert!(
            !warnings
                .iter()
                .any(|w| w.contains("Action::\"ReadProject\"")),
            "{warnings:?}"
        );
    }

    #[test]
    fn forbids_and_other_resources_permit_nothing() {
        let s = snapshot(
            r#"
            @id("f") forbid (principal, action, resource);
            @id("other-app") permit (principal, action, resource == Application::"other");
            @id("images") permit (principal, action, resource is Image);
            @id("in-group") permit (principal, action, resource in Group::"g");
            "#,
        );
        let tree = ActionTree::new(&s);
        let app = ResourceShape {
            entity_type: "Application",
            id: Some("ipm"),
        };
        assert!(permits_in_scope(&s, &tree, "ListProjects", app).is_empty());
        let project = ResourceShape {
            entity_type: "Project",
            id: None,
        };
        // A project may be in a group; an image may be in a project in a group.
        assert_eq!(
            permits_in_scope(&s, &tree, "ReadProject", project),
            ["in-group"]
        );
    }
}
