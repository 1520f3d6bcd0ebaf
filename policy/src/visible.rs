//! Lists that follow the policies: which items of a type a caller may read through the item
//! route, as a filter a database can apply, and the item route's question itself, which a
//! list asks about every row it returns as the last word.
//!
//! The filter is a partial evaluation over the few things a decision about an item can depend
//! on. For one caller and one action, Cedar tells one project from another only by its id
//! where a policy names it (`Project::"…"`), by its group, or through `context.path`, which
//! holds the id. So unless a policy reads the path, every project no policy names is decided
//! alike within its group, and groups are decided alike unless the caller is in them or a
//! policy names them. One stand-in per class, asked on the caller's decision (same snapshot,
//! groups and client context), gives the groups to fetch; named ids are fetched whatever
//! their group and decided row by row (all but an id named only as a `forbid`'s `resource ==`
//! scope, which can only hide it where its group shows it). Images in one project are decided alike unless a
//! policy names them. A policy that reads the path makes the filter fetch everything.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use cedar_policy::Entity;
use uuid::Uuid;

use crate::entities::{ImageParent, image_entities, project_entities};
use crate::pipeline::Decision;

/// Which values of a column a list fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Set {
    All,
    Only(Vec<String>),
    AllBut(Vec<String>),
}

impl Set {
    pub fn contains(&self, value: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(v) => v.iter().any(|x| x == value),
            Self::AllBut(v) => !v.iter().any(|x| x == value),
        }
    }
}

/// The projects a list fetches: those in `groups`, and those with one of `ids` whatever
/// their group. Every fetched row is still asked [`Decision::item`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFilter {
    pub groups: Set,
    pub ids: Vec<String>,
}

/// Rows fetched per round trip beyond what a page still needs: rows the policies hide are
/// skipped without another query.
pub const SLACK: u32 = 32;

/// One page of a list that follows the policies: up to `limit + 1` rows (the extra one says
/// that more follow), in key order after `after`. `fetch(after, n)` returns up to `n` rows after
/// `after` in key order, as the list's filter selects them; `key` is a row's key, and
/// `visible` (the item route's own question) has the last word on each row. The cursor moves
/// past hidden rows too, so a page costs a bounded number of fetches per hidden run.
pub async fn page<R, K, E, Fut>(
    limit: u32,
    mut after: K,
    mut fetch: impl FnMut(K, u32) -> Fut,
    key: impl Fn(&R) -> K,
    visible: impl Fn(&R) -> bool,
) -> Result<Vec<R>, E>
where
    K: Clone,
    Fut: Future<Output = Result<Vec<R>, E>>,
{
    let mut out = Vec::new();
    loop {
        let n = (limit + 1).saturating_sub(out.len() as u32) + SLACK;
        let rows = fetch(after.clone(), n).await?;
        let exhausted = (rows.len() as u32) < n;
        for row in rows {
            after = key(&row);
            if visible(&row) {
                out.push(row);
                if out.len() as u32 > limit {
                    return Ok(out);
                }
            }
        }
        if exhausted {
            return Ok(out);
        }
    }
}

/// Projects as a list fetches them: id and group.
pub type ProjectRowsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<(Uuid, String)>, String>> + Send + 'a>>;

/// Where projects live (the API's database), for a service that lists them without owning
/// them: authz's AuthZEN resource search.
pub trait ProjectRows: Send + Sync + 'static {
    /// Up to `limit` projects with ids after `after`, in id order, as `filter` selects them.
    fn fetch<'a>(
        &'a self,
        filter: &'a ProjectFilter,
        after: Uuid,
        limit: u32,
    ) -> ProjectRowsFuture<'a>;
}

/// An id no policy names, for a stand-in.
fn unnamed(named: &BTreeSet<&String>, make: impl Fn(u32) -> String) -> String {
    (0..)
        .map(make)
        .find(|c| !named.contains(c))
        .unwrap_or_default()
}

