//! The policy author's tools through the real binary: `check`, `explain`, `test` (and the
//! shipped suite), `diff`, `fmt`, shadow mode, reload reports and the README's worked example.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authz::tools::test::{load_cases, resolve};
use ipm_policy::snapshot::PolicySnapshot;
use ipm_runtime::metrics::Metrics;
use ipm_runtime::reload::{Reload, Reloader};
use ipm_testkit::{Running, copy_policies, eventually, shipped_policies};

use crate::support::{SECRET, spawn_with};

const DEADLINE: Duration = Duration::from_secs(10);

/// The binary with a clean environment, run in `cwd` so reports show relative paths.
fn authz(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authz"));
    cmd.current_dir(cwd)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    let out = authz(cwd, args).output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A folder holding `policies/`: the shipped files and their tests.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_into(&dir.path().join("policies"));
    dir
}

fn copy_into(dest: &Path) {
    copy_policies(dest);
    let tests = dest.join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    for entry in std::fs::read_dir(shipped_policies().join("tests")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tests.join(entry.file_name())).unwrap();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Replaces the policy hashes of a report, which change whenever a shipped file does.
fn without_hashes(text: &str, dirs: &[&Path]) -> String {
    let mut out = text.to_string();
    for dir in dirs {
        let hash = PolicySnapshot::load(dir).unwrap().hash;
        out = out.replace(&hash, "[hash]").replace(&hash[..12], "[hash]");
    }
    out
}

// === check ===

fn check_error(file: &str, text: &str) -> String {
    let dir = workdir();
    write(&dir.path().join("policies").join(file), text);
    let out = run(dir.path(), &["check", "policies"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "errors go to stderr: {}", out.stdout);
    out.stderr
}

#[test]
fn check_shows_a_syntax_error_with_its_place_and_source_line() {
    let text = check_error(
        "broken.cedar",
        "@id(\"broken\")\npermit (principal, action, resource)\nwhen { principal.email == };\n",
    );
    assert!(text.contains("policies/broken.cedar:3:27"), "{text}");
    insta::assert_snapshot!("check_syntax_error", text);
}

#[test]
fn check_shows_a_type_error_against_the_schema_with_cedars_help() {
    let text = check_error(
        "typed.cedar",
        "@id(\"typed\")\npermit (principal, action == Action::\"ReadProject\", resource)\nwhen { principal.email == 3 };\n",
    );
    assert!(text.contains("help:"), "{text}");
    insta::assert_snapshot!("check_type_error", text);
}

#[test]
fn check_names_the_closest_action_for_an_unknown_one() {
    let text = check_error(
        "typo.cedar",
        "@id(\"typo\")\npermit (principal, action == Action::\"ReadProjcet\", resource);\n",
    );
    assert!(
        text.contains("did you mean `Action::\"ReadProject\"`"),
        "{text}"
    );
    insta::assert_snapshot!("check_unknown_action", text);

    let dir = workdir();
    let routes = dir.path().join("policies/routes.toml");
    let fixed = std::fs::read_to_string(&routes).unwrap();
    std::fs::write(
        &routes,
        fixed.replace("action = \"ReadApiDocs\"", "action = \"ReadApiDoc\""),
    )
    .unwrap();
    let out = run(dir.path(), &["check", "policies"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("policies/routes.toml:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `ReadApiDocs`?"),
        "{}",
        out.stderr
    );
    insta::assert_snapshot!("check_unknown_action_in_routes", out.stderr);
}

#[test]
fn check_refuses_a_duplicated_id_and_names_both_places() {
    let text = check_error(
        "copied.cedar",
        "// copied from admins.cedar and changed\n@id(\"admins-all\")\npermit (principal in Group::\"editors\", action == Action::\"ReadProject\", resource);\n",
    );
    assert!(text.contains("policies/copied.cedar:2:1"), "{text}");
    assert!(text.contains("admins.cedar:2"), "{text}");
    insta::assert_snapshot!("check_duplicate_id", text);
}

#[test]
fn check_reports_every_error_at_once() {
    let dir = workdir();
    let p = dir.path().join("policies");
    write(
        &p.join("a.cedar"),
        "permit (principal, action, resource) when { 1 + };\n",
    );
    write(
        &p.join("b.cedar"),
        "@id(\"b\") permit (principal, action == Action::\"Nope\", resource);\n",
    );
    write(
        &p.join("c.cedar"),
        "@id(\"admins-all\") forbid (principal, action, resource);\n",
    );
    let out = run(dir.path(), &["check", "policies"]);
    assert_eq!(out.code, 1);
    for place in [
        "policies/a.cedar:1:",
        "policies/b.cedar:1:",
        "policies/c.cedar:1:1",
    ] {
        assert!(
            out.stderr.contains(place),
            "{place} missing: {}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("error: 3 problem(s)"), "{}", out.stderr);
}

#[test]
fn check_warns_about_impossible_policies_and_routes_nothing_can_allow() {
    let dir = workdir();
    let p = dir.path().join("policies");
    for gone in ["admins.cedar", "members.cedar"] {
        std::fs::remove_file(p.join(gone)).unwrap();
    }
    write(
        &p.join("readers.cedar"),
        "@id(\"readers\")\npermit (principal, action in Action::\"Read\", resource);\n\n@id(\"never\")\npermit (principal, action == Action::\"ListProjects\", resource) when { false };\n",
    );
    let out = run(dir.path(), &["check", "policies"]);
    assert_eq!(out.code, 0, "warnings do not fail: {}", out.stderr);
    assert!(
        out.stdout.contains("policy is impossible"),
        "{}",
        out.stdout
    );
    let warned: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("no permit policy can apply"))
        .collect();
    // Read covers the reading routes; `never` is in scope of ListProjects, so not flagged.
    for action in [
        "CreateProject",
        "ReadApiDocs",
        "UpdateProject",
        "DeleteImage",
    ] {
        assert!(
            warned
                .iter()
                .any(|w| w.contains(&format!("Action::\"{action}\""))),
            "{action}: {warned:?}"
        );
    }
    for action in ["ReadProject", "ListImages", "ReadImage", "ListProjects"] {
        assert!(
            !warned
                .iter()
                .any(|w| w.contains(&format!("Action::\"{action}\""))),
            "{action}: {warned:?}"
        );
    }
}

#[test]
fn the_shipped_policies_check_clean_and_are_formatted() {
    let out = run(&shipped_policies(), &["check", "."]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains("warning"), "{}", out.stdout);
    let fmt = run(&shipped_policies(), &["fmt", "--check", "."]);
    assert_eq!(fmt.code, 0, "run `authz fmt policies`: {}", fmt.stdout);
}

// === test ===

#[test]
fn the_shipped_suite_passes_and_covers_every_route_for_every_role() {
    let out = run(&shipped_policies(), &["test", "."]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("test result: ok."), "{}", out.stdout);
    assert!(!out.stdout.contains("warning:"), "{}", out.stdout);

    let snapshot = PolicySnapshot::load(&shipped_policies()).unwrap();
    let roles = [
        "alice@example.com",
        "carol@example.com",
        "admin@example.com",
        "nobody@example.com",
        "mallory@example.com",
    ];
    let mut seen: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for case in load_cases(&shipped_policies().join("tests")).unwrap() {
        let r = resolve(&snapshot, &case.spec).unwrap();
        if let Some(route) = r.route.filter(|r| !r.pattern.is_empty()) {
            seen.entry((route.pattern, route.action))
                .or_default()
                .insert(r.user.to_string());
        }
    }
    for route in snapshot.routes.routes() {
        let key = (route.spec.path.clone(), route.spec.action.clone());
        let users = seen.get(&key).cloned().unwrap_or_default();
        for role in roles {
            assert!(users.contains(role), "{key:?} has no case for {role}");
        }
    }
}

#[test]
fn a_failing_case_shows_the_decision_the_deciding_policies_and_errors() {
    let dir = workdir();
    let p = dir.path().join("policies");
    // A careless policy: `resource.group` of a project nobody knows fails to evaluate.
    write(
        &p.join("careless.cedar"),
        "@id(\"careless-read\")\npermit (principal, action == Action::\"ReadProject\", resource)\nwhen { principal in resource.group };\n",
    );
    write(
        &p.join("cases/failing.toml"),
        r#"
[[case]]
name = "a member reads a project of their group"
user = "alice@example.com"
groups = ["photographers"]
method = "GET"
path = "/api/projects/p1"
resource_group = "photographers"
expect = "allow"
decided_by = "members-read-write-own-group"

[[case]]
name = "wrong: a member of another group reads it"
user = "carol@example.com"
groups = ["editors"]
method = "GET"
path = "/api/projects/p1"
resource_group = "photographers"
expect = "allow"

[[case]]
name = "wrong: careless-read is not what decides"
user = "admin@example.com"
groups = ["admins"]
method = "GET"
path = "/api/projects/missing"
expect = "allow"
decided_by = ["admins-all", "careless-read"]

[[case]]
name = "wrong: a misspelt id"
user = "alice@example.com"
groups = ["photographers"]
method = "GET"
path = "/api/projects"
expect = "allow"
decided_by = "members-use-apps"

[[case]]
user = "not-an-email"
method = "GET"
path = "/api/projects"
expect = "deny"
"#,
    );
    let out = run(
        dir.path(),
        &["test", "policies", "--tests", "policies/cases"],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("4 failed"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("error:    error while evaluating policy `careless-read`"),
        "{}",
        out.stdout
    );
    insta::assert_snapshot!(
        "test_failures",
        without_hashes(&out.stdout, &[&dir.path().join("policies")])
    );
}

#[test]
fn a_test_file_with_an_unknown_key_is_refused_with_its_place() {
    let dir = workdir();
    write(
        &dir.path().join("policies/tests/typo.toml"),
        "[[case]]\nuser = \"alice@example.com\"\nmethod = \"GET\"\npath = \"/api/projects\"\nexpected = \"allow\"\n",
    );
    let out = run(dir.path(), &["test", "policies"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("policies/tests/typo.toml:5:1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unknown field `expected`"),
        "{}",
        out.stderr
    );
}

#[test]
fn test_watch_runs_again_after_a_save() {
    let dir = workdir();
    let mut watching = Running::start(authz(dir.path(), &["test", "policies", "--watch"]));
    watching.wait_for("test result: ok.");
    watching.wait_for("watching");
    let tmp = dir.path().join("policies/tests/.new.toml.tmp");
    std::fs::write(
        &tmp,
        "[[case]]\nuser = \"newcomer@example.com\"\nmethod = \"GET\"\npath = \"/api/projects\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    std::fs::rename(&tmp, dir.path().join("policies/tests/new.toml")).unwrap();
    let line = watching.wait_for("test result:");
    assert!(line.contains("FAILED. "), "{line}");
    // A policy save counts too: let the newcomer list projects, and the new case passes.
    write(
        &dir.path().join("policies/newcomer.cedar"),
        "@id(\"newcomer\") permit (principal == User::\"newcomer@example.com\", action == Action::\"ListProjects\", resource);\n",
    );
    let line = watching.wait_for("test result:");
    assert!(line.contains("ok. "), "{line}");
}

// === explain ===

#[test]
fn explain_says_why_nothing_matched_and_which_policies_errored() {
    let dir = workdir();
    write(
        &dir.path().join("policies/careless.cedar"),
        "@id(\"careless-read\")\npermit (principal, action == Action::\"ReadProject\", resource)\nwhen { principal in resource.group };\n",
    );
    let out = run(
        dir.path(),
        &[
            "explain",
            "--policy-dir",
            "policies",
            "--user",
            "carol@example.com",
            "--groups",
            "editors",
            "--method",
            "GET",
            "--path",
            "/api/projects/p1",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("policies: none matched (default deny)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("admins-all (admins.cedar): the user is outside its principal scope"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("errored:  careless-read (careless.cedar)"),
        "{}",
        out.stdout
    );
    insta::assert_snapshot!("explain_default_deny", out.stdout);

    let with_group = run(
        dir.path(),
        &[
            "explain",
            "--policy-dir",
            "policies",
            "--user",
            "carol@example.com",
            "--groups",
            "editors",
            "--method",
            "GET",
            "--path",
            "/api/projects/p1",
            "--resource-group",
            "photographers",
        ],
    );
    assert!(
        with_group.stdout.contains(
            "members-read-write-own-group (members.cedar): the request is in its scope, but its `when`/`unless` conditions do not hold"
        ),
        "{}",
        with_group.stdout
    );
    assert!(
        !with_group.stdout.contains("errored"),
        "{}",
        with_group.stdout
    );

    let forbidden = run(
        dir.path(),
        &[
            "explain",
            "--policy-dir",
            "policies",
            "--groups-file",
            "policies/groups.toml",
            "--user",
            "mallory@example.com",
            "--action",
            "CreateProjectInGroup",
            "--resource",
            "Group::\"photographers\"",
        ],
    );
    assert!(
        forbidden
            .stdout
            .contains("policy:   suspended-forbid-all (guards.cedar, forbid)"),
        "{}",
        forbidden.stdout
    );
    assert!(
        forbidden
            .stdout
            .contains("groups:   photographers, suspended"),
        "groups come from the groups file: {}",
        forbidden.stdout
    );
}

// === diff ===

const NO_LISTING: &str = "@id(\"photographers-may-not-list\")\nforbid (principal in Group::\"photographers\", action == Action::\"ListProjects\", resource);\n";

#[test]
fn diff_prints_the_decisions_that_change_over_the_cases() {
    let dir = workdir();
    copy_into(&dir.path().join("candidate"));
    write(&dir.path().join("candidate/no-listing.cedar"), NO_LISTING);
    write(
        &dir.path().join("cases.toml"),
        r#"
[[case]]
name = "a photographer lists projects"
user = "alice@example.com"
groups = ["photographers"]
method = "GET"
path = "/api/projects"

[[case]]
name = "an editor lists projects"
user = "carol@example.com"
groups = ["editors"]
method = "GET"
path = "/api/projects"

[[case]]
user = "bob@example.com"
groups = ["editors", "photographers"]
method = "GET"
path = "/api/projects?page=2"
"#,
    );
    let out = run(
        dir.path(),
        &["diff", "policies", "candidate", "--cases", "cases.toml"],
    );
    assert_eq!(out.code, 1, "changes exit 1: {}{}", out.stdout, out.stderr);
    insta::assert_snapshot!(
        "diff_cases",
        without_hashes(
            &out.stdout,
            &[&dir.path().join("policies"), &dir.path().join("candidate")]
        )
    );
    // Without --cases, the candidate's own test files: the shipped suite.
    let suite = run(dir.path(), &["diff", "policies", "candidate"]);
    assert_eq!(suite.code, 1, "{}{}", suite.stdout, suite.stderr);
    assert!(
        suite.stdout.contains("application.toml:"),
        "{}",
        suite.stdout
    );
    let same = run(dir.path(), &["diff", "policies", "policies"]);
    assert_eq!(same.code, 0, "{}", same.stdout);
    assert!(
        same.stdout.contains("no decision changes"),
        "{}",
        same.stdout
    );
}

#[tokio::test]
async fn diff_replays_a_recorded_decision_log() {
    let dir = workdir();
    let log = dir.path().join("logs/app.json");
    let mut server = Running::start({
        let mut cmd = authz(dir.path(), &["serve"]);
        cmd.env("PROXY_SHARED_SECRET", SECRET)
            .env("AUTHZ_LISTEN", "127.0.0.1:0")
            .env("AUTHZ_GRPC_LISTEN", "off")
            .env("LOG_FILE", &log);
        cmd
    });
    let line = server.wait_for("authz listening");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = v["listen"].as_str().unwrap().to_string();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (user, path, times) in [
        ("alice@example.com", "/api/projects", 3),
        ("bob@example.com", "/api/projects?page=2", 1),
        ("admin@example.com", "/api/projects", 1),
        ("nobody@example.com", "/api/openapi.json", 1),
    ] {
        for _ in 0..times {
            client
                .get(format!("http://{addr}/auth"))
                .header("x-proxy-secret", SECRET)
                .header("x-user-email", user)
                .header("x-original-method", "GET")
                .header("x-original-uri", path)
                .send()
                .await
                .unwrap();
        }
    }
    // Refused before routing: nothing to replay.
    client
        .get(format!("http://{addr}/auth"))
        .header("x-proxy-secret", SECRET)
        .send()
        .await
        .unwrap();
    server.signal("-TERM");
    assert!(server.wait().success());

    copy_into(&dir.path().join("candidate"));
    write(&dir.path().join("candidate/no-listing.cedar"), NO_LISTING);
    let out = run(
        dir.path(),
        &["diff", "policies", "candidate", "--log", "logs/app.json"],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "compared 7 logged requests (4 distinct, 1 not replayable): 2 decisions change"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("GET /api/projects as alice@example.com [photographers]  (3 requests)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("new: deny   photographers-may-not-list"),
        "{}",
        out.stdout
    );
    // Today's membership instead of the logged one: alice left photographers.
    write(
        &dir.path().join("today.toml"),
        "[groups]\neditors = [\"alice@example.com\", \"bob@example.com\"]\nadmins = [\"admin@example.com\"]\n",
    );
    let today = run(
        dir.path(),
        &[
            "diff",
            "policies",
            "candidate",
            "--log",
            "logs/app.json",
            "--groups-file",
            "today.toml",
        ],
    );
    assert_eq!(today.code, 0, "{}{}", today.stdout, today.stderr);
}

// === fmt ===

#[test]
fn fmt_formats_in_place_and_check_reports_without_writing() {
    let dir = workdir();
    let p = dir.path().join("policies");
    let messy = "// Readers.\n@id(\"readers\")   permit(principal,action in Action::\"Read\",resource)when{resource has group&&principal in resource.group};\n";
    write(&p.join("messy.cedar"), messy);
    let check = run(dir.path(), &["fmt", "--check", "policies/messy.cedar"]);
    assert_eq!(check.code, 1, "{}{}", check.stdout, check.stderr);
    assert_eq!(
        check.stdout,
        "not formatted: policies/messy.cedar\n1 of 1 Cedar file(s) not formatted\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("messy.cedar")).unwrap(),
        messy
    );

    let before = PolicySnapshot::load(&p).unwrap();
    let fmt = run(dir.path(), &["fmt", "policies"]);
    assert_eq!(fmt.code, 0, "{}{}", fmt.stdout, fmt.stderr);
    assert!(
        fmt.stdout.contains("formatted: policies/messy.cedar"),
        "{}",
        fmt.stdout
    );
    insta::assert_snapshot!(
        "fmt_output",
        std::fs::read_to_string(p.join("messy.cedar")).unwrap()
    );
    let again = run(dir.path(), &["fmt", "--check", "policies"]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert!(!p.join(".messy.cedar.fmt.tmp").exists());
    // Formatting changes the files, not a single policy.
    let after = PolicySnapshot::load(&p).unwrap();
    let report = ipm_policy::store::diff(&before, &after);
    assert!(!report.files_changed.is_empty());
    assert!(
        report.added.is_empty() && report.changed.is_empty() && report.removed.is_empty(),
        "{report:?}"
    );
}

#[test]
fn fmt_refuses_a_file_that_does_not_parse() {
    let dir = workdir();
    let broken = "permit (principal, action, resource)\nwhen { 1 + };\n";
    write(&dir.path().join("policies/broken.cedar"), broken);
    let out = run(dir.path(), &["fmt", "policies"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("policies/broken.cedar:2:"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("policies/broken.cedar")).unwrap(),
        broken
    );
}

// === shadow mode ===

const SHADOW: &str = "authz_shadow_decisions_total";
const DISAGREE: &[(&str, &str)] = &[
    ("agreement", "disagree"),
    ("live", "allow"),
    ("shadow", "deny"),
];
const AGREE_ALLOW: &[(&str, &str)] = &[
    ("agreement", "agree"),
    ("live", "allow"),
    ("shadow", "allow"),
];
const AGREE_DENY: &[(&str, &str)] = &[("agreement", "agree"), ("live", "deny"), ("shadow", "deny")];

#[tokio::test]
async fn shadow_mode_counts_disagreements_and_never_enforces() {
    let shadow = tempfile::tempdir().unwrap();
    copy_policies(shadow.path());
    write(&shadow.path().join("no-listing.cedar"), NO_LISTING);
    let dir = shadow.path().to_path_buf();
    let app = spawn_with(|c| c.policy_shadow_dir = Some(dir)).await;

    for _ in 0..3 {
        assert_eq!(
            app.status_as("alice@example.com", "GET", "/api/projects")
                .await,
            200,
            "the live set answers"
        );
    }
    assert_eq!(
        app.status_as("admin@example.com", "GET", "/api/projects")
            .await,
        200
    );
    assert_eq!(
        app.status_as("nobody@example.com", "GET", "/api/projects")
            .await,
        403
    );
    // Refused before the policies: nothing to compare.
    assert_eq!(
        app.status_as("alice@example.com", "GET", "/nowhere").await,
        403
    );
    assert_eq!(app.metric(SHADOW, DISAGREE).await, Some(3.0));
    assert_eq!(app.metric(SHADOW, AGREE_ALLOW).await, Some(1.0));
    assert_eq!(app.metric(SHADOW, AGREE_DENY).await, Some(1.0));

    let (status, ready) = app.readyz().await;
    assert_eq!(status, 200);
    let expected = PolicySnapshot::load(shadow.path()).unwrap().hash;
    assert_eq!(ready["shadow"]["loaded"], true);
    assert_eq!(ready["shadow"]["hash"], expected.as_str());
    assert_ne!(ready["shadow"]["hash"], ready["policies"]["hash"]);

    // The candidate reloads on save: lifting the forbid makes the two agree again.
    std::fs::remove_file(shadow.path().join("no-listing.cedar")).unwrap();
    let agreed = eventually(DEADLINE, || async {
        app.status_as("alice@example.com", "GET", "/api/projects")
            .await;
        app.metric(SHADOW, AGREE_ALLOW).await >= Some(2.0)
    })
    .await;
    assert!(agreed.is_some(), "the shadow set never reloaded");
    let disagreed = app.metric(SHADOW, DISAGREE).await;
    assert!(disagreed >= Some(3.0), "{disagreed:?}");
    app.status_as("alice@example.com", "GET", "/api/projects")
        .await;
    assert_eq!(
        app.metric(SHADOW, DISAGREE).await,
        disagreed,
        "they agree now"
    );
}

#[tokio::test]
async fn a_shadow_set_that_does_not_load_never_affects_serving() {
    let shadow = tempfile::tempdir().unwrap();
    copy_policies(shadow.path());
    write(&shadow.path().join("broken.cedar"), "permit (principal,\n");
    let dir = shadow.path().to_path_buf();
    let app = spawn_with(|c| c.policy_shadow_dir = Some(dir)).await;

    assert_eq!(
        app.status_as("alice@example.com", "GET", "/api/projects")
            .await,
        200
    );
    let (status, ready) = app.readyz().await;
    assert_eq!(status, 200, "the shadow set is not part of readiness");
    assert_eq!(ready["shadow"]["loaded"], false);
    let problem = &ready["shadow"]["problems"][0];
    assert!(
        problem["file"].as_str().unwrap().ends_with("broken.cedar"),
        "{problem}"
    );
    assert!(problem["line"].as_u64().is_some(), "{problem}");
    assert_eq!(app.metric(SHADOW, AGREE_ALLOW).await, None);

    // Once the candidate loads, it is compared.
    std::fs::remove_file(shadow.path().join("broken.cedar")).unwrap();
    write(&shadow.path().join("no-listing.cedar"), NO_LISTING);
    let compared = eventually(DEADLINE, || async {
        app.status_as("alice@example.com", "GET", "/api/projects")
            .await
            == 200
            && app.metric(SHADOW, DISAGREE).await.is_some()
    })
    .await;
    assert!(compared.is_some(), "the fixed shadow set was never loaded");
    assert_eq!(app.readyz().await.1["shadow"]["loaded"], true);
}

#[tokio::test]
async fn shadow_disagreements_are_logged_by_the_binary() {
    let dir = workdir();
    copy_into(&dir.path().join("candidate"));
    write(&dir.path().join("candidate/no-listing.cedar"), NO_LISTING);
    let mut server = Running::start({
        let mut cmd = authz(dir.path(), &["serve"]);
        cmd.env("PROXY_SHARED_SECRET", SECRET)
            .env("AUTHZ_LISTEN", "127.0.0.1:0")
            .env("AUTHZ_GRPC_LISTEN", "off")
            .env("LOG_FILE", "")
            .env("POLICY_SHADOW_DIR", "candidate");
        cmd
    });
    server.wait_for("shadow policies loaded");
    let line = server.wait_for("authz listening");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = v["listen"].as_str().unwrap().to_string();
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{addr}/auth"))
        .header("x-proxy-secret", SECRET)
        .header("x-user-email", "alice@example.com")
        .header("x-original-method", "GET")
        .header("x-original-uri", "/api/projects")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "the live set answers");
    let line = server.wait_for("shadow policies disagree");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["target"], "authz::shadow");
    assert_eq!(v["live"], "allow");
    assert_eq!(v["shadow"], "deny");
    assert_eq!(v["live_policies"], "members-use-app");
    assert_eq!(v["shadow_policies"], "photographers-may-not-list");
    assert_eq!(v["user"], "alice@example.com");
}

// === reload reports ===

#[tokio::test]
async fn each_reload_logs_what_changed_and_readyz_shows_the_hash() {
    let dir = workdir();
    let p = dir.path().join("policies");
    let mut server = Running::start({
        let mut cmd = authz(dir.path(), &["serve"]);
        cmd.env("PROXY_SHARED_SECRET", SECRET)
            .env("AUTHZ_LISTEN", "127.0.0.1:0")
            .env("AUTHZ_GRPC_LISTEN", "off")
            .env("LOG_FILE", "")
            .env("AUTHZ_POLICY_POLL_SECONDS", "0");
        cmd
    });
    let line = server.wait_for("authz listening");
    let addr = serde_json::from_str::<serde_json::Value>(&line).unwrap()["listen"]
        .as_str()
        .unwrap()
        .to_string();

    // One save that adds, changes and removes: a new file, an edited one, a deleted one.
    let staging = dir.path().join("staging");
    copy_policies(&staging);
    write(&staging.join("no-listing.cedar"), NO_LISTING);
    write(
        &staging.join("admins.cedar"),
        "@id(\"admins-all\")\npermit (principal in Group::\"admins\", action in Action::\"Read\", resource);\n",
    );
    std::fs::remove_file(staging.join("guards.cedar")).unwrap();
    let old = dir.path().join("old-policies");
    std::fs::rename(&p, &old).unwrap();
    std::fs::rename(&staging, &p).unwrap();

    let line = server.wait_for("policies reloaded");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["target"], "authz::reload");
    assert_eq!(v["added"], "[\"photographers-may-not-list\"]");
    assert_eq!(v["changed"], "[\"admins-all\"]");
    assert_eq!(v["removed"], "[\"suspended-forbid-all\"]");
    assert_eq!(
        v["files_changed"],
        "[\"admins.cedar\", \"guards.cedar\", \"no-listing.cedar\"]"
    );
    let new_hash = PolicySnapshot::load(&p).unwrap().hash;
    assert_eq!(v["new_hash"], new_hash.as_str());
    let ready: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["policies"]["hash"], new_hash.as_str());

    // Formatting is a change of files, not of policies.
    let out = run(dir.path(), &["fmt", "policies"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = server.wait_for("policies reloaded");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["added"], "[]");
    assert_eq!(v["changed"], "[]");
    assert_eq!(v["removed"], "[]");
    assert_ne!(v["files_changed"], "[]");
}

/// Counts reloads; each one reads a file, as the policy store does.
struct ReadingTarget {
    dir: PathBuf,
    reloads: AtomicUsize,
}

impl Reload for ReadingTarget {
    fn name(&self) -> &'static str {
        "reading"
    }

    fn watched(&self) -> Vec<(PathBuf, notify::RecursiveMode)> {
        vec![(self.dir.clone(), notify::RecursiveMode::Recursive)]
    }

    fn reload(&self, _metrics: &Metrics) {
        let _ = std::fs::read_to_string(self.dir.join("a.cedar"));
        self.reloads.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn reading_the_files_does_not_start_another_reload() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.cedar"), "// nothing\n");
    let target = Arc::new(ReadingTarget {
        dir: dir.path().to_path_buf(),
        reloads: AtomicUsize::new(0),
    });
    let reloader = Reloader::spawn(target.clone(), Arc::new(Metrics::new()), Duration::ZERO);
    reloader.trigger();
    let first = eventually(DEADLINE, || async {
        target.reloads.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(first.is_some());
    // Were reads events, each reload would start the next within the 50 ms debounce.
    let looped = eventually(Duration::from_millis(500), || async {
        target.reloads.load(Ordering::SeqCst) > 1
    })
    .await;
    assert_eq!(looped, None, "reloads kept coming without a change");
    // A real save still reloads.
    write(&dir.path().join("a.cedar"), "// changed\n");
    let saved = eventually(DEADLINE, || async {
        target.reloads.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(saved.is_some());
}

// === the README's worked example ===

/// The fenced block after each `<!-- example: PATH -->` marker in `policies/README.md`.
fn readme_examples() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(shipped_policies().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("<!-- example: ") {
        rest = &rest[at + "<!-- example: ".len()..];
        let (path, after) = rest.split_once(" -->").unwrap();
        let fence = after.find("```").unwrap();
        let body_start = after[fence..].find('\n').unwrap() + fence + 1;
        let body_end = after[body_start..].find("```").unwrap() + body_start;
        out.push((path.to_string(), after[body_start..body_end].to_string()));
        rest = &after[body_end..];
    }
    out
}

#[test]
fn the_readme_viewers_example_passes_its_tests() {
    let examples = readme_examples();
    assert_eq!(
        examples.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["viewers.cedar", "tests/viewers.toml"]
    );
    let dir = workdir();
    for (path, text) in &examples {
        write(&dir.path().join("policies").join(path), text);
    }
    let check = run(dir.path(), &["check", "policies"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(!check.stdout.contains("warning"), "{}", check.stdout);
    let out = run(dir.path(), &["test", "policies"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("viewers.toml"), "{}", out.stdout);
    let fmt = run(dir.path(), &["fmt", "--check", "policies/viewers.cedar"]);
    assert_eq!(fmt.code, 0, "the example is formatted: {}", fmt.stdout);
    // Without the forbid, a viewer could create a project owned by `viewers`.
    let diff = run(
        dir.path(),
        &[
            "diff",
            &shipped_policies().display().to_string(),
            "policies",
            "--cases",
            "policies/tests/viewers.toml",
        ],
    );
    assert_eq!(diff.code, 1);
    assert!(
        diff.stdout
            .contains("old: allow  members-create-in-own-group"),
        "{}",
        diff.stdout
    );
}
