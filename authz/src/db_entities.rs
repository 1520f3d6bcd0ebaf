//! Resource entities from the API's database: a `Project` and its `Group`, an `Image` and its
//! project, so Cedar decides per-resource requests at the edge (authz) and in the API alike.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cedar_policy::{Entity, RestrictedExpression};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use uuid::Uuid;

use crate::enforcer::EntityResolver;
use crate::policy::entity_uid;
use crate::routes::RouteMatch;

/// Entries kept by the cache before it starts over; bounds memory under id guessing.
const CACHE_CAPACITY: usize = 10_000;

/// Why a `DATABASE_URL` was refused.
#[derive(Debug, thiserror::Error)]
pub enum DbUrlError {
    #[error("DATABASE_URL: the scheme must be `sqlite:` or `postgres:`/`postgresql:`")]
    Scheme,
    #[error("DATABASE_URL: {0}")]
    Invalid(String),
}

/// How a pool is opened.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Reads only: SQLite opens the file read-only, PostgreSQL sessions default to read-only
    /// transactions.
    pub read_only: bool,
    pub max_connections: u32,
    /// How long a query waits for a connection before the database counts as down.
    pub acquire_timeout: Duration,
}

/// A connection pool on either backend. Cheap to clone.
#[derive(Debug, Clone)]
pub enum DbPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code on whichever pool is in use; `$pool` is the concrete pool.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db_entities::DbPool::Sqlite($pool) => $body,
            $crate::db_entities::DbPool::Postgres($pool) => $body,
        }
    };
}

impl DbPool {
    /// Opens a pool without connecting: the first query connects, so a service can start
    /// before its database and answer 503 while it is down.
    pub fn open_lazy(url: &str, settings: PoolSettings) -> Result<Self, DbUrlError> {
        let invalid = |e: sqlx::Error| DbUrlError::Invalid(e.to_string());
        if url.starts_with("sqlite:") {
            let mut opts = SqliteConnectOptions::from_str(url).map_err(invalid)?;
            opts = if settings.read_only {
                opts.read_only(true).create_if_missing(false)
            } else {
                // WAL lets authz read while the API writes.
                opts.journal_mode(SqliteJournalMode::Wal)
            };
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_lazy_with(opts.foreign_keys(true));
            Ok(Self::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let mut opts = PgConnectOptions::from_str(url).map_err(invalid)?;
            if settings.read_only {
                opts = opts.options([("default_transaction_read_only", "on")]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_lazy_with(opts);
            Ok(Self::Postgres(pool))
        } else {
            Err(DbUrlError::Scheme)
        }
    }

    /// `sqlite` or `postgres`, for logs (never the URL, which may hold a password).
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// An image's project and that project's group, or `None` when there is no such image.
    pub async fn image_parent(&self, id: Uuid) -> Result<Option<ImageParent>, sqlx::Error> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, (Uuid, String)>(
                "SELECT i.project_id, p.meta_group_id FROM images i \
                 JOIN projects p ON p.id = i.project_id WHERE i.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(project, group)| ImageParent {
            project,
            group: Arc::from(group),
        }))
    }

    /// The group a project belongs to, or `None` when there is no such project.
    pub async fn project_group(&self, id: Uuid) -> Result<Option<String>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>("SELECT meta_group_id FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }
}

/// Parses a resource id as a project id. Only the canonical form (lower-case, hyphenated)
/// is accepted: Cedar compares ids as strings, so `{…}` or upper-case spellings of the same
/// UUID must not name a different resource.
pub fn parse_id(s: &str) -> Option<Uuid> {
    let id = Uuid::try_parse(s).ok()?;
    let mut buf = Uuid::encode_buffer();
    (id.hyphenated().encode_lower(&mut buf) == s).then_some(id)
}

/// The entities Cedar needs for a project: the project (in its group, with a `group`
/// attribute) and the group.
pub fn project_entities(id: &str, group: &str) -> Result<Vec<Entity>, String> {
    let group_uid = entity_uid("Group", group)?;
    let project = Entity::new(
        entity_uid("Project", id)?,
        HashMap::from([(
            "group".to_string(),
            RestrictedExpression::new_entity_uid(group_uid.clone()),
        )]),
        HashSet::from([group_uid.clone()]),
    )
    .map_err(|e| e.to_string())?;
    Ok(vec![
        project,
        Entity::new_no_attrs(group_uid, HashSet::new()),
    ])
}

/// Where an image sits: its project and the project's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageParent {
    pub project: Uuid,
    pub group: Arc<str>,
}

