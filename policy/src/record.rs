//! The decision record: one line per decision, written by every enforcement point (authz's
//! adapters and ipm-api) and read back by `authz diff --log` to replay real traffic.

use serde::{Deserialize, Serialize};

use crate::cedar::CedarVerdict;
use crate::denial::Denial;
use crate::evaluate::Evaluation;
use crate::pipeline::Decision;

/// The log target decision records are written under.
pub const TARGET: &str = "authz::decision";
/// The message of a decision record's log line.
pub const MESSAGE: &str = "decision";

/// Longest method and path kept in a record.
const MAX_METHOD: usize = 16;
const MAX_PATH: usize = 512;

/// One decision, as logged. Never holds a secret: the proxy secret is not part of it, and the
/// path is kept without its query string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecisionRecord {
    /// Which enforcement point decided: `nginx`, `envoy_grpc`, `envoy_http`, `api`, `authzen`.
    pub adapter: String,
    pub user: String,
    /// The user's groups at the time, comma-separated, so a replay sees the same membership.
    pub groups: String,
    pub method: String,
    pub path: String,
    /// `Action::"…"`, empty when no route matched.
    pub action: String,
    /// `Type::"id"`, empty when no route matched.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    pub status: u16,
    pub reason: String,
    /// The determining policy ids, comma-separated.
    pub policies: String,
    /// Evaluation errors, `; `-separated.
    pub errors: String,
    /// The policy snapshot's hash (first 12 hex digits), empty before a snapshot was read.
    pub snapshot: String,
    pub latency_us: u64,
}

impl DecisionRecord {
    /// The record of `d`; `method` and `uri` as the request carried them. The path is the
    /// canonical one policies saw when a route matched, else the URI without its query.
    pub fn new(adapter: &str, d: &Decision, method: &str, uri: &str, latency_us: u64) -> Self {
        let path = d.route.as_ref().map_or_else(
            || uri.split(['?', '#']).next().unwrap_or_default(),
            |r| r.path.as_str(),
        );
        let (action, resource) = d
            .route
            .as_ref()
            .map_or((String::new(), String::new()), |r| {
                (
                    format!("Action::\"{}\"", r.action),
                    format!("{}::\"{}\"", r.resource_type, r.resource_id),
                )
            });
        Self {
            adapter: adapter.to_string(),
            user: d.user.as_ref().map(ToString::to_string).unwrap_or_default(),
            groups: d.groups.join(","),
            method: truncate(method, MAX_METHOD).to_string(),
            path: truncate(path, MAX_PATH).to_string(),
            action,
            resource,
            decision: if d.is_allowed() { "allow" } else { "deny" }.to_string(),
            status: d.status(),
            reason: d
                .denial
                .map_or("policy_allowed", Denial::reason)
                .to_string(),
            policies: d.policies.join(","),
            errors: d.errors.join("; "),
            snapshot: d
                .snapshot()
                .map(|s| crate::snapshot::short_hash(&s.hash).to_string())
                .unwrap_or_default(),
            latency_us,
        }
    }

    /// The record of a question asked directly (AuthZEN), on `endpoint`: the subject is the
    /// `user`, Cedar's action and resource as asked. `status` is 200 whatever the decision: a
    /// denial is an answer there, not an error.
    pub fn evaluated(
        adapter: &str,
        endpoint: &str,
        q: &Evaluation<'_>,
        verdict: &CedarVerdict,
        snapshot_hash: &str,
        latency_us: u64,
    ) -> Self {
        let uid = |ty: &str, id: &str| truncate(&format!("{ty}::\"{id}\""), MAX_PATH).to_string();
        let reason = match (verdict.allowed, verdict.errors.is_empty()) {
            (true, _) => "policy_allowed",
            (false, true) => Denial::PolicyDenied.reason(),
            (false, false) => Denial::PolicyError.reason(),
        };
        Self {
            adapter: adapter.to_string(),
            user: uid(q.subject.entity_type, q.subject.id),
            groups: String::new(),
            method: "POST".to_string(),
            path: truncate(endpoint, MAX_PATH).to_string(),
            action: uid("Action", q.action),
            resource: uid(q.resource.entity_type, q.resource.id),
            decision: if verdict.allowed { "allow" } else { "deny" }.to_string(),
            status: 200,
            reason: reason.to_string(),
            policies: verdict.policies.join(","),
            errors: verdict.errors.join("; "),
            snapshot: crate::snapshot::short_hash(snapshot_hash).to_string(),
            latency_us,
        }
    }

    /// Reads a record from one JSON log line; `None` for any other line.
    pub fn parse_line(line: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let field = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        if field("message") != Some(MESSAGE) || !matches!(field("target"), None | Some(TARGET)) {
            return None;
        }
        serde_json::from_value(v).ok()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_from_its_log_line() {
        let r = DecisionRecord {
            adapter: "api".into(),
            user: "alice@example.com".into(),
            groups: "team-a".into(),
            method: "GET".into(),
            path: "/api/projects".into(),
            decision: "allow".into(),
            status: 200,
            ..DecisionRecord::default()
        };
        let mut line = serde_json::to_value(&r).unwrap_or_default();
        line["message"] = "decision".into();
        line["target"] = TARGET.into();
        line["level"] = "INFO".into();
        assert_eq!(DecisionRecord::parse_line(&line.to_string()), Some(r));
        assert_eq!(DecisionRecord::parse_line(r#"{"message":"other"}"#), None);
        assert_eq!(DecisionRecord::parse_line("not json"), None);
    }

    #[test]
    fn paths_lose_their_query_and_are_bounded() {
        let d = Decision::deny(Denial::MissingUser);
        let long = format!("/a?token=secret{}", "x".repeat(10));
        let r = DecisionRecord::new("nginx", &d, "GET", &long, 1);
        assert_eq!(r.path, "/a");
        let r = DecisionRecord::new("nginx", &d, "GET", &"/é".repeat(600), 1);
        assert!(r.path.len() <= MAX_PATH);
    }

    #[test]
    fn a_routed_request_is_recorded_with_its_canonical_path() {
        let routes = crate::routes::RouteTable::parse(
            "[[route]]\nmethod = \"GET\"\npath = \"/api/images/{id}/content\"\naction = \"ReadImage\"\nresource = { type = \"Image\", id = \"{id}\" }\n",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let uri = "/api/images/i-1/%63ontent?token=x";
        let mut d = Decision::deny(Denial::PolicyDenied);
        d.route = routes.matches("GET", uri);
        let r = DecisionRecord::new("nginx", &d, "GET", uri, 1);
        assert_eq!(r.path, "/api/images/i-1/content");
    }
}
