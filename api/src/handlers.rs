//! What every handler shares (`ApiState`, JSON bodies in) and the service routes: the
//! OpenAPI document, who the caller is, liveness and readiness. Projects and images have
//! modules of their own.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use warp::http::StatusCode;

use crate::access::RequestMeta;
use crate::error::ApiError;
use crate::reply::{Reply, json, json_body, respond};
use crate::state::ApiState;

/// Parses a JSON body into `T`: a syntax error is 400, a body of the wrong shape (unknown,
/// missing or mistyped field) is 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return ApiError::InvalidJson(inner.to_string());
        }
        let message = inner.to_string();
        // Unknown and missing fields are reported on the enclosing object; name the field.
        let named = message.split('`').nth(1).filter(|_| {
            message.starts_with("unknown field") || message.starts_with("missing field")
        });
        let field = match (named, path.as_str()) {
            (Some(f), p) if p == f || p.ends_with(&format!(".{f}")) => p.to_string(),
            (Some(f), ".") => f.to_string(),
            (Some(f), p) => format!("{p}.{f}"),
            (None, ".") => "body".to_string(),
            (None, p) => p.to_string(),
        };
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_string();
        ApiError::InvalidField { field, message }
    })?;
    de.end().map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok(value)
}

/// `GET /api/openapi.json`.
pub async fn openapi(meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            Ok(json_body(StatusCode::OK, (*s.openapi).clone()))
        }
        .await,
    )
}

/// Who the caller is, as `GET /api/me` answers.
#[derive(Debug, Serialize)]
struct Me<'a> {
    email: &'a str,
    groups: &'a [String],
    /// The caller's groups the policies let them create projects in.
    create_groups: Vec<&'a str>,
}

/// `GET /api/me`: the caller's email and groups, as the policies saw them, and where they
/// may create projects (the route's `target`, asked about each group on the same decision).
pub async fn me(meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let groups = &caller.decision().groups;
            let create_groups = groups
                .iter()
                .filter(|g| s.access.may_target(&caller, &meta, g))
                .map(String::as_str)
                .collect();
            Ok(json(
                StatusCode::OK,
                &Me {
                    email: caller.user.as_str(),
                    groups,
                    create_groups,
                },
            ))
        }
        .await,
    )
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Reply {
    json_body(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// `GET /readyz`: the database answers and the policies on disk are the ones in force.
pub async fn readyz(s: ApiState) -> Reply {
    let db = s.db.ping().await;
    if let Err(e) = &db {
        tracing::warn!(error = %e, "readiness: database unavailable");
    }
    let storage = s.images.storage.check().await;
    if let Err(e) = &storage {
        tracing::warn!(error = %e, "readiness: storage unavailable");
    }
    let pending = s.store.pending_error();
    let snapshot = s.store.snapshot();
    let now = std::time::Instant::now();
    let changes = &s.access.enforcer.metrics.pending_changes;
    let ready = db.is_ok() && storage.is_ok() && pending.is_none() && !changes.stalled(now);
    let body = json!({
        "ready": ready,
        "database": { "backend": s.db.backend(), "ok": db.is_ok() },
        "storage": { "backend": s.images.storage.backend(), "ok": storage.is_ok() },
        "policies": {
            "hash": snapshot.hash,
            "count": snapshot.policy_count(),
            "pending_error": pending.is_some(),
            "pending_changes": changes.to_json(now),
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::CreateProject;

    #[test]
    fn json_errors_name_the_field() {
        let field = |b: &str| match parse_json::<CreateProject>(b.as_bytes()) {
            Err(ApiError::InvalidField { field, .. }) => field,
            Err(ApiError::InvalidJson(_)) => "json".into(),
            other => format!("{other:?}"),
        };
        assert_eq!(field("{"), "json");
        assert_eq!(field(r#"{"name":"a","meta_group_id":"g"} x"#), "json");
        assert_eq!(
            field(r#"{"name":"a","meta_group_id":"g","owner":1}"#),
            "owner"
        );
        assert_eq!(field(r#"{"meta_group_id":"g"}"#), "name");
        assert_eq!(field(r#"{"name":5,"meta_group_id":"g"}"#), "name");
        assert_eq!(field("[]"), "body");
    }
}