/// The entities Cedar needs for an image: the image (in its project, with `project` and
/// `group` attributes), the project and the group.
pub fn image_entities(id: &str, parent: &ImageParent) -> Result<Vec<Entity>, String> {
    let project_id = parent.project.hyphenated().to_string();
    let mut entities = project_entities(&project_id, &parent.group)?;
    let project_uid = entity_uid("Project", &project_id)?;
    let group_uid = entity_uid("Group", &parent.group)?;
    let image = Entity::new(
        entity_uid("Image", id)?,
        HashMap::from([
            (
                "project".to_string(),
                RestrictedExpression::new_entity_uid(project_uid.clone()),
            ),
            (
                "group".to_string(),
                RestrictedExpression::new_entity_uid(group_uid),
            ),
        ]),
        HashSet::from([project_uid]),
    )
    .map_err(|e| e.to_string())?;
    entities.insert(0, image);
    Ok(entities)
}

/// The time source of a cache, so tests can move it.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Project → group answers, kept for a short time. Only found projects are kept: a project
/// created a moment ago must not stay invisible because someone asked for its id before.
pub type EntityCache = EntityCacheOf<Arc<str>>;

/// Id → answer, kept for a short time (`EntityCache` for projects; images keep their parent).
pub struct EntityCacheOf<V> {
    ttl: Duration,
    clock: Clock,
    entries: Mutex<HashMap<Uuid, (Instant, V)>>,
}

