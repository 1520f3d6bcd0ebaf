//! One service skeleton for both binaries: the policy store, the group source, the enforcer,
//! the reloaders, and a handle that knows its listeners and can reload and shut down.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipm_policy::groups::{FileGroups, GroupSource, GroupsFileError};
use ipm_policy::snapshot::LoadError;
use ipm_policy::store::PolicyStore;

use crate::clock::{Clock, SystemClock};
use crate::config::{DirectoryConfig, ListenAddr};
use crate::groups::GroupCache;
use crate::groups::cache::GroupCacheError;
use crate::listen::{BindError, Listener};
use crate::metrics::Metrics;
use crate::reload::{Reload, Reloader};

/// Why a service could not start. Every message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("POLICY_DIR: the policies do not load:\n{}", .0.render())]
    Policies(#[from] LoadError),
    #[error("GROUPS_FILE: {0}")]
    Groups(#[from] GroupsFileError),
    #[error("{0}")]
    GroupSource(#[from] GroupCacheError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("{var}: `{value}` is not a header name: {message}")]
    HeaderName {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("DATABASE_URL: {0}")]
    Database(String),
    #[error("{var}: {message}")]
    Invalid { var: &'static str, message: String },
}

/// Parses a configured header name, naming the variable on failure.
pub fn header_name(
    var: &'static str,
    name: &str,
) -> Result<warp::http::header::HeaderName, StartError> {
    warp::http::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
        StartError::HeaderName {
            var,
            value: name.to_string(),
            message: e.to_string(),
        }
    })
}

/// Marks every value of the header `name` sensitive, so no `Debug` of the map (or of a value)
/// shows it: the proxy's secret, wherever a request's headers are kept.
pub fn mark_sensitive(headers: &mut warp::http::HeaderMap, name: &warp::http::header::HeaderName) {
    if let warp::http::header::Entry::Occupied(mut values) = headers.entry(name) {
        for value in values.iter_mut() {
            value.set_sensitive(true);
        }
    }
}

/// The parts both binaries build the same way from their configuration.
pub struct Core {
    pub metrics: Arc<Metrics>,
    pub store: Arc<PolicyStore>,
    pub groups: Arc<dyn GroupSource>,
    /// The groups file, with `GROUP_SOURCE=file`.
    pub groups_file: Option<Arc<FileGroups>>,
    /// The directory cache, with `GROUP_SOURCE=http`.
    pub group_cache: Option<GroupCache>,
}

/// Where the core's parts come from.
pub struct CoreSettings<'a> {
    pub policy_dir: &'a Path,
    pub groups_file: &'a Path,
    pub directory: &'a DirectoryConfig,
    /// The directory cache's clock; the system's unless a test moves time.
    pub clock: Option<Arc<dyn Clock>>,
    /// Answers group lookups instead of the configured source (the groups file still loads).
    pub groups_override: Option<Arc<dyn GroupSource>>,
}

impl Core {
    /// Loads the policies and the group source; `metrics` may already carry extra families.
    pub fn load(settings: CoreSettings<'_>, mut metrics: Metrics) -> Result<Self, StartError> {
        // Before anything parses an address: the policies' users, the groups file.
        ipm_policy::identity::set_local_part_case(settings.directory.email_case);
        let store = Arc::new(PolicyStore::load(settings.policy_dir)?);
        metrics.watch_memo(store.clone());
        let metrics = Arc::new(metrics);
        metrics
            .policies_loaded
            .set(i64::try_from(store.snapshot().policy_count()).unwrap_or(i64::MAX));
        let clock = settings
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock::new()));
        let group_cache = GroupCache::from_config(settings.directory, clock, metrics.clone())?;
        let (groups, groups_file): (Arc<dyn GroupSource>, _) = match &group_cache {
            Some(cache) => (Arc::new(cache.clone()), None),
            None => {
                let file = Arc::new(FileGroups::load(settings.groups_file)?);
                (file.clone(), Some(file))
            }
        };
        Ok(Self {
            metrics,
            store,
            groups: settings.groups_override.unwrap_or(groups),
            groups_file,
            group_cache,
        })
    }

    /// Starts watching the policy directory and the groups file (plus `extra`, a shadow set
    /// for instance), each rescanned every `poll` as well.
    pub fn reloaders(&self, poll: Duration, extra: Vec<Arc<dyn Reload>>) -> Vec<Reloader> {
        let mut targets: Vec<Arc<dyn Reload>> = vec![self.store.clone()];
        targets.extend(extra);
        if let Some(file) = &self.groups_file {
            targets.push(file.clone());
        }
        targets
            .into_iter()
            .map(|t| Reloader::spawn(t, self.metrics.clone(), poll))
            .collect()
    }
}

/// A running service's listeners and reloaders. Dropping it does not stop the listeners;
/// call `shutdown`.
#[derive(Default)]
pub struct ServiceHandle {
    listeners: Vec<(&'static str, Listener)>,
    reloaders: Vec<Reloader>,
}

impl std::fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHandle")
            .field(
                "listeners",
                &self
                    .listeners
                    .iter()
                    .map(|(n, l)| (n, l.addr.to_string()))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ServiceHandle {
    /// Adds a serving listener, known by `name` (its variable, e.g. `AUTHZ_LISTEN`).
    pub fn add_listener(&mut self, name: &'static str, listener: Listener) {
        self.listeners.push((name, listener));
    }

    pub fn add_reloaders(&mut self, reloaders: Vec<Reloader>) {
        self.reloaders.extend(reloaders);
    }

    /// The address a listener is bound to (the real port when 0 was asked for).
    pub fn addr(&self, name: &str) -> Option<&ListenAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| &l.addr)
    }

    /// Reloads policies and groups now, as SIGHUP does.
    pub fn reload_now(&self) {
        for r in &self.reloaders {
            r.trigger();
        }
    }

    /// Stops the listeners, last added first, letting requests in flight finish.
    pub async fn shutdown(mut self) {
        while let Some((_, l)) = self.listeners.pop() {
            l.stop().await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use warp::http::HeaderMap;
    use warp::http::header::{HeaderName, HeaderValue};

    #[test]
    fn a_marked_secret_header_never_shows_in_debug() {
        let name = HeaderName::from_static("x-proxy-secret");
        let mut headers = HeaderMap::new();
        headers.append(&name, HeaderValue::from_static("first-secret-0123"));
        headers.append(&name, HeaderValue::from_static("second-secret-0123"));
        headers.append("x-user-email", HeaderValue::from_static("a@example.com"));
        mark_sensitive(&mut headers, &name);
        let shown = format!("{headers:?}");
        assert!(!shown.contains("first-secret"), "{shown}");
        assert!(!shown.contains("second-secret"), "{shown}");
        assert!(shown.contains("a@example.com"), "{shown}");
        // Absent: nothing to mark, nothing added.
        mark_sensitive(&mut headers, &HeaderName::from_static("x-other"));
        assert_eq!(headers.len(), 3);
    }
}
