//! Policy test files (`policies/tests/*.toml`): who asks for what, and the answer expected,
//! evaluated through the same `decide` the server uses. Shared by `test`, `diff` and `explain`.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{Entities, Entity, EntityUid};
use serde::Deserialize;

use ipm_policy::cedar::{CedarQuery, decide};
use ipm_policy::diagnostics::{Problem, line_col};
use ipm_policy::entities::{ImageParent, image_entities, project_entities};
use ipm_policy::groups::is_valid_group_name;
use ipm_policy::identity::Email;
use ipm_policy::routes::RouteMatch;
use ipm_policy::snapshot::{PolicySnapshot, short_hash};

/// The folder of test files inside a policy directory. The policy loader skips folders, so
/// test files never become part of the policies.
pub const TESTS_DIR: &str = "tests";

/// Allow or deny: what a case expects and what a decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One `[[case]]` as written in a test file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    /// What the case shows, for the table; defaults to the request.
    pub name: Option<String>,
    /// The user's email, as the proxy sends it.
    pub user: String,
    /// The user's groups; none when absent (an unknown user).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The request, matched against `routes.toml` like the server does.
    pub method: Option<String>,
    pub path: Option<String>,
    /// Or the Cedar question itself (as the API asks `CreateProjectInGroup`); `method` and
    /// `path` then only fill the context.
    pub action: Option<String>,
    /// `Type::"id"`, with `action`.
    pub resource: Option<String>,
    /// The group that owns the resource (a Project, or an Image's project).
    pub resource_group: Option<String>,
    /// Cedar entity JSON for anything else: an array of `{uid, attrs, parents}`, written
    /// as TOML or as a JSON string.
    pub entities: Option<serde_json::Value>,
    /// `context.client_ip`.
    pub client_ip: Option<IpAddr>,
    /// The answer expected; required by `authz test`.
    pub expect: Option<Verdict>,
    /// Policy ids that must be among those that decided.
    #[serde(default, deserialize_with = "one_or_many")]
    pub decided_by: Vec<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl CaseSpec {
    /// The request in one line: `GET /api/projects as alice@example.com [photographers]`.
    pub fn request(&self) -> String {
        let what = match (&self.action, &self.resource) {
            (Some(a), Some(r)) => format!("Action::\"{a}\" on {r}"),
            _ => format!(
                "{} {}",
                self.method.as_deref().unwrap_or("?").to_ascii_uppercase(),
                self.path.as_deref().unwrap_or("?")
            ),
        };
        format!("{what} as {} [{}]", self.user, self.groups.join(", "))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default, rename = "case")]
    cases: Vec<toml::Spanned<CaseSpec>>,
}

/// A case and where it was written.
#[derive(Debug, Clone)]
pub struct Case {
    /// The file's name, relative to the tests folder.
    pub file: String,
    pub line: usize,
    pub spec: CaseSpec,
}

impl Case {
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    pub fn name(&self) -> String {
        self.spec
            .name
            .clone()
            .unwrap_or_else(|| self.spec.request())
    }
}

/// The test files at `path`: the file itself, or every `*.toml` directly inside the folder.
pub fn test_files(path: &Path) -> Result<Vec<(String, PathBuf)>, Problem> {
    let shown = path.display().to_string();
    if path.is_file() {
        let name = path
            .file_name()
            .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
        return Ok(vec![(name, path.to_path_buf())]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| Problem::whole_file(&shown, format!("cannot read the test folder: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Problem::whole_file(&shown, format!("cannot list the test folder: {e}"))
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".toml") || !entry.path().is_file() {
            continue;
        }
        files.push((name, entry.path()));
    }
    files.sort();
    if files.is_empty() {
        return Err(Problem::whole_file(&shown, "no test files (`*.toml`) here"));
    }
    Ok(files)
}

/// Reads every case at `path`; reports every file that does not parse, not just the first.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, Vec<Problem>> {
    let files = test_files(path).map_err(|p| vec![p])?;
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for (name, file) in files {
        let shown = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem::whole_file(&shown, format!("cannot read: {e}")));
                continue;
            }
        };
        match toml::from_str::<CaseFile>(&text) {
            Ok(parsed) if parsed.cases.is_empty() => {
                problems.push(Problem::whole_file(&shown, "no `[[case]]` in this file"))
            }
            Ok(parsed) => cases.extend(parsed.cases.into_iter().map(|c| Case {
                file: name.clone(),
                line: line_col(&text, c.span().start).0,
                spec: c.into_inner(),
            })),
            Err(e) => {
                let mut p = Problem::whole_file(&shown, e.message());
                if let Some(span) = e.span() {
                    let (line, col) = line_col(&text, span.start);
                    p.line = Some(line);
                    p.column = Some(col);
                    let source = text.lines().nth(line - 1).unwrap_or_default();
                    p.rendered = format!(
                        "{shown}:{line}:{col}: {}\n  | {source}\n  | {:>col$}",
                        e.message(),
                        "^"
                    );
                }
                problems.push(p);
            }
        }
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        Err(problems)
    }
}

