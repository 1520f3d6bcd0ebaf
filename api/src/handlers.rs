//! The API's handlers: authorize, validate, act on the database, answer JSON. Every path
//! through a handler ends in `respond`, which turns an `ApiError` into its status and body.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ipm_policy::entities::parse_id;
use ipm_policy::groups::is_valid_group_name;
use ipm_policy::store::PolicyStore;
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;
use warp::http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use warp::http::{Response, StatusCode};
use warp::hyper::body::Bytes;

use crate::access::{Access, RequestMeta};
use crate::db::{Db, DbError};
use crate::error::ApiError;
use crate::models::{
    CreateProject, DEFAULT_LIMIT, ListQuery, MAX_LIMIT, ProjectPage, UpdateProject,
};

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub access: Arc<Access>,
    pub db: Db,
    pub store: Arc<PolicyStore>,
    pub openapi: Arc<Bytes>,
    pub images: Arc<crate::images::Images>,
}

type Reply = Response<Bytes>;

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn json_value<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => json_response(status, body),
        Err(_) => error_response(&ApiError::DatabaseUnavailable),
    }
}

/// The reply for an error: its status and JSON body.
pub fn error_response(e: &ApiError) -> Reply {
    json_response(e.status(), e.body())
}

fn respond(result: Result<Reply, ApiError>) -> Reply {
    result.unwrap_or_else(|e| error_response(&e))
}

fn db_error(e: DbError) -> ApiError {
    match e {
        DbError::Conflict => ApiError::Conflict {
            field: "name".into(),
            message: "is already used by another project in this group".into(),
        },
        other => {
            tracing::error!(error = %other, "database call failed");
            ApiError::DatabaseUnavailable
        }
    }
}

/// The opaque cursor: a version byte and the last id of the page.
const CURSOR_VERSION: u8 = 1;

pub fn encode_cursor(id: Uuid) -> String {
    let mut raw = [0u8; 17];
    raw[0] = CURSOR_VERSION;
    raw[1..].copy_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(s: &str) -> Option<Uuid> {
    let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
    match raw.split_first() {
        Some((&CURSOR_VERSION, id)) => Uuid::from_slice(id).ok(),
        _ => None,
    }
}

/// Parses `limit`, `cursor` and `group`; anything else, or any of them twice, is refused.
pub fn parse_list_query(query: &str) -> Result<ListQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::invalid_param("query", "is not a valid query string"))?;
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        after: None,
        group: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in &pairs {
        if seen.contains(&k.as_str()) {
            return Err(ApiError::invalid_param(k, "is given more than once"));
        }
        seen.push(k);
        match k.as_str() {
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid_param(
                            "limit",
                            format!("must be a whole number from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            "cursor" => {
                q.after = Some(decode_cursor(v).ok_or_else(|| {
                    ApiError::invalid_param(
                        "cursor",
                        "is not a cursor this API returned (pass `next_cursor` unchanged)",
                    )
                })?);
            }
            "group" => {
                if !is_valid_group_name(v) {
                    return Err(ApiError::invalid_param("group", "is not a group name"));
                }
                q.group = Some(v.clone());
            }
            other => {
                let name: String = other.chars().take(64).collect();
                return Err(ApiError::invalid_param(
                    &name,
                    "is not a parameter of this route (use limit, cursor, group)",
                ));
            }
        }
    }
    Ok(q)
}

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

/// A project id from the path: the canonical UUID form only.
fn project_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_id(raw).ok_or_else(|| {
        ApiError::invalid_param("id", "must be a UUID in lower-case hyphenated form")
    })
}

/// `GET /api/projects`: the caller's groups' projects, in creation order.
pub async fn list_projects(meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let q = parse_list_query(meta.query())?;
            let groups: Vec<String> = match &q.group {
                Some(g) => caller.groups.iter().filter(|x| *x == g).cloned().collect(),
                None => caller.groups.to_vec(),
            };
            let mut items = s.db.list(&groups, &q).await.map_err(db_error)?;
            let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
            let next_cursor = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|p| encode_cursor(p.id))
            } else {
                None
            };
            Ok(json_value(
                StatusCode::OK,
                &ProjectPage { items, next_cursor },
            ))
        }
        .await,
    )
}

