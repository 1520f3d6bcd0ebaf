//! Property: no request without the right secret is ever allowed, whatever else it carries.

use std::sync::Arc;

use authz::enforcer::{AuthzRequest, Enforcer, HeaderField};
use authz::groups::FileGroups;
use authz::metrics::Metrics;
use authz::secret::{Secret, SecretSet};
use authz::store::PolicyStore;
use proptest::prelude::*;

use crate::support::{SECRET, shipped_policies};

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