/// Why a case cannot be put to the policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CaseError(pub String);

/// A case made concrete against one snapshot: exactly what `decide` is asked.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub user: Email,
    pub groups: Vec<String>,
    pub method: String,
    /// The path without its query string.
    pub path: String,
    /// `None` when no route matches: the server denies with `no_route`.
    pub route: Option<RouteMatch>,
    pub entities: Vec<Entity>,
    pub client_ip: Option<IpAddr>,
}

impl Resolved {
    pub fn query(&self) -> Option<CedarQuery<'_>> {
        Some(CedarQuery {
            user: &self.user,
            groups: &self.groups,
            route: self.route.as_ref()?,
            method: &self.method,
            path: &self.path,
            client_ip: self.client_ip,
            resource_entities: &self.entities,
        })
    }

    /// Decides through `decision::decide`, as the server does after its route and group lookup.
    pub fn decide(&self, snapshot: &PolicySnapshot) -> Outcome {
        let Some(q) = self.query() else {
            return Outcome {
                verdict: Verdict::Deny,
                reason: "no_route",
                policies: Vec::new(),
                errors: Vec::new(),
            };
        };
        match decide(snapshot, &q) {
            Ok(v) => Outcome {
                verdict: if v.allowed {
                    Verdict::Allow
                } else {
                    Verdict::Deny
                },
                reason: if v.allowed {
                    "policy_allowed"
                } else {
                    "policy_denied"
                },
                policies: v.policies,
                errors: v.errors,
            },
            Err(e) => Outcome {
                verdict: Verdict::Deny,
                reason: "policy_error",
                policies: Vec::new(),
                errors: vec![e.to_string()],
            },
        }
    }
}

/// A decision, in the server's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// `policy_allowed`, `policy_denied`, `no_route` or `policy_error`, as in the decision log.
    pub reason: &'static str,
    pub policies: Vec<String>,
    pub errors: Vec<String>,
}

impl Outcome {
    /// Who decided, in a few words.
    pub fn decided_by(&self) -> String {
        match self.reason {
            "no_route" => "(no route)".into(),
            "policy_error" => "(policy error)".into(),
            _ if self.policies.is_empty() => "(default deny)".into(),
            _ => self.policies.join(", "),
        }
    }
}

fn case_error(message: impl Into<String>) -> CaseError {
    CaseError(message.into())
}

/// Turns a case into the query the server would make against `snapshot`.
pub fn resolve(snapshot: &PolicySnapshot, spec: &CaseSpec) -> Result<Resolved, CaseError> {
    let user: Email = spec
        .user
        .parse()
        .map_err(|e| case_error(format!("`user`: {e}")))?;
    let mut groups = spec.groups.clone();
    if let Some(bad) = groups.iter().find(|g| !is_valid_group_name(g)) {
        return Err(case_error(format!("`groups`: `{bad}` is not a group name")));
    }
    groups.sort();
    groups.dedup();
    let uri = spec.path.clone().unwrap_or_default();
    let method = spec.method.clone().unwrap_or_default().to_ascii_uppercase();
    let path = uri.split(['?', '#']).next().unwrap_or_default().to_string();
    let route = match (&spec.action, &spec.resource) {
        (Some(action), Some(resource)) => Some(direct_route(action, resource)?),
        (Some(_), None) | (None, Some(_)) => {
            return Err(case_error("`action` and `resource` go together"));
        }
        (None, None) => {
            if spec.method.is_none() || spec.path.is_none() {
                return Err(case_error(
                    "give `method` and `path` (or `action` and `resource`)",
                ));
            }
            snapshot.routes.matches(&method, &uri)
        }
    };
    let entities = match (&spec.resource_group, &spec.entities, &route) {
        (Some(_), Some(_), _) => {
            return Err(case_error("use `resource_group` or `entities`, not both"));
        }
        (Some(group), None, Some(route)) => resource_in_group(route, group)?,
        (None, Some(json), _) => entities_from_json(snapshot, json)?,
        _ => Vec::new(),
    };
    Ok(Resolved {
        user,
        groups,
        method,
        path,
        route,
        entities,
        client_ip: spec.client_ip,
    })
}

