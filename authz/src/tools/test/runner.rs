//! The test runner: every case against a snapshot, the routes no case reached, and the table
//! and failure explanations a policy author reads.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use cedar_policy::Entity;

use ipm_policy::snapshot::{PolicySnapshot, short_hash};

use super::cases::{Case, CaseSpec, Verdict};
use super::resolve::{CaseError, Outcome, Resolved, resolve};

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
