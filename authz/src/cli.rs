//! The `authz` command line: `serve`, and the policy author's tools `check`, `explain`,
//! `test`, `diff` and `fmt`. Each tool returns its report and exit code; `main` prints.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use ipm_runtime::config::spec::{self, Var};

use crate::tools::test::{CaseSpec, TESTS_DIR, load_cases, resolve};
use ipm_policy::groups::GroupIndex;
use ipm_policy::identity::Email;
use ipm_policy::snapshot::PolicySnapshot;

#[derive(Debug, Parser)]
#[command(
    name = "authz",
    version,
    about = "Authorization decisions for nginx auth_request and Envoy ext_authz, from Cedar policies"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve decisions (the default). Configured by environment variables and `.env`.
    Serve,
    /// Validate the policies, schema and routes of a directory; exit non-zero on any error.
    Check {
        /// The policy directory [POLICY_DIR or `policies`].
        dir: Option<PathBuf>,
    },
    /// Show how a request would be decided, which policies decided it, and why.
    Explain(ExplainArgs),
    /// Run the policy test files (`DIR/tests/*.toml`); exit non-zero when a case fails.
    Test(TestArgs),
    /// Show the decisions that change between two policy directories.
    Diff(DiffArgs),
    /// Format Cedar files; with `--check`, only report the files that are not formatted.
    Fmt(FmtArgs),
}

/// The exit code when the input itself cannot be read (as opposed to a failing check).
pub const EXIT_ERROR: i32 = 2;

/// Runs a tool command and prints its report; `serve` is `main`'s.
pub fn run(command: Command) -> i32 {
    // A failed check is a report of errors; the other tools' failures are their findings.
    let errors_only = matches!(command, Command::Check { .. });
    let (out, rc) = match command {
        Command::Serve => return EXIT_ERROR,
        Command::Check { dir } => check(dir),
        Command::Explain(args) => explain(&args),
        Command::Test(args) if args.watch => {
            let (dir, tests) = args.paths();
            return crate::tools::watch::watch(&dir, &tests, || test(&args).0);
        }
        Command::Test(args) => test(&args),
        Command::Diff(args) => diff(&args),
        Command::Fmt(args) => fmt(&args),
    };
    if rc == EXIT_ERROR || (errors_only && rc != 0) {
        eprint!("{out}");
    } else {
        print!("{out}");
    }
    rc
}

/// A path variable from the process environment, or its default from the spec.
fn env_path(var: &Var<&'static str>) -> PathBuf {
    var.path(&std::env::vars().collect())
}

fn policy_dir(dir: Option<&PathBuf>) -> PathBuf {
    dir.cloned().unwrap_or_else(|| env_path(&spec::POLICY_DIR))
}

fn load(dir: &Path) -> Result<PolicySnapshot, String> {
    PolicySnapshot::load(dir).map_err(|e| {
        format!(
            "{}\nerror: {} problem(s) in `{}`\n",
            e.render(),
            e.problems.len(),
            dir.display()
        )
    })
}

/// `authz check`: every problem with its file, line, column, source line and Cedar's help;
/// then warnings: policies that can never apply, routes that no policy can allow.
pub fn check(dir: Option<PathBuf>) -> (String, i32) {
    let dir = policy_dir(dir.as_ref());
    let s = match load(&dir) {
        Ok(s) => s,
        Err(report) => return (report, 1),
    };
    let mut out = String::new();
    for w in &s.warnings {
        out.push_str(&format!("warning: {}\n", w.rendered.trim_end()));
    }
    for w in crate::tools::coverage::unpermitted_routes(&s) {
        out.push_str(&format!(
            "warning: {}: {w}\n",
            dir.join(ipm_policy::snapshot::ROUTES_FILE).display()
        ));
    }
    out.push_str(&format!(
        "ok: {} policies, {} routes in `{}` (hash {})\n",
        s.policy_count(),
        s.routes.routes().len(),
        dir.display(),
        s.hash
    ));
    (out, 0)
}

