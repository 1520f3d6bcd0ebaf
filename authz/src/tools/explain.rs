//! `authz explain`: how one request is decided, which policies decided it, which could have
//! applied and why they did not, and which failed to evaluate. Every answer comes from `decide`.

use std::fmt::Write as _;

use cedar_policy::{Effect, Policy, PolicyId, PolicySet};

use crate::tools::coverage::{ActionTree, ResourceShape, permits_in_scope};
use crate::tools::test::{Resolved, describe_entity};
use ipm_policy::cedar::{CedarQuery, decide};
use ipm_policy::snapshot::PolicySnapshot;

/// The report for a resolved request.
pub fn explain(snapshot: &PolicySnapshot, r: &Resolved) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "user:     {}", r.user);
    let _ = writeln!(out, "groups:   {}", r.groups.join(", "));
    let (Some(route), Some(q)) = (&r.route, r.query()) else {
        let _ = writeln!(
            out,
            "route:    none matches `{} {}`\ndecision: DENY (403, no_route)",
            r.method, r.path
        );
        return out;
    };
    if !route.pattern.is_empty() {
        let _ = writeln!(out, "route:    {} {}", r.method, route.pattern);
    }
    let _ = writeln!(out, "action:   Action::\"{}\"", route.action);
    let _ = writeln!(
        out,
        "resource: {}::\"{}\"",
        route.resource_type, route.resource_id
    );
    for e in &r.entities {
        let _ = writeln!(out, "entity:   {}", describe_entity(e));
    }
    if r.entities.is_empty() && matches!(route.resource_type.as_str(), "Project" | "Image") {
        let _ = writeln!(
            out,
            "note:     nothing is known about this {}, so policies cannot see its group; give --resource-group (the server reads it from the database)",
            route.resource_type.to_ascii_lowercase()
        );
    }
    let verdict = match decide(snapshot, &q) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(out, "decision: DENY (403, policy_error): {e}");
            return out;
        }
    };
    let _ = writeln!(
        out,
        "decision: {}",
        if verdict.allowed {
            "ALLOW (200)"
        } else {
            "DENY (403, policy_denied)"
        }
    );
    let file = |id: &str| snapshot.policy_files.get(id).map_or("?", String::as_str);
    if verdict.policies.is_empty() {
        out.push_str("policies: none matched (default deny)\n");
        why_none_matched(&mut out, snapshot, &q);
    }
    for id in &verdict.policies {
        let effect = match snapshot
            .policies
            .policy(&PolicyId::new(id))
            .map(Policy::effect)
        {
            Some(Effect::Forbid) => "forbid",
            _ => "permit",
        };
        let _ = writeln!(out, "policy:   {id} ({}, {effect})", file(id));
    }
    let errored = errored_policies(snapshot, &q);
    if errored.is_empty() && !verdict.errors.is_empty() {
        // Not pinned to one policy; show them as Cedar gave them.
        for e in &verdict.errors {
            let _ = writeln!(out, "error:    {e}");
        }
    }
    for (id, errors) in errored {
        let prefix = format!("error while evaluating policy `{id}`: ");
        for e in errors {
            let e = e.strip_prefix(&prefix).unwrap_or(&e);
            let _ = writeln!(out, "errored:  {id} ({}): {e}", file(&id));
        }
    }
    out
}

/// Why a default deny: the permits that could have applied, and what each one lacked.
fn why_none_matched(out: &mut String, snapshot: &PolicySnapshot, q: &CedarQuery<'_>) {
    let tree = ActionTree::new(snapshot);
    let shape = ResourceShape {
        entity_type: &q.route.resource_type,
        id: Some(&q.route.resource_id),
    };
    let candidates = permits_in_scope(snapshot, &tree, &q.route.action, shape);
    let target = format!(
        "Action::\"{}\" on {}::\"{}\"",
        q.route.action, q.route.resource_type, q.route.resource_id
    );
    if candidates.is_empty() {
        let _ = writeln!(
            out,
            "why:      no permit policy can apply to {target}; add one to allow it"
        );
        return;
    }
    let _ = writeln!(
        out,
        "why:      {} permit polic{} can apply to {target}, but none did:",
        candidates.len(),
        if candidates.len() == 1 { "y" } else { "ies" }
    );
    for id in candidates {
        let file = snapshot.policy_files.get(&id).map_or("?", String::as_str);
        let reason = snapshot
            .policies
            .policy(&PolicyId::new(&id))
            .map_or("?", |p| why_not(snapshot, q, p));
        let _ = writeln!(out, "          - {id} ({file}): {reason}");
    }
}

/// Asks the policy alone, then without its conditions, then without its principal scope too.
fn why_not(snapshot: &PolicySnapshot, q: &CedarQuery<'_>, policy: &Policy) -> &'static str {
    let alone = ask(snapshot, q, Some(policy.clone()));
    if alone.is_some_and(|(_, errored)| errored) {
        return "it failed to evaluate (see `errored`)";
    }
    let Ok(mut json) = policy.to_json() else {
        return "it did not apply";
    };
    if let Some(obj) = json.as_object_mut() {
        obj.insert("conditions".into(), serde_json::Value::Array(Vec::new()));
    }
    let scope_only = Policy::from_json(Some(policy.id().clone()), json.clone()).ok();
    if ask(snapshot, q, scope_only).is_some_and(|(allowed, _)| allowed) {
        return "the request is in its scope, but its `when`/`unless` conditions do not hold";
    }
    if let Some(obj) = json.as_object_mut() {
        obj.insert("principal".into(), serde_json::json!({ "op": "All" }));
    }
    let any_principal = Policy::from_json(Some(policy.id().clone()), json).ok();
    if ask(snapshot, q, any_principal).is_some_and(|(allowed, _)| allowed) {
        "the user is outside its principal scope"
    } else {
        "the resource is outside its resource scope"
    }
}

/// `(allowed, errored)` for the query against one policy alone.
fn ask(
    snapshot: &PolicySnapshot,
    q: &CedarQuery<'_>,
    policy: Option<Policy>,
) -> Option<(bool, bool)> {
    let set = PolicySet::from_policies([policy?]).ok()?;
    let v = decide(&snapshot.with_policies(set), q).ok()?;
    Some((v.allowed, !v.errors.is_empty()))
}

/// Every policy that fails to evaluate for this query, with Cedar's messages.
fn errored_policies(snapshot: &PolicySnapshot, q: &CedarQuery<'_>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = snapshot
        .policies
        .policies()
        .filter_map(|p| {
            let set = PolicySet::from_policies([p.clone()]).ok()?;
            let v = decide(&snapshot.with_policies(set), q).ok()?;
            (!v.errors.is_empty()).then(|| (p.id().to_string(), v.errors))
        })
        .collect();
    out.sort();
    out
}
