//! `authz diff`: the decisions that change between two policy sets, over the test cases or
//! over the requests of a recorded decision log, each evaluated the way the server does.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::tools::test::{Case, CaseError, CaseSpec, Outcome, evaluate};
use ipm_policy::groups::GroupIndex;
use ipm_policy::identity::Email;
use ipm_policy::record::DecisionRecord;
use ipm_policy::snapshot::PolicySnapshot;
use ipm_policy::snapshot::short_hash;

/// A request to put to both sets, and how many times it was seen.
#[derive(Debug, Clone)]
pub struct Replay {
    pub label: String,
    pub spec: CaseSpec,
    pub count: usize,
}

/// The cases of test files, one replay each.
pub fn from_cases(cases: Vec<Case>) -> Vec<Replay> {
    cases
        .into_iter()
        .map(|c| Replay {
            label: format!("{}  {}", c.location(), c.name()),
            spec: c.spec,
            count: 1,
        })
        .collect()
}

/// The requests of a decision log (`authz::decision` JSON lines), counted by what they ask.
#[derive(Debug, Clone, Default)]
pub struct LogReplay {
    pub replays: Vec<Replay>,
    /// Decision lines read.
    pub requests: usize,
    /// Decision lines that cannot be replayed (no user, no request: refused before routing).
    pub skipped: usize,
}

/// Reads a decision log. Groups come from `groups` when given (today's membership), else from
/// the line itself (the membership at the time).
pub fn from_log(text: &str, groups: Option<&GroupIndex>) -> LogReplay {
    let mut out = LogReplay::default();
    let mut index: HashMap<(String, String, String, String), usize> = HashMap::new();
    for line in text.lines() {
        let Some(record) = DecisionRecord::parse_line(line) else {
            continue;
        };
        out.requests += 1;
        // A question asked directly names no route to replay.
        if record.adapter == crate::adapters::authzen::ADAPTER {
            out.skipped += 1;
            continue;
        }
        let (user, method, path) = (
            record.user.as_str(),
            record.method.as_str(),
            record.path.as_str(),
        );
        let Ok(email) = user.parse::<Email>() else {
            out.skipped += 1;
            continue;
        };
        if method.is_empty() || path.is_empty() {
            out.skipped += 1;
            continue;
        }
        let member_of: Vec<String> = match groups {
            Some(index) => index.groups(&email).to_vec(),
            None => record
                .groups
                .split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
        };
        let key = (
            user.to_string(),
            member_of.join(","),
            method.to_string(),
            path.to_string(),
        );
        if let Some(r) = index.get(&key).and_then(|&i| out.replays.get_mut(i)) {
            r.count += 1;
            continue;
        }
        index.insert(key, out.replays.len());
        let spec = CaseSpec {
            user: user.to_string(),
            groups: member_of,
            method: Some(method.to_string()),
            path: Some(path.to_string()),
            ..CaseSpec::default()
        };
        out.replays.push(Replay {
            label: spec.request(),
            spec,
            count: 1,
        });
    }
    out
}

/// A request whose answer differs between the two sets.
#[derive(Debug, Clone)]
pub struct Change {
    pub replay: Replay,
    pub old: Result<Outcome, CaseError>,
    pub new: Result<Outcome, CaseError>,
}

fn verdict(o: &Result<Outcome, CaseError>) -> Option<crate::tools::test::Verdict> {
    o.as_ref().ok().map(|o| o.verdict)
}

/// Evaluates every replay against both sets and keeps those whose verdict changes.
pub fn changes(old: &PolicySnapshot, new: &PolicySnapshot, replays: &[Replay]) -> Vec<Change> {
    replays
        .iter()
        .filter_map(|r| {
            let (a, b) = (evaluate(old, &r.spec), evaluate(new, &r.spec));
            (verdict(&a) != verdict(&b) || a.is_err() != b.is_err()).then(|| Change {
                replay: r.clone(),
                old: a,
                new: b,
            })
        })
        .collect()
}

fn describe(o: &Result<Outcome, CaseError>) -> String {
    match o {
        Ok(o) => format!("{:<5}  {}", o.verdict, o.decided_by()),
        Err(e) => format!("invalid case: {e}"),
    }
}

/// What was compared, then each change.
pub fn render(sets: [(&str, &PolicySnapshot); 2], compared: &str, changes: &[Change]) -> String {
    let mut out = String::new();
    for (label, (dir, s)) in ["old", "new"].iter().zip(sets) {
        let _ = writeln!(
            out,
            "{label}: {dir} (hash {}, {} policies)",
            short_hash(&s.hash),
            s.policy_count()
        );
    }
    let n = changes.len();
    let _ = writeln!(
        out,
        "compared {compared}: {}",
        match n {
            0 => "no decision changes".to_string(),
            1 => "1 decision changes".to_string(),
            n => format!("{n} decisions change"),
        }
    );
    for c in changes {
        out.push('\n');
        let times = if c.replay.count > 1 {
            format!("  ({} requests)", c.replay.count)
        } else {
            String::new()
        };
        let _ = writeln!(out, "  {}{times}", c.replay.label);
        if c.replay.spec.name.is_some() {
            let _ = writeln!(out, "    {}", c.replay.spec.request());
        }
        let _ = writeln!(out, "    old: {}", describe(&c.old));
        let _ = writeln!(out, "    new: {}", describe(&c.new));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_counted_by_request() {
        let log = [
            r#"{"message":"decision","target":"authz::decision","user":"alice@example.com","groups":"photographers","method":"GET","path":"/api/projects"}"#,
            r#"{"message":"decision","target":"authz::decision","user":"alice@example.com","groups":"photographers","method":"GET","path":"/api/projects"}"#,
            r#"{"message":"decision","target":"authz::decision","user":"","method":"GET","path":"/api/projects","reason":"missing_user"}"#,
            r#"{"message":"authz listening","listen":"127.0.0.1:1"}"#,
            "not json",
        ]
        .join("\n");
        let r = from_log(&log, None);
        assert_eq!((r.requests, r.skipped, r.replays.len()), (3, 1, 1));
        assert_eq!(r.replays[0].count, 2);
        assert_eq!(r.replays[0].spec.groups, ["photographers"]);
    }
}
