//! What a policy set names, per entity type, and whether any policy reads `context.path`:
//! computed once per snapshot, for lists that follow the policies (`visible`).

use std::collections::{BTreeMap, BTreeSet};

use cedar_policy::{Effect, PolicySet, ResourceConstraint};

/// What the policies name, per entity type, and whether any reads `context.path`.
#[derive(Debug, Clone, Default)]
pub struct Literals {
    ids: BTreeMap<String, BTreeSet<String>>,
    /// The ids a list must fetch whatever their class: every named id except those named only
    /// as the `resource == X` scope of a `forbid`, which can only hide X, never show it where
    /// its class is hidden.
    fetch: BTreeMap<String, BTreeSet<String>>,
    pub(crate) reads_path: bool,
}

impl Literals {
    /// Collects the entity ids every policy names and whether any mentions `path`.
    pub fn of(policies: &PolicySet) -> Self {
        let mut out = Self::default();
        for policy in policies.policies() {
            let mut literals = policy.entity_literals();
            for uid in &literals {
                out.ids
                    .entry(uid.type_name().to_string())
                    .or_default()
                    .insert(uid.id().unescaped().to_string());
            }
            if policy.effect() == Effect::Forbid
                && let ResourceConstraint::Eq(scope) = policy.resource_constraint()
                && let Some(at) = literals.iter().position(|u| *u == scope)
            {
                literals.remove(at);
            }
            for uid in literals {
                out.fetch
                    .entry(uid.type_name().to_string())
                    .or_default()
                    .insert(uid.id().unescaped().to_string());
            }
            // Conservative: any mention of `path` in the policy's text (even in a string or a
            // longer name) counts. The text is the source as written, so this costs no
            // re-parse (converting every policy to JSON took a third of a 10,000-policy load).
            if !out.reads_path {
                out.reads_path = policy.to_string().contains("path");
            }
        }
        out
    }

    pub(crate) fn named(&self, entity_type: &str) -> impl Iterator<Item = &String> {
        self.ids.get(entity_type).into_iter().flatten()
    }

    /// The named ids of `entity_type` a list fetches whatever their class (see `fetch`).
    pub(crate) fn fetched(&self, entity_type: &str) -> impl Iterator<Item = &String> {
        self.fetch.get(entity_type).into_iter().flatten()
    }
}
