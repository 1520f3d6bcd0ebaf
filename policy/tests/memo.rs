//! The decision memo never changes a decision: every answer `decide` gives (memo on) equals
//! Cedar's on all policies (no memo, no slicing), on the snapshot in force, while questions
//! repeat, groups change under the same user, resources move between groups and the policy
//! directory is edited and reloaded between questions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::path::Path;

use cedar_policy::{Entity, RestrictedExpression};
use ipm_policy::cedar::{CedarQuery, CedarVerdict, decide, decide_with};
use ipm_policy::identity::Email;
use ipm_policy::routes::RouteMatch;
use ipm_policy::snapshot::{PolicySnapshot, entity_uid, read_dir};
use ipm_policy::store::PolicyStore;
use proptest::prelude::*;

/// A forbid the edits add and remove: it flips many of the questions below.
const EDIT: &str = r#"@id("edit") forbid (principal in Group::"photographers", action in [Action::"Read"], resource) when { context.method == "GET" };"#;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A store on a copy of the shipped policies (loaded without the settling pause: nothing
/// writes to it meanwhile).
fn store() -> (tempfile::TempDir, PolicyStore) {
    let dir = policy_dir();
    let snapshot = PolicySnapshot::load(dir.path()).unwrap();
    let store = PolicyStore::from_snapshot(dir.path(), snapshot);
    (dir, store)
}

fn policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ipm_testkit::copy_policies(dir.path());
    dir
}

/// One question: who (and in which groups), which request, and the resource's group.
#[derive(Debug, Clone)]
struct Ask {
    user: &'static str,
    groups: Vec<String>,
    method: &'static str,
    uri: &'static str,
    resource_group: Option<&'static str>,
}

#[derive(Debug, Clone)]
enum Step {
    Ask(Ask),
    /// Adds the forbid (or removes it), then reloads.
    Edit(bool),
}