/// Resolves and decides a case.
pub fn evaluate(snapshot: &PolicySnapshot, spec: &CaseSpec) -> Result<Outcome, CaseError> {
    resolve(snapshot, spec).map(|r| r.decide(snapshot))
}

fn direct_route(action: &str, resource: &str) -> Result<RouteMatch, CaseError> {
    let uid = EntityUid::from_str(resource).map_err(|_| {
        case_error(format!(
            "`resource`: `{resource}` is not an entity such as `Group::\"photographers\"`"
        ))
    })?;
    Ok(RouteMatch {
        action: action.to_string(),
        resource_type: uid.type_name().to_string(),
        resource_id: uid.id().unescaped().to_string(),
        pattern: String::new(),
    })
}

/// The entities behind `resource_group`, from the same vocabulary the live resolvers use: a
/// project in that group; for an image, the image in its own project (`<id>-project`) there.
fn resource_in_group(route: &RouteMatch, group: &str) -> Result<Vec<Entity>, CaseError> {
    if !is_valid_group_name(group) {
        return Err(case_error(format!(
            "`resource_group`: `{group}` is not a group name"
        )));
    }
    let id = &route.resource_id;
    match route.resource_type.as_str() {
        "Project" => project_entities(id, group).map_err(case_error),
        "Image" => image_entities(
            id,
            &ImageParent {
                project: format!("{id}-project"),
                group: group.into(),
            },
        )
        .map_err(case_error),
        other => Err(case_error(format!(
            "`resource_group` describes a Project or an Image; this resource is {other}::\"{id}\""
        ))),
    }
}

fn entities_from_json(
    snapshot: &PolicySnapshot,
    json: &serde_json::Value,
) -> Result<Vec<Entity>, CaseError> {
    let parsed = match json {
        serde_json::Value::String(text) => Entities::from_json_str(text, Some(&snapshot.schema)),
        other => Entities::from_json_value(other.clone(), Some(&snapshot.schema)),
    }
    .map_err(|e| case_error(format!("`entities`: {}", error_chain(&e))))?;
    // The schema adds its actions; `decide` adds them again from the same schema.
    Ok(parsed
        .iter()
        .filter(|e| e.uid().type_name().basename() != "Action")
        .cloned()
        .collect())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

// === the test runner ===

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
    pub resolved: Option<Resolved>,
    pub outcome: Result<Outcome, CaseError>,
    /// Why the case failed; empty when it passed.
    pub problems: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Every case's result, and the routes no case reached.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub results: Vec<CaseResult>,
    pub uncovered_routes: Vec<String>,
    pub hash: String,
}

impl TestReport {
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed()).count()
    }
}

/// Runs every case against a snapshot.
pub fn run(snapshot: &PolicySnapshot, cases: Vec<Case>) -> TestReport {
    let results: Vec<CaseResult> = cases
        .into_iter()
        .map(|case| {
            let resolved = resolve(snapshot, &case.spec);
            let outcome = resolved
                .as_ref()
                .map(|r| r.decide(snapshot))
                .map_err(Clone::clone);
            let problems = judge(snapshot, &case.spec, &outcome);
            CaseResult {
                case,
                resolved: resolved.ok(),
                outcome,
                problems,
            }
        })
        .collect();
    let uncovered_routes = uncovered_routes(snapshot, &results);
    TestReport {
        results,
        uncovered_routes,
        hash: snapshot.hash.clone(),
    }
}

fn judge(
    snapshot: &PolicySnapshot,
    spec: &CaseSpec,
    outcome: &Result<Outcome, CaseError>,
) -> Vec<String> {
    let o = match outcome {
        Ok(o) => o,
        Err(e) => return vec![format!("invalid case: {e}")],
    };
    let mut problems = Vec::new();
    match spec.expect {
        None => problems.push("`expect` is missing: write \"allow\" or \"deny\"".to_string()),
        Some(want) if want != o.verdict => {
            problems.push(format!("expected {want}, got {}", o.verdict));
        }
        Some(_) => {}
    }
    for id in &spec.decided_by {
        if !snapshot.policy_files.contains_key(id) {
            problems.push(format!("`decided_by`: no policy has the id `{id}`"));
        } else if !o.policies.contains(id) {
            problems.push(format!(
                "expected `{id}` to decide, but it did not ({})",
                o.decided_by()
            ));
        }
    }
    problems
}

