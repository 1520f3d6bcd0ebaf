//! A decision reads exactly one policy snapshot: a reload that lands between `prepare` and
//! `conclude` (here, while groups are being looked up) does not mix two policy sets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipm_policy::groups::{GroupFuture, GroupSource, Groups};
use ipm_policy::identity::Email;
use ipm_policy::request::{AuthzRequest, HeaderField};
use ipm_policy::secret::{Secret, SecretSet};
use ipm_policy::store::{PolicyStore, ReloadOutcome};
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::metrics::Metrics;

const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-0123";

fn shipped_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// Answers every user with `photographers`, and reloads the store with a forbid-all set
/// first: the reload lands in the middle of the decision.
struct ReloadingGroups {
    store: Arc<PolicyStore>,
    dir: PathBuf,
    done: AtomicBool,
}

impl GroupSource for ReloadingGroups {
    fn groups<'a>(&'a self, _user: &'a Email) -> GroupFuture<'a> {
        Box::pin(async move {
            let groups: Groups = Arc::from(vec!["photographers".to_string()]);
            if self.done.swap(true, Ordering::SeqCst) {
                return Ok(groups);
            }
            let forbid = "@id(\"lockdown\")\nforbid (principal, action, resource);\n";
            std::fs::write(self.dir.join("lockdown.cedar"), forbid).unwrap();
            assert!(matches!(self.store.reload(), ReloadOutcome::Reloaded(_)));
            Ok(groups)
        })
    }

    fn kind(&self) -> &'static str {
        "reloading"
    }
}

#[tokio::test]
async fn a_reload_between_the_steps_does_not_mix_two_policy_sets() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("policies");
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(shipped_policies()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let store = Arc::new(PolicyStore::load(&dir).unwrap());
    let before = store.snapshot().hash.clone();
    let groups = Arc::new(ReloadingGroups {
        store: store.clone(),
        dir: dir.clone(),
        done: AtomicBool::new(false),
    });
    let secret = Secret::new(SECRET.to_vec());
    let enforcer = Enforcer::new(
        store.clone(),
        groups,
        Some(SecretSet::new(&secret, None)),
        Arc::new(Metrics::new()),
    );
    let req = AuthzRequest {
        method: HeaderField::One(b"GET"),
        uri: HeaderField::One(b"/api/projects"),
        user: HeaderField::One(b"alice@example.com"),
        secret: HeaderField::One(SECRET),
        client_ip: None,
    };

    let d = enforcer.authorize(&req, "test").await;
    let after = store.snapshot().hash.clone();
    assert_ne!(before, after, "the lookup reloaded the store");
    // Prepared and concluded on the snapshot in force when the request arrived.
    assert!(d.is_allowed(), "{d:?}");
    assert_eq!(d.snapshot().map(|s| s.hash.clone()), Some(before.clone()));
    assert!(!d.policies.iter().any(|p| p == "lockdown"));

    // The next request is decided on the new set, and only on it.
    let d = enforcer.authorize(&req, "test").await;
    assert!(!d.is_allowed());
    assert_eq!(d.policies, ["lockdown"]);
    assert_eq!(d.snapshot().map(|s| s.hash.clone()), Some(after));
}
