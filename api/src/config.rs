//! ipm-api's configuration: environment variables, optionally from a `.env` file shared with
//! authz. The secret, header and policy settings are read exactly as authz reads them; every
//! variable, its default and its documentation are in [`spec`](ipm_runtime::config::spec).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipm_policy::secret::Secret;
use ipm_runtime::config::spec::{
    API_ALLOWED_ORIGINS, API_CLIENT_IP_HEADER, API_LISTEN, API_POLICY_POLL_SECONDS, API_UI_CSP,
    CSP, DATABASE_URL, DB_ACQUIRE_TIMEOUT_MS, DB_AUTO_MIGRATE, DB_MAX_CONNECTIONS, GROUPS_FILE,
    HSTS, POLICY_DIR, X_PROXY_SECRET_HEADER, X_USER_ID_HEADER,
};
use ipm_runtime::config::{
    ConfigError, DirectoryConfig, Env, ListenAddr, Program, SecretConfig, environment,
    identity_header_names, log_file, reject_unknown,
};

use crate::csrf::AllowedOrigins;
use crate::image_config::ImageConfig;

/// The embedded default: a SQLite file under `data/`, created on first start.
pub const DEFAULT_DATABASE_URL: &str = DATABASE_URL.default;

/// The default `Content-Security-Policy`: the API serves JSON only, so nothing may load.
pub const DEFAULT_CSP: &str = CSP.default;

/// The web UI's `Content-Security-Policy` when `API_UI_CSP` is unset: its own files and API
/// calls only, nothing inline (no script, style or handler), no framing.
pub const DEFAULT_UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// ipm-api's settings. Each field names its variable; the defaults and documentation are in
/// [`spec`](ipm_runtime::config::spec).
#[derive(Clone)]
pub struct Config {
    /// `PROXY_SHARED_SECRET` (or `_FILE`), `PROXY_SHARED_SECRET_PREVIOUS`, `DEBUG`,
    /// `SKIP_HEADER_CHECK`: as for authz.
    pub secrets: SecretConfig,
    /// [`X_USER_ID_HEADER`], in lower case.
    pub user_header: String,
    /// [`X_PROXY_SECRET_HEADER`], in lower case.
    pub secret_header: String,
    /// [`API_CLIENT_IP_HEADER`]: the client address for policies; the peer address when
    /// absent; empty (`None`) uses the peer address only.
    pub client_ip_header: Option<String>,
    /// [`API_ALLOWED_ORIGINS`]: origins besides the API's own whose pages may send unsafe
    /// requests; none by default.
    pub allowed_origins: AllowedOrigins,
    /// [`POLICY_DIR`]
    pub policy_dir: PathBuf,
    /// [`GROUPS_FILE`], with `GROUP_SOURCE=file` (the default).
    pub groups_file: PathBuf,
    /// `GROUP_SOURCE`, `AUTH_*`, `GROUP_CACHE*`, `REDIS_*`: the same group source as authz.
    /// (The admin listener is authz's; ipm-api does not open one.)
    pub directory: DirectoryConfig,
    /// [`API_POLICY_POLL_SECONDS`]: rescan interval backing up file events; 0 disables.
    pub policy_poll: Duration,
    /// [`API_LISTEN`]; `unix:/path.sock` for a unix socket.
    pub listen: ListenAddr,
    /// [`DATABASE_URL`]; `postgres://…` in production. Never logged.
    pub database_url: String,
    /// [`DB_AUTO_MIGRATE`] (true for SQLite, false otherwise): apply migrations at start.
    pub db_auto_migrate: bool,
    /// [`DB_MAX_CONNECTIONS`]
    pub db_max_connections: u32,
    /// [`DB_ACQUIRE_TIMEOUT_MS`]: how long a request waits for the database before 503.
    pub db_acquire_timeout: Duration,
    /// [`CSP`]
    pub csp: String,
    /// [`API_UI_CSP`]: the web UI's, on its page and files.
    pub ui_csp: String,
    /// [`HSTS`]: send `Strict-Transport-Security` (only behind HTTPS).
    pub hsts: bool,
    /// [`LOG_FILE`](ipm_runtime::config::spec::LOG_FILE); empty is `None`.
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
            .field("allowed_origins", &self.allowed_origins)
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
        let url = DATABASE_URL.value(env).to_string();
        let backend = backend_of(&url);
        if backend == "unknown" {
            return Err(
                DATABASE_URL.invalid("must start with `sqlite:` or `postgres:` (`postgresql:`)")
            );
        }
        let auto_migrate = DB_AUTO_MIGRATE.get_or(env, backend == "sqlite")?;
        let max_connections = DB_MAX_CONNECTIONS.get(env)?;
        if !(1..=1000).contains(&max_connections) {
            return Err(DB_MAX_CONNECTIONS.invalid("must be between 1 and 1000"));
        }
        let acquire_ms = DB_ACQUIRE_TIMEOUT_MS.get(env)?;
        if !(10..=60_000).contains(&acquire_ms) {
            return Err(DB_ACQUIRE_TIMEOUT_MS.invalid("must be between 10 and 60000 milliseconds"));
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
        reject_unknown(env, Program::Api)?;
        let secrets = SecretConfig::from_map(env)?;
        let (user_header, secret_header) = identity_header_names(env)?;
        let client_ip_header = API_CLIENT_IP_HEADER.header_or_off(env)?;
        let listen = API_LISTEN.listen(env)?;
        let allowed_origins = AllowedOrigins::parse(API_ALLOWED_ORIGINS.raw(env).unwrap_or(""))
            .map_err(|m| API_ALLOWED_ORIGINS.invalid(m))?;
        let db = DbSettings::from_map(env)?;
        let csp = CSP.value(env);
        let ui_csp = API_UI_CSP.raw(env).unwrap_or(DEFAULT_UI_CSP);
        let printable = |v: &str| v.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !printable(csp) {
            return Err(CSP.invalid("must be printable ASCII (it is sent as a header)"));
        }
        if !printable(ui_csp) {
            return Err(API_UI_CSP.invalid("must be printable ASCII (it is sent as a header)"));
        }
        let poll = API_POLICY_POLL_SECONDS.get(env)?;
        let directory =
            DirectoryConfig::from_map(env, secrets.debug, &[(API_LISTEN.name, &listen)])?;
        Ok(Self {
            secrets,
            user_header,
            secret_header,
            client_ip_header,
            allowed_origins,
            policy_dir: POLICY_DIR.path(env),
            groups_file: GROUPS_FILE.path(env),
            directory,
            policy_poll: Duration::from_secs(poll),
            listen,
            database_url: db.url,
            db_auto_migrate: db.auto_migrate,
            db_max_connections: db.max_connections,
            db_acquire_timeout: db.acquire_timeout,
            csp: csp.to_string(),
            ui_csp: ui_csp.to_string(),
            hsts: HSTS.get(env)?,
            log_file: log_file(env),
            images: ImageConfig::from_map(env)?,
        })
    }

