//! The pure decision: who, on what route, with which groups, against one policy snapshot.
//! No I/O, no clock, no globals; every protocol adapter ends up here.

use std::collections::HashSet;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityUid, Request, RestrictedExpression,
};

use crate::entities::user_entities;
use crate::snapshot::{PolicySnapshot, entity_uid};

pub use crate::question::{CedarQuery, CedarVerdict, QueryError};

/// Evaluates a query against a snapshot, on the policies whose scope can match it; a question
/// already decided on this snapshot, with every input the same, is answered from its memo.
pub fn decide(snapshot: &PolicySnapshot, q: &CedarQuery<'_>) -> Result<CedarVerdict, QueryError> {
    snapshot
        .memo
        .get_or_decide(q, || decide_with(snapshot, q, true))
}

/// Evaluates a query; `sliced = false` evaluates every policy (to check slicing against).
pub fn decide_with(
    snapshot: &PolicySnapshot,
    q: &CedarQuery<'_>,
    sliced: bool,
) -> Result<CedarVerdict, QueryError> {
    let principal = entity_uid("User", q.user.as_str()).map_err(QueryError)?;
    let action = entity_uid("Action", &q.route.action).map_err(QueryError)?;
    let resource = entity_uid(&q.route.resource_type, &q.route.resource_id).map_err(QueryError)?;

    let mut pairs = vec![
        (
            "method".to_string(),
            RestrictedExpression::new_string(q.method.to_string()),
        ),
        (
            "path".to_string(),
            RestrictedExpression::new_string(q.path.to_string()),
        ),
    ];
    if let Some(ip) = q.client_ip {
        pairs.push((
            "client_ip".to_string(),
            RestrictedExpression::new_ip(ip.to_string()),
        ));
    }
    let context = Context::from_pairs(pairs).map_err(|e| QueryError(e.to_string()))?;
    // The request's shape was validated against the schema when the snapshot loaded (every
    // route's action, resource type and context), so it is not validated again per request.
    let request = Request::new(
        principal.clone(),
        action.clone(),
        resource.clone(),
        context,
        None,
    )
    .map_err(|e| QueryError(e.to_string()))?;

    let mut entities = Vec::with_capacity(q.groups.len() + 2 + q.resource_entities.len());
    entities.extend(user_entities(q.user, q.groups).map_err(QueryError)?);
    // Resolved entities may repeat a group the user is in; the user's own copy wins.
    let known: HashSet<_> = entities.iter().map(Entity::uid).collect();
    entities.extend(
        q.resource_entities
            .iter()
            .filter(|e| !known.contains(&e.uid()))
            .cloned(),
    );
    // The action and the action groups it is in, for `action in ...`.
    if let Some(a) = snapshot.index.action_entity(&action) {
        entities.push(a.clone());
    }
    // Built by this module or by a resolver from typed rows, so not re-validated per request.
    let entities =
        Entities::from_entities(entities, None).map_err(|e| QueryError(error_chain(&e)))?;

    let principal_in: HashSet<EntityUid> = entities
        .ancestors(&principal)
        .map(|a| a.cloned().collect())
        .unwrap_or_default();
    let sliced_set;
    let policies = if sliced {
        sliced_set = snapshot
            .index
            .slice(&action, &principal, &principal_in, &resource)
            .map_err(|e| QueryError(e.to_string()))?;
        &sliced_set
    } else {
        &snapshot.policies
    };
    let response = Authorizer::new().is_authorized(&request, policies, &entities);
    let diagnostics = response.diagnostics();
    Ok(CedarVerdict {
        allowed: response.decision() == cedar_policy::Decision::Allow,
        policies: {
            let mut ids: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
            ids.sort();
            ids
        },
        errors: diagnostics.errors().map(ToString::to_string).collect(),
    })
}

/// An error's message followed by its causes, so Cedar's detail is not lost.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
