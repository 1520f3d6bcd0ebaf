//! Search: which entities of a type a principal may act on (or which may act on a resource),
//! and which actions a principal may take on a resource. Every candidate is put to the same
//! decision as [`evaluate`](crate::evaluate::evaluate), so any result, asked back, is allowed.

use std::collections::BTreeSet;
use std::str::FromStr;

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid};

use crate::evaluate::{EntityRef, Evaluation, action_uid, ask, context, entities_for};
use crate::snapshot::PolicySnapshot;

/// The position a search fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Searched {
    Subject,
    Resource,
}

/// The ids of the entities of the searched position's type for which `q` is allowed, sorted:
/// every such entity of the entities file, and the ids in `known` (what other sources know,
/// such as the groups file's groups). The searched position's id and properties are ignored;
/// the other position is decided with its properties, and `extra` as in `evaluate`. A
/// question that cannot be asked (an unknown action or type) finds nothing.
pub fn permitted_entities(
    snapshot: &PolicySnapshot,
    q: &Evaluation<'_>,
    searched: Searched,
    known: &[String],
    extra: &[Entity],
) -> Vec<String> {
    let (fixed, wanted) = match searched {
        Searched::Subject => (q.resource, q.subject.entity_type),
        Searched::Resource => (q.subject, q.resource.entity_type),
    };
    let Ok(wanted) = EntityTypeName::from_str(wanted) else {
        return Vec::new();
    };
    let prepared = (|| {
        let action = action_uid(snapshot, q.action)?;
        let context = context(snapshot, &action, q.action_properties, q.context)?;
        let entities = entities_for(snapshot, &[fixed], extra)?;
        Ok::<_, String>((action, context, entities, fixed.uid()?))
    })();
    let Ok((action, context, entities, fixed_uid)) = prepared else {
        return Vec::new();
    };
    let mut candidates: BTreeSet<String> = snapshot
        .entities
        .iter()
        .map(Entity::uid)
        .filter(|uid| uid.type_name() == &wanted)
        .map(|uid| uid.id().unescaped().to_string())
        .collect();
    candidates.extend(known.iter().cloned());
    candidates
        .into_iter()
        .filter(|id| {
            let candidate = EntityUid::from_type_name_and_id(wanted.clone(), EntityId::new(id));
            let (principal, resource) = match searched {
                Searched::Subject => (candidate, fixed_uid.clone()),
                Searched::Resource => (fixed_uid.clone(), candidate),
            };
            ask(
                snapshot,
                &entities,
                principal,
                action.clone(),
                resource,
                context.clone(),
            )
            .allowed
        })
        .collect()
}

/// The resources of type `resource_type` that `principal` may `action` on: the question an
/// API's list endpoint asks. See [`permitted_entities`].
pub fn permitted_resources(
    snapshot: &PolicySnapshot,
    principal: EntityRef<'_>,
    action: &str,
    resource_type: &str,
    known: &[String],
    extra: &[Entity],
) -> Vec<String> {
    let q = Evaluation {
        subject: principal,
        action,
        action_properties: None,
        resource: EntityRef {
            entity_type: resource_type,
            id: "",
            properties: None,
        },
        context: None,
    };
    permitted_entities(snapshot, &q, Searched::Resource, known, extra)
}

/// The names of the actions the schema declares for the subject's and the resource's types
/// that `q` allows (its action is ignored), sorted.
pub fn permitted_actions(
    snapshot: &PolicySnapshot,
    q: &Evaluation<'_>,
    extra: &[Entity],
) -> Vec<String> {
    let (Ok(principal), Ok(resource)) = (q.subject.uid(), q.resource.uid()) else {
        return Vec::new();
    };
    let Ok(entities) = entities_for(snapshot, &[q.subject, q.resource], extra) else {
        return Vec::new();
    };
    let mut actions: Vec<&EntityUid> = snapshot
        .schema
        .actions_for_principal_and_resource(principal.type_name(), resource.type_name())
        .collect();
    actions.sort_by(|a, b| a.id().unescaped().cmp(b.id().unescaped()));
    actions.dedup();
    actions
        .into_iter()
        .filter(|action| {
            let Ok(context) = context(snapshot, action, q.action_properties, q.context) else {
                return false;
            };
            ask(
                snapshot,
                &entities,
                principal.clone(),
                (*action).clone(),
                resource.clone(),
                context,
            )
            .allowed
        })
        .map(|a| a.id().unescaped().to_string())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::path::Path;

    use super::*;

    const MORTY: &str = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";

    #[test]
    fn every_result_is_allowed_and_every_allowed_candidate_is_found() {
        let s = PolicySnapshot::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/examples/authzen-todo"),
        )
        .unwrap();
        let morty = EntityRef {
            entity_type: "user",
            id: MORTY,
            properties: None,
        };
        let found = permitted_resources(&s, morty, "can_delete_todo", "todo", &[], &[]);
        assert_eq!(found, ["7240d0db-8ff0-41ec-98b2-34a096273b91"]);
        // `known` candidates are put to the same decision.
        let known = ["todo-x".to_string()];
        let found = permitted_resources(&s, morty, "can_read_todos", "todo", &known, &[]);
        assert_eq!(found.len(), 6);
        assert!(permitted_resources(&s, morty, "can_fly", "todo", &[], &[]).is_empty());
    }
}
