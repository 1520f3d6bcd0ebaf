//! A Cedar question asked directly, outside the routed pipeline: subject, action, resource and
//! context as a caller names them (the AuthZEN mapping), decided on one snapshot with the
//! entities file as the source of what the request does not carry. Pure: no I/O.

use std::borrow::Cow;

use cedar_policy::{Authorizer, Context, Entities, Entity, EntityUid, Request};
use serde_json::{Map, Value, json};

use crate::cedar::{CedarVerdict, error_chain};
use crate::snapshot::{PolicySnapshot, entity_uid};

/// Attributes a caller sends with an entity, or the keys of a context.
pub type Properties = Map<String, Value>;

/// An entity as a caller names it: `type` and `id` make the Cedar uid (`type::"id"`), the
/// properties its attributes.
#[derive(Debug, Clone, Copy)]
pub struct EntityRef<'a> {
    pub entity_type: &'a str,
    pub id: &'a str,
    pub properties: Option<&'a Properties>,
}

impl EntityRef<'_> {
    /// `type::"id"`.
    pub fn uid(&self) -> Result<EntityUid, String> {
        entity_uid(self.entity_type, self.id)
    }
}

/// One question: may `subject` do `action` on `resource`? The action's properties and the
/// context together are the Cedar context.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation<'a> {
    pub subject: EntityRef<'a>,
    pub action: &'a str,
    pub action_properties: Option<&'a Properties>,
    pub resource: EntityRef<'a>,
    pub context: Option<&'a Properties>,
}

/// How a batch of evaluations runs: all of them, or until the first denial or permit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Semantic {
    #[default]
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

impl Semantic {
    /// Whether a batch stops after an evaluation that came out `allowed`.
    pub fn stops_after(self, allowed: bool) -> bool {
        match self {
            Self::ExecuteAll => false,
            Self::DenyOnFirstDeny => !allowed,
            Self::PermitOnFirstPermit => allowed,
        }
    }
}

/// A denial that says why the question could not be asked.
pub fn refused(error: String) -> CedarVerdict {
    CedarVerdict {
        allowed: false,
        policies: Vec::new(),
        errors: vec![error],
    }
}

/// Decides one question on `snapshot`. Whatever is wrong with it (an action or entity type
/// the schema does not know, properties or a context the schema refuses) is a denial that
/// names the problem, never an error. `extra` are entities found for this request elsewhere
/// (a `User` with its groups); they take the place of the entities file's copies.
pub fn evaluate(snapshot: &PolicySnapshot, q: &Evaluation<'_>, extra: &[Entity]) -> CedarVerdict {
    let asked = || -> Result<CedarVerdict, String> {
        let action = action_uid(snapshot, q.action)?;
        let context = context(snapshot, &action, q.action_properties, q.context)?;
        let entities = entities_for(snapshot, &[q.subject, q.resource], extra)?;
        Ok(ask(
            snapshot,
            &entities,
            q.subject.uid()?,
            action,
            q.resource.uid()?,
            context,
        ))
    };
    asked().unwrap_or_else(refused)
}

/// `Action::"name"`, when the schema declares it.
pub(crate) fn action_uid(snapshot: &PolicySnapshot, name: &str) -> Result<EntityUid, String> {
    let uid = entity_uid("Action", name)?;
    match snapshot.action_entities.get(&uid) {
        Some(_) => Ok(uid),
        None => Err(format!("the schema declares no action `{name}`")),
    }
}

/// The Cedar context: the context's keys and the action's properties, checked against the
/// action's context type in the schema. A key in both is refused rather than picked.
pub(crate) fn context(
    snapshot: &PolicySnapshot,
    action: &EntityUid,
    action_properties: Option<&Properties>,
    context: Option<&Properties>,
) -> Result<Context, String> {
    let mut merged = context.cloned().unwrap_or_default();
    for (k, v) in action_properties.into_iter().flatten() {
        if merged.contains_key(k) {
            return Err(format!(
                "`{k}` is both an action property and a context key"
            ));
        }
        merged.insert(k.clone(), v.clone());
    }
    if merged.is_empty() {
        // `Request::new` still checks it against the action's context type.
        return Ok(Context::empty());
    }
    Context::from_json_value(Value::Object(merged), Some((&snapshot.schema, action)))
        .map_err(|e| format!("context: {}", error_chain(&e)))
}

