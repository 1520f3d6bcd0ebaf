//! Property: no request without the right secret is ever allowed, whatever else it carries.

use std::sync::Arc;

use ipm_policy::request::{AuthzRequest, HeaderField};

use ipm_policy::groups::FileGroups;
use ipm_policy::secret::{Secret, SecretSet};
use ipm_policy::store::PolicyStore;
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::metrics::Metrics;
use ipm_testkit::shipped_policies;
use proptest::prelude::*;

use crate::support::SECRET;

fn enforcer() -> &'static Enforcer {
    static ENFORCER: std::sync::OnceLock<Enforcer> = std::sync::OnceLock::new();
    ENFORCER.get_or_init(load)
}

fn load() -> Enforcer {
    let dir = shipped_policies();
    let store = Arc::new(PolicyStore::load(&dir).unwrap());
    let groups = Arc::new(FileGroups::load(&dir.join("groups.toml")).unwrap());
    Enforcer::new(
        store,
        groups,
        Some(SecretSet::new(&Secret::new(SECRET), None)),
        Arc::new(Metrics::new()),
    )
}

fn header() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(b"admin@example.com".to_vec())),
        Just(Some(b"alice@example.com".to_vec())),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Some),
    ]
}

fn field(v: &Option<Vec<u8>>) -> HeaderField<'_> {
    v.as_deref().map_or(HeaderField::Missing, HeaderField::One)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_request_without_the_right_secret_is_allowed(
        secret in prop_oneof![
            Just(None),
            proptest::collection::vec(any::<u8>(), 0..80).prop_map(Some),
            // Near misses: the secret with one byte changed, cut or extended.
            (0..SECRET.len(), any::<u8>()).prop_map(|(i, b)| {
                let mut s = SECRET.as_bytes().to_vec();
                if s[i] == b { s.remove(i); } else { s[i] = b; }
                Some(s)
            }),
            any::<u8>().prop_map(|b| { let mut s = SECRET.as_bytes().to_vec(); s.push(b); Some(s) }),
        ],
        user in header(),
        method in prop_oneof![Just(Some(b"GET".to_vec())), Just(Some(b"DELETE".to_vec())), header()],
        uri in prop_oneof![Just(Some(b"/api/projects".to_vec())), Just(Some(b"/api/projects/p1".to_vec())), header()],
        duplicated in any::<bool>(),
    ) {
        prop_assume!(secret.as_deref() != Some(SECRET.as_bytes()));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let enforcer = enforcer();
        let req = AuthzRequest {
            method: field(&method),
            uri: field(&uri),
            user: field(&user),
            secret: if duplicated { HeaderField::Many } else { field(&secret) },
            client_ip: None,
        };
        let d = runtime.block_on(enforcer.authorize(&req, "test"));
        prop_assert!(!d.is_allowed());
        prop_assert_eq!(d.status(), 401);
    }

    #[test]
    fn with_the_secret_only_policies_allow(
        user in header(),
        uri in header(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let enforcer = enforcer();
        let req = AuthzRequest {
            method: HeaderField::One(b"GET"),
            uri: field(&uri),
            user: field(&user),
            secret: HeaderField::One(SECRET.as_bytes()),
            client_ip: None,
        };
        let d = runtime.block_on(enforcer.authorize(&req, "test"));
        if d.is_allowed() {
            // Only the admin, on a known route, or a member on the collection routes.
            let who = d.user.as_ref().map(|u| u.to_string()).unwrap_or_default();
            prop_assert!(who == "admin@example.com" || d.route.as_ref().is_some_and(|r| r.resource_type == "Application"));
        } else {
            prop_assert!([401, 403].contains(&d.status()));
        }
    }
}

/// The shipped policies plus policies exercising every scope form slicing looks at.
fn slicing_snapshot() -> &'static ipm_policy::snapshot::PolicySnapshot {
    static SNAPSHOT: std::sync::OnceLock<ipm_policy::snapshot::PolicySnapshot> =
        std::sync::OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        ipm_testkit::copy_policies(dir.path());
        std::fs::write(
            dir.path().join("scopes.cedar"),
            r#"
@id("eq-user") permit (principal == User::"carol@example.com", action == Action::"DeleteProject", resource);
@id("is-in") permit (principal is User in Group::"editors", action in [Action::"Write"], resource) when { context.method == "PATCH" };
@id("is") forbid (principal is User, action == Action::"DeleteImage", resource) unless { principal in Group::"admins" };
@id("any-action") permit (principal in Group::"team-1", action, resource is Project);
@id("errs") permit (principal, action in [Action::"Read"], resource) when { resource.group == Group::"editors" };
@id("in-list") forbid (principal in Group::"blocked", action in [Action::"ListProjects", Action::"Write"], resource);
"#,
        )
        .unwrap();
        ipm_policy::snapshot::PolicySnapshot::load(dir.path()).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn slicing_never_changes_a_decision(
        user in prop::sample::select(vec!["alice@example.com", "bob@example.com", "carol@example.com", "admin@example.com", "x@example.org"]),
        groups in proptest::collection::btree_set(prop::sample::select(vec!["admins", "photographers", "editors", "suspended", "team-1", "blocked"]), 0..4),
        route in prop::sample::select(vec![
            ("GET", "/api/projects"), ("POST", "/api/projects"), ("GET", "/api/projects/p1"),
            ("PATCH", "/api/projects/p1"), ("DELETE", "/api/projects/p1"), ("POST", "/api/projects/p1/images"),
            ("GET", "/api/images/i1"), ("DELETE", "/api/images/i1"), ("GET", "/api/openapi.json"),
        ]),
        resource_group in prop::option::of(prop::sample::select(vec!["photographers", "editors", "team-1"])),
    ) {
        use ipm_policy::cedar::{CedarQuery, decide_with};
        let snapshot = slicing_snapshot();
        let user: ipm_policy::identity::Email = user.parse().unwrap();
        let groups: Vec<String> = groups.into_iter().map(str::to_string).collect();
        let m = snapshot.routes.matches(route.0, route.1).unwrap();
        // Give the resource its group when the test picked one, as a resolver would.
        let mut resource_entities = Vec::new();
        if let Some(g) = resource_group {
            let group = ipm_policy::snapshot::entity_uid("Group", g).unwrap();
            let uid = ipm_policy::snapshot::entity_uid(&m.resource_type, &m.resource_id).unwrap();
            let mut attrs = std::collections::HashMap::from([(
                "group".to_string(),
                cedar_policy::RestrictedExpression::new_entity_uid(group.clone()),
            )]);
            if m.resource_type == "Image" {
                attrs.insert("project".into(), cedar_policy::RestrictedExpression::new_entity_uid(
                    ipm_policy::snapshot::entity_uid("Project", "p1").unwrap()));
            }
            if m.resource_type != "Application" {
                resource_entities.push(cedar_policy::Entity::new(uid, attrs, std::collections::HashSet::from([group])).unwrap());
            }
        }
        let q = CedarQuery {
            user: &user,
            groups: &groups,
            route: &m,
            method: route.0,
            path: route.1,
            client_ip: None,
            resource_entities: &resource_entities,
        };
        let sliced = decide_with(snapshot, &q, true).unwrap();
        let full = decide_with(snapshot, &q, false).unwrap();
        prop_assert_eq!(sliced.allowed, full.allowed);
        prop_assert_eq!(sliced.policies, full.policies);
        prop_assert_eq!(sliced.errors.len(), full.errors.len());
    }
}
