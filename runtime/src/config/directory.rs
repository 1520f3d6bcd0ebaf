//! Group membership from the organisation's directory: the source, its cache (in memory or
//! Redis) and the admin listener that flushes it, read from `GROUP_SOURCE`, `AUTH_*`, `GROUP_CACHE*`, `REDIS_*`.

use std::time::Duration;

use ipm_policy::secret::Secret;

use super::{
    ConfigError, Env, ListenAddr, check_secret_strength, get, invalid, parse_bool, parse_num,
    read_secret,
};

/// Where group membership comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSourceKind {
    /// The groups file (`GROUPS_FILE`), reloaded when saved.
    File,
    /// The organisation's directory over HTTP, behind a cache.
    Http,
}

/// Where cached memberships live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheBackend {
    /// In this process only.
    Memory,
    /// In Redis, shared by every replica; flushes reach them all.
    Redis(RedisConfig),
}

/// The shared cache's connection.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `REDIS_URL` (required with `GROUP_CACHE=redis`): `redis://[:password@]host:port[/db]`.
    /// It may carry a password, so it is never shown.
    pub url: String,
    /// `REDIS_KEY_PREFIX` [authz:]: the prefix of every key and of the flush channel.
    pub key_prefix: String,
    /// `REDIS_TIMEOUT_MS` [500]: longest wait for one Redis command before using the directory.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"[redacted]")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Group membership from the organisation's directory: the source, its cache, the admin
/// listener that flushes the cache. Defaults in brackets.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// `GROUP_SOURCE` [file]: `file` or `http`.
    pub source: GroupSourceKind,
    /// `AUTH_SERVER_URL` (required with `GROUP_SOURCE=http`): the directory's base URL, without
    /// a trailing slash. `https` unless the host is loopback or `AUTH_ALLOW_HTTP=true`.
    pub server_url: Option<String>,
    /// `AUTH_API_TOKEN` or `AUTH_API_TOKEN_FILE` (required with `GROUP_SOURCE=http`): sent as
    /// `Authorization: Bearer`.
    pub api_token: Option<Secret>,
    /// `AUTH_GROUPS_PATH` [/api/user/{email}/groups]: appended to the URL; `{email}` is
    /// replaced by the percent-encoded address.
    pub groups_path: String,
    /// `AUTH_GROUPS_FIELD` [groups]: the JSON field holding the list; dots go into nested
    /// objects (`data.groups`).
    pub groups_field: String,
    /// `AUTH_TIMEOUT_MS` [2000]: longest wait for one directory answer, body included.
    pub timeout: Duration,
    /// `AUTH_MAX_BODY_BYTES` [262144]: larger answers are refused.
    pub max_body_bytes: usize,
    /// `AUTH_MAX_CONCURRENCY` [32]: directory calls in flight at once; more wait their turn
    /// within `AUTH_TIMEOUT_MS`, so a burst of new users cannot flood the directory.
    pub max_concurrency: usize,
    /// `AUTH_ALLOW_HTTP` [false]: allows a plain `http` directory URL on a non-loopback host
    /// (the token then crosses the network in clear).
    pub allow_http: bool,
    /// `GROUP_CACHE_TTL_SECONDS` [300]: how long a membership is used without asking again.
    pub cache_ttl: Duration,
    /// `GROUP_CACHE_STALE_SECONDS` [0 = off]: how long after expiry a membership may still be
    /// used while the directory fails.
    pub cache_stale: Duration,
    /// `GROUP_CACHE_MAX_USERS` [100000]: users kept in memory; the least recently used go first.
    pub cache_max_users: usize,
    /// `GROUP_CACHE` [memory]: `memory` or `redis`.
    pub cache: CacheBackend,
    /// `AUTHZ_ADMIN_LISTEN` [off]: where the admin endpoints (cache flush) listen.
    pub admin_listen: Option<ListenAddr>,
    /// `AUTHZ_ADMIN_TOKEN` or `AUTHZ_ADMIN_TOKEN_FILE` (required with `AUTHZ_ADMIN_LISTEN`):
    /// the bearer token the admin endpoints demand, even on loopback.
    pub admin_token: Option<Secret>,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            source: GroupSourceKind::File,
            server_url: None,
            api_token: None,
            groups_path: DEFAULT_GROUPS_PATH.into(),
            groups_field: "groups".into(),
            timeout: Duration::from_millis(2000),
            max_body_bytes: 256 * 1024,
            max_concurrency: 32,
            allow_http: false,
            cache_ttl: Duration::from_secs(300),
            cache_stale: Duration::ZERO,
            cache_max_users: 100_000,
            cache: CacheBackend::Memory,
            admin_listen: None,
            admin_token: None,
        }
    }
}

