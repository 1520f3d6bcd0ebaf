//! The entities file (`entities.json`): attributes and parents that requests do not carry
//! (users' roles, say), in Cedar's entities JSON, validated against the schema with the set.

use cedar_policy::{Entities, Schema};

use crate::diagnostics::Problem;

/// The file's entities and the schema's action entities together, as one store; without the
/// file, the action entities alone. Every problem is added to `problems`.
pub(super) fn load(
    file: &str,
    text: Option<&String>,
    schema: &Schema,
    actions: &Entities,
    problems: &mut Vec<Problem>,
) -> Entities {
    let Some(text) = text else {
        return actions.clone();
    };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let mut p = Problem::whole_file(file, format!("not JSON: {e}"));
            p.line = Some(e.line());
            p.column = Some(e.column());
            p.rendered = format!("{file}:{}:{}: not JSON: {e}", e.line(), e.column());
            problems.push(p);
            return actions.clone();
        }
    };
    // With the schema, Cedar checks every attribute's type, the allowed parents, and adds the
    // action entities (and their hierarchy).
    match Entities::from_json_value(value, Some(schema)) {
        Ok(entities) => entities,
        Err(e) => {
            problems.push(Problem::from_diagnostic(file, text, &e));
            actions.clone()
        }
    }
}
