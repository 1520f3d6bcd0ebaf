//! `.env.example` is the spec rendered: every variable with its documentation and default, so
//! the file cannot drift from what the binaries read (a test compares the two).

use super::{AnyVar, OWNED_PREFIXES, Program, Readers, SECTIONS};

/// The lines at the top of `.env.example`.
const HEADER: &str = "ipm configuration. Copy to `.env` (scripts/run does this for you, with a fresh secret) or set\n\
these as environment variables; real environment variables win over `.env`.\n\
Every variable is shown with its default; commented-out ones have none.";

/// The width of a `# --- title ---` line.
const RULE_WIDTH: usize = 98;

/// The text of `.env.example`.
pub fn env_example() -> String {
    let mut out = String::new();
    comment(&mut out, HEADER);
    let owned: Vec<String> = OWNED_PREFIXES
        .iter()
        .map(|(prefix, readers)| {
            let by = match readers {
                Readers::Authz => Program::Authz.name(),
                Readers::Api => Program::Api.name(),
                Readers::Both => "both",
            };
            format!("{prefix}* ({by})")
        })
        .collect();
    comment(
        &mut out,
        &format!(
            "Unknown variables under these prefixes are refused (a typo guard):\n{}.",
            owned.join(", ")
        ),
    );
    for section in SECTIONS {
        out.push('\n');
        let title = format!("# --- {} ", section.title);
        out.push_str(&format!("{title:-<RULE_WIDTH$}\n"));
        for var in section.vars {
            comment(&mut out, var.doc());
            out.push_str(&line(*var));
            out.push('\n');
        }
    }
    out
}

/// `NAME=value`, commented out when the variable is unset by default.
pub(super) fn line(var: &dyn AnyVar) -> String {
    let value = var.shown().map(|v| quoted(&v)).unwrap_or_default();
    let hash = if var.is_commented() { "# " } else { "" };
    format!("{hash}{}={value}", var.name())
}

/// A value as a `.env` line reads it back: double quotes around spaces and quotes.
fn quoted(value: &str) -> String {
    if value
        .chars()
        .any(|c| c.is_whitespace() || "'\"\\$#".contains(c))
    {
        let escaped = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$");
        format!("\"{escaped}\"")
    } else {
        value.to_string()
    }
}

fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::{all, find};
    use super::*;

    const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.env.example");

    /// How to bring the file in line with the spec, for the failure messages.
    const REWRITE: &str = "after changing the spec, rewrite it: IPM_WRITE_ENV_EXAMPLE=1 cargo test -p ipm-runtime --lib write_env_example";

    fn the_file() -> String {
        std::fs::read_to_string(PATH).unwrap_or_else(|e| unreachable!("{PATH}: {e}"))
    }

    /// Not a check: rewrites `.env.example` from the spec when `IPM_WRITE_ENV_EXAMPLE=1`, and
    /// does nothing otherwise (a test run, which reads the file concurrently, never writes it).
    #[test]
    fn write_env_example() {
        if std::env::var_os("IPM_WRITE_ENV_EXAMPLE").is_some_and(|v| v == "1") {
            std::fs::write(PATH, env_example()).unwrap_or_else(|e| unreachable!("{PATH}: {e}"));
        }
    }

    /// The variable lines of a `.env` text: `NAME=value` or `# NAME=value`, the value one
    /// word or quoted (so prose such as `# DEBUG=true allows…` is not one).
    fn variable_lines(text: &str) -> Vec<(&str, &str)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# ").unwrap_or(l).split_once('='))
            .filter(|(name, value)| {
                name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    && (value.starts_with('"') || !value.contains(char::is_whitespace))
            })
            .collect()
    }

    #[test]
    fn env_example_lists_every_variable_and_nothing_else() {
        let file = the_file();
        let listed: BTreeSet<&str> = variable_lines(&file).iter().map(|(n, _)| *n).collect();
        let missing: Vec<String> = all()
            .filter(|v| !listed.contains(v.name()))
            .map(|v| format!("# {}\n{}", v.doc().replace('\n', "\n# "), line(v)))
            .collect();
        assert!(
            missing.is_empty(),
            ".env.example lacks:\n{}\n{REWRITE}",
            missing.join("\n")
        );
        let unknown: Vec<&&str> = listed.iter().filter(|n| find(n).is_none()).collect();
        assert!(
            unknown.is_empty(),
            ".env.example lists variables no binary reads: {unknown:?}; {REWRITE}"
        );
    }

    #[test]
    fn env_example_shows_each_default_under_its_documentation() {
        let file = the_file();
        for var in all() {
            let block = format!("# {}\n{}\n", var.doc().replace('\n', "\n# "), line(var));
            assert!(
                file.contains(&block),
                ".env.example should hold, with the default of the spec:\n{block}{REWRITE}"
            );
        }
    }

    #[test]
    fn env_example_is_the_spec_rendered() {
        let (file, want) = (the_file(), env_example());
        for (n, (got, line)) in file.lines().zip(want.lines()).enumerate() {
            assert_eq!(
                got,
                line,
                ".env.example line {} differs from the spec; {REWRITE}",
                n + 1
            );
        }
        assert_eq!(file, want, "{REWRITE}");
    }

    #[test]
    fn env_example_loads_as_the_defaults() {
        let text = env_example();
        let loaded = dotenvy::from_read_iter(text.as_bytes())
            .collect::<Result<Vec<(String, String)>, _>>()
            .unwrap_or_else(|e| unreachable!("{e}"));
        for (name, value) in &loaded {
            let var = find(name).unwrap_or_else(|| unreachable!("{name}"));
            let want = var.shown().unwrap_or_default();
            assert_eq!(value, &want, "{name} as `.env` reads it");
        }
        let set: usize = all().filter(|v| !v.is_commented()).count();
        assert_eq!(loaded.len(), set);
    }

    #[test]
    fn env_example_lines_fit() {
        for line in env_example().lines() {
            assert!(line.len() <= RULE_WIDTH, "longer than {RULE_WIDTH}: {line}");
        }
    }
}
