//! The decision path (headers → groups → Cedar) with 100 policies, beside its parts,
//! so the figures read as ratios within one run.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use ipm_policy::cedar::{CedarQuery, decide};
use ipm_policy::groups::FileGroups;
use ipm_policy::identity::Email;
use ipm_policy::request::{AuthzRequest, HeaderField, authenticate};
use ipm_policy::secret::{Secret, SecretSet};
use ipm_policy::snapshot::PolicySnapshot;
use ipm_policy::store::PolicyStore;
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::metrics::Metrics;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

/// The shipped policies plus generated ones, 100 in all, in a temporary directory.
fn policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut count = 0;
    for entry in std::fs::read_dir(&shipped)
        .unwrap_or_else(|e| unreachable!("{e}"))
        .flatten()
    {
        let name = entry.file_name();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), dir.path().join(&name))
                .unwrap_or_else(|e| unreachable!("{e}"));
            if name.to_string_lossy().ends_with(".cedar") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                count += text.matches("@id(").count();
            }
        }
    }
    let mut generated = String::new();
    for i in count..100 {
        if i % 4 == 0 {
            generated.push_str(&format!(
                "@id(\"gen-{i}\")\nforbid (principal in Group::\"blocked-{i}\", action, resource);\n"
            ));
        } else {
            generated.push_str(&format!(
                "@id(\"gen-{i}\")\npermit (principal in Group::\"team-{i}\", action in [Action::\"Read\"], resource) when {{ resource has group && principal in resource.group && context.method == \"GET\" }};\n"
            ));
        }
    }
    std::fs::write(dir.path().join("generated.cedar"), generated)
        .unwrap_or_else(|e| unreachable!("{e}"));
    dir
}

fn bench(c: &mut Criterion) {
    let dir = policy_dir();
    let store = Arc::new(PolicyStore::load(dir.path()).unwrap_or_else(|e| unreachable!("{e}")));
    assert_eq!(store.snapshot().policy_count(), 100);
    let groups = Arc::new(
        FileGroups::load(&dir.path().join("groups.toml")).unwrap_or_else(|e| unreachable!("{e}")),
    );
    let secrets = SecretSet::new(&Secret::new(SECRET), None);
    let enforcer = Enforcer::new(
        store.clone(),
        groups,
        Some(secrets.clone()),
        Arc::new(Metrics::new()),
    );
    let req = AuthzRequest {
        method: HeaderField::One(b"GET"),
        uri: HeaderField::One(b"/api/projects?limit=20"),
        user: HeaderField::One(b"bob@example.com"),
        secret: HeaderField::One(SECRET.as_bytes()),
        client_ip: Some([10, 0, 0, 1].into()),
    };

    let mut g = c.benchmark_group("decision");
    g.bench_function("full_100_policies", |b| {
        b.iter(|| {
            let d = enforcer.authorize(black_box(&req), "bench").now_or_never();
            black_box(d)
        })
    });
    g.bench_function("authenticate_only", |b| {
        b.iter(|| black_box(authenticate(Some(&secrets), black_box(&req))))
    });
    let snapshot: Arc<PolicySnapshot> = store.snapshot().clone();
    let user: Email = "bob@example.com"
        .parse()
        .unwrap_or_else(|e| unreachable!("{e}"));
    let route = snapshot
        .routes
        .matches("GET", "/api/projects")
        .unwrap_or_else(|| unreachable!());
    let user_groups = vec!["editors".to_string(), "photographers".to_string()];
    g.bench_function("cedar_only_100_policies", |b| {
        b.iter(|| {
            let q = CedarQuery {
                user: &user,
                groups: &user_groups,
                route: &route,
                method: "GET",
                path: "/api/projects",
                client_ip: None,
                resource_entities: &[],
            };
            black_box(decide(&snapshot, black_box(&q)))
        })
    });
    g.bench_function("route_match_only", |b| {
        b.iter(|| {
            black_box(
                snapshot
                    .routes
                    .matches("GET", black_box("/api/projects/123/images")),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
