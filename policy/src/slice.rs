//! Policy slicing: a request is evaluated only against the policies whose scope can match it.
//! Cedar checks a policy's scope before its conditions, so a policy left out was never satisfied
//! and never erred: the decision and its determining policies are the same, only faster.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use cached::{Cached, LruCache};
use cedar_policy::{
    ActionConstraint, Entities, Entity, EntityUid, Policy, PolicySet, PolicySetError,
    PrincipalConstraint, ResourceConstraint,
};

/// What a policy's principal scope asks of the principal.
#[derive(Debug, Clone)]
enum PrincipalScope {
    /// Anyone (also `is User`: every principal is a `User`).
    Any,
    /// The principal or one of its ancestors is this entity.
    In(EntityUid),
    /// The principal is this entity.
    Eq(EntityUid),
}

#[derive(Debug, Clone)]
struct Indexed {
    policy: Policy,
    principal: PrincipalScope,
}

/// The policies of a snapshot, grouped by the actions their scope admits.
#[derive(Debug)]
pub struct PolicyIndex {
    by_action: HashMap<EntityUid, Slices>,
    /// Each action as an entity whose parents are all its ancestors: the one entity of the
    /// action hierarchy a request needs, so the hierarchy is not rebuilt per request.
    actions: HashMap<EntityUid, Entity>,
    /// Slices already built, by the policies they hold: most requests share a few (the same
    /// action, the same kinds of principal), and building one costs more than finding it.
    built: Option<Mutex<LruCache<Chosen, Arc<PolicySet>>>>,
}

/// Slices kept; the least recently used goes first.
const BUILT: usize = 1024;

/// Which policies a slice holds: an action's general ones and a resource's own, by position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Chosen {
    action: EntityUid,
    /// Set when the resource has policies of its own.
    resource: Option<EntityUid>,
    general: Vec<u32>,
    own: Vec<u32>,
}

/// One action's policies: those whose resource scope is `== X`, by X (a request on another
/// resource never needs them: a thousand per-project policies cost a project's decision
/// nothing but its own), and the rest.
#[derive(Debug, Clone, Default)]
struct Slices {
    general: Vec<Indexed>,
    by_resource: HashMap<EntityUid, Vec<Indexed>>,
}

fn admits_action(
    c: &ActionConstraint,
    action: &EntityUid,
    ancestors: &HashSet<&EntityUid>,
) -> bool {
    match c {
        ActionConstraint::Eq(a) => a == action,
        ActionConstraint::In(list) => list.iter().any(|a| a == action || ancestors.contains(a)),
        // `Any`, and any constraint form this version does not know: keep the policy.
        _ => true,
    }
}

fn principal_scope(c: PrincipalConstraint) -> PrincipalScope {
    match c {
        PrincipalConstraint::In(e) | PrincipalConstraint::IsIn(_, e) => PrincipalScope::In(e),
        PrincipalConstraint::Eq(e) => PrincipalScope::Eq(e),
        PrincipalConstraint::Any | PrincipalConstraint::Is(_) => PrincipalScope::Any,
    }
}

impl PolicyIndex {
    /// Indexes every policy under every action of the schema its action scope admits. Each
    /// policy's scope is read once (reading it builds its constraints anew), not per action.
    pub fn new(policies: &PolicySet, actions: &Entities) -> Self {
        let scoped: Vec<(ActionConstraint, Option<EntityUid>, Indexed)> = policies
            .policies()
            .map(|p| {
                let resource = match p.resource_constraint() {
                    ResourceConstraint::Eq(r) => Some(r),
                    _ => None,
                };
                let indexed = Indexed {
                    policy: p.clone(),
                    principal: principal_scope(p.principal_constraint()),
                };
                (p.action_constraint(), resource, indexed)
            })
            .collect();
        let mut by_action: HashMap<EntityUid, Slices> = HashMap::new();
        let mut action_entities = HashMap::new();
        for entity in actions.iter() {
            let action = entity.uid();
            let ancestors: HashSet<&EntityUid> = actions
                .ancestors(&action)
                .map(Iterator::collect)
                .unwrap_or_default();
            action_entities.insert(
                action.clone(),
                Entity::new_no_attrs(
                    action.clone(),
                    ancestors.iter().map(|a| (*a).clone()).collect(),
                ),
            );
            let slices = by_action.entry(action.clone()).or_default();
            for (constraint, resource, indexed) in &scoped {
                if !admits_action(constraint, &action, &ancestors) {
                    continue;
                }
                match resource {
                    Some(r) => slices
                        .by_resource
                        .entry(r.clone())
                        .or_default()
                        .push(indexed.clone()),
                    None => slices.general.push(indexed.clone()),
                }
            }
        }
        Self {
            by_action,
            actions: action_entities,
            built: LruCache::builder()
                .max_size(BUILT)
                .build()
                .ok()
                .map(Mutex::new),
        }
    }

    /// The action's entity, its parents being every action group it is in.
    pub fn action_entity(&self, action: &EntityUid) -> Option<&Entity> {
        self.actions.get(action)
    }

    /// The policies that can apply to `principal` (whose ancestors are `principal_in`) doing
    /// `action` on `resource`.
    pub fn slice(
        &self,
        action: &EntityUid,
        principal: &EntityUid,
        principal_in: &HashSet<EntityUid>,
        resource: &EntityUid,
    ) -> Result<Arc<PolicySet>, Box<PolicySetError>> {
        let Some(slices) = self.by_action.get(action) else {
            return Ok(Arc::new(PolicySet::new()));
        };
        let applies = |i: &Indexed| match &i.principal {
            PrincipalScope::Any => true,
            PrincipalScope::In(e) => e == principal || principal_in.contains(e),
            PrincipalScope::Eq(e) => e == principal,
        };
        let positions = |list: &[Indexed]| -> Vec<u32> {
            (0u32..)
                .zip(list)
                .filter(|(_, i)| applies(i))
                .map(|(n, _)| n)
                .collect()
        };
        let own = slices.by_resource.get(resource);
        let chosen = Chosen {
            action: action.clone(),
            resource: own.map(|_| resource.clone()),
            general: positions(&slices.general),
            own: own.map(|o| positions(o)).unwrap_or_default(),
        };
        let built = || self.built.as_ref().and_then(|b| b.lock().ok());
        if let Some(set) = built().and_then(|mut b| b.cache_get(&chosen).cloned()) {
            return Ok(set);
        }
        let pick = |list: &[Indexed], at: &[u32]| -> Vec<Policy> {
            at.iter()
                .filter_map(|n| list.get(*n as usize))
                .map(|i| i.policy.clone())
                .collect()
        };
        let mut policies = pick(&slices.general, &chosen.general);
        policies.extend(pick(own.map_or(&[][..], Vec::as_slice), &chosen.own));
        let set = Arc::new(PolicySet::from_policies(policies).map_err(Box::new)?);
        if let Some(mut b) = built() {
            b.cache_set(chosen, set.clone());
        }
        Ok(set)
    }
}