fn ask() -> impl Strategy<Value = Ask> {
    (
        prop::sample::select(vec![
            "alice@example.com",
            "bob@example.com",
            "admin@example.com",
        ]),
        prop::collection::btree_set(
            prop::sample::select(vec!["admins", "photographers", "editors", "suspended"]),
            0..3,
        ),
        prop::sample::select(vec![
            ("GET", "/api/projects"),
            ("GET", "/api/projects/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            (
                "PATCH",
                "/api/projects/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            ),
            ("GET", "/api/images/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"),
        ]),
        prop::option::of(prop::sample::select(vec!["photographers", "editors"])),
    )
        .prop_map(|(user, groups, (method, uri), resource_group)| Ask {
            user,
            groups: groups.into_iter().map(str::to_string).collect(),
            method,
            uri,
            resource_group,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![6 => ask().prop_map(Step::Ask), 1 => any::<bool>().prop_map(Step::Edit)]
}

/// The question `user` in `groups` asks with `method` on `route`, about `entities`.
fn query<'a>(
    user: &'a Email,
    groups: &'a [String],
    method: &'a str,
    route: &'a RouteMatch,
    entities: &'a [Entity],
) -> CedarQuery<'a> {
    CedarQuery {
        user,
        groups,
        route,
        method,
        path: &route.path,
        client_ip: None,
        resource_entities: entities,
    }
}

/// The answer with the memo, and Cedar's on every policy without it.
fn both(snapshot: &PolicySnapshot, a: &Ask) -> (CedarVerdict, CedarVerdict) {
    let user: Email = a.user.parse().unwrap();
    let route = snapshot.routes.matches(a.method, a.uri).unwrap();
    let mut entities = Vec::new();
    if let Some(g) = a.resource_group {
        let group = entity_uid("Group", g).unwrap();
        let attrs = HashMap::from([(
            "group".to_string(),
            RestrictedExpression::new_entity_uid(group.clone()),
        )]);
        let uid = entity_uid(&route.resource_type, &route.resource_id).unwrap();
        entities.push(Entity::new(uid, attrs, HashSet::from([group])).unwrap());
    }
    let q = query(&user, &a.groups, a.method, &route, &entities);
    (
        decide(snapshot, &q).unwrap(),
        decide_with(snapshot, &q, false).unwrap(),
    )
}

fn edit(store: &PolicyStore, dir: &Path, on: bool) {
    let file = dir.join("edit.cedar");
    if on {
        std::fs::write(&file, EDIT).unwrap();
    } else if file.exists() {
        std::fs::remove_file(&file).unwrap();
    }
    // The files are written whole before the reload: no pause to let a writer finish.
    let _ = store.reload_with(read_dir, || {});
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn the_memo_never_changes_a_decision(steps in prop::collection::vec(step(), 1..40)) {
        let (dir, store) = store();
        for s in &steps {
            match s {
                Step::Edit(on) => edit(&store, dir.path(), *on),
                Step::Ask(a) => {
                    let snapshot = store.snapshot_arc();
                    // Asked twice: the second answer comes from the memo.
                    for _ in 0..2 {
                        let (memo, full) = both(&snapshot, a);
                        prop_assert_eq!(memo.allowed, full.allowed, "{:?}", a);
                        prop_assert_eq!(&memo.policies, &full.policies);
                        prop_assert_eq!(memo.errors.len(), full.errors.len());
                    }
                }
            }
        }
    }
}

/// The cases the property relies on, pinned: a repeated question is answered from the memo;
/// the same question after an edit, after a group change or about a resource that moved gets
/// the new answer.
#[test]
fn an_edit_a_group_change_or_a_moved_resource_is_never_answered_from_the_memo() {
    let (dir, store) = store();
    let mut bob = Ask {
        user: "bob@example.com",
        groups: vec!["photographers".into()],
        method: "GET",
        uri: "/api/projects/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        resource_group: Some("photographers"),
    };
    let allowed = |store: &PolicyStore, a: &Ask| both(&store.snapshot_arc(), a).0.allowed;
    assert!(allowed(&store, &bob));
    assert!(allowed(&store, &bob));
    assert_eq!(
        store.snapshot().memo.counts(),
        (1, 1),
        "the repeat is a hit"
    );

    edit(&store, dir.path(), true);
    assert!(!allowed(&store, &bob), "the edit is in force at once");
    edit(&store, dir.path(), false);
    assert!(allowed(&store, &bob), "and so is its removal");

    bob.groups = vec!["editors".into()];
    assert!(!allowed(&store, &bob), "bob left photographers");
    bob.groups = vec!["editors".into(), "photographers".into()];
    bob.resource_group = Some("editors");
    assert!(allowed(&store, &bob));
    bob.groups = vec!["photographers".into()];
    assert!(!allowed(&store, &bob), "the project moved to editors");
}

#[test]
fn the_memo_is_bounded() {
    let memo = ipm_policy::memo::DecisionMemo::with_capacity(8);
    let dir = policy_dir();
    let snapshot = PolicySnapshot::load(dir.path()).unwrap();
    let user: Email = "alice@example.com".parse().unwrap();
    let groups = vec!["photographers".to_string()];
    for n in 0..100 {
        let uri = format!("/api/projects/0190a1b2-c3d4-7e5f-8a9b-{n:012}");
        let route = snapshot.routes.matches("GET", &uri).unwrap();
        let q = query(&user, &groups, "GET", &route, &[]);
        let _ = memo.get_or_decide(&q, || decide_with(&snapshot, &q, true));
    }
    assert_eq!(memo.len(), 8);
    assert_eq!(memo.counts(), (0, 100));
}

#[test]
fn a_large_answer_is_decided_and_not_kept() {
    let memo = ipm_policy::memo::DecisionMemo::with_capacity(8);
    let dir = policy_dir();
    let snapshot = PolicySnapshot::load(dir.path()).unwrap();
    let user: Email = "alice@example.com".parse().unwrap();
    let route = snapshot.routes.matches("GET", "/api/projects").unwrap();
    let q = query(&user, &[], "GET", &route, &[]);
    let large = || {
        Ok(CedarVerdict {
            allowed: true,
            policies: (0..200).map(|n| format!("policy-number-{n}")).collect(),
            errors: Vec::new(),
        })
    };
    for _ in 0..3 {
        assert!(memo.get_or_decide(&q, large).unwrap().allowed);
    }
    assert_eq!(memo.counts(), (0, 3), "asked each time");
    assert!(memo.is_empty());
}