impl Decision {
    /// The item route's question about one item: the type's `[visibility]` action on
    /// `resource_type::id` with `entities`, on this decision's snapshot, groups and client
    /// context, with the item route's method and path. `None` when the routes declare no
    /// visibility action or item route for the type, or this decision has no basis.
    pub fn item(&self, resource_type: &str, id: &str, entities: Vec<Entity>) -> Option<Decision> {
        let snapshot = self.snapshot()?;
        let action = snapshot.routes.visibility(resource_type)?.to_string();
        let path = snapshot.routes.item_path(resource_type, id)?;
        self.ask(action, resource_type, id, path, entities)
    }

    fn item_allowed(&self, resource_type: &str, id: &str, entities: Option<Vec<Entity>>) -> bool {
        entities
            .and_then(|e| self.item(resource_type, id, e))
            .is_some_and(|d| d.is_allowed())
    }

    /// The projects the caller may read, as a filter (see the module). `None` when the
    /// question cannot be asked (see [`Decision::item`]): fetch nothing.
    pub fn project_filter(&self) -> Option<ProjectFilter> {
        let snapshot = self.snapshot()?;
        snapshot.routes.item_path("Project", "x")?;
        let lits = &snapshot.literals;
        let ids: Vec<String> = lits.fetched("Project").cloned().collect();
        if lits.reads_path {
            return Some(ProjectFilter {
                groups: Set::All,
                ids,
            });
        }
        let named_ids: BTreeSet<&String> = lits.named("Project").collect();
        let probe = unnamed(&named_ids, |n| format!("00000000-0000-7000-8000-{n:012x}"));
        let mut classes: BTreeSet<&String> = lits.named("Group").collect();
        classes.extend(self.groups.iter());
        let other = unnamed(&classes, |n| format!("ipm-unnamed-group-{n}"));
        let allowed =
            |g: &str| self.item_allowed("Project", &probe, project_entities(&probe, g).ok());
        let (yes, no): (Vec<String>, Vec<String>) =
            classes.into_iter().cloned().partition(|g| allowed(g));
        let groups = if allowed(&other) {
            Set::AllBut(no)
        } else {
            Set::Only(yes)
        };
        Some(ProjectFilter { groups, ids })
    }

    /// One page of the projects the caller may read through the item route, from `rows`:
    /// up to `limit + 1` (id, group), in id order after `after`. See [`page`].
    pub async fn visible_projects(
        &self,
        rows: &dyn ProjectRows,
        after: Uuid,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, String> {
        let Some(filter) = self.project_filter() else {
            return Ok(Vec::new());
        };
        let visible = |(id, group): &(Uuid, String)| {
            let id = id.to_string();
            self.item_allowed("Project", &id, project_entities(&id, group).ok())
        };
        page(
            limit,
            after,
            |after, n| rows.fetch(&filter, after, n),
            |r| r.0,
            visible,
        )
        .await
    }

    /// The images of one project (in `parent.group`) the caller may read, as ids to fetch.
    /// Every fetched row is still asked [`Decision::item`]. `None` as for
    /// [`Decision::project_filter`].
    pub fn image_filter(&self, parent: &ImageParent) -> Option<Set> {
        let snapshot = self.snapshot()?;
        snapshot.routes.item_path("Image", "x")?;
        let lits = &snapshot.literals;
        if lits.reads_path {
            return Some(Set::All);
        }
        let named: BTreeSet<&String> = lits.named("Image").collect();
        let allowed = |id: &str| self.item_allowed("Image", id, image_entities(id, parent).ok());
        let probe = unnamed(&named, |n| format!("00000000-0000-7000-8000-{n:012x}"));
        let (yes, no): (Vec<String>, Vec<String>) =
            named.into_iter().cloned().partition(|id| allowed(id));
        Some(if allowed(&probe) {
            Set::AllBut(no)
        } else {
            Set::Only(yes)
        })
    }
}
