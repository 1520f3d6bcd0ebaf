//! Test files: the `[[case]]`s a policy author writes, read from `policies/tests/*.toml`, every
//! file's problems reported at once.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use ipm_policy::diagnostics::{Problem, line_col};

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
    #[serde(default, deserialize_with = "ipm_policy::routes::one_or_many")]
    pub decided_by: Vec<String>,
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

/// Every problem of the test files, then a count.
pub fn render_problems(problems: &[Problem]) -> String {
    let mut out: String = problems
        .iter()
        .map(|p| format!("{}\n", p.rendered.trim_end()))
        .collect();
    out.push_str(&format!(
        "error: {} problem(s) in the test files\n",
        problems.len()
    ));
    out
}
