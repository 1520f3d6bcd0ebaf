//! authz's configuration: environment variables, optionally from a `.env` file.
//! Every variable is documented in `.env.example`; unsafe combinations refuse to start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::{MIN_SECRET_LEN, Secret, SecretSet};

/// Where a listener binds: a TCP address or a unix socket path (`unix:/run/authz.sock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a socket path".into());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(Self::Tcp)
            .map_err(|_| format!("`{s}` is neither `IP:PORT` nor `unix:/path`"))
    }
}

/// Why the configuration was refused. Every message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set: {why}")]
    Missing {
        var: &'static str,
        why: &'static str,
    },
    #[error("{var} is invalid: {message}")]
    Invalid { var: String, message: String },
    #[error("{var}: {message}")]
    Unsafe { var: &'static str, message: String },
    #[error("cannot read {var}: {message}")]
    File { var: &'static str, message: String },
}

/// Variables starting with `AUTHZ_` that authz knows; any other is a typo and refused.
const KNOWN_AUTHZ_VARS: &[&str] = &[
    "AUTHZ_LISTEN",
    "AUTHZ_GRPC_LISTEN",
    "AUTHZ_CLIENT_IP_HEADER",
    "AUTHZ_GROUPS_HEADER_MAX",
    "AUTHZ_POLICY_POLL_SECONDS",
    "AUTHZ_ADMIN_LISTEN",
    "AUTHZ_ADMIN_TOKEN",
    "AUTHZ_ADMIN_TOKEN_FILE",
    "AUTHZ_ENTITY_CACHE_TTL_MS",
];

/// authz's settings. Defaults in brackets.
#[derive(Clone)]
pub struct Config {
    /// The shared secret, `DEBUG` and `SKIP_HEADER_CHECK`.
    pub secrets: SecretConfig,
    /// `X_USER_ID_HEADER` [X-User-Email]
    pub user_header: String,
    /// `X_PROXY_SECRET_HEADER` [X-Proxy-Secret]
    pub secret_header: String,
    /// `POLICY_DIR` [policies]
    pub policy_dir: PathBuf,
    /// `GROUPS_FILE` [policies/groups.toml]
    pub groups_file: PathBuf,
    /// `POLICY_SHADOW_DIR` [unset]: a candidate policy directory decided beside the live one
    /// on every request and never enforced; disagreements are logged and counted.
    pub policy_shadow_dir: Option<PathBuf>,
    /// `AUTHZ_LISTEN` [127.0.0.1:8181]
    pub listen: ListenAddr,
    /// `AUTHZ_GRPC_LISTEN` [127.0.0.1:9191]: Envoy ext_authz over gRPC; `off` disables it.
    pub grpc_listen: Option<ListenAddr>,
    /// `LOG_FILE` [logs/app.json]; empty disables the file.
    pub log_file: Option<PathBuf>,
    /// `AUTHZ_CLIENT_IP_HEADER` [X-Real-IP]: the header carrying the client address; empty disables.
    pub client_ip_header: Option<String>,
    /// `AUTHZ_GROUPS_HEADER_MAX` [2048]: most bytes sent in `X-Authz-Groups`.
    pub groups_header_max: usize,
    /// `AUTHZ_POLICY_POLL_SECONDS` [2]: rescan interval backing up file events; 0 disables.
    pub policy_poll: Duration,
    /// Group membership from the directory, its cache and the admin listener.
    pub directory: DirectoryConfig,
    /// `DATABASE_URL` [unset]: the API's database, read to resolve `Project` entities for
    /// per-project routes; unset, such routes carry no project data. Never logged.
    pub database_url: Option<String>,
    /// `AUTHZ_ENTITY_CACHE_TTL_MS` [2000]: how long a project's group is remembered; 0 disables.
    pub entity_cache_ttl: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("secrets", &self.secrets)
            .field("user_header", &self.user_header)
            .field("secret_header", &self.secret_header)
            .field("policy_dir", &self.policy_dir)
            .field("groups_file", &self.groups_file)
            .field("policy_shadow_dir", &self.policy_shadow_dir)
            .field("listen", &self.listen)
            .field("grpc_listen", &self.grpc_listen)
            .field("log_file", &self.log_file)
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

type Env = HashMap<String, String>;

fn get<'a>(env: &'a Env, var: &str) -> Option<&'a str> {
    env.get(var).map(String::as_str)
}

