//! ipm-api's configuration: environment variables, optionally from a `.env` file shared with
//! authz. The secret, header and policy settings are read exactly as authz reads them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipm_policy::secret::Secret;
use ipm_runtime::config::{
    ConfigError, DirectoryConfig, ListenAddr, SecretConfig, environment, identity_header_names,
    parse_bool, parse_header_name, parse_num, reject_unknown,
};

use crate::image_config::ImageConfig;

/// The embedded default: a SQLite file under `data/`, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/ipm.db?mode=rwc";

/// The default `Content-Security-Policy`: the API serves JSON only, so nothing may load.
pub const DEFAULT_CSP: &str =
    "default-src 'none'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

/// Variables starting with `API_` that ipm-api knows; any other is a typo and refused.
const KNOWN_API_VARS: &[&str] = &[
    "API_LISTEN",
    "API_CLIENT_IP_HEADER",
    "API_POLICY_POLL_SECONDS",
];

/// ipm-api's settings. Defaults in brackets.
#[derive(Clone)]
pub struct Config {
    /// `PROXY_SHARED_SECRET` (or `_FILE`), `PROXY_SHARED_SECRET_PREVIOUS`, `DEBUG`,
    /// `SKIP_HEADER_CHECK`: as for authz.
    pub secrets: SecretConfig,
    /// `X_USER_ID_HEADER` [X-User-Email]
    pub user_header: String,
    /// `X_PROXY_SECRET_HEADER` [X-Proxy-Secret]
    pub secret_header: String,
    /// `API_CLIENT_IP_HEADER` [X-Real-IP]: the client address for policies; the peer address
    /// when absent; empty uses the peer address only.
    pub client_ip_header: Option<String>,
    /// `POLICY_DIR` [policies]
    pub policy_dir: PathBuf,
    /// `GROUPS_FILE` [policies/groups.toml], with `GROUP_SOURCE=file` (the default).
    pub groups_file: PathBuf,
    /// `GROUP_SOURCE`, `AUTH_*`, `GROUP_CACHE*`, `REDIS_*`: the same group source as authz.
    /// (The admin listener is authz's; ipm-api does not open one.)
    pub directory: DirectoryConfig,
    /// `API_POLICY_POLL_SECONDS` [2]: rescan interval backing up file events; 0 disables.
    pub policy_poll: Duration,
    /// `API_LISTEN` [127.0.0.1:8000]; `unix:/path.sock` for a unix socket.
    pub listen: ListenAddr,
    /// `DATABASE_URL` [sqlite://data/ipm.db?mode=rwc]; `postgres://…` in production. Never logged.
    pub database_url: String,
    /// `DB_AUTO_MIGRATE` [true for SQLite, false otherwise]: apply migrations at start.
    pub db_auto_migrate: bool,
    /// `DB_MAX_CONNECTIONS` [10]
    pub db_max_connections: u32,
    /// `DB_ACQUIRE_TIMEOUT_MS` [3000]: how long a request waits for the database before 503.
    pub db_acquire_timeout: Duration,
    /// `CSP` [default-src 'none'; frame-ancestors 'self'; base-uri 'none'; form-action 'none']
    pub csp: String,
    /// `HSTS` [false]: send `Strict-Transport-Security` (only behind HTTPS).
    pub hsts: bool,
    /// `LOG_FILE` [logs/app.json]; empty disables the file.
    pub log_file: Option<PathBuf>,
    /// `STORAGE_*`, `S3_*`, `MAX_UPLOAD_BYTES`, `IMAGE_*`: where images live and what is
    /// accepted (see `ImageConfig`).
    pub images: ImageConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("secrets", &self.secrets)
            .field("listen", &self.listen)
            .field("policy_dir", &self.policy_dir)
            .field("groups_file", &self.groups_file)
            .field("database", &backend_of(&self.database_url))
            .field("db_auto_migrate", &self.db_auto_migrate)
            .field("hsts", &self.hsts)
            .field("log_file", &self.log_file)
            .field("images", &self.images)
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

/// `sqlite` or `postgres` from a URL, for messages that must not show the URL.
pub fn backend_of(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        "postgres"
    } else {
        "unknown"
    }
}

/// The database settings alone: what `ipm-api migrate` needs (no secret, no policies).
#[derive(Clone)]
pub struct DbSettings {
    pub url: String,
    pub auto_migrate: bool,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl DbSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&environment()?)
    }

    /// Reads `DATABASE_URL`, `DB_AUTO_MIGRATE`, `DB_MAX_CONNECTIONS`, `DB_ACQUIRE_TIMEOUT_MS`.
    pub fn from_map(env: &Env) -> Result<Self, ConfigError> {
        let url = get(env, "DATABASE_URL")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_DATABASE_URL)
            .to_string();
        let backend = backend_of(&url);
        if backend == "unknown" {
            return Err(invalid(
                "DATABASE_URL",
                "must start with `sqlite:` or `postgres:` (`postgresql:`)",
            ));
        }
        let auto_migrate = parse_bool(env, "DB_AUTO_MIGRATE", backend == "sqlite")?;
        let max_connections: u32 = parse_num(env, "DB_MAX_CONNECTIONS", 10)?;
        if !(1..=1000).contains(&max_connections) {
            return Err(invalid("DB_MAX_CONNECTIONS", "must be between 1 and 1000"));
        }
        let acquire_ms: u64 = parse_num(env, "DB_ACQUIRE_TIMEOUT_MS", 3000)?;
        if !(10..=60_000).contains(&acquire_ms) {
            return Err(invalid(
                "DB_ACQUIRE_TIMEOUT_MS",
                "must be between 10 and 60000 milliseconds",
            ));
        }
        Ok(Self {
            url,
            auto_migrate,
            max_connections,
            acquire_timeout: Duration::from_millis(acquire_ms),
        })
    }
}

