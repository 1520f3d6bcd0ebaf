//! What a policy set names, per entity type, and whether any policy reads `context.path`:
//! computed once per snapshot, for lists that follow the policies (`visible`).

use std::collections::{BTreeMap, BTreeSet};

use cedar_policy::PolicySet;

/// What the policies name, per entity type, and whether any reads `context.path`.
#[derive(Debug, Clone, Default)]
pub struct Literals {
    ids: BTreeMap<String, BTreeSet<String>>,
    pub(crate) reads_path: bool,
}

impl Literals {
    /// Collects the entity ids every policy names and whether any mentions `path`.
    pub fn of(policies: &PolicySet) -> Self {
        let mut out = Self::default();
        for policy in policies.policies() {
            for uid in policy.entity_literals() {
                out.ids
                    .entry(uid.type_name().to_string())
                    .or_default()
                    .insert(uid.id().unescaped().to_string());
            }
            // Conservative: any mention of `path` (even in a string) counts.
            if !out.reads_path {
                let json = policy.to_json().map(|j| j.to_string()).unwrap_or_default();
                out.reads_path = json.is_empty() || json.contains("\"path\"");
            }
        }
        out
    }

    pub(crate) fn named(&self, entity_type: &str) -> impl Iterator<Item = &String> {
        self.ids.get(entity_type).into_iter().flatten()
    }
}
