//! Group membership from the organisation's directory: the source, its cache (in memory or
//! Redis) and the admin listener that flushes it, read from `GROUP_SOURCE`, `AUTH_*`, `GROUP_CACHE*`, `REDIS_*`.

use std::time::Duration;

use ipm_policy::identity::LocalPartCase;
use ipm_policy::secret::Secret;

use super::spec::{
    AUTH_ALLOW_HTTP, AUTH_API_TOKEN, AUTH_API_TOKEN_FILE, AUTH_GROUPS_FIELD, AUTH_GROUPS_PATH,
    AUTH_MAX_BODY_BYTES, AUTH_MAX_CONCURRENCY, AUTH_SERVER_URL, AUTH_TIMEOUT_MS,
    AUTHZ_ADMIN_LISTEN, AUTHZ_ADMIN_TOKEN, AUTHZ_ADMIN_TOKEN_FILE, EMAIL_LOCAL_PART_CASE,
    GROUP_CACHE, GROUP_CACHE_MAX_USERS, GROUP_CACHE_STALE_SECONDS, GROUP_CACHE_TTL_SECONDS,
    GROUP_SOURCE, REDIS_HMAC_KEY, REDIS_HMAC_KEY_FILE, REDIS_KEY_PREFIX, REDIS_TIMEOUT_MS,
    REDIS_URL,
};
use super::{ConfigError, Env, ListenAddr, check_secret_strength};

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
#[derive(Clone)]
pub struct RedisConfig {
    /// [`REDIS_URL`] (required with `GROUP_CACHE=redis`): `redis://[:password@]host:port[/db]`,
    /// `rediss://` for TLS (the system's root certificates), or `unix:///path`.
    /// It may carry a password, so it is never shown.
    pub url: String,
    /// [`REDIS_HMAC_KEY`] or `REDIS_HMAC_KEY_FILE` (required with `GROUP_CACHE=redis`): entries
    /// are stored with an HMAC-SHA256 under this key, and ignored when it does not verify.
    pub hmac_key: Secret,
    /// [`REDIS_KEY_PREFIX`]: the prefix of every key and of the flush channel.
    pub key_prefix: String,
    /// [`REDIS_TIMEOUT_MS`]: longest wait for one Redis command before using the directory.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"[redacted]")
            .field("hmac_key", &self.hmac_key)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PartialEq for RedisConfig {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
            && self.hmac_key.expose() == other.hmac_key.expose()
            && self.key_prefix == other.key_prefix
            && self.timeout == other.timeout
    }
}

impl Eq for RedisConfig {}

/// Group membership from the organisation's directory: the source, its cache, the admin
/// listener that flushes the cache. Each field names its variable, whose default and
/// documentation are in [`spec`](super::spec).
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// [`GROUP_SOURCE`]: `file` or `http`.
    pub source: GroupSourceKind,
    /// [`AUTH_SERVER_URL`] (required with `GROUP_SOURCE=http`): the directory's base URL,
    /// without a trailing slash. `https` unless the host is loopback or `AUTH_ALLOW_HTTP=true`.
    pub server_url: Option<String>,
    /// [`AUTH_API_TOKEN`] or `AUTH_API_TOKEN_FILE` (required with `GROUP_SOURCE=http`): sent as
    /// `Authorization: Bearer`.
    pub api_token: Option<Secret>,
    /// [`AUTH_GROUPS_PATH`]: appended to the URL; `{email}` is replaced by the
    /// percent-encoded address.
    pub groups_path: String,
    /// [`AUTH_GROUPS_FIELD`]: the JSON field holding the list; dots go into nested objects
    /// (`data.groups`).
    pub groups_field: String,
    /// [`AUTH_TIMEOUT_MS`]: longest wait for one directory answer, body included.
    pub timeout: Duration,
    /// [`AUTH_MAX_BODY_BYTES`]: larger answers are refused.
    pub max_body_bytes: usize,
    /// [`AUTH_MAX_CONCURRENCY`]: directory calls in flight at once; more wait their turn
    /// within `AUTH_TIMEOUT_MS`, so a burst of new users cannot flood the directory.
    pub max_concurrency: usize,
    /// [`AUTH_ALLOW_HTTP`]: allows a plain `http` directory URL on a non-loopback host
    /// (the token then crosses the network in clear).
    pub allow_http: bool,
    /// [`GROUP_CACHE_TTL_SECONDS`]: how long a membership is used without asking again.
    pub cache_ttl: Duration,
    /// [`GROUP_CACHE_STALE_SECONDS`] (0 = off): how long after expiry a membership may still
    /// be used while the directory fails.
    pub cache_stale: Duration,
    /// [`GROUP_CACHE_MAX_USERS`]: users kept in memory; the least recently used go first.
    pub cache_max_users: usize,
    /// [`GROUP_CACHE`]: `memory` or `redis`.
    pub cache: CacheBackend,
    /// [`AUTHZ_ADMIN_LISTEN`] (`off` = `None`): where the admin endpoints (cache flush) listen.
    pub admin_listen: Option<ListenAddr>,
    /// [`AUTHZ_ADMIN_TOKEN`] or `AUTHZ_ADMIN_TOKEN_FILE` (required with `AUTHZ_ADMIN_LISTEN`):
    /// the bearer token the admin endpoints demand, even on loopback.
    pub admin_token: Option<Secret>,
    /// [`EMAIL_LOCAL_PART_CASE`]: how addresses compare, for the whole process (set when the
    /// service loads).
    pub email_case: LocalPartCase,
}