impl Config {
    /// The database settings in this configuration.
    pub fn db_settings(&self) -> DbSettings {
        DbSettings {
            url: self.database_url.clone(),
            auto_migrate: self.db_auto_migrate,
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
        }
    }

    /// Reads the configuration from the environment and `.env`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&environment()?)
    }

    /// Builds the configuration from a variable map.
    pub fn from_map(env: &Env) -> Result<Self, ConfigError> {
        reject_unknown(env, "API_", KNOWN_API_VARS, "ipm-api")?;
        let secrets = SecretConfig::from_map(env)?;
        let (user_header, secret_header) = identity_header_names(env)?;
        let client_ip_header = match get(env, "API_CLIENT_IP_HEADER") {
            Some("") => None,
            _ => Some(parse_header_name(env, "API_CLIENT_IP_HEADER", "X-Real-IP")?),
        };
        let path = |var: &str, default: &str| {
            PathBuf::from(get(env, var).filter(|v| !v.is_empty()).unwrap_or(default))
        };
        let listen = get(env, "API_LISTEN")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or("127.0.0.1:8000")
            .parse()
            .map_err(|m| invalid("API_LISTEN", m))?;
        let db = DbSettings::from_map(env)?;
        let csp = match get(env, "CSP").map(str::trim) {
            None | Some("") => DEFAULT_CSP.to_string(),
            Some(v) if v.bytes().all(|b| (0x20..0x7f).contains(&b)) => v.to_string(),
            Some(_) => {
                return Err(invalid(
                    "CSP",
                    "must be printable ASCII (it is sent as a header)",
                ));
            }
        };
        let log_file = match get(env, "LOG_FILE") {
            Some("") => None,
            Some(v) => Some(PathBuf::from(v)),
            None => Some(PathBuf::from("logs/app.json")),
        };
        let poll: u64 = parse_num(env, "API_POLICY_POLL_SECONDS", 2)?;
        let directory = DirectoryConfig::from_map(env, secrets.debug, &[("API_LISTEN", &listen)])?;
        Ok(Self {
            secrets,
            user_header,
            secret_header,
            client_ip_header,
            policy_dir: path("POLICY_DIR", "policies"),
            groups_file: path("GROUPS_FILE", "policies/groups.toml"),
            directory,
            policy_poll: Duration::from_secs(poll),
            listen,
            database_url: db.url,
            db_auto_migrate: db.auto_migrate,
            db_max_connections: db.max_connections,
            db_acquire_timeout: db.acquire_timeout,
            csp,
            hsts: parse_bool(env, "HSTS", false)?,
            log_file,
            images: ImageConfig::from_map(env)?,
        })
    }

    /// A configuration for tests: loopback port 0, no log file, migrations at start.
    pub fn for_test(
        policy_dir: &Path,
        groups_file: &Path,
        secret: &str,
        database_url: &str,
    ) -> Self {
        Self {
            secrets: SecretConfig {
                secret: Secret::new(secret.as_bytes().to_vec()),
                previous: None,
                debug: false,
                skip_header_check: false,
            },
            user_header: "x-user-email".into(),
            secret_header: "x-proxy-secret".into(),
            client_ip_header: Some("x-real-ip".into()),
            policy_dir: policy_dir.to_path_buf(),
            groups_file: groups_file.to_path_buf(),
            directory: DirectoryConfig::default(),
            policy_poll: Duration::from_secs(2),
            listen: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            database_url: database_url.to_string(),
            db_auto_migrate: true,
            db_max_connections: 5,
            db_acquire_timeout: Duration::from_secs(3),
            csp: DEFAULT_CSP.into(),
            hsts: false,
            log_file: None,
            // Beside the policies, inside the test's own folder.
            images: ImageConfig::for_test(
                &policy_dir
                    .parent()
                    .unwrap_or(policy_dir)
                    .join("data/images"),
            ),
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
    fn defaults_are_the_embedded_setup() {
        let c = Config::from_map(&env(&[("PROXY_SHARED_SECRET", GOOD)]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert!(c.db_auto_migrate);
        assert_eq!(
            c.listen,
            "127.0.0.1:8000".parse().unwrap_or_else(|_| unreachable!())
        );
        assert!(!c.hsts);
        let pg = Config::from_map(&env(&[
            ("PROXY_SHARED_SECRET", GOOD),
            ("DATABASE_URL", "postgres://u:pw@db/ipm"),
        ]))
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!pg.db_auto_migrate);
        assert!(!format!("{pg:?}").contains("pw"));
    }

    #[test]
    fn refusals_name_the_variable() {
        assert!(err(&[]).starts_with("PROXY_SHARED_SECRET is not set"));
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("API_LISTN", "x")])
                .starts_with("API_LISTN is invalid")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("DATABASE_URL", "mysql://x")])
                .starts_with("DATABASE_URL is invalid")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("HSTS", "maybe")]).starts_with("HSTS is invalid")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("CSP", "a\u{7f}")]).starts_with("CSP is invalid")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("API_LISTEN", "nowhere")])
                .starts_with("API_LISTEN is invalid")
        );
    }
}
