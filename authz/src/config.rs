//! authz's configuration: environment variables, optionally from a `.env` file.
//! Every variable, its default and its documentation are in [`spec`](ipm_runtime::config::spec); unsafe combinations
//! refuse to start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipm_policy::secret::Secret;
use ipm_runtime::config::spec::{
    AUTHZ_ADMIN_LISTEN, AUTHZ_AUTHZEN_LISTEN, AUTHZ_AUTHZEN_PDP_URL, AUTHZ_AUTHZEN_TOKEN,
    AUTHZ_AUTHZEN_TOKEN_FILE, AUTHZ_CLIENT_IP_HEADER, AUTHZ_ENTITY_CACHE_TTL_MS,
    AUTHZ_GROUPS_HEADER_MAX, AUTHZ_GRPC_LISTEN, AUTHZ_LISTEN, AUTHZ_POLICY_POLL_SECONDS,
    DATABASE_URL, GROUPS_FILE, POLICY_DIR, POLICY_SHADOW_DIR, X_PROXY_SECRET_HEADER,
    X_USER_ID_HEADER,
};
use ipm_runtime::config::{
    ConfigError, DirectoryConfig, Env, ListenAddr, Program, SecretConfig, check_secret_strength,
    environment, identity_header_names, log_file, reject_unknown,
};

/// authz's settings. Each field names its variable; the defaults and documentation are in
/// [`spec`](ipm_runtime::config::spec).
#[derive(Clone)]
pub struct Config {
    /// The shared secret, `DEBUG` and `SKIP_HEADER_CHECK`.
    pub secrets: SecretConfig,
    /// [`X_USER_ID_HEADER`], in lower case.
    pub user_header: String,
    /// [`X_PROXY_SECRET_HEADER`], in lower case.
    pub secret_header: String,
    /// [`POLICY_DIR`]
    pub policy_dir: PathBuf,
    /// [`GROUPS_FILE`]
    pub groups_file: PathBuf,
    /// [`POLICY_SHADOW_DIR`] (unset: off): a candidate policy directory decided beside the
    /// live one on every request and never enforced; disagreements are logged and counted.
    pub policy_shadow_dir: Option<PathBuf>,
    /// [`AUTHZ_LISTEN`]
    pub listen: ListenAddr,
    /// [`AUTHZ_GRPC_LISTEN`]: Envoy ext_authz over gRPC; `off` is `None`.
    pub grpc_listen: Option<ListenAddr>,
    /// [`LOG_FILE`](ipm_runtime::config::spec::LOG_FILE); empty is `None`.
    pub log_file: Option<PathBuf>,
    /// [`AUTHZ_CLIENT_IP_HEADER`]: the header carrying the client address; empty is `None`.
    pub client_ip_header: Option<String>,
    /// [`AUTHZ_GROUPS_HEADER_MAX`]: most bytes sent in `X-Authz-Groups`.
    pub groups_header_max: usize,
    /// [`AUTHZ_POLICY_POLL_SECONDS`]: rescan interval backing up file events; 0 disables.
    pub policy_poll: Duration,
    /// Group membership from the directory, its cache and the admin listener.
    pub directory: DirectoryConfig,
    /// [`DATABASE_URL`] (unset for authz, whatever the API's default): the API's database,
    /// read to resolve `Project` entities for per-project routes; unset, such routes carry no
    /// project data. Never logged.
    pub database_url: Option<String>,
    /// [`AUTHZ_ENTITY_CACHE_TTL_MS`]: how long a project's group is remembered; 0 disables.
    pub entity_cache_ttl: Duration,
    /// The AuthZEN endpoint: where, and how callers authenticate.
    pub authzen: AuthzenConfig,
}

/// Where the AuthZEN endpoint is served ([`AUTHZ_AUTHZEN_LISTEN`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzenListen {
    /// On `AUTHZ_LISTEN`, beside `/auth` (the default).
    Main,
    Off,
    /// On its own listener.
    Own(ListenAddr),
}

