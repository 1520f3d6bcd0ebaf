//! Lists that follow the policies. A list fetches what the caller's decision says may be
//! visible (`ipm_policy::visible`: the policies turned into a filter the database applies),
//! asks the item route's own question about every row it fetched, and keeps only the rows
//! allowed, so a list shows exactly what its item route would: the same policies, entities
//! and snapshot. Pages are keyset pages cut after `limit` visible rows; the cursor is the last
//! visible row's id, so hidden rows show through neither counts nor cursors.

use ipm_policy::Decision;
use ipm_policy::entities::{ImageParent, image_entities, parse_id, project_entities};
use ipm_policy::visible::{Set, page};
use uuid::Uuid;

use crate::db::DbError;
use crate::image_store::{IdFilter, Image};
use crate::models::{ListQuery, Project};
use crate::state::ApiState;

fn ids(of: &[String]) -> Vec<Uuid> {
    of.iter().filter_map(|i| parse_id(i)).collect()
}

fn allowed(d: Option<Decision>) -> bool {
    d.is_some_and(|d| d.is_allowed())
}

/// Whether the item route would show this project to the caller.
pub(crate) fn may_read_project(decision: &Decision, p: &Project) -> bool {
    let id = p.id.to_string();
    let entities = project_entities(&id, &p.meta_group_id).ok();
    allowed(entities.and_then(|e| decision.item("Project", &id, e)))
}

/// Up to `q.limit + 1` projects the caller may read, after `q.after`, in id order (the extra
/// one tells `cut_page` that more follow).
pub(crate) async fn projects(
    s: &ApiState,
    decision: &Decision,
    q: &ListQuery,
) -> Result<Vec<Project>, DbError> {
    let Some(filter) = decision.project_filter() else {
        return Ok(Vec::new());
    };
    let named = ids(&filter.ids);
    let group = q.group.as_deref();
    page(
        q.limit,
        q.after.unwrap_or(Uuid::nil()),
        |after, n| s.db.list_where(&filter.groups, &named, group, after, n),
        |p| p.id,
        |p| may_read_project(decision, p),
    )
    .await
}

/// Up to `limit + 1` images of `parent`'s project the caller may read, after `after`.
pub(crate) async fn images(
    s: &ApiState,
    decision: &Decision,
    parent: &ImageParent,
    project: Uuid,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<Image>, DbError> {
    let filter = match decision.image_filter(parent) {
        None => return Ok(Vec::new()),
        Some(Set::All) => IdFilter::All,
        Some(Set::Only(v)) => IdFilter::Only(ids(&v)),
        Some(Set::AllBut(v)) => IdFilter::AllBut(ids(&v)),
    };
    let visible = |image: &Image| {
        let id = image.id.to_string();
        let entities = image_entities(&id, parent).ok();
        allowed(entities.and_then(|e| decision.item("Image", &id, e)))
    };
    page(
        limit,
        after,
        |after, n| s.images.store.list_where(project, &filter, after, n),
        |image| Some(image.id),
        visible,
    )
    .await
}