/// `POST /api/projects`: a new project in a group the caller may create projects in.
pub async fn create_project(meta: RequestMeta, body: Bytes, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let input: CreateProject = parse_json(&body)?;
            let new = input.validate(caller.user.as_str())?;
            if !s.access.may_target(&caller, &meta, &new.meta_group_id) {
                return Err(ApiError::GroupForbidden);
            }
            let project = s.db.insert(&new).await.map_err(db_error)?;
            tracing::info!(
                target: "ipm_api::audit",
                user = caller.user.as_str(),
                project = %project.id,
                group = %project.meta_group_id,
                "project created"
            );
            let mut r = json_value(StatusCode::CREATED, &project);
            if let Ok(v) = HeaderValue::from_str(&format!("/api/projects/{}", project.id)) {
                r.headers_mut().insert(LOCATION, v);
            }
            Ok(r)
        }
        .await,
    )
}

/// `GET /api/projects/{id}`.
pub async fn get_project(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            let id = project_id(&id)?;
            let project =
                s.db.get(id)
                    .await
                    .map_err(db_error)?
                    .ok_or(ApiError::ProjectNotFound)?;
            Ok(json_value(StatusCode::OK, &project))
        }
        .await,
    )
}

/// `PATCH /api/projects/{id}`: changes the name and/or the description.
pub async fn update_project(id: String, meta: RequestMeta, body: Bytes, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let id = project_id(&id)?;
            let change = parse_json::<UpdateProject>(&body)?.validate()?;
            let project =
                s.db.update(id, &change)
                    .await
                    .map_err(db_error)?
                    .ok_or(ApiError::ProjectNotFound)?;
            tracing::info!(
                target: "ipm_api::audit",
                user = caller.user.as_str(),
                project = %project.id,
                "project updated"
            );
            Ok(json_value(StatusCode::OK, &project))
        }
        .await,
    )
}

/// `DELETE /api/projects/{id}`.
pub async fn delete_project(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let id = project_id(&id)?;
            // The rows go with the project (ON DELETE CASCADE); their objects go after.
            let objects = s.images.store.project_keys(id).await.map_err(db_error)?;
            if !s.db.delete(id).await.map_err(db_error)? {
                return Err(ApiError::ProjectNotFound);
            }
            crate::images::remove_objects(&s.images, &objects).await;
            tracing::info!(
                target: "ipm_api::audit",
                user = caller.user.as_str(),
                project = %id,
                "project deleted"
            );
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::NO_CONTENT;
            Ok(r)
        }
        .await,
    )
}

/// `GET /api/openapi.json`.
pub async fn openapi(meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            Ok(json_response(StatusCode::OK, (*s.openapi).clone()))
        }
        .await,
    )
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Reply {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
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
    let ready = db.is_ok() && storage.is_ok() && pending.is_none();
    let body = json!({
        "ready": ready,
        "database": { "backend": s.db.backend(), "ok": db.is_ok() },
        "storage": { "backend": s.images.storage.backend(), "ok": storage.is_ok() },
        "policies": {
            "hash": snapshot.hash,
            "count": snapshot.policy_count(),
            "pending_error": pending.is_some(),
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_value(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
        for bad in ["", "x", "AAAA", &URL_SAFE_NO_PAD.encode([2u8; 17])] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn list_query_names_the_bad_parameter() {
        let field = |q: &str| match parse_list_query(q) {
            Err(ApiError::InvalidParam { field, .. }) => field,
            other => format!("{other:?}"),
        };
        assert_eq!(field("limit=0"), "limit");
        assert_eq!(field("limit=201"), "limit");
        assert_eq!(field("limit=x"), "limit");
        assert_eq!(field("cursor=zzz"), "cursor");
        assert_eq!(field("group=a%2Cb"), "group");
        assert_eq!(field("sort=name"), "sort");
        assert_eq!(field("limit=1&limit=2"), "limit");
        assert_eq!(
            parse_list_query("limit=10&group=team-a").ok(),
            Some(ListQuery {
                limit: 10,
                after: None,
                group: Some("team-a".into())
            })
        );
    }

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