/// Routes that no case's request matched.
fn uncovered_routes(snapshot: &PolicySnapshot, results: &[CaseResult]) -> Vec<String> {
    let reached: HashSet<(&str, &str, &str)> = results
        .iter()
        .filter_map(|r| {
            let resolved = r.resolved.as_ref()?;
            let route = resolved.route.as_ref()?;
            (!route.pattern.is_empty()).then_some((
                route.pattern.as_str(),
                route.action.as_str(),
                resolved.method.as_str(),
            ))
        })
        .collect();
    snapshot
        .routes
        .routes()
        .iter()
        .enumerate()
        .filter(|(_, route)| {
            !route.methods().any(|m| {
                reached.contains(&(route.spec.path.as_str(), route.spec.action.as_str(), m))
            })
        })
        .map(|(i, route)| {
            format!(
                "route {} (`{} {}`) has no test case",
                i + 1,
                route.spec.method.join("|"),
                route.spec.path
            )
        })
        .collect()
}

fn outcome_cells(r: &CaseResult) -> (String, String) {
    match &r.outcome {
        Ok(o) => {
            let mut by = o.decided_by();
            if !o.errors.is_empty() {
                let _ = write!(by, " [{} evaluation error(s)]", o.errors.len());
            }
            (o.verdict.to_string(), by)
        }
        Err(_) => ("-".into(), "(invalid case)".into()),
    }
}