/// The AuthZEN endpoint's settings.
#[derive(Clone)]
pub struct AuthzenConfig {
    /// [`AUTHZ_AUTHZEN_LISTEN`]
    pub listen: AuthzenListen,
    /// [`AUTHZ_AUTHZEN_TOKEN`] or `AUTHZ_AUTHZEN_TOKEN_FILE`: the bearer token callers send;
    /// `None`: they send the proxy's shared secret instead.
    pub token: Option<Secret>,
    /// [`AUTHZ_AUTHZEN_PDP_URL`], without a trailing `/`; `None`: from the request's `Host`.
    pub pdp_url: Option<String>,
}

impl std::fmt::Debug for AuthzenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzenConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("pdp_url", &self.pdp_url)
            .finish()
    }
}

impl Default for AuthzenConfig {
    fn default() -> Self {
        Self {
            listen: AuthzenListen::Main,
            token: None,
            pdp_url: None,
        }
    }
}

impl AuthzenConfig {
    /// Reads the AuthZEN variables; its own listener must not take an address already taken.
    fn from_map(
        env: &Env,
        debug: bool,
        taken: &[(&'static str, &ListenAddr)],
    ) -> Result<Self, ConfigError> {
        let listen = match AUTHZ_AUTHZEN_LISTEN.choice(env).as_str() {
            "main" => AuthzenListen::Main,
            "off" => AuthzenListen::Off,
            _ => {
                let addr = AUTHZ_AUTHZEN_LISTEN.listen(env)?;
                let ephemeral = matches!(&addr, ListenAddr::Tcp(a) if a.port() == 0);
                if let Some((var, _)) = taken.iter().find(|(_, t)| **t == addr && !ephemeral) {
                    return Err(AUTHZ_AUTHZEN_LISTEN.invalid(format!(
                        "`{addr}` is also {var} (use `main` to serve it there)"
                    )));
                }
                AuthzenListen::Own(addr)
            }
        };
        let token = AUTHZ_AUTHZEN_TOKEN.secret_value(env, &AUTHZ_AUTHZEN_TOKEN_FILE)?;
        if let Some(t) = &token {
            check_secret_strength(t, AUTHZ_AUTHZEN_TOKEN.name, debug)?;
        }
        let pdp_url = match AUTHZ_AUTHZEN_PDP_URL.raw(env) {
            None => None,
            Some(url) => {
                let ok = (url.starts_with("https://") || url.starts_with("http://"))
                    && !url.contains(['?', '#'])
                    && !url.chars().any(|c| c.is_whitespace() || c.is_control());
                if !ok {
                    return Err(AUTHZ_AUTHZEN_PDP_URL.invalid(format!(
                        "`{url}` is not an http(s) URL without query or fragment"
                    )));
                }
                Some(url.trim_end_matches('/').to_string())
            }
        };
        Ok(Self {
            listen,
            token,
            pdp_url,
        })
    }
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
            .field("authzen", &self.authzen)
            .finish_non_exhaustive()
    }
}

/// `AUTHZ_GRPC_LISTEN`: an address or `off`. It must not be the HTTP listener's address: two
/// servers on one unix socket path would unlink each other's socket.
fn parse_grpc_listen(env: &Env, http: &ListenAddr) -> Result<Option<ListenAddr>, ConfigError> {
    if AUTHZ_GRPC_LISTEN.value(env).eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr = AUTHZ_GRPC_LISTEN.listen(env)?;
    // Port 0 asks for any free port, so two port-0 listeners never collide.
    let ephemeral = matches!(&addr, ListenAddr::Tcp(a) if a.port() == 0);
    if &addr == http && !ephemeral {
        return Err(AUTHZ_GRPC_LISTEN.invalid(format!("`{addr}` is also AUTHZ_LISTEN")));
    }
    Ok(Some(addr))
}

impl Config {
    /// Reads the configuration from the environment and `.env`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&environment()?)
    }