    /// A configuration for tests: loopback port 0, no log file, migrations at start, a small
    /// pool, the spec's defaults otherwise.
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
            user_header: X_USER_ID_HEADER.default.to_ascii_lowercase(),
            secret_header: X_PROXY_SECRET_HEADER.default.to_ascii_lowercase(),
            client_ip_header: Some(API_CLIENT_IP_HEADER.default.to_ascii_lowercase()),
            allowed_origins: AllowedOrigins::default(),
            policy_dir: policy_dir.to_path_buf(),
            groups_file: groups_file.to_path_buf(),
            directory: DirectoryConfig::default(),
            policy_poll: Duration::from_secs(API_POLICY_POLL_SECONDS.default),
            listen: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            database_url: database_url.to_string(),
            db_auto_migrate: true,
            db_max_connections: 5,
            db_acquire_timeout: Duration::from_millis(DB_ACQUIRE_TIMEOUT_MS.default),
            csp: DEFAULT_CSP.into(),
            ui_csp: DEFAULT_UI_CSP.into(),
            hsts: HSTS.default,
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
            err(&[("PROXY_SHARED_SECRET", GOOD), ("API_UI_CSP", "a\u{7f}")])
                .starts_with("API_UI_CSP is invalid")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("API_ALLOWED_ORIGINS", "*")])
                .starts_with("API_ALLOWED_ORIGINS is invalid")
        );
        assert!(
            err(&[("PROXY_SHARED_SECRET", GOOD), ("API_LISTEN", "nowhere")])
                .starts_with("API_LISTEN is invalid")
        );
    }

    #[test]
    fn the_example_file_reads_as_the_defaults() {
        let mut example: Env = ipm_runtime::config::spec::all()
            .filter(|v| !v.is_commented())
            .map(|v| (v.name().to_string(), v.shown().unwrap_or_default()))
            .collect();
        example.insert("PROXY_SHARED_SECRET".into(), GOOD.into());
        let example = Config::from_map(&example).unwrap_or_else(|e| unreachable!("{e}"));
        let unset = Config::from_map(&env(&[("PROXY_SHARED_SECRET", GOOD)]))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(format!("{example:?}"), format!("{unset:?}"));
        assert_eq!(example.database_url, unset.database_url);
        assert_eq!(example.client_ip_header, unset.client_ip_header);
        assert_eq!(example.policy_poll, unset.policy_poll);
        assert_eq!(example.db_max_connections, unset.db_max_connections);
        assert_eq!(example.db_acquire_timeout, unset.db_acquire_timeout);
        assert_eq!(example.csp, DEFAULT_CSP);
        assert_eq!(example.csp, unset.csp);
        assert_eq!(
            (example.ui_csp.as_str(), unset.ui_csp.as_str()),
            (DEFAULT_UI_CSP, DEFAULT_UI_CSP)
        );
        // The variable's documentation shows the policy it stands for.
        let doc = ipm_runtime::config::spec::API_UI_CSP.doc.replace('\n', " ");
        assert!(doc.contains(DEFAULT_UI_CSP), "{doc}");
        assert_eq!(
            (example.user_header, example.secret_header),
            (unset.user_header, unset.secret_header)
        );
    }
}