/// The entities a question is decided with: the snapshot's, plus `extra`, plus each entity in
/// `carried` that brings properties. Those are merged into the entity's known attributes
/// (`extra`'s copy, else the entities file's): a known attribute keeps its value, so a caller
/// cannot overwrite what the PIP says. The result is checked against the schema. Without
/// anything to add, the snapshot's own store is used as it is.
pub(crate) fn entities_for<'s>(
    snapshot: &'s PolicySnapshot,
    carried: &[EntityRef<'_>],
    extra: &[Entity],
) -> Result<Cow<'s, Entities>, String> {
    let mut merged: Vec<(EntityUid, Value)> = Vec::new();
    for r in carried {
        let Some(props) = r.properties.filter(|p| !p.is_empty()) else {
            continue;
        };
        let uid = r.uid()?;
        let at = match merged.iter().position(|(u, _)| *u == uid) {
            Some(at) => at,
            None => {
                let known = extra
                    .iter()
                    .find(|e| e.uid() == uid)
                    .or_else(|| snapshot.entities.get(&uid));
                let base = match known {
                    Some(e) => e.to_json_value().map_err(|e| error_chain(&e))?,
                    None => json!({
                        "uid": { "type": r.entity_type, "id": r.id },
                        "attrs": {},
                        "parents": [],
                    }),
                };
                merged.push((uid, base));
                merged.len() - 1
            }
        };
        let attrs = merged
            .get_mut(at)
            .and_then(|(_, v)| v.as_object_mut())
            .map(|o| o.entry("attrs").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| format!("`{}` has no attribute record", r.entity_type))?;
        for (k, v) in props {
            attrs.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if merged.is_empty() && extra.is_empty() {
        return Ok(Cow::Borrowed(&snapshot.entities));
    }
    let mut add = Vec::with_capacity(merged.len() + extra.len());
    for (uid, value) in merged {
        let e = Entity::from_json_value(value, Some(&snapshot.schema))
            .map_err(|e| format!("properties of `{uid}`: {}", error_chain(&e)))?;
        add.push(e);
    }
    let taken: Vec<EntityUid> = add.iter().map(Entity::uid).collect();
    add.extend(extra.iter().filter(|e| !taken.contains(&e.uid())).cloned());
    // Each carried entity was checked against the schema as it was parsed; `extra` is built
    // from typed data, as the routed decision builds its entities, so not checked again.
    snapshot
        .entities
        .clone()
        .upsert_entities(add, None)
        .map(Cow::Owned)
        .map_err(|e| error_chain(&e))
}

/// Asks Cedar, with the request checked against the schema (an entity type the action does
/// not apply to, a context of the wrong shape: denied, with the reason).
pub(crate) fn ask(
    snapshot: &PolicySnapshot,
    entities: &Entities,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: Context,
) -> CedarVerdict {
    let request = match Request::new(principal, action, resource, context, Some(&snapshot.schema)) {
        Ok(r) => r,
        Err(e) => return refused(error_chain(&e)),
    };
    let response = Authorizer::new().is_authorized(&request, &snapshot.policies, entities);
    let diagnostics = response.diagnostics();
    let mut policies: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
    policies.sort();
    CedarVerdict {
        allowed: response.decision() == cedar_policy::Decision::Allow,
        policies,
        errors: diagnostics.errors().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    const MORTY: &str = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";

    fn todo_snapshot() -> PolicySnapshot {
        PolicySnapshot::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/examples/authzen-todo"),
        )
        .unwrap()
    }

    fn props(v: serde_json::Value) -> Properties {
        v.as_object().unwrap().clone()
    }

    fn todo<'a>(id: &'a str, p: Option<&'a Properties>) -> EntityRef<'a> {
        EntityRef {
            entity_type: "todo",
            id,
            properties: p,
        }
    }

    fn morty_may(s: &PolicySnapshot, action: &str, resource: EntityRef<'_>) -> CedarVerdict {
        let q = Evaluation {
            subject: EntityRef {
                entity_type: "user",
                id: MORTY,
                properties: None,
            },
            action,
            action_properties: None,
            resource,
            context: None,
        };
        evaluate(s, &q, &[])
    }

    #[test]
    fn request_properties_fill_in_and_the_entities_file_wins() {
        let s = todo_snapshot();
        let own = props(json!({ "ownerID": "morty@the-citadel.com" }));
        let v = morty_may(&s, "can_update_todo", todo("new", Some(&own)));
        assert!(v.allowed, "{v:?}");
        assert_eq!(v.policies, ["todo-editor-changes-own"]);
        // The file says todo …92 is Rick's: a caller claiming it is Morty's changes nothing.
        let claimed = props(json!({ "ownerID": "morty@the-citadel.com" }));
        let id = "7240d0db-8ff0-41ec-98b2-34a096273b92";
        assert!(!morty_may(&s, "can_update_todo", todo(id, Some(&claimed))).allowed);
        // Known from the file alone.
        let id = "7240d0db-8ff0-41ec-98b2-34a096273b91";
        assert!(morty_may(&s, "can_update_todo", todo(id, None)).allowed);
    }

    #[test]
    fn what_the_schema_refuses_is_a_denial_that_says_why() {
        let s = todo_snapshot();
        let v = morty_may(&s, "can_fly", todo("x", None));
        assert!(!v.allowed);
        assert!(v.errors[0].contains("no action `can_fly`"), "{v:?}");
        let bad = props(json!({ "ownerID": 1 }));
        let v = morty_may(&s, "can_update_todo", todo("x", Some(&bad)));
        assert!(!v.allowed && !v.errors.is_empty(), "{v:?}");
        let v = morty_may(
            &s,
            "can_read_todos",
            EntityRef {
                entity_type: "route",
                id: "/todos",
                properties: None,
            },
        );
        assert!(!v.allowed && !v.errors.is_empty(), "{v:?}");
        // The context: these actions declare none, so any key is refused.
        let ctx = props(json!({ "time": "now" }));
        let q = Evaluation {
            context: Some(&ctx),
            ..Evaluation {
                subject: EntityRef {
                    entity_type: "user",
                    id: MORTY,
                    properties: None,
                },
                action: "can_read_todos",
                action_properties: None,
                resource: todo("todo-1", None),
                context: None,
            }
        };
        assert!(!evaluate(&s, &q, &[]).allowed);
        let both = props(json!({ "time": "later" }));
        let q = Evaluation {
            action_properties: Some(&both),
            ..q
        };
        let v = evaluate(&s, &q, &[]);
        assert!(
            v.errors[0].contains("both an action property and a context key"),
            "{v:?}"
        );
    }

    #[test]
    fn semantics_stop_where_they_say() {
        assert!(!Semantic::ExecuteAll.stops_after(false));
        assert!(Semantic::DenyOnFirstDeny.stops_after(false));
        assert!(!Semantic::DenyOnFirstDeny.stops_after(true));
        assert!(Semantic::PermitOnFirstPermit.stops_after(true));
    }
}