    /// Builds the configuration from a variable map.
    pub fn from_map(env: &Env) -> Result<Self, ConfigError> {
        reject_unknown(env, Program::Authz)?;
        let secrets = SecretConfig::from_map(env)?;
        let (user_header, secret_header) = identity_header_names(env)?;
        let listen = AUTHZ_LISTEN.listen(env)?;
        let grpc_listen = parse_grpc_listen(env, &listen)?;
        let client_ip_header = AUTHZ_CLIENT_IP_HEADER.header_or_off(env)?;
        let groups_header_max = AUTHZ_GROUPS_HEADER_MAX.get(env)?;
        if !(64..=16 * 1024).contains(&groups_header_max) {
            return Err(AUTHZ_GROUPS_HEADER_MAX.invalid("must be between 64 and 16384 bytes"));
        }
        let poll = AUTHZ_POLICY_POLL_SECONDS.get(env)?;
        let mut taken = vec![(AUTHZ_LISTEN.name, &listen)];
        taken.extend(grpc_listen.iter().map(|g| (AUTHZ_GRPC_LISTEN.name, g)));
        let directory = DirectoryConfig::from_map(env, secrets.debug, &taken)?;
        taken.extend(
            directory
                .admin_listen
                .iter()
                .map(|a| (AUTHZ_ADMIN_LISTEN.name, a)),
        );
        let authzen = AuthzenConfig::from_map(env, secrets.debug, &taken)?;
        let entity_cache_ttl = AUTHZ_ENTITY_CACHE_TTL_MS.get(env)?;
        Ok(Self {
            secrets,
            user_header,
            secret_header,
            policy_dir: POLICY_DIR.path(env),
            groups_file: GROUPS_FILE.path(env),
            policy_shadow_dir: POLICY_SHADOW_DIR.raw(env).map(PathBuf::from),
            listen,
            grpc_listen,
            log_file: log_file(env),
            client_ip_header,
            groups_header_max,
            policy_poll: Duration::from_secs(poll),
            directory,
            // Not the spec's default, which is the API's own database: unset, authz reads none.
            database_url: DATABASE_URL.raw(env).map(str::to_string),
            entity_cache_ttl: Duration::from_millis(entity_cache_ttl),
            authzen,
        })
    }

