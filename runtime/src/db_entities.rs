//! Resource entities from the API's database: a `Project` and its `Group`, an `Image` and its
//! project, so Cedar decides per-resource requests at the edge (authz) and in the API alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipm_policy::entities::{
    EntityResolver, ImageParent, ResolveFuture, image_entities, parse_id, project_entities,
};
use ipm_policy::routes::RouteMatch;
use uuid::Uuid;

use crate::db::DbPool;

/// Entries kept by the cache before it starts over; bounds memory under id guessing.
const CACHE_CAPACITY: usize = 10_000;

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

    /// The database it reads.
    pub fn db(&self) -> &DbPool {
        &self.db
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
    fn resolve<'a>(&'a self, route: &'a RouteMatch) -> ResolveFuture<'a> {
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
}
