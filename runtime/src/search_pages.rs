//! AuthZEN search, in pages. A search for the projects a user may read (the `Project` type's
//! `[visibility]` action in `routes.toml`) runs on the list engine that ipm-api's project
//! list runs on: the user's decision turned into a database filter
//! (`ipm_policy::visible`), then the item route's own question on every row. So the answer
//! is exactly what the API's list would show that user, whatever the policies. Other searches
//! put every candidate authz knows to the decision (`Enforcer::search`).
//!
//! A page token is the last result of the previous page: it reveals nothing a page did not.

use std::sync::Arc;

use ipm_policy::Denial;
use ipm_policy::entities::parse_id;
use ipm_policy::evaluate::Evaluation;
use ipm_policy::identity::Email;
use ipm_policy::pipeline::prepare_for;
use ipm_policy::search::Searched;
use ipm_policy::visible::ProjectRows;
use uuid::Uuid;

use crate::enforcer::Enforcer;

/// Results per page when the request names no limit.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most results a page holds, whatever the request asks.
pub const MAX_LIMIT: u32 = 1_000;

/// One page of a search's results, and the token of the next one (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub results: Vec<String>,
    pub next_token: Option<String>,
}

impl Found {
    /// Cuts `results` (in order, up to `limit + 1` of them) to a page.
    fn cut(mut results: Vec<String>, limit: usize) -> Self {
        let next_token = (results.len() > limit).then(|| {
            results.truncate(limit);
            results.last().cloned().unwrap_or_default()
        });
        Self {
            results,
            next_token,
        }
    }
}

/// Why a search has no answer.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The request's page token is not one this search hands out.
    #[error("`page.token` is not a token this search returned")]
    BadToken,
    /// A source (the directory, the database) is down.
    #[error("{0}")]
    Unavailable(String),
}

impl Enforcer {
    /// Where projects live, for the search that shares the API's list engine.
    pub fn with_projects(mut self, rows: Arc<dyn ProjectRows>) -> Self {
        self.projects = Some(rows);
        self
    }

    /// One page of `search`'s answer: up to `limit` results (default [`DEFAULT_LIMIT`], at most
    /// [`MAX_LIMIT`]) after `token`, in order.
    pub async fn search_page(
        &self,
        q: &Evaluation<'_>,
        searched: Option<Searched>,
        token: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Found, SearchError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        if let Some(found) = self.search_projects(q, searched, token, limit).await? {
            return Ok(found);
        }
        let all = self
            .search(q, searched)
            .await
            .map_err(SearchError::Unavailable)?;
        // The results come sorted: a page starts after its token.
        let start = token.map_or(0, |t| all.partition_point(|x| x.as_str() <= t));
        let end = all.len().min(start + limit as usize + 1);
        Ok(Found::cut(all[start..end].to_vec(), limit as usize))
    }

    /// The list engine's answer, when `q` asks which projects a user may read and the
    /// projects' database is known; `None` otherwise.
    async fn search_projects(
        &self,
        q: &Evaluation<'_>,
        searched: Option<Searched>,
        token: Option<&str>,
        limit: u32,
    ) -> Result<Option<Found>, SearchError> {
        let Some(rows) = &self.projects else {
            return Ok(None);
        };
        let snapshot = self.store.snapshot_arc();
        let asks_visibility = searched == Some(Searched::Resource)
            && q.subject.entity_type == "User"
            && q.resource.entity_type == "Project"
            && snapshot.routes.visibility("Project") == Some(q.action);
        if !asks_visibility {
            return Ok(None);
        }
        let nil = Uuid::nil().hyphenated().to_string();
        let Some(path) = snapshot.routes.item_path("Project", &nil) else {
            return Ok(None);
        };
        let after = match token {
            None => Uuid::nil(),
            Some(t) => parse_id(t).ok_or(SearchError::BadToken)?,
        };
        let Ok(user) = Email::parse_bytes(q.subject.id.as_bytes()) else {
            // No such user can exist: nothing is visible to it.
            return Ok(Some(Found::cut(Vec::new(), 0)));
        };
        let Ok(prepared) = prepare_for(snapshot, user, "GET", &path, None) else {
            return Ok(None);
        };
        let decision = self.lookup_and_conclude(prepared).await;
        if let Some(d @ (Denial::GroupsUnavailable | Denial::ResourceUnavailable)) = decision.denial
        {
            return Err(SearchError::Unavailable(d.reason().to_string()));
        }
        let found = decision
            .visible_projects(rows.as_ref(), after, limit)
            .await
            .map_err(SearchError::Unavailable)?;
        let ids = found.into_iter().map(|(id, _)| id.to_string()).collect();
        Ok(Some(Found::cut(ids, limit as usize)))
    }
}
