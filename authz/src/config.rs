//! authz's configuration: environment variables, optionally from a `.env` file.
//! Every variable is documented in `.env.example`; unsafe combinations refuse to start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipm_policy::secret::Secret;
use ipm_runtime::config::{
    ConfigError, DirectoryConfig, Env, ListenAddr, SecretConfig, environment, get,
    identity_header_names, invalid, parse_header_name, parse_num, reject_unknown,
};

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
