//! Load problems that point at the line to fix: repeated policy ids, routes the schema
//! refuses (with the closest declared action), validation errors placed in their file.

use std::collections::HashMap;
use std::path::Path;

use cedar_policy::{Context, PolicyId, Request, RestrictedExpression, Schema};

use super::{ID_ANNOTATION, SourceFiles, entity_uid};
use crate::diagnostics::{Problem, edit_distance};

/// Where the `nth` `@id("id")` annotation of a file starts, when it is written plainly.
fn annotation_offset(text: &str, id: &str, nth: usize) -> Option<usize> {
    let needle = format!("@{ID_ANNOTATION}(\"{id}\")");
    text.match_indices(&needle).nth(nth).map(|(i, _)| i)
}

/// A repeated policy id, pointing at the repeated annotation and naming the first use.
pub(super) fn duplicate_id(
    file: &str,
    text: &str,
    id: &str,
    nth: usize,
    (first, first_text): (&str, &str),
) -> Problem {
    let first_at = annotation_offset(first_text, id, 0)
        .map(|off| {
            format!(
                "{first}:{}",
                crate::diagnostics::line_col(first_text, off).0
            )
        })
        .unwrap_or_else(|| first.to_string());
    let message = format!("policy id `{id}` is already used in `{first_at}`");
    let Some(offset) = annotation_offset(text, id, nth) else {
        return Problem::whole_file(file, message);
    };
    let len = ID_ANNOTATION.len() + id.len() + 5;
    let diag = miette::MietteDiagnostic::new(message)
        .with_label(miette::LabeledSpan::at(offset..offset + len, "this id is taken"))
        .with_help(
            "ids name policies in decision logs and tests, so each must be unique across files; rename one",
        );
    Problem::from_diagnostic(file, text, &diag)
}

pub(super) fn locate(
    dir: &Path,
    files: &SourceFiles,
    file_of_id: &HashMap<PolicyId, String>,
    id: &PolicyId,
    diag: &dyn miette::Diagnostic,
) -> Problem {
    match file_of_id
        .get(id)
        .and_then(|f| files.get(f).map(|t| (f, t)))
    {
        Some((file, text)) => {
            let mut p = Problem::from_diagnostic(&dir.join(file).display().to_string(), text, diag);
            p.message = format!("policy `{id}`: {}", p.message);
            p
        }
        None => Problem::whole_file(&dir.display().to_string(), format!("policy `{id}`: {diag}")),
    }
}

/// A route the schema refuses, pointing at its `action` (or `resource`) line in `routes.toml`,
/// with the closest declared action when the name looks like a typo.
pub(super) fn route_problem(
    file: &str,
    text: &str,
    schema: &Schema,
    index: usize,
    spec: &crate::routes::RouteSpec,
    message: String,
) -> Problem {
    // Sorted: the schema keeps its actions in a hash map, and a message must not change
    // from one load of the same files to the next.
    let mut declared: Vec<String> = schema
        .actions()
        .map(|a| a.id().unescaped().to_string())
        .collect();
    declared.sort();
    let unknown_action = !declared.contains(&spec.action);
    let key = if unknown_action { "action" } else { "resource" };
    // Headers start a line; a comment that mentions one does not count.
    let block_start = text
        .match_indices("[[route]]")
        .filter(|(i, _)| *i == 0 || text.as_bytes().get(i - 1) == Some(&b'\n'))
        .nth(index)
        .map(|(i, _)| i);
    let line = block_start.and_then(|start| {
        let block = text.get(start..)?;
        let end = block
            .get(1..)?
            .find("[[route]]")
            .map_or(block.len(), |e| e + 1);
        let mut offset = start;
        for line in block.get(..end)?.split_inclusive('\n') {
            if line.trim_start().starts_with(key) {
                let indent = line.len() - line.trim_start().len();
                return Some((offset + indent, line.trim().len()));
            }
            offset += line.len();
        }
        None
    });
    let Some((offset, len)) = line else {
        return Problem::whole_file(file, message);
    };
    let mut diag = miette::MietteDiagnostic::new(message)
        .with_label(miette::LabeledSpan::at(offset..offset + len, "here"));
    if unknown_action {
        let help = match closest(&spec.action, &declared) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("the schema declares {}", declared.join(", ")),
        };
        diag = diag.with_help(help);
    }
    Problem::from_diagnostic(file, text, &diag)
}

/// The candidate nearest to `name` by edit distance, when it is near enough to be a typo.
fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= 2.max(name.len() / 4))
        .min()
        .map(|(_, c)| c.as_str())
}

/// Checks, at load time, that the schema declares `action` for a `User` acting on a resource
/// of type `resource_type` with the request context.
pub(super) fn check_request_shape(
    schema: &Schema,
    action: &str,
    resource_type: &str,
) -> Result<(), String> {
    let action = entity_uid("Action", action)?;
    let principal = entity_uid("User", "probe@example.com")?;
    let resource = entity_uid(resource_type, "probe")?;
    let ctx = Context::from_pairs([
        (
            "method".to_string(),
            RestrictedExpression::new_string("GET".into()),
        ),
        (
            "path".to_string(),
            RestrictedExpression::new_string("/".into()),
        ),
    ])
    .map_err(|e| e.to_string())?;
    Request::new(principal, action, resource, ctx, Some(schema)).map_err(|e| e.to_string())?;
    Ok(())
}

/// A `User` entity written in a form no principal takes (`User::"Bob@example.com"` while
/// addresses compare in lower case): the policy could never apply to anyone, and for a
/// `forbid` that fails open. Says how to write it.
pub(super) fn user_literal_case(policy: &cedar_policy::Policy) -> Option<String> {
    policy.entity_literals().into_iter().find_map(|uid| {
        if uid.type_name().basename() != "User" {
            return None;
        }
        let id = uid.id().unescaped();
        let email = crate::identity::Email::parse_bytes(id.as_bytes()).ok()?;
        (email.as_str() != id).then(|| {
            format!(
                "`User::\"{id}\"` can never match: addresses compare as `{email}` \
                 (EMAIL_LOCAL_PART_CASE={}); write `User::\"{email}\"`",
                match crate::identity::local_part_case() {
                    crate::identity::LocalPartCase::Insensitive => "insensitive",
                    crate::identity::LocalPartCase::Sensitive => "sensitive",
                }
            )
        })
    })
}