    /// A configuration for tests: loopback port 0, no log file, the given files, the spec's
    /// defaults otherwise.
    pub fn for_test(policy_dir: &Path, groups_file: &Path, secret: &str) -> Self {
        let loopback = ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)));
        Self {
            secrets: SecretConfig {
                secret: Secret::new(secret.as_bytes().to_vec()),
                previous: None,
                debug: false,
                skip_header_check: false,
            },
            user_header: X_USER_ID_HEADER.default.to_ascii_lowercase(),
            secret_header: X_PROXY_SECRET_HEADER.default.to_ascii_lowercase(),
            policy_dir: policy_dir.to_path_buf(),
            groups_file: groups_file.to_path_buf(),
            policy_shadow_dir: None,
            listen: loopback.clone(),
            grpc_listen: Some(loopback),
            log_file: None,
            client_ip_header: Some(AUTHZ_CLIENT_IP_HEADER.default.to_ascii_lowercase()),
            groups_header_max: AUTHZ_GROUPS_HEADER_MAX.default,
            policy_poll: Duration::from_secs(AUTHZ_POLICY_POLL_SECONDS.default),
            directory: DirectoryConfig::default(),
            database_url: None,
            entity_cache_ttl: Duration::from_millis(AUTHZ_ENTITY_CACHE_TTL_MS.default),
            authzen: AuthzenConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipm_runtime::config::{CacheBackend, DEFAULT_GROUPS_PATH, EXAMPLE_SECRET, GroupSourceKind};

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
    fn authzen_settings_are_read_and_refusals_name_the_variable() {
        let c = Config::from_map(&env(&[("PROXY_SHARED_SECRET", GOOD)]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.authzen.listen, AuthzenListen::Main);
        assert!(c.authzen.token.is_none() && c.authzen.pdp_url.is_none());
        let c = Config::from_map(&env(&[
            ("PROXY_SHARED_SECRET", GOOD),
            ("AUTHZ_AUTHZEN_LISTEN", "127.0.0.1:8282"),
            (
                "AUTHZ_AUTHZEN_TOKEN",
                "authzen-token-0123456789abcdef0123456789",
            ),
            ("AUTHZ_AUTHZEN_PDP_URL", "https://pdp.example.com/"),
        ]))
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            c.authzen.listen,
            AuthzenListen::Own(
                "127.0.0.1:8282"
                    .parse()
                    .unwrap_or_else(|e| unreachable!("{e}"))
            )
        );
        assert_eq!(
            c.authzen.pdp_url.as_deref(),
            Some("https://pdp.example.com")
        );
        assert!(!format!("{c:?}").contains("authzen-token"));
        let off = Config::from_map(&env(&[
            ("PROXY_SHARED_SECRET", GOOD),
            ("AUTHZ_AUTHZEN_LISTEN", "OFF"),
        ]))
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(off.authzen.listen, AuthzenListen::Off);
        for (pairs, starts) in [
            (
                vec![("AUTHZ_AUTHZEN_LISTEN", "elsewhere")],
                "AUTHZ_AUTHZEN_LISTEN is invalid",
            ),
            (
                vec![("AUTHZ_AUTHZEN_LISTEN", "127.0.0.1:8181")],
                "AUTHZ_AUTHZEN_LISTEN is invalid",
            ),
            (
                vec![("AUTHZ_AUTHZEN_TOKEN", "tiny-t0ken")],
                "AUTHZ_AUTHZEN_TOKEN:",
            ),
            (
                vec![("AUTHZ_AUTHZEN_PDP_URL", "pdp.example.com")],
                "AUTHZ_AUTHZEN_PDP_URL is invalid",
            ),
            (
                vec![("AUTHZ_AUTHZEN_PDP_URL", "https://pdp.example.com/?x=1")],
                "AUTHZ_AUTHZEN_PDP_URL is invalid",
            ),
            (
                vec![("AUTHZ_AUTHZEN_LISTN", "main")],
                "AUTHZ_AUTHZEN_LISTN is invalid",
            ),
        ] {
            let mut all = vec![("PROXY_SHARED_SECRET", GOOD)];
            all.extend(pairs);
            let e = err(&all);
            assert!(e.starts_with(starts), "{e}");
            assert!(!e.contains("tiny-t0ken"), "{e}");
        }
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
                &[("GROUP_CACHE", "redis"), ("REDIS_URL", "http://r:6380")],
                "REDIS_URL is invalid",
            ),
            (
                &[("GROUP_CACHE", "redis"), ("REDIS_URL", "redis://r:6379")],
                "REDIS_HMAC_KEY is not set",
            ),
            (
                &[
                    ("GROUP_CACHE", "redis"),
                    ("REDIS_URL", "redis://r:6379"),
                    ("REDIS_HMAC_KEY", "short"),
                ],
                "REDIS_HMAC_KEY: the secret must be at least 32 bytes",
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
        // TLS to Redis.
        assert_eq!(
            http(&[
                ("GROUP_CACHE", "redis"),
                ("REDIS_URL", "rediss://:pw@r.internal:6380/0"),
                ("REDIS_HMAC_KEY", GOOD),
            ]),
            "accepted"
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
            ("REDIS_HMAC_KEY", "redis-hm4c-0123456789abcdef0123456789"),
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
        for secret in ["dir-t0ken", "redis-pw", "redis-hm4c", "admin-t0ken"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let file = Config::from_map(&env(&[("PROXY_SHARED_SECRET", GOOD)]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(file.directory.source, GroupSourceKind::File);
        assert_eq!(file.directory.admin_listen, None);
    }

    /// `.env.example` with its secret replaced: every variable it sets, as the spec declares it.
    fn example_env() -> Env {
        let mut env: Env = ipm_runtime::config::spec::all()
            .filter(|v| !v.is_commented())
            .map(|v| (v.name().to_string(), v.shown().unwrap_or_default()))
            .collect();
        env.insert("PROXY_SHARED_SECRET".into(), GOOD.into());
        env
    }

    #[test]
    fn the_example_file_reads_as_the_defaults() {
        let example = Config::from_map(&example_env()).unwrap_or_else(|e| unreachable!("{e}"));
        let unset = Config::from_map(&env(&[("PROXY_SHARED_SECRET", GOOD)]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(format!("{example:?}"), format!("{unset:?}"));
        assert_eq!(example.client_ip_header, unset.client_ip_header);
        assert_eq!(example.groups_header_max, unset.groups_header_max);
        assert_eq!(example.policy_poll, unset.policy_poll);
        assert_eq!(example.entity_cache_ttl, unset.entity_cache_ttl);
        // The one difference: the example names the API's database, which authz then reads.
        assert_eq!(unset.database_url, None);
        assert!(example.database_url.is_some());
    }
}