/// The input of `authz explain`: a request like a test case.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// The user's email.
    #[arg(long)]
    pub user: String,
    /// The user's groups, comma-separated; without it, they come from the groups file.
    #[arg(long)]
    pub groups: Option<String>,
    /// The request method.
    #[arg(long)]
    pub method: Option<String>,
    /// The request path (a query string is ignored for matching).
    #[arg(long)]
    pub path: Option<String>,
    /// Ask Cedar about this action instead of the route's (with --resource).
    #[arg(long, requires = "resource")]
    pub action: Option<String>,
    /// The resource, such as `Group::"photographers"` (with --action).
    #[arg(long, requires = "action")]
    pub resource: Option<String>,
    /// The group that owns the resource (a project, or an image's project).
    #[arg(long)]
    pub resource_group: Option<String>,
    /// A file of Cedar entity JSON for the resource.
    #[arg(long, conflicts_with = "resource_group")]
    pub entities: Option<PathBuf>,
    /// The client address (`context.client_ip`).
    #[arg(long)]
    pub client_ip: Option<IpAddr>,
    /// The policy directory [POLICY_DIR or `policies`].
    #[arg(long)]
    pub policy_dir: Option<PathBuf>,
    /// The groups file [GROUPS_FILE or `policies/groups.toml`].
    #[arg(long)]
    pub groups_file: Option<PathBuf>,
}

/// `authz explain`: returns the report and the exit code.
pub fn explain(args: &ExplainArgs) -> (String, i32) {
    let dir = policy_dir(args.policy_dir.as_ref());
    let snapshot = match load(&dir) {
        Ok(s) => s,
        Err(report) => return (report, EXIT_ERROR),
    };
    let groups = match &args.groups {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        None => {
            let user: Email = match args.user.parse() {
                Ok(u) => u,
                Err(e) => return (format!("error: --user: {e}\n"), EXIT_ERROR),
            };
            let file = args
                .groups_file
                .clone()
                .unwrap_or_else(|| env_path(&spec::GROUPS_FILE));
            match GroupIndex::load(&file) {
                Ok(idx) => idx.groups(&user).to_vec(),
                Err(e) => return (format!("error: {e}\n"), EXIT_ERROR),
            }
        }
    };
    let entities = match &args.entities {
        None => None,
        Some(file) => match std::fs::read_to_string(file) {
            Ok(text) => Some(serde_json::Value::String(text)),
            Err(e) => {
                return (
                    format!("error: --entities: `{}`: {e}\n", file.display()),
                    EXIT_ERROR,
                );
            }
        },
    };
    let spec = CaseSpec {
        user: args.user.clone(),
        groups,
        method: args.method.clone(),
        path: args.path.clone(),
        action: args.action.clone(),
        resource: args.resource.clone(),
        resource_group: args.resource_group.clone(),
        entities,
        client_ip: args.client_ip,
        ..CaseSpec::default()
    };
    match resolve(&snapshot, &spec) {
        Ok(r) => (crate::tools::explain::explain(&snapshot, &r), 0),
        Err(e) => (format!("error: {e}\n"), EXIT_ERROR),
    }
}

/// The input of `authz test`.
#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// The policy directory [POLICY_DIR or `policies`].
    pub dir: Option<PathBuf>,
    /// A test file or a folder of them [DIR/tests].
    #[arg(long)]
    pub tests: Option<PathBuf>,
    /// Run again whenever a policy or test file is saved.
    #[arg(long)]
    pub watch: bool,
}

impl TestArgs {
    fn paths(&self) -> (PathBuf, PathBuf) {
        let dir = policy_dir(self.dir.as_ref());
        let tests = self.tests.clone().unwrap_or_else(|| dir.join(TESTS_DIR));
        (dir, tests)
    }
}

/// `authz test`: the table of cases, the details of each failure; 1 when any case fails.
pub fn test(args: &TestArgs) -> (String, i32) {
    let (dir, tests) = args.paths();
    let snapshot = match load(&dir) {
        Ok(s) => s,
        Err(report) => return (report, EXIT_ERROR),
    };
    let cases = match load_cases(&tests) {
        Ok(c) => c,
        Err(problems) => return (crate::tools::test::render_problems(&problems), EXIT_ERROR),
    };
    let mut report = crate::tools::test::run(&snapshot, cases);
    if args.tests.is_some() {
        // Some of the cases only: routes they do not reach are not a gap in the suite.
        report.uncovered_routes.clear();
    }
    let rc = i32::from(report.failed() > 0);
    (crate::tools::test::render(&snapshot, &report), rc)
}