/// The defaults of the spec: the groups file, no directory, an in-memory cache, no admin
/// listener.
impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            source: GroupSourceKind::File,
            server_url: None,
            api_token: None,
            groups_path: AUTH_GROUPS_PATH.default.into(),
            groups_field: AUTH_GROUPS_FIELD.default.into(),
            timeout: Duration::from_millis(AUTH_TIMEOUT_MS.default),
            max_body_bytes: AUTH_MAX_BODY_BYTES.default,
            max_concurrency: AUTH_MAX_CONCURRENCY.default,
            allow_http: AUTH_ALLOW_HTTP.default,
            cache_ttl: Duration::from_secs(GROUP_CACHE_TTL_SECONDS.default),
            cache_stale: Duration::from_secs(GROUP_CACHE_STALE_SECONDS.default),
            cache_max_users: GROUP_CACHE_MAX_USERS.default,
            cache: CacheBackend::Memory,
            admin_listen: None,
            admin_token: None,
            email_case: LocalPartCase::Insensitive,
        }
    }
}

/// The directory path asked for a user's groups unless `AUTH_GROUPS_PATH` says otherwise.
pub const DEFAULT_GROUPS_PATH: &str = AUTH_GROUPS_PATH.default;

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
    let var = AUTH_SERVER_URL;
    let raw = var
        .raw(env)
        .ok_or(var.missing("GROUP_SOURCE=http asks the directory at this URL"))?;
    let url = reqwest::Url::parse(raw).map_err(|e| var.invalid(format!("`{raw}`: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the value: it holds a credential.
        return Err(ConfigError::Unsafe {
            var: var.name,
            message: "the URL must not carry credentials; put the token in AUTH_API_TOKEN".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(var.invalid(format!(
            "`{raw}`: no query or fragment; AUTH_GROUPS_PATH holds the path"
        )));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http || debug || is_loopback_host(&url) => {}
        "http" => {
            return Err(ConfigError::Unsafe {
                var: var.name,
                message: format!(
                    "`{raw}` is plain http: the bearer token would cross the network in clear; use https, or set AUTH_ALLOW_HTTP=true"
                ),
            });
        }
        other => return Err(var.invalid(format!("`{other}` is not http or https"))),
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn parse_groups_path(env: &Env) -> Result<String, ConfigError> {
    let v = AUTH_GROUPS_PATH.value(env);
    if !v.starts_with('/') || v.matches("{email}").count() != 1 {
        return Err(AUTH_GROUPS_PATH.invalid(format!(
            "`{v}` must start with `/` and hold `{{email}}` once"
        )));
    }
    if v.bytes().any(|b| !(0x21..=0x7e).contains(&b) || b == b'#') {
        return Err(AUTH_GROUPS_PATH.invalid(format!(
            "`{v}` must be printable ASCII without spaces or `#`"
        )));
    }
    Ok(v.to_string())
}

fn parse_groups_field(env: &Env) -> Result<String, ConfigError> {
    let v = AUTH_GROUPS_FIELD.value(env);
    if v.split('.').any(str::is_empty) {
        return Err(AUTH_GROUPS_FIELD.invalid(format!("`{v}`: field names joined by single dots")));
    }
    Ok(v.to_string())
}

fn parse_cache_backend(env: &Env, debug: bool) -> Result<CacheBackend, ConfigError> {
    match GROUP_CACHE.choice(env).as_str() {
        "memory" => Ok(CacheBackend::Memory),
        "redis" => {
            let url = REDIS_URL
                .raw(env)
                .ok_or(REDIS_URL.missing("GROUP_CACHE=redis keeps memberships in this Redis"))?;
            if !["redis://", "rediss://", "unix://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
            {
                return Err(
                    REDIS_URL.invalid("must start with `redis://`, `rediss://` (TLS) or `unix://`")
                );
            }
            // Whoever can write to Redis could otherwise grant any user any group.
            let hmac_key = REDIS_HMAC_KEY
                .secret_value(env, &REDIS_HMAC_KEY_FILE)?
                .ok_or(REDIS_HMAC_KEY.missing(
                    "GROUP_CACHE=redis authenticates every entry with this key; set REDIS_HMAC_KEY or REDIS_HMAC_KEY_FILE (openssl rand -hex 32)",
                ))?;
            check_secret_strength(&hmac_key, REDIS_HMAC_KEY.name, debug)?;
            let key_prefix = REDIS_KEY_PREFIX.value(env).to_string();
            if key_prefix.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
                return Err(REDIS_KEY_PREFIX.invalid("must be printable ASCII without spaces"));
            }
            let timeout_ms = REDIS_TIMEOUT_MS.get(env)?;
            if !(1..=60_000).contains(&timeout_ms) {
                return Err(REDIS_TIMEOUT_MS.invalid("must be between 1 and 60000"));
            }
            Ok(CacheBackend::Redis(RedisConfig {
                url: url.to_string(),
                hmac_key,
                key_prefix,
                timeout: Duration::from_millis(timeout_ms),
            }))
        }
        other => Err(GROUP_CACHE.invalid(format!("`{other}` is not memory or redis"))),
    }
}

fn parse_admin_listen(env: &Env) -> Result<Option<ListenAddr>, ConfigError> {
    if AUTHZ_ADMIN_LISTEN.value(env).eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    AUTHZ_ADMIN_LISTEN.listen(env).map(Some)
}

impl DirectoryConfig {
    /// Reads the directory, cache and admin variables. `taken` are the other listeners, which
    /// the admin listener must not share.
    pub fn from_map(
        env: &Env,
        debug: bool,
        taken: &[(&str, &ListenAddr)],
    ) -> Result<Self, ConfigError> {
        let email_case = match EMAIL_LOCAL_PART_CASE.choice(env).as_str() {
            "insensitive" => LocalPartCase::Insensitive,
            "sensitive" => LocalPartCase::Sensitive,
            other => {
                return Err(EMAIL_LOCAL_PART_CASE
                    .invalid(format!("`{other}` is not insensitive or sensitive")));
            }
        };
        let d = Self {
            email_case,
            ..Self::default()
        };
        let source = match GROUP_SOURCE.choice(env).as_str() {
            "file" => GroupSourceKind::File,
            "http" => GroupSourceKind::Http,
            other => {
                return Err(GROUP_SOURCE.invalid(format!("`{other}` is not file or http")));
            }
        };
        let admin_listen = parse_admin_listen(env)?;
        if source == GroupSourceKind::File {
            if GROUP_CACHE.choice(env) != GROUP_CACHE.default {
                return Err(
                    GROUP_CACHE.invalid("the cache holds directory answers; set GROUP_SOURCE=http")
                );
            }
            if admin_listen.is_some() {
                return Err(AUTHZ_ADMIN_LISTEN.invalid(
                    "the admin endpoints flush the directory cache; set GROUP_SOURCE=http",
                ));
            }
            return Ok(Self { source, ..d });
        }
        let cache = parse_cache_backend(env, debug)?;
        let allow_http = AUTH_ALLOW_HTTP.get(env)?;
        let server_url = parse_server_url(env, allow_http, debug)?;
        let api_token = AUTH_API_TOKEN
            .secret_value(env, &AUTH_API_TOKEN_FILE)?
            .ok_or(AUTH_API_TOKEN.missing(
                "set AUTH_API_TOKEN or AUTH_API_TOKEN_FILE to the directory's bearer token",
            ))?;
        if api_token
            .expose()
            .iter()
            .any(|b| !(0x21..=0x7e).contains(b))
        {
            return Err(ConfigError::Unsafe {
                var: AUTH_API_TOKEN.name,
                message: "the token must be printable ASCII without spaces, as it travels in an HTTP header".into(),
            });
        }
        let timeout_ms = AUTH_TIMEOUT_MS.get(env)?;
        if !(1..=60_000).contains(&timeout_ms) {
            return Err(AUTH_TIMEOUT_MS.invalid("must be between 1 and 60000"));
        }
        let max_body_bytes = AUTH_MAX_BODY_BYTES.get(env)?;
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(AUTH_MAX_BODY_BYTES.invalid("must be between 1024 and 16777216"));
        }
        let max_concurrency = AUTH_MAX_CONCURRENCY.get(env)?;
        if !(1..=1024).contains(&max_concurrency) {
            return Err(AUTH_MAX_CONCURRENCY.invalid("must be between 1 and 1024"));
        }
        let ttl = GROUP_CACHE_TTL_SECONDS.get(env)?;
        let stale = GROUP_CACHE_STALE_SECONDS.get(env)?;
        // A day bounds how long a removed member can keep access through the cache.
        if ttl > 86_400 {
            return Err(GROUP_CACHE_TTL_SECONDS.invalid("at most 86400 (a day)"));
        }
        if stale > 86_400 {
            return Err(GROUP_CACHE_STALE_SECONDS.invalid("at most 86400 (a day)"));
        }
        let cache_max_users = GROUP_CACHE_MAX_USERS.get(env)?;
        if cache_max_users == 0 {
            return Err(GROUP_CACHE_MAX_USERS.invalid("must be at least 1"));
        }
        let admin_token = AUTHZ_ADMIN_TOKEN.secret_value(env, &AUTHZ_ADMIN_TOKEN_FILE)?;
        if let Some(addr) = &admin_listen {
            let ephemeral = matches!(addr, ListenAddr::Tcp(a) if a.port() == 0);
            if let Some((var, _)) = taken.iter().find(|(_, t)| *t == addr && !ephemeral) {
                return Err(AUTHZ_ADMIN_LISTEN.invalid(format!("`{addr}` is also {var}")));
            }
            // Required on loopback too: in a pod, loopback is shared with the application.
            let token = admin_token.as_ref().ok_or(AUTHZ_ADMIN_TOKEN.missing(
                "AUTHZ_ADMIN_LISTEN needs a token (or AUTHZ_ADMIN_TOKEN_FILE) to guard the admin endpoints",
            ))?;
            check_secret_strength(token, AUTHZ_ADMIN_TOKEN.name, debug)?;
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
            email_case,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Default` and the parsed defaults are one thing: both come from the spec.
    #[test]
    fn default_is_what_an_unset_environment_reads() {
        let env: Env = [
            ("GROUP_SOURCE", "http"),
            ("AUTH_SERVER_URL", "https://dir.example.com"),
            ("AUTH_API_TOKEN", "t0ken"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let parsed =
            DirectoryConfig::from_map(&env, false, &[]).unwrap_or_else(|e| unreachable!("{e}"));
        let d = DirectoryConfig::default();
        assert_eq!(parsed.groups_path, d.groups_path);
        assert_eq!(parsed.groups_field, d.groups_field);
        assert_eq!(parsed.timeout, d.timeout);
        assert_eq!(parsed.max_body_bytes, d.max_body_bytes);
        assert_eq!(parsed.max_concurrency, d.max_concurrency);
        assert_eq!(parsed.allow_http, d.allow_http);
        assert_eq!(parsed.cache_ttl, d.cache_ttl);
        assert_eq!(parsed.cache_stale, d.cache_stale);
        assert_eq!(parsed.cache_max_users, d.cache_max_users);
        assert_eq!(parsed.cache, d.cache);
        assert_eq!(parsed.admin_listen, d.admin_listen);
        assert_eq!(d.source, GroupSourceKind::File);
    }

    fn redis_env(extra: &[(&str, &str)]) -> Env {
        [
            ("GROUP_SOURCE", "http"),
            ("AUTH_SERVER_URL", "https://dir.example.com"),
            ("AUTH_API_TOKEN", "t0ken"),
            ("GROUP_CACHE", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn redis_needs_a_strong_hmac_key() {
        let refusal =
            |extra: &[(&str, &str)]| match DirectoryConfig::from_map(&redis_env(extra), false, &[])
            {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            };
        assert!(
            refusal(&[]).starts_with("REDIS_HMAC_KEY"),
            "{}",
            refusal(&[])
        );
        let short = refusal(&[("REDIS_HMAC_KEY", "short-key")]);
        assert!(
            short.starts_with("REDIS_HMAC_KEY: the secret must be at least 32 bytes"),
            "{short}"
        );
        assert!(!short.contains("short-key"), "{short}");
        let key = "0123456789abcdef0123456789abcdef";
        let parsed = DirectoryConfig::from_map(&redis_env(&[("REDIS_HMAC_KEY", key)]), false, &[]);
        assert!(
            matches!(&parsed, Ok(DirectoryConfig { cache: CacheBackend::Redis(r), .. }) if r.hmac_key.expose() == key.as_bytes()),
            "{parsed:?}"
        );
    }
}