/// The directory path asked for a user's groups unless `AUTH_GROUPS_PATH` says otherwise.
pub const DEFAULT_GROUPS_PATH: &str = "/api/user/{email}/groups";

fn is_loopback_host(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_server_url(env: &Env, allow_http: bool, debug: bool) -> Result<String, ConfigError> {
    let var = "AUTH_SERVER_URL";
    let raw = get(env, var)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing {
            var,
            why: "GROUP_SOURCE=http asks the directory at this URL",
        })?;
    let url = reqwest::Url::parse(raw).map_err(|e| invalid(var, format!("`{raw}`: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the value: it holds a credential.
        return Err(ConfigError::Unsafe {
            var,
            message: "the URL must not carry credentials; put the token in AUTH_API_TOKEN".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            var,
            format!("`{raw}`: no query or fragment; AUTH_GROUPS_PATH holds the path"),
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http || debug || is_loopback_host(&url) => {}
        "http" => {
            return Err(ConfigError::Unsafe {
                var,
                message: format!(
                    "`{raw}` is plain http: the bearer token would cross the network in clear; use https, or set AUTH_ALLOW_HTTP=true"
                ),
            });
        }
        other => return Err(invalid(var, format!("`{other}` is not http or https"))),
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn parse_groups_path(env: &Env) -> Result<String, ConfigError> {
    let var = "AUTH_GROUPS_PATH";
    let v = get(env, var)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_GROUPS_PATH);
    if !v.starts_with('/') || v.matches("{email}").count() != 1 {
        return Err(invalid(
            var,
            format!("`{v}` must start with `/` and hold `{{email}}` once"),
        ));
    }
    if v.bytes().any(|b| !(0x21..=0x7e).contains(&b) || b == b'#') {
        return Err(invalid(
            var,
            format!("`{v}` must be printable ASCII without spaces or `#`"),
        ));
    }
    Ok(v.to_string())
}

fn parse_groups_field(env: &Env) -> Result<String, ConfigError> {
    let var = "AUTH_GROUPS_FIELD";
    let v = get(env, var)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("groups");
    if v.split('.').any(str::is_empty) {
        return Err(invalid(
            var,
            format!("`{v}`: field names joined by single dots"),
        ));
    }
    Ok(v.to_string())
}

fn parse_cache_backend(env: &Env) -> Result<CacheBackend, ConfigError> {
    let var = "GROUP_CACHE";
    match get(env, var)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "memory") => Ok(CacheBackend::Memory),
        Some("redis") => {
            let url = get(env, "REDIS_URL")
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing {
                    var: "REDIS_URL",
                    why: "GROUP_CACHE=redis keeps memberships in this Redis",
                })?;
            if url.starts_with("rediss://") {
                return Err(invalid(
                    "REDIS_URL",
                    "`rediss://` (TLS) is not supported; reach Redis over loopback or a private network",
                ));
            }
            if !url.starts_with("redis://") && !url.starts_with("unix://") {
                return Err(invalid(
                    "REDIS_URL",
                    "must start with `redis://` or `unix://`",
                ));
            }
            let key_prefix = get(env, "REDIS_KEY_PREFIX")
                .filter(|v| !v.is_empty())
                .unwrap_or("authz:")
                .to_string();
            if key_prefix.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
                return Err(invalid(
                    "REDIS_KEY_PREFIX",
                    "must be printable ASCII without spaces",
                ));
            }
            let timeout_ms: u64 = parse_num(env, "REDIS_TIMEOUT_MS", 500)?;
            if !(1..=60_000).contains(&timeout_ms) {
                return Err(invalid("REDIS_TIMEOUT_MS", "must be between 1 and 60000"));
            }
            Ok(CacheBackend::Redis(RedisConfig {
                url: url.to_string(),
                key_prefix,
                timeout: Duration::from_millis(timeout_ms),
            }))
        }
        Some(other) => Err(invalid(var, format!("`{other}` is not memory or redis"))),
    }
}

impl DirectoryConfig {
    /// Reads the directory, cache and admin variables. `taken` are the other listeners, which
    /// the admin listener must not share.
    pub fn from_map(
        env: &Env,
        debug: bool,
        taken: &[(&str, &ListenAddr)],
    ) -> Result<Self, ConfigError> {
        let d = Self::default();
        let source = match get(env, "GROUP_SOURCE")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "file") => GroupSourceKind::File,
            Some("http") => GroupSourceKind::Http,
            Some(other) => {
                return Err(invalid(
                    "GROUP_SOURCE",
                    format!("`{other}` is not file or http"),
                ));
            }
        };
        let admin_listen = match get(env, "AUTHZ_ADMIN_LISTEN").map(str::trim) {
            None | Some("") => None,
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => Some(
                v.parse::<ListenAddr>()
                    .map_err(|m| invalid("AUTHZ_ADMIN_LISTEN", m))?,
            ),
        };
        if source == GroupSourceKind::File {
            let cache = get(env, "GROUP_CACHE").map(|v| v.trim().to_ascii_lowercase());
            if !matches!(cache.as_deref(), None | Some("" | "memory")) {
                return Err(invalid(
                    "GROUP_CACHE",
                    "the cache holds directory answers; set GROUP_SOURCE=http",
                ));
            }
            if admin_listen.is_some() {
                return Err(invalid(
                    "AUTHZ_ADMIN_LISTEN",
                    "the admin endpoints flush the directory cache; set GROUP_SOURCE=http",
                ));
            }
            return Ok(Self { source, ..d });
        }
        let cache = parse_cache_backend(env)?;
        let allow_http = parse_bool(env, "AUTH_ALLOW_HTTP", false)?;
        let server_url = parse_server_url(env, allow_http, debug)?;
        let api_token = read_secret(env, "AUTH_API_TOKEN", "AUTH_API_TOKEN_FILE")?.ok_or(
            ConfigError::Missing {
                var: "AUTH_API_TOKEN",
                why: "set AUTH_API_TOKEN or AUTH_API_TOKEN_FILE to the directory's bearer token",
            },
        )?;
        if api_token
            .expose()
            .iter()
            .any(|b| !(0x21..=0x7e).contains(b))
        {
            return Err(ConfigError::Unsafe {
                var: "AUTH_API_TOKEN",
                message: "the token must be printable ASCII without spaces, as it travels in an HTTP header".into(),
            });
        }
        let timeout_ms: u64 = parse_num(env, "AUTH_TIMEOUT_MS", 2000)?;
        if !(1..=60_000).contains(&timeout_ms) {
            return Err(invalid("AUTH_TIMEOUT_MS", "must be between 1 and 60000"));
        }
        let max_body_bytes = parse_num(env, "AUTH_MAX_BODY_BYTES", d.max_body_bytes)?;
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(invalid(
                "AUTH_MAX_BODY_BYTES",
                "must be between 1024 and 16777216",
            ));
        }
        let max_concurrency = parse_num(env, "AUTH_MAX_CONCURRENCY", d.max_concurrency)?;
        if !(1..=1024).contains(&max_concurrency) {
            return Err(invalid(
                "AUTH_MAX_CONCURRENCY",
                "must be between 1 and 1024",
            ));
        }
        let ttl: u64 = parse_num(env, "GROUP_CACHE_TTL_SECONDS", 300)?;
        let stale: u64 = parse_num(env, "GROUP_CACHE_STALE_SECONDS", 0)?;
        // A day bounds how long a removed member can keep access through the cache.
        if ttl > 86_400 {
            return Err(invalid("GROUP_CACHE_TTL_SECONDS", "at most 86400 (a day)"));
        }
        if stale > 86_400 {
            return Err(invalid(
                "GROUP_CACHE_STALE_SECONDS",
                "at most 86400 (a day)",
            ));
        }
        let cache_max_users = parse_num(env, "GROUP_CACHE_MAX_USERS", d.cache_max_users)?;
        if cache_max_users == 0 {
            return Err(invalid("GROUP_CACHE_MAX_USERS", "must be at least 1"));
        }
        let admin_token = read_secret(env, "AUTHZ_ADMIN_TOKEN", "AUTHZ_ADMIN_TOKEN_FILE")?;
        if let Some(addr) = &admin_listen {
            let ephemeral = matches!(addr, ListenAddr::Tcp(a) if a.port() == 0);
            if let Some((var, _)) = taken.iter().find(|(_, t)| *t == addr && !ephemeral) {
                return Err(invalid(
                    "AUTHZ_ADMIN_LISTEN",
                    format!("`{addr}` is also {var}"),
                ));
            }
            // Required on loopback too: in a pod, loopback is shared with the application.
            let token = admin_token.as_ref().ok_or(ConfigError::Missing {
                var: "AUTHZ_ADMIN_TOKEN",
                why: "AUTHZ_ADMIN_LISTEN needs a token (or AUTHZ_ADMIN_TOKEN_FILE) to guard the admin endpoints",
            })?;
            check_secret_strength(token, "AUTHZ_ADMIN_TOKEN", debug)?;
        }
        Ok(Self {
            source,
            server_url: Some(server_url),
            api_token: Some(api_token),
            groups_path: parse_groups_path(env)?,
            groups_field: parse_groups_field(env)?,
            timeout: Duration::from_millis(timeout_ms),
            max_body_bytes,
            max_concurrency,
            allow_http,
            cache_ttl: Duration::from_secs(ttl),
            cache_stale: Duration::from_secs(stale),
            cache_max_users,
            cache,
            admin_listen,
            admin_token,
        })
    }
}