/// The input of `authz diff`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The policy directory in force.
    pub old: PathBuf,
    /// The candidate policy directory.
    pub new: PathBuf,
    /// Test cases to evaluate: a file or a folder [NEW/tests].
    #[arg(long, conflicts_with = "log")]
    pub cases: Option<PathBuf>,
    /// A decision log (JSON lines, as LOG_FILE holds) whose requests to replay.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// With --log: today's membership from this groups file instead of the logged one.
    #[arg(long, requires = "log")]
    pub groups_file: Option<PathBuf>,
}

/// `authz diff`: the decisions that change; 1 when any does, like diff(1).
pub fn diff(args: &DiffArgs) -> (String, i32) {
    use crate::tools::diff::{changes, from_cases, from_log, render};
    let (old, new) = match (load(&args.old), load(&args.new)) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let report: String = [a.err(), b.err()].into_iter().flatten().collect();
            return (report, EXIT_ERROR);
        }
    };
    let (replays, compared) = match &args.log {
        Some(log) => {
            let text = match std::fs::read_to_string(log) {
                Ok(t) => t,
                Err(e) => return (format!("error: `{}`: {e}\n", log.display()), EXIT_ERROR),
            };
            let groups = match args.groups_file.as_deref().map(GroupIndex::load) {
                None => None,
                Some(Ok(g)) => Some(g),
                Some(Err(e)) => return (format!("error: {e}\n"), EXIT_ERROR),
            };
            let r = from_log(&text, groups.as_ref());
            let what = format!(
                "{} logged requests ({} distinct, {} not replayable)",
                r.requests,
                r.replays.len(),
                r.skipped
            );
            (r.replays, what)
        }
        None => {
            let path = args
                .cases
                .clone()
                .unwrap_or_else(|| args.new.join(TESTS_DIR));
            match load_cases(&path) {
                Ok(cases) => {
                    let what = format!("{} cases", cases.len());
                    (from_cases(cases), what)
                }
                Err(problems) => {
                    return (crate::tools::test::render_problems(&problems), EXIT_ERROR);
                }
            }
        }
    };
    let changed = changes(&old, &new, &replays);
    let (a, b) = (
        args.old.display().to_string(),
        args.new.display().to_string(),
    );
    let out = render([(&a, &old), (&b, &new)], &compared, &changed);
    (out, i32::from(!changed.is_empty()))
}

/// The input of `authz fmt`.
#[derive(Debug, Clone, Args)]
pub struct FmtArgs {
    /// Cedar files, or policy directories [POLICY_DIR or `policies`].
    pub paths: Vec<PathBuf>,
    /// Write nothing; exit 1 when a file is not formatted.
    #[arg(long)]
    pub check: bool,
}

/// `authz fmt`: formats in place, or with `--check` lists what is not formatted.
pub fn fmt(args: &FmtArgs) -> (String, i32) {
    use crate::tools::fmt::{cedar_files, format_file};
    let paths = if args.paths.is_empty() {
        vec![policy_dir(None)]
    } else {
        args.paths.clone()
    };
    let mut out = String::new();
    let (mut total, mut changed, mut failed) = (0, 0, 0);
    for path in &paths {
        let files = match cedar_files(path) {
            Ok(f) => f,
            Err(e) => {
                out.push_str(&format!("error: {e}\n"));
                failed += 1;
                continue;
            }
        };
        for file in files {
            total += 1;
            match format_file(&file, args.check) {
                Ok(false) => {}
                Ok(true) => {
                    changed += 1;
                    let verb = if args.check {
                        "not formatted"
                    } else {
                        "formatted"
                    };
                    out.push_str(&format!("{verb}: {}\n", file.display()));
                }
                Err(e) => {
                    failed += 1;
                    out.push_str(&format!("{}\n", e.to_string().trim_end()));
                }
            }
        }
    }
    let summary = if args.check {
        format!("{changed} of {total} Cedar file(s) not formatted")
    } else {
        format!("{changed} of {total} Cedar file(s) formatted")
    };
    out.push_str(&summary);
    if failed > 0 {
        out.push_str(&format!("; {failed} could not be read or parsed\n"));
        return (out, EXIT_ERROR);
    }
    out.push('\n');
    (out, i32::from(args.check && changed > 0))
}
