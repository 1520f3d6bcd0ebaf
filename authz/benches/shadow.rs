//! The cost of shadow mode: one decision with and without a candidate set decided beside it,
//! in the same run, so the figures read as a ratio.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use ipm_policy::request::{AuthzRequest, HeaderField};

use authz::shadow::Shadow;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use ipm_policy::groups::FileGroups;
use ipm_policy::secret::{Secret, SecretSet};
use ipm_policy::store::PolicyStore;
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::metrics::Metrics;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn copy_shipped(dest: &Path) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    for entry in std::fs::read_dir(&shipped)
        .unwrap_or_else(|e| unreachable!("{e}"))
        .flatten()
    {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name()))
                .unwrap_or_else(|e| unreachable!("{e}"));
        }
    }
}

fn enforcer(live: &Path, shadow: Option<&Path>) -> Enforcer {
    let mut metrics = Metrics::new();
    let shadow = shadow.map(|dir| Arc::new(Shadow::new(dir, metrics.registry_mut())));
    let store = Arc::new(PolicyStore::load(live).unwrap_or_else(|e| unreachable!("{e}")));
    let groups = Arc::new(
        FileGroups::load(&live.join("groups.toml")).unwrap_or_else(|e| unreachable!("{e}")),
    );
    let e = Enforcer::new(
        store,
        groups,
        Some(SecretSet::new(&Secret::new(SECRET), None)),
        Arc::new(metrics),
    );
    match shadow {
        Some(s) => {
            assert!(s.snapshot().is_some(), "the shadow set loads");
            e.with_observer(s)
        }
        None => e,
    }
}

fn bench(c: &mut Criterion) {
    let live = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
    copy_shipped(live.path());
    let same = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
    copy_shipped(same.path());
    let other = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
    copy_shipped(other.path());
    std::fs::write(
        other.path().join("viewers.cedar"),
        "@id(\"viewers\")\npermit (principal in Group::\"viewers\", action in Action::\"Read\", resource);\n",
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    let changed = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
    copy_shipped(changed.path());
    std::fs::write(
        changed.path().join("no-listing.cedar"),
        "@id(\"no-listing\")\nforbid (principal in Group::\"photographers\", action == Action::\"ListProjects\", resource);\n",
    )
    .unwrap_or_else(|e| unreachable!("{e}"));

    let req = AuthzRequest {
        method: HeaderField::One(b"GET"),
        uri: HeaderField::One(b"/api/projects?limit=20"),
        user: HeaderField::One(b"bob@example.com"),
        secret: HeaderField::One(SECRET.as_bytes()),
        client_ip: Some([10, 0, 0, 1].into()),
    };
    let mut g = c.benchmark_group("shadow");
    for (name, e) in [
        ("live_only", enforcer(live.path(), None)),
        (
            "with_shadow_same_files",
            enforcer(live.path(), Some(same.path())),
        ),
        (
            "with_shadow_agreeing",
            enforcer(live.path(), Some(other.path())),
        ),
        (
            "with_shadow_disagreeing",
            enforcer(live.path(), Some(changed.path())),
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(e.authorize(black_box(&req), "bench").now_or_never()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