/// The table of results, the details of each failure, and a summary line.
pub fn render(snapshot: &PolicySnapshot, report: &TestReport) -> String {
    let header = [
        "RESULT".to_string(),
        "CASE".into(),
        "NAME".into(),
        "EXPECT".into(),
        "GOT".into(),
        "DECIDED BY".into(),
    ];
    let mut rows = vec![header];
    for r in &report.results {
        let (got, by) = outcome_cells(r);
        rows.push([
            if r.passed() { "ok" } else { "FAIL" }.to_string(),
            r.case.location(),
            r.case.name(),
            r.case
                .spec
                .expect
                .map_or_else(|| "?".to_string(), |v| v.to_string()),
            got,
            by,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let _ = write!(line, "{cell:<w$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let failures: Vec<&CaseResult> = report.results.iter().filter(|r| !r.passed()).collect();
    if !failures.is_empty() {
        out.push_str("\nfailures:\n");
        for r in failures {
            out.push('\n');
            out.push_str(&render_failure(snapshot, r));
        }
    }
    if !report.uncovered_routes.is_empty() {
        out.push('\n');
        for w in &report.uncovered_routes {
            let _ = writeln!(out, "warning: {w}");
        }
    }
    let failed = report.failed();
    let _ = writeln!(
        out,
        "\ntest result: {}. {} passed; {failed} failed; policies hash {}",
        if failed == 0 { "ok" } else { "FAILED" },
        report.results.len() - failed,
        short_hash(&report.hash)
    );
    out
}

fn render_failure(snapshot: &PolicySnapshot, r: &CaseResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "FAIL {}  {}", r.case.location(), r.case.name());
    let _ = writeln!(out, "  request:  {}", r.case.spec.request());
    if let Some(resolved) = &r.resolved {
        match &resolved.route {
            Some(route) => {
                let via = if route.pattern.is_empty() {
                    String::new()
                } else {
                    format!("{} {} -> ", resolved.method, route.pattern)
                };
                let _ = writeln!(
                    out,
                    "  route:    {via}Action::\"{}\" on {}::\"{}\"",
                    route.action, route.resource_type, route.resource_id
                );
            }
            None => {
                let _ = writeln!(out, "  route:    none matches");
            }
        }
        for e in &resolved.entities {
            let _ = writeln!(out, "  entity:   {}", describe_entity(e));
        }
    }
    let _ = writeln!(
        out,
        "  expected: {}",
        r.case.spec.expect.map_or("?", Verdict::as_str)
    );
    match &r.outcome {
        Ok(o) => {
            let _ = writeln!(out, "  decision: {} ({})", o.verdict, o.reason);
            if o.policies.is_empty() {
                let _ = writeln!(out, "  policies: {}", o.decided_by());
            }
            for id in &o.policies {
                let file = snapshot.policy_files.get(id).map_or("?", String::as_str);
                let _ = writeln!(out, "  policy:   {id} ({file})");
            }
            for e in &o.errors {
                let _ = writeln!(out, "  error:    {e}");
            }
        }
        Err(_) => {
            let _ = writeln!(out, "  decision: none (the case cannot be asked)");
        }
    }
    for p in &r.problems {
        let _ = writeln!(out, "  problem:  {p}");
    }
    out
}

/// `Project::"p1" in [Group::"photographers"]`.
pub fn describe_entity(e: &Entity) -> String {
    let (uid, _attrs, parents) = e.clone().into_inner();
    let parents: BTreeSet<String> = parents.iter().map(ToString::to_string).collect();
    if parents.is_empty() {
        uid.to_string()
    } else {
        format!(
            "{uid} in [{}]",
            parents.into_iter().collect::<Vec<_>>().join(", ")
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn shipped() -> PolicySnapshot {
        PolicySnapshot::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")).unwrap()
    }

    fn spec(toml_text: &str) -> CaseSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn refusal(toml_text: &str) -> String {
        match resolve(&shipped(), &spec(toml_text)) {
            Ok(_) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn cases_that_cannot_be_asked_say_why() {
        let base = "user = \"alice@example.com\"\n";
        for (extra, want) in [
            ("", "give `method` and `path`"),
            ("method = \"GET\"\n", "give `method` and `path`"),
            (
                "action = \"ReadProject\"\n",
                "`action` and `resource` go together",
            ),
            (
                "action = \"ReadProject\"\nresource = \"p1\"\n",
                "`resource`: `p1` is not an entity",
            ),
            (
                "method = \"GET\"\npath = \"/api/projects\"\nresource_group = \"g\"\n",
                "`resource_group` describes a Project or an Image",
            ),
            (
                "method = \"GET\"\npath = \"/api/projects/p\"\ngroups = [\"a b\"]\n",
                "`groups`: `a b` is not a group name",
            ),
            (
                "method = \"GET\"\npath = \"/api/projects/p\"\nresource_group = \"g\"\nentities = []\n",
                "not both",
            ),
            (
                "method = \"GET\"\npath = \"/api/projects/p\"\nentities = '[{\"uid\": {\"type\": \"Project\", \"id\": \"p\"}, \"attrs\": {}, \"parents\": []}]'\n",
                "`entities`:",
            ),
        ] {
            let got = refusal(&format!("{base}{extra}"));
            assert!(got.contains(want), "{extra}: {got}");
        }
        assert!(refusal("user = \"x\"\nmethod = \"GET\"\npath = \"/\"\n").starts_with("`user`:"));
    }

    #[test]
    fn entities_in_toml_or_json_reach_the_decision() {
        let s = shipped();
        let in_toml = spec(
            r#"
user = "alice@example.com"
groups = ["photographers"]
method = "GET"
path = "/api/images/i1"
entities = [
  { uid = { type = "Group", id = "photographers" }, attrs = {}, parents = [] },
  { uid = { type = "Project", id = "p1" }, attrs = { group = { type = "Group", id = "photographers" } }, parents = [{ type = "Group", id = "photographers" }] },
  { uid = { type = "Image", id = "i1" }, attrs = { project = { type = "Project", id = "p1" }, group = { type = "Group", id = "photographers" } }, parents = [{ type = "Project", id = "p1" }] },
]
"#,
        );
        let o = evaluate(&s, &in_toml).unwrap();
        assert_eq!(o.verdict, Verdict::Allow, "{o:?}");
        assert_eq!(o.policies, ["members-read-write-own-group"]);
        let by_group = spec(
            "user = \"alice@example.com\"\ngroups = [\"photographers\"]\nmethod = \"GET\"\npath = \"/api/images/i1\"\nresource_group = \"photographers\"\n",
        );
        assert_eq!(evaluate(&s, &by_group).unwrap(), o);
        let elsewhere = spec(
            "user = \"alice@example.com\"\ngroups = [\"photographers\"]\nmethod = \"GET\"\npath = \"/api/images/i1\"\nresource_group = \"editors\"\n",
        );
        assert_eq!(evaluate(&s, &elsewhere).unwrap().verdict, Verdict::Deny);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<CaseSpec>("user = \"a@example.com\"\nexpected = \"allow\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `expected`"), "{e}");
    }
}