fn invalid(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var: var.to_string(),
        message: message.into(),
    }
}

/// Parses `true/false/1/0/yes/no/on/off`; anything else is refused rather than guessed.
pub fn parse_bool(env: &Env, var: &str, default: bool) -> Result<bool, ConfigError> {
    match get(env, var).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => match v.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(invalid(var, format!("`{v}` is not true or false"))),
        },
    }
}

pub fn parse_num<T: std::str::FromStr>(env: &Env, var: &str, default: T) -> Result<T, ConfigError> {
    match get(env, var).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| invalid(var, format!("`{v}` is not a number"))),
    }
}

/// A header name: an HTTP token, stored lower-case.
pub fn parse_header_name(env: &Env, var: &str, default: &str) -> Result<String, ConfigError> {
    let v = get(env, var)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default);
    let ok =
        !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(invalid(
            var,
            format!("`{v}` is not a header name (letters, digits and `-`)"),
        ));
    }
    Ok(v.to_ascii_lowercase())
}

/// A secret from `VAR` or from the file named by `VAR_FILE`, never both.
pub fn read_secret(
    env: &Env,
    var: &'static str,
    file_var: &'static str,
) -> Result<Option<Secret>, ConfigError> {
    let direct = get(env, var).filter(|v| !v.is_empty());
    let file = get(env, file_var).filter(|v| !v.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => Err(ConfigError::Unsafe {
            var,
            message: format!("set {var} or {file_var}, not both"),
        }),
        (Some(v), None) => Ok(Some(Secret::new(v.as_bytes().to_vec()))),
        (None, Some(path)) => {
            let mut bytes = std::fs::read(path).map_err(|e| ConfigError::File {
                var: file_var,
                message: format!("`{path}`: {e}"),
            })?;
            // Secret managers and editors add a final newline; it is not part of the secret.
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            if bytes.is_empty() {
                return Err(ConfigError::File {
                    var: file_var,
                    message: format!("`{path}` is empty"),
                });
            }
            Ok(Some(Secret::new(bytes)))
        }
        (None, None) => Ok(None),
    }
}

/// The placeholder shipped in `.env.example`; refused so it never guards a deployment.
pub const EXAMPLE_SECRET: &str = "replace-with-the-output-of-openssl-rand-hex-32";

/// Refuses secrets too short to resist guessing (unless in debug mode) and the example placeholder.
pub fn check_secret_strength(
    secret: &Secret,
    var: &'static str,
    debug: bool,
) -> Result<(), ConfigError> {
    if secret.expose() == EXAMPLE_SECRET.as_bytes() {
        return Err(ConfigError::Unsafe {
            var,
            message: "this is the placeholder from .env.example: generate a secret with `openssl rand -hex 32`".into(),
        });
    }
    if secret.len() < MIN_SECRET_LEN && !debug {
        return Err(ConfigError::Unsafe {
            var,
            message: format!(
                "the secret must be at least {MIN_SECRET_LEN} bytes (generate one with `openssl rand -hex 32`); shorter ones are allowed only with DEBUG=true"
            ),
        });
    }
    if secret.expose().iter().any(|b| !(0x21..=0x7e).contains(b)) {
        return Err(ConfigError::Unsafe {
            var,
            message:
                "the secret must be printable ASCII without spaces, as it travels in an HTTP header"
                    .into(),
        });
    }
    Ok(())
}

/// The secret settings shared by authz and the API.
#[derive(Debug, Clone)]
pub struct SecretConfig {
    pub secret: Secret,
    pub previous: Option<Secret>,
    pub debug: bool,
    pub skip_header_check: bool,
}

