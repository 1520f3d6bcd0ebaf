//! A reload re-reads only the files that changed, and gets what a first load of the same
//! directory gets: the same policies, problems and warnings, whatever changed (a policy file,
//! the schema a kept file is validated against, a file removed or renamed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use ipm_policy::snapshot::{PolicySnapshot, read_dir};
use ipm_policy::store::{PolicyStore, ReloadOutcome};

fn policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ipm_testkit::copy_policies(dir.path());
    dir
}

fn reload(store: &PolicyStore) -> ReloadOutcome {
    store.reload_with(read_dir, || {})
}

/// What a first load of the directory says: the policy ids and warnings, or the problems.
fn first_load(dir: &Path) -> Result<(Vec<String>, Vec<String>), Vec<String>> {
    match PolicySnapshot::load(dir) {
        Ok(s) => Ok(summary(&s)),
        Err(e) => Err(e.problems.iter().map(|p| p.rendered.clone()).collect()),
    }
}

fn summary(s: &PolicySnapshot) -> (Vec<String>, Vec<String>) {
    let mut ids: Vec<String> = s.policies.policies().map(|p| p.id().to_string()).collect();
    ids.sort();
    let mut warnings: Vec<String> = s.warnings.iter().map(|w| w.rendered.clone()).collect();
    warnings.sort();
    (ids, warnings)
}

/// The store's answer after a reload: its snapshot's summary, or the pending problems.
fn after_reload(store: &PolicyStore) -> Result<(Vec<String>, Vec<String>), Vec<String>> {
    reload(store);
    match store.pending_error() {
        Some(p) => Err(p
            .error
            .problems
            .iter()
            .map(|p| p.rendered.clone())
            .collect()),
        None => Ok(summary(&store.snapshot())),
    }
}

fn sorted(
    r: Result<(Vec<String>, Vec<String>), Vec<String>>,
) -> Result<(Vec<String>, Vec<String>), Vec<String>> {
    r.map_err(|mut p| {
        p.sort();
        p
    })
}

#[test]
fn every_edit_reloads_as_a_first_load_would() {
    let dir = policy_dir();
    let d = dir.path();
    let store = PolicyStore::load(d).unwrap();
    let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    let schema = std::fs::read_to_string(d.join("schema.cedarschema")).unwrap();
    let edits: Vec<Box<dyn Fn()>> = vec![
        // A new file, then a change to it.
        Box::new(|| {
            write(
                "extra.cedar",
                r#"@id("x1") permit (principal in Group::"editors", action == Action::"ReadProject", resource);"#,
            )
        }),
        Box::new(|| {
            write(
                "extra.cedar",
                r#"@id("x1") forbid (principal in Group::"editors", action == Action::"ReadProject", resource);"#,
            )
        }),
        // A policy the schema refuses, then fixed.
        Box::new(|| {
            write(
                "extra.cedar",
                r#"@id("x1") permit (principal, action == Action::"ReadProject", resource) when { resource.nope == 1 };"#,
            )
        }),
        Box::new(|| {
            write(
                "extra.cedar",
                r#"@id("x1") permit (principal, action == Action::"ReadProject", resource) when { resource has group };"#,
            )
        }),
        // The schema changes under a file that did not: the file is validated again (the
        // action it names is gone), then the schema comes back.
        Box::new(|| {
            write(
                "schema.cedarschema",
                &schema.replace("action ReadProject,", "action "),
            )
        }),
        Box::new(|| write("schema.cedarschema", &schema)),
        // The same id in two files, then one removed.
        Box::new(|| {
            write(
                "extra2.cedar",
                r#"@id("x1") permit (principal, action == Action::"ReadProject", resource) when { false };"#,
            )
        }),
        Box::new(|| std::fs::remove_file(d.join("extra2.cedar")).unwrap()),
        // A file renamed: its unannotated policies are known by the file's name.
        Box::new(|| {
            write(
                "plain.cedar",
                r#"permit (principal in Group::"admins", action == Action::"ReadProject", resource);"#,
            )
        }),
        Box::new(|| std::fs::rename(d.join("plain.cedar"), d.join("plain2.cedar")).unwrap()),
        // Syntax errors, then fixed.
        Box::new(|| write("extra.cedar", "permit (principal,")),
        Box::new(|| std::fs::remove_file(d.join("extra.cedar")).unwrap()),
    ];
    let mut failed = 0;
    for (i, edit) in edits.iter().enumerate() {
        edit();
        let want = sorted(first_load(d));
        failed += usize::from(want.is_err());
        assert_eq!(sorted(after_reload(&store)), want, "after edit {i}");
    }
    assert_eq!(
        failed, 4,
        "the refused edits: the schema's verdict, the removed action, the repeated id, the syntax error"
    );
    let ids = summary(&store.snapshot()).0;
    assert!(ids.contains(&"plain2.cedar#0".to_string()), "{ids:?}");
}
