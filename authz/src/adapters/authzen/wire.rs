//! The AuthZEN 1.0 wire format: request bodies as callers send them (unknown fields ignored),
//! turned into the core's `Evaluation`s, and the decisions and search results written back.

use ipm_policy::cedar::CedarVerdict;
use ipm_policy::evaluate::{EntityRef, Evaluation, Properties, Semantic};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most evaluations in one batch.
pub const MAX_EVALUATIONS: usize = 1000;

/// A subject or a resource.
#[derive(Debug, Deserialize)]
pub struct EntityIn {
    #[serde(rename = "type")]
    pub entity_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub properties: Option<Properties>,
}

#[derive(Debug, Deserialize)]
pub struct ActionIn {
    pub name: String,
    #[serde(default)]
    pub properties: Option<Properties>,
}

/// One evaluation of a batch, or the batch's defaults (every key optional there).
#[derive(Debug, Default, Deserialize)]
pub struct EvaluationIn {
    #[serde(default)]
    pub subject: Option<EntityIn>,
    #[serde(default)]
    pub action: Option<ActionIn>,
    #[serde(default)]
    pub resource: Option<EntityIn>,
    #[serde(default)]
    pub context: Option<Properties>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SemanticIn {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

/// `options`: the batch semantic, and whether the caller wants the reasons.
#[derive(Debug, Default, Deserialize)]
pub struct Options {
    #[serde(default)]
    pub evaluations_semantic: Option<SemanticIn>,
    /// Put the determining policy ids and any errors in each decision's `context`.
    #[serde(default)]
    pub reasons: bool,
}

impl Options {
    pub fn semantic(&self) -> Semantic {
        match self.evaluations_semantic {
            None | Some(SemanticIn::ExecuteAll) => Semantic::ExecuteAll,
            Some(SemanticIn::DenyOnFirstDeny) => Semantic::DenyOnFirstDeny,
            Some(SemanticIn::PermitOnFirstPermit) => Semantic::PermitOnFirstPermit,
        }
    }
}

/// A search's paging: the previous page's `next_token`, and how many results to return.
#[derive(Debug, Default, Deserialize)]
pub struct PageIn {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Any request body: a single evaluation, a batch (top-level keys are the defaults), or a
/// search (the searched position's id is ignored; `page` asks for a page after a token).
#[derive(Debug, Default, Deserialize)]
pub struct RequestIn {
    #[serde(default)]
    pub subject: Option<EntityIn>,
    #[serde(default)]
    pub action: Option<ActionIn>,
    #[serde(default)]
    pub resource: Option<EntityIn>,
    #[serde(default)]
    pub context: Option<Properties>,
    #[serde(default)]
    pub evaluations: Option<Vec<EvaluationIn>>,
    #[serde(default)]
    pub options: Option<Options>,
    #[serde(default)]
    pub page: Option<PageIn>,
}

/// Parses a body; the message names the field at fault (`evaluations[2].subject.type: ...`).
pub fn parse(body: &[u8]) -> Result<RequestIn, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty: send a JSON object".into());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: RequestIn = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("`{path}`: {}", e.inner())
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(parsed)
}

impl RequestIn {
    pub fn options(&self) -> &Options {
        static DEFAULT: Options = Options {
            evaluations_semantic: None,
            reasons: false,
        };
        self.options.as_ref().unwrap_or(&DEFAULT)
    }

    /// The top-level 4-tuple as one evaluation.
    pub fn single(&self) -> Result<Evaluation<'_>, String> {
        static NO_ITEM: EvaluationIn = EvaluationIn {
            subject: None,
            action: None,
            resource: None,
            context: None,
        };
        self.merged(&NO_ITEM, "")
    }

    /// The batch's evaluations, each completed with the top-level defaults.
    pub fn batch<'a>(&'a self, items: &'a [EvaluationIn]) -> Result<Vec<Evaluation<'a>>, String> {
        if items.len() > MAX_EVALUATIONS {
            return Err(format!(
                "{} evaluations: at most {MAX_EVALUATIONS} in one request",
                items.len()
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(
                self.merged(item, &format!("evaluations[{i}]."))
                    .map_err(|e| {
                        format!("{e} (neither in evaluations[{i}] nor a top-level default)")
                    })?,
            );
        }
        Ok(out)
    }

    /// A search's question, with `searched` (`subject` or `resource`) not needing an id, or
    /// the action not needed (`action` search).
    pub fn search(&self, searched: &str) -> Result<Evaluation<'_>, String> {
        let subject = entity(self.subject.as_ref(), "subject", searched != "subject")?;
        let resource = entity(self.resource.as_ref(), "resource", searched != "resource")?;
        let (action, action_properties) = match (searched, &self.action) {
            ("action", _) => ("", None),
            (_, Some(a)) => (a.name.as_str(), a.properties.as_ref()),
            (_, None) => return Err("`action` is missing".into()),
        };
        Ok(Evaluation {
            subject,
            action,
            action_properties,
            resource,
            context: self.context.as_ref(),
        })
    }

    fn merged<'a>(&'a self, item: &'a EvaluationIn, at: &str) -> Result<Evaluation<'a>, String> {
        let subject = item.subject.as_ref().or(self.subject.as_ref());
        let resource = item.resource.as_ref().or(self.resource.as_ref());
        let action = item
            .action
            .as_ref()
            .or(self.action.as_ref())
            .ok_or_else(|| format!("`{at}action` is missing"))?;
        Ok(Evaluation {
            subject: entity(subject, &format!("{at}subject"), true)?,
            action: &action.name,
            action_properties: action.properties.as_ref(),
            resource: entity(resource, &format!("{at}resource"), true)?,
            context: item.context.as_ref().or(self.context.as_ref()),
        })
    }
}

fn entity<'a>(
    e: Option<&'a EntityIn>,
    name: &str,
    id_required: bool,
) -> Result<EntityRef<'a>, String> {
    let e = e.ok_or_else(|| format!("`{name}` is missing"))?;
    let id = match (&e.id, id_required) {
        (Some(id), _) => id.as_str(),
        (None, false) => "",
        (None, true) => return Err(format!("`{name}.id` is missing")),
    };
    Ok(EntityRef {
        entity_type: &e.entity_type,
        id,
        properties: e.properties.as_ref(),
    })
}

/// `{"decision": …}`, with the reasons in `context` when asked for.
pub fn decision(v: &CedarVerdict, reasons: bool) -> Value {
    if !reasons {
        return json!({ "decision": v.allowed });
    }
    let summary = match (v.allowed, v.policies.is_empty(), v.errors.is_empty()) {
        (true, _, _) => format!("permitted by {}", v.policies.join(", ")),
        (false, false, _) => format!("forbidden by {}", v.policies.join(", ")),
        (false, true, true) => "no policy permits it".to_string(),
        (false, true, false) => "not decided: see errors".to_string(),
    };
    json!({
        "decision": v.allowed,
        "context": {
            "reason_admin": { "en": summary },
            "policies": v.policies,
            "errors": v.errors,
        }
    })
}

/// A search's answer: one page of results, and the token of the next (empty after the last).
pub fn results(results: Vec<Value>, next_token: Option<String>) -> Value {
    json!({ "results": results, "page": { "next_token": next_token.unwrap_or_default() } })
}