impl SecretConfig {
    /// Reads and checks the secret variables, `DEBUG` and `SKIP_HEADER_CHECK`.
    pub fn from_map(env: &Env) -> Result<Self, ConfigError> {
        let debug = parse_bool(env, "DEBUG", false)?;
        let skip_header_check = parse_bool(env, "SKIP_HEADER_CHECK", false)?;
        if skip_header_check && !debug {
            return Err(ConfigError::Unsafe {
                var: "SKIP_HEADER_CHECK",
                message: "SKIP_HEADER_CHECK=true is allowed only with DEBUG=true".into(),
            });
        }
        let secret = read_secret(env, "PROXY_SHARED_SECRET", "PROXY_SHARED_SECRET_FILE")?.ok_or(
            ConfigError::Missing {
                var: "PROXY_SHARED_SECRET",
                why: "set PROXY_SHARED_SECRET or PROXY_SHARED_SECRET_FILE to the secret the proxy sends",
            },
        )?;
        check_secret_strength(&secret, "PROXY_SHARED_SECRET", debug)?;
        let previous = read_secret(
            env,
            "PROXY_SHARED_SECRET_PREVIOUS",
            "PROXY_SHARED_SECRET_PREVIOUS_FILE",
        )?;
        if let Some(p) = &previous {
            check_secret_strength(p, "PROXY_SHARED_SECRET_PREVIOUS", debug)?;
        }
        Ok(Self {
            secret,
            previous,
            debug,
            skip_header_check,
        })
    }

    /// The secrets to check, or `None` when the check is skipped (debug only).
    pub fn secret_set(&self) -> Option<SecretSet> {
        (!self.skip_header_check).then(|| SecretSet::new(&self.secret, self.previous.as_ref()))
    }
}

