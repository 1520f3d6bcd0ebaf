//! The `authz` command line: `serve`, `check` and `explain`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::decision::{CedarQuery, decide};
use crate::groups::{GroupIndex, Groups};
use crate::identity::Email;
use crate::policy::PolicySnapshot;

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
    /// Show how a request would be decided and which policies decided it.
    Explain {
        /// The user's email.
        #[arg(long)]
        user: String,
        /// The user's groups, comma-separated; without it, they come from the groups file.
        #[arg(long)]
        groups: Option<String>,
        /// The request method.
        #[arg(long)]
        method: String,
        /// The request path (a query string is ignored).
        #[arg(long)]
        path: String,
        /// The policy directory [POLICY_DIR or `policies`].
        #[arg(long)]
        policy_dir: Option<PathBuf>,
        /// The groups file [GROUPS_FILE or `policies/groups.toml`].
        #[arg(long)]
        groups_file: Option<PathBuf>,
    },
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// `authz check`: prints every problem with its file, line, column and source line.
pub fn check(dir: Option<PathBuf>) -> i32 {
    let dir = dir.unwrap_or_else(|| env_path("POLICY_DIR", "policies"));
    match PolicySnapshot::load(&dir) {
        Ok(s) => {
            for w in &s.warnings {
                eprintln!("warning: {}", w.rendered);
            }
            println!(
                "ok: {} policies, {} routes in `{}` (hash {})",
                s.policy_count(),
                s.routes.routes().len(),
                dir.display(),
                s.hash
            );
            0
        }
        Err(e) => {
            eprintln!("{}", e.render());
            eprintln!(
                "error: {} problem(s) in `{}`",
                e.problems.len(),
                dir.display()
            );
            1
        }
    }
}

/// The input of `authz explain`.
#[derive(Debug, Clone)]
pub struct ExplainArgs {
    pub user: String,
    pub groups: Option<String>,
    pub method: String,
    pub path: String,
    pub policy_dir: Option<PathBuf>,
    pub groups_file: Option<PathBuf>,
}

/// `authz explain`: returns the report and the exit code.
pub fn explain(args: &ExplainArgs) -> (String, i32) {
    let dir = args
        .policy_dir
        .clone()
        .unwrap_or_else(|| env_path("POLICY_DIR", "policies"));
    let snapshot = match PolicySnapshot::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            return (
                format!("{}\nerror: the policies do not load", e.render()),
                2,
            );
        }
    };
    let user: Email = match args.user.parse() {
        Ok(u) => u,
        Err(e) => return (format!("error: --user: {e}"), 2),
    };
    let groups: Groups = match &args.groups {
        Some(list) => {
            let mut g: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            g.sort();
            g.dedup();
            g.into()
        }
        None => {
            let file = args
                .groups_file
                .clone()
                .unwrap_or_else(|| env_path("GROUPS_FILE", "policies/groups.toml"));
            match GroupIndex::load(&file) {
                Ok(idx) => idx.groups(&user),
                Err(e) => return (format!("error: {e}"), 2),
            }
        }
    };
    let mut out = String::new();
    out.push_str(&format!(
        "user:     {user}\ngroups:   {}\n",
        groups.join(", ")
    ));
    let method = args.method.to_ascii_uppercase();
    let Some(route) = snapshot.routes.matches(&method, &args.path) else {
        out.push_str(&format!(
            "route:    none matches `{method} {}`\ndecision: DENY (403, no_route)\n",
            args.path
        ));
        return (out, 0);
    };
    out.push_str(&format!(
        "route:    {} {}\naction:   Action::\"{}\"\nresource: {}::\"{}\"\n",
        method, route.pattern, route.action, route.resource_type, route.resource_id
    ));
    let path = args.path.split(['?', '#']).next().unwrap_or_default();
    let q = CedarQuery {
        user: &user,
        groups: &groups,
        route: &route,
        method: &method,
        path,
        client_ip: None,
        resource_entities: &[],
    };
    match decide(&snapshot, &q) {
        Ok(v) => {
            let verdict = if v.allowed {
                "ALLOW (200)"
            } else {
                "DENY (403, policy_denied)"
            };
            out.push_str(&format!("decision: {verdict}\n"));
            if v.policies.is_empty() {
                out.push_str("policies: none matched (default deny)\n");
            } else {
                for id in &v.policies {
                    let file = snapshot.policy_files.get(id).map_or("?", String::as_str);
                    out.push_str(&format!("policy:   {id} ({file})\n"));
                }
            }
            for e in &v.errors {
                out.push_str(&format!("error:    {e}\n"));
            }
        }
        Err(e) => out.push_str(&format!("decision: DENY (403, policy_error): {e}\n")),
    }
    (out, 0)
}
