//! The project routes' handlers: list, create, read, change and delete projects, each
//! authorized first and answered through `reply`.

use ipm_policy::groups::is_valid_group_name;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;

use crate::access::{RequestMeta, audit};
use crate::db::DbError;
use crate::error::ApiError;
use crate::handlers::parse_json;
use crate::models::{CreateProject, ListQuery, ProjectPage, UpdateProject};
use crate::reply::{
    PageRequest, Reply, created, cut_page, db_error, empty, json, parse_query, path_id, respond,
};
use crate::state::ApiState;

/// The query of `GET /api/projects`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    group: Option<String>,
}

/// Parses `limit`, `cursor` and `group`; anything else, or any of them twice, is refused.
fn parse_list_query(query: &str) -> Result<ListQuery, ApiError> {
    let params: ListParams = parse_query(query)?;
    let page = PageRequest::parse(params.limit.as_deref(), params.cursor.as_deref())?;
    if params
        .group
        .as_deref()
        .is_some_and(|g| !is_valid_group_name(g))
    {
        return Err(ApiError::invalid_param("group", "is not a group name"));
    }
    Ok(ListQuery {
        limit: page.limit,
        after: page.after,
        group: params.group,
    })
}

/// A name already taken in the group is the client's to fix; any other failure is an outage.
fn project_db_error(e: DbError) -> ApiError {
    match e {
        DbError::Conflict => ApiError::Conflict {
            field: "name".into(),
            message: "is already used by another project in this group".into(),
        },
        other => db_error(other),
    }
}

/// `GET /api/projects`: the projects the caller may read (as `GET /api/projects/{id}` would
/// answer), in creation order (`lists`).
pub async fn list_projects(meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let q = parse_list_query(meta.query())?;
            let mut items = crate::lists::projects(&s, caller.decision(), &q)
                .await
                .map_err(project_db_error)?;
            let next_cursor = cut_page(&mut items, q.limit, |p| p.id);
            Ok(json(StatusCode::OK, &ProjectPage { items, next_cursor }))
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
            let project = s.db.insert(&new).await.map_err(project_db_error)?;
            audit!(
                caller,
                project = %project.id,
                group = %project.meta_group_id,
                "project created"
            );
            Ok(created(&project, &format!("/api/projects/{}", project.id)))
        }
        .await,
    )
}

/// `GET /api/projects/{id}`.
pub async fn get_project(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            s.access.authorize(&meta).await?;
            let id = path_id(&id)?;
            let project =
                s.db.get(id)
                    .await
                    .map_err(project_db_error)?
                    .ok_or(ApiError::ProjectNotFound)?;
            Ok(json(StatusCode::OK, &project))
        }
        .await,
    )
}

/// `PATCH /api/projects/{id}`: changes the name and/or the description.
pub async fn update_project(id: String, meta: RequestMeta, body: Bytes, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let id = path_id(&id)?;
            let change = parse_json::<UpdateProject>(&body)?.validate()?;
            let project =
                s.db.update(id, &change)
                    .await
                    .map_err(project_db_error)?
                    .ok_or(ApiError::ProjectNotFound)?;
            audit!(
                caller,
                project = %project.id,
                "project updated"
            );
            Ok(json(StatusCode::OK, &project))
        }
        .await,
    )
}

/// `DELETE /api/projects/{id}`.
pub async fn delete_project(id: String, meta: RequestMeta, s: ApiState) -> Reply {
    respond(
        async {
            let caller = s.access.authorize(&meta).await?;
            let id = path_id(&id)?;
            // The rows go with the project (ON DELETE CASCADE), each queueing its object's
            // key; the objects go after the commit (an upload finishing meanwhile is queued
            // too, and swept).
            let objects = s
                .images
                .store
                .project_keys(id)
                .await
                .map_err(project_db_error)?;
            if !s.db.delete(id).await.map_err(project_db_error)? {
                return Err(ApiError::ProjectNotFound);
            }
            crate::deletions::finish_all(&s.images.store, s.images.storage.as_ref(), &objects)
                .await;
            audit!(
                caller,
                project = %id,
                "project deleted"
            );
            Ok(empty(StatusCode::NO_CONTENT))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(field("group=a&group=a"), "group");
        assert_eq!(
            parse_list_query("limit=10&group=team-a").ok(),
            Some(ListQuery {
                limit: 10,
                after: None,
                group: Some("team-a".into())
            })
        );
        match parse_list_query("order=name") {
            Err(e) => assert_eq!(
                e.body(),
                r#"{"error":"bad_request","reason":"invalid_parameter","field":"order","message":"is not a parameter of this route (use limit, cursor, group)"}"#
            ),
            Ok(q) => unreachable!("{q:?}"),
        }
    }
}