/// Refuses variables starting with `prefix` that `program` does not know: a typo guard.
pub fn reject_unknown(
    env: &Env,
    prefix: &str,
    known: &[&str],
    program: &str,
) -> Result<(), ConfigError> {
    match env
        .keys()
        .filter(|k| k.starts_with(prefix) && !known.contains(&k.as_str()))
        .min()
    {
        Some(unknown) => Err(invalid(
            unknown,
            format!("unknown variable; {program} knows {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// The user and secret header names (`X_USER_ID_HEADER`, `X_PROXY_SECRET_HEADER`), which must differ.
pub fn identity_header_names(env: &Env) -> Result<(String, String), ConfigError> {
    let user_header = parse_header_name(env, "X_USER_ID_HEADER", "X-User-Email")?;
    let secret_header = parse_header_name(env, "X_PROXY_SECRET_HEADER", "X-Proxy-Secret")?;
    if user_header == secret_header {
        return Err(invalid(
            "X_PROXY_SECRET_HEADER",
            "must differ from X_USER_ID_HEADER",
        ));
    }
    Ok((user_header, secret_header))
}

/// Reads the process environment, overlaid on `.env` if one is present (real variables win).
pub fn environment() -> Result<Env, ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => return Err(invalid(".env", e.to_string())),
    }
    Ok(std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect())
}

/// `AUTHZ_GRPC_LISTEN`: an address, `off`, or unset for the default. It must not be the HTTP
/// listener's address: two servers on one unix socket path would unlink each other's socket.
fn parse_grpc_listen(env: &Env, http: &ListenAddr) -> Result<Option<ListenAddr>, ConfigError> {
    let var = "AUTHZ_GRPC_LISTEN";
    let value = get(env, var)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("127.0.0.1:9191");
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr: ListenAddr = value.parse().map_err(|m| invalid(var, m))?;
    // Port 0 asks for any free port, so two port-0 listeners never collide.
    let ephemeral = matches!(&addr, ListenAddr::Tcp(a) if a.port() == 0);
    if &addr == http && !ephemeral {
        return Err(invalid(var, format!("`{addr}` is also AUTHZ_LISTEN")));
    }
    Ok(Some(addr))
}

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

impl Config {
    /// Reads the configuration from the environment and `.env`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&environment()?)
    }

    /// Builds the configuration from a variable map.
    pub fn from_map(env: &Env) -> Result<Self, ConfigError> {
        reject_unknown(env, "AUTHZ_", KNOWN_AUTHZ_VARS, "authz")?;
        let secrets = SecretConfig::from_map(env)?;
        let (user_header, secret_header) = identity_header_names(env)?;
        let path = |var: &str, default: &str| {
            PathBuf::from(get(env, var).filter(|v| !v.is_empty()).unwrap_or(default))
        };
        let listen = get(env, "AUTHZ_LISTEN")
            .filter(|v| !v.is_empty())
            .unwrap_or("127.0.0.1:8181")
            .parse()
            .map_err(|m| invalid("AUTHZ_LISTEN", m))?;
        let grpc_listen = parse_grpc_listen(env, &listen)?;
        let log_file = match get(env, "LOG_FILE") {
            Some("") => None,
            Some(v) => Some(PathBuf::from(v)),
            None => Some(PathBuf::from("logs/app.json")),
        };
        let client_ip_header = match get(env, "AUTHZ_CLIENT_IP_HEADER") {
            Some("") => None,
            _ => Some(parse_header_name(
                env,
                "AUTHZ_CLIENT_IP_HEADER",
                "X-Real-IP",
            )?),
        };
        let groups_header_max = parse_num(env, "AUTHZ_GROUPS_HEADER_MAX", 2048usize)?;
        if !(64..=16 * 1024).contains(&groups_header_max) {
            return Err(invalid(
                "AUTHZ_GROUPS_HEADER_MAX",
                "must be between 64 and 16384 bytes",
            ));
        }
        let poll: u64 = parse_num(env, "AUTHZ_POLICY_POLL_SECONDS", 2)?;
        let mut taken = vec![("AUTHZ_LISTEN", &listen)];
        taken.extend(grpc_listen.iter().map(|g| ("AUTHZ_GRPC_LISTEN", g)));
        let directory = DirectoryConfig::from_map(env, secrets.debug, &taken)?;
        let database_url = get(env, "DATABASE_URL")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let entity_cache_ttl: u64 = parse_num(env, "AUTHZ_ENTITY_CACHE_TTL_MS", 2000)?;
        Ok(Self {
            secrets,
            user_header,
            secret_header,
            policy_dir: path("POLICY_DIR", "policies"),
            groups_file: path("GROUPS_FILE", "policies/groups.toml"),
            policy_shadow_dir: get(env, "POLICY_SHADOW_DIR")
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            listen,
            grpc_listen,
            log_file,
            client_ip_header,
            groups_header_max,
            policy_poll: Duration::from_secs(poll),
            directory,
            database_url,
            entity_cache_ttl: Duration::from_millis(entity_cache_ttl),
        })
    }

    /// A configuration for tests: loopback port 0, no log file, the given files.
    pub fn for_test(policy_dir: &Path, groups_file: &Path, secret: &str) -> Self {
        Self {
            secrets: SecretConfig {
                secret: Secret::new(secret.as_bytes().to_vec()),
                previous: None,
                debug: false,
                skip_header_check: false,
            },
            user_header: "x-user-email".into(),
            secret_header: "x-proxy-secret".into(),
            policy_dir: policy_dir.to_path_buf(),
            groups_file: groups_file.to_path_buf(),
            policy_shadow_dir: None,
            listen: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            grpc_listen: Some(ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))),
            log_file: None,
            client_ip_header: Some("x-real-ip".into()),
            groups_header_max: 2048,
            policy_poll: Duration::from_secs(2),
            directory: DirectoryConfig::default(),
            database_url: None,
            entity_cache_ttl: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        match Config::from_map(&env(pairs)) {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refusals_name_the_variable() {
        assert!(err(&[]).starts_with("PROXY_SHARED_SECRET is not set"));
        assert!(err(&[("PROXY_SHARED_SECRET", EXAMPLE_SECRET)]).contains("placeholder"));
        assert!(err(&[("PROXY_SHARED_SECRET", "short")]).starts_with("PROXY_SHARED_SECRET:"));
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("SKIP_HEADER_CHECK", "true")])
                .starts_with("SKIP_HEADER_CHECK:")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("DEBUG", "maybe")])
                .starts_with("DEBUG is invalid")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("AUTHZ_LISTN", "x")])
                .starts_with("AUTHZ_LISTN is invalid")
        );
        assert!(
            err(&[
                ("PROXY_SHARED_SECRET", GOOD),
                ("PROXY_SHARED_SECRET_FILE", "/x")
            ])
            .starts_with("PROXY_SHARED_SECRET:")
        );
        assert!(
            err(&[
                ("PROXY_SHARED_SECRET", GOOD),
                ("PROXY_SHARED_SECRET_PREVIOUS", "short")
            ])
            .starts_with("PROXY_SHARED_SECRET_PREVIOUS:")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("AUTHZ_LISTEN", "nowhere")])
                .starts_with("AUTHZ_LISTEN is invalid")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("AUTHZ_GRPC_LISTEN", "9191")])
                .starts_with("AUTHZ_GRPC_LISTEN is invalid")
        );
        assert!(
            err(&[
                ("PROXY_SHARED_SECRET", GOOD),
                ("AUTHZ_LISTEN", "unix:/run/a.sock"),
                ("AUTHZ_GRPC_LISTEN", "unix:/run/a.sock")
            ])
            .starts_with("AUTHZ_GRPC_LISTEN is invalid")
        );
        assert_eq!(
            err(&[
                ("PROXY_SHARED_SECRET", "short"),
                ("DEBUG", "true"),
                ("SKIP_HEADER_CHECK", "true")
            ]),
            "accepted"
        );
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let secret = "s3cr3t-value-that-must-not-leak-0123456789";
        let c = Config::from_map(&env(&[("PROXY_SHARED_SECRET", secret)]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let e = err(&[("PROXY_SHARED_SECRET", "s3cr3t")]);
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn reads_secret_files_without_final_newline() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let p = dir.path().join("secret");
        std::fs::write(&p, format!("{GOOD}\n")).unwrap_or_else(|e| unreachable!("{e}"));
        let c = Config::from_map(&env(&[(
            "PROXY_SHARED_SECRET_FILE",
            p.to_str().unwrap_or_default(),
        )]))
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.secrets.secret.expose(), GOOD.as_bytes());
        assert!(matches!(c.listen, ListenAddr::Tcp(_)));
        assert_eq!(c.grpc_listen, "127.0.0.1:9191".parse().ok());
        let off = Config::from_map(&env(&[
            ("PROXY_SHARED_SECRET", GOOD),
            ("AUTHZ_GRPC_LISTEN", "off"),
        ]))
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(off.grpc_listen, None);
        assert_eq!(
            "unix:/run/a.sock".parse(),
            Ok(ListenAddr::Unix("/run/a.sock".into()))
        );
    }

    #[test]
    fn directory_refusals_name_the_variable() {
        let http = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![
                ("PROXY_SHARED_SECRET", GOOD),
                ("GROUP_SOURCE", "http"),
                ("AUTH_SERVER_URL", "https://dir.example.com/"),
                ("AUTH_API_TOKEN", "dir-t0ken"),
            ];
            pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            pairs.extend(extra.iter().copied().filter(|(_, v)| !v.is_empty()));
            err(&pairs)
        };
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("GROUP_SOURCE", "ldap")], "GROUP_SOURCE is invalid"),
            (&[("AUTH_SERVER_URL", "")], "AUTH_SERVER_URL is not set"),
            (
                &[("AUTH_SERVER_URL", "http://dir.example.com")],
                "AUTH_SERVER_URL:",
            ),
            (
                &[("AUTH_SERVER_URL", "https://u:pw@dir.example.com")],
                "AUTH_SERVER_URL:",
            ),
            (
                &[("AUTH_SERVER_URL", "ftp://dir.example.com")],
                "AUTH_SERVER_URL is invalid",
            ),
            (&[("AUTH_API_TOKEN", "")], "AUTH_API_TOKEN is not set"),
            (
                &[("AUTH_GROUPS_PATH", "/api/user/groups")],
                "AUTH_GROUPS_PATH is invalid",
            ),
            (
                &[("AUTH_GROUPS_FIELD", "data..groups")],
                "AUTH_GROUPS_FIELD is invalid",
            ),
            (&[("AUTH_TIMEOUT_MS", "0")], "AUTH_TIMEOUT_MS is invalid"),
            (
                &[("AUTH_MAX_BODY_BYTES", "10")],
                "AUTH_MAX_BODY_BYTES is invalid",
            ),
            (
                &[("AUTH_MAX_CONCURRENCY", "0")],
                "AUTH_MAX_CONCURRENCY is invalid",
            ),
            (
                &[("GROUP_CACHE_TTL_SECONDS", "-1")],
                "GROUP_CACHE_TTL_SECONDS is invalid",
            ),
            (
                &[("GROUP_CACHE_MAX_USERS", "0")],
                "GROUP_CACHE_MAX_USERS is invalid",
            ),
            (&[("GROUP_CACHE", "disk")], "GROUP_CACHE is invalid"),
            (&[("GROUP_CACHE", "redis")], "REDIS_URL is not set"),
            (
                &[("GROUP_CACHE", "redis"), ("REDIS_URL", "rediss://r:6380")],
                "REDIS_URL is invalid",
            ),
            (
                &[("AUTHZ_ADMIN_LISTEN", "127.0.0.1:9999")],
                "AUTHZ_ADMIN_TOKEN is not set",
            ),
            (
                &[
                    ("AUTHZ_ADMIN_LISTEN", "127.0.0.1:9999"),
                    ("AUTHZ_ADMIN_TOKEN", "short"),
                ],
                "AUTHZ_ADMIN_TOKEN:",
            ),
            (
                &[
                    ("AUTHZ_ADMIN_LISTEN", "127.0.0.1:8181"),
                    ("AUTHZ_ADMIN_TOKEN", GOOD),
                ],
                "AUTHZ_ADMIN_LISTEN is invalid",
            ),
            (
                &[
                    ("AUTHZ_ADMIN_LISTEN", "127.0.0.1:9191"),
                    ("AUTHZ_ADMIN_TOKEN", GOOD),
                ],
                "AUTHZ_ADMIN_LISTEN is invalid: `127.0.0.1:9191` is also AUTHZ_GRPC_LISTEN",
            ),
        ];
        for (extra, want) in cases {
            let got = http(extra);
            assert!(got.starts_with(want), "{extra:?}: {got}");
            assert!(!got.contains("dir-t0ken") && !got.contains(":pw@"), "{got}");
        }
        // The file source refuses what only makes sense with the directory.
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("GROUP_CACHE", "redis")])
                .starts_with("GROUP_CACHE is invalid")
        );
        assert!(
            err(&[
                ("PROXY_SHARED_SECRET", GOOD),
                ("AUTHZ_ADMIN_LISTEN", "127.0.0.1:9999")
            ])
            .starts_with("AUTHZ_ADMIN_LISTEN is invalid")
        );
        // Plain http is fine on loopback, or when asked for.
        assert_eq!(
            http(&[("AUTH_SERVER_URL", "http://127.0.0.1:8080")]),
            "accepted"
        );
        assert_eq!(
            http(&[("AUTH_SERVER_URL", "http://[::1]:8080")]),
            "accepted"
        );
        assert_eq!(
            http(&[
                ("AUTH_SERVER_URL", "http://dir.internal"),
                ("AUTH_ALLOW_HTTP", "true")
            ]),
            "accepted"
        );
    }

    #[test]
    fn directory_settings_and_their_debug_output() {
        let c = Config::from_map(&env(&[
            ("PROXY_SHARED_SECRET", GOOD),
            ("GROUP_SOURCE", "http"),
            ("AUTH_SERVER_URL", "https://dir.example.com/base/"),
            ("AUTH_API_TOKEN", "dir-t0ken"),
            ("GROUP_CACHE", "redis"),
            ("REDIS_URL", "redis://:redis-pw@127.0.0.1:6379/2"),
            ("GROUP_CACHE_STALE_SECONDS", "60"),
            ("AUTHZ_ADMIN_LISTEN", "127.0.0.1:9999"),
            (
                "AUTHZ_ADMIN_TOKEN",
                "admin-t0ken-0123456789abcdef0123456789",
            ),
        ]))
        .unwrap_or_else(|e| unreachable!("{e}"));
        let d = &c.directory;
        assert_eq!(d.source, GroupSourceKind::Http);
        assert_eq!(
            d.server_url.as_deref(),
            Some("https://dir.example.com/base")
        );
        assert_eq!(d.groups_path, DEFAULT_GROUPS_PATH);
        assert_eq!(d.cache_ttl, Duration::from_secs(300));
        assert_eq!(d.cache_stale, Duration::from_secs(60));
        assert!(matches!(&d.cache, CacheBackend::Redis(r) if r.key_prefix == "authz:"));
        let shown = format!("{c:?}");
        for secret in ["dir-t0ken", "redis-pw", "admin-t0ken"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let file = Config::from_map(&env(&[("PROXY_SHARED_SECRET", GOOD)]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(file.directory.source, GroupSourceKind::File);
        assert_eq!(file.directory.admin_listen, None);
    }
}