impl<V> std::fmt::Debug for EntityCacheOf<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<V: Clone> EntityCacheOf<V> {
    pub fn new(ttl: Duration, clock: Clock) -> Self {
        Self {
            ttl,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, id: Uuid) -> Option<V> {
        let now = (self.clock)();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&id) {
            Some((at, group)) if now.saturating_duration_since(*at) < self.ttl => {
                Some(group.clone())
            }
            Some(_) => {
                entries.remove(&id);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, id: Uuid, group: V) {
        let now = (self.clock)();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(id, (now, group));
    }
}

/// Resolves `Project` and `Image` resources from the database. Other resource types resolve
/// to no entities, so Cedar denies them unless a policy needs nothing from the resource.
#[derive(Debug)]
pub struct DbEntityResolver {
    db: DbPool,
    cache: Option<EntityCache>,
    /// Images never move between projects, so their parents cache as projects' groups do.
    image_cache: Option<EntityCacheOf<ImageParent>>,
}

impl DbEntityResolver {
    /// `cache` is `None` where every decision must see the latest rows (inside the API); its
    /// time to live and clock serve images too.
    pub fn new(db: DbPool, cache: Option<EntityCache>) -> Self {
        let image_cache = cache
            .as_ref()
            .map(|c| EntityCacheOf::new(c.ttl, c.clock.clone()));
        Self {
            db,
            cache,
            image_cache,
        }
    }

    async fn image_parent(&self, id: Uuid) -> Result<Option<ImageParent>, sqlx::Error> {
        if let Some(parent) = self.image_cache.as_ref().and_then(|c| c.get(id)) {
            return Ok(Some(parent));
        }
        let parent = self.db.image_parent(id).await?;
        if let (Some(cache), Some(parent)) = (&self.image_cache, &parent) {
            cache.put(id, parent.clone());
        }
        Ok(parent)
    }

    async fn group_of(&self, id: Uuid) -> Result<Option<Arc<str>>, sqlx::Error> {
        if let Some(group) = self.cache.as_ref().and_then(|c| c.get(id)) {
            return Ok(Some(group));
        }
        let group: Option<Arc<str>> = self.db.project_group(id).await?.map(Arc::from);
        if let (Some(cache), Some(group)) = (&self.cache, &group) {
            cache.put(id, group.clone());
        }
        Ok(group)
    }
}

impl EntityResolver for DbEntityResolver {
    fn resolve<'a>(
        &'a self,
        route: &'a RouteMatch,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Entity>, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let is_image = match route.resource_type.as_str() {
                "Project" => false,
                "Image" => true,
                _ => return Ok(Vec::new()),
            };
            // An id that cannot be a project's or an image's names nothing; the database is
            // not asked.
            let Some(id) = parse_id(&route.resource_id) else {
                return Ok(Vec::new());
            };
            if is_image {
                return match self.image_parent(id).await {
                    Ok(Some(parent)) => image_entities(&route.resource_id, &parent),
                    Ok(None) => Ok(Vec::new()),
                    Err(e) => Err(format!("{} query failed: {e}", self.db.backend())),
                };
            }
            match self.group_of(id).await {
                Ok(Some(group)) => project_entities(&route.resource_id, &group),
                Ok(None) => Ok(Vec::new()),
                Err(e) => Err(format!("{} query failed: {e}", self.db.backend())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_ids_parse() {
        let id = "0190f0c4-6c3e-7b3a-8f00-0123456789ab";
        assert!(parse_id(id).is_some());
        for bad in [
            "0190F0C4-6C3E-7B3A-8F00-0123456789AB",
            "0190f0c46c3e7b3a8f000123456789ab",
            "{0190f0c4-6c3e-7b3a-8f00-0123456789ab}",
            "urn:uuid:0190f0c4-6c3e-7b3a-8f00-0123456789ab",
            "",
            "x",
        ] {
            assert!(parse_id(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cache_expires_on_the_clock_not_the_wall() {
        let start = Instant::now();
        let offset = Arc::new(Mutex::new(Duration::ZERO));
        let o = offset.clone();
        let clock: Clock = Arc::new(move || start + *o.lock().unwrap_or_else(|p| p.into_inner()));
        let cache = EntityCache::new(Duration::from_secs(2), clock);
        let id = Uuid::nil();
        assert_eq!(cache.get(id), None);
        cache.put(id, Arc::from("team-a"));
        *offset.lock().unwrap_or_else(|p| p.into_inner()) = Duration::from_millis(1999);
        assert_eq!(cache.get(id).as_deref(), Some("team-a"));
        *offset.lock().unwrap_or_else(|p| p.into_inner()) = Duration::from_secs(2);
        assert_eq!(cache.get(id), None);
    }

    #[test]
    fn image_entities_put_the_image_in_its_project() {
        let parent = ImageParent {
            project: Uuid::nil(),
            group: Arc::from("team-a"),
        };
        let e = image_entities("i", &parent).unwrap_or_else(|e| unreachable!("{e}"));
        let uids: Vec<String> = e.iter().map(|x| x.uid().to_string()).collect();
        assert_eq!(
            uids,
            [
                r#"Image::"i""#,
                r#"Project::"00000000-0000-0000-0000-000000000000""#,
                r#"Group::"team-a""#
            ]
        );
        let (_, attrs, parents) = e[0].clone().into_inner();
        assert_eq!(
            parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [r#"Project::"00000000-0000-0000-0000-000000000000""#]
        );
        assert_eq!(attrs.len(), 2);
    }

    #[test]
    fn project_entities_put_the_project_in_its_group() {
        let e = project_entities("p", "team-a").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].uid().to_string(), r#"Project::"p""#);
        assert!(
            e[0].clone()
                .into_inner()
                .2
                .iter()
                .any(|p| p.to_string() == r#"Group::"team-a""#)
        );
    }
}
