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
    "AUTHZ_CLIENT_IP_HEADER",
    "AUTHZ_GROUPS_HEADER_MAX",
    "AUTHZ_POLICY_POLL_SECONDS",
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
    /// `AUTHZ_LISTEN` [127.0.0.1:8181]
    pub listen: ListenAddr,
    /// `LOG_FILE` [logs/app.json]; empty disables the file.
    pub log_file: Option<PathBuf>,
    /// `AUTHZ_CLIENT_IP_HEADER` [X-Real-IP]: the header carrying the client address; empty disables.
    pub client_ip_header: Option<String>,
    /// `AUTHZ_GROUPS_HEADER_MAX` [2048]: most bytes sent in `X-Authz-Groups`.
    pub groups_header_max: usize,
    /// `AUTHZ_POLICY_POLL_SECONDS` [2]: rescan interval backing up file events; 0 disables.
    pub policy_poll: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("secrets", &self.secrets)
            .field("user_header", &self.user_header)
            .field("secret_header", &self.secret_header)
            .field("policy_dir", &self.policy_dir)
            .field("groups_file", &self.groups_file)
            .field("listen", &self.listen)
            .field("log_file", &self.log_file)
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

/// Refuses secrets too short to resist guessing, unless in debug mode.
pub fn check_secret_strength(
    secret: &Secret,
    var: &'static str,
    debug: bool,
) -> Result<(), ConfigError> {
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

impl Config {
    /// Reads the configuration from the environment and `.env`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&environment()?)
    }

    /// Builds the configuration from a variable map.
    pub fn from_map(env: &Env) -> Result<Self, ConfigError> {
        if let Some(unknown) = env
            .keys()
            .filter(|k| k.starts_with("AUTHZ_") && !KNOWN_AUTHZ_VARS.contains(&k.as_str()))
            .min()
        {
            return Err(invalid(
                unknown,
                format!(
                    "unknown variable; authz knows {}",
                    KNOWN_AUTHZ_VARS.join(", ")
                ),
            ));
        }
        let secrets = SecretConfig::from_map(env)?;
        let user_header = parse_header_name(env, "X_USER_ID_HEADER", "X-User-Email")?;
        let secret_header = parse_header_name(env, "X_PROXY_SECRET_HEADER", "X-Proxy-Secret")?;
        if user_header == secret_header {
            return Err(invalid(
                "X_PROXY_SECRET_HEADER",
                "must differ from X_USER_ID_HEADER",
            ));
        }
        let path = |var: &str, default: &str| {
            PathBuf::from(get(env, var).filter(|v| !v.is_empty()).unwrap_or(default))
        };
        let listen = get(env, "AUTHZ_LISTEN")
            .filter(|v| !v.is_empty())
            .unwrap_or("127.0.0.1:8181")
            .parse()
            .map_err(|m| invalid("AUTHZ_LISTEN", m))?;
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
        Ok(Self {
            secrets,
            user_header,
            secret_header,
            policy_dir: path("POLICY_DIR", "policies"),
            groups_file: path("GROUPS_FILE", "policies/groups.toml"),
            listen,
            log_file,
            client_ip_header,
            groups_header_max,
            policy_poll: Duration::from_secs(poll),
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
            listen: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            log_file: None,
            client_ip_header: Some("x-real-ip".into()),
            groups_header_max: 2048,
            policy_poll: Duration::from_secs(2),
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
        assert_eq!(
            "unix:/run/a.sock".parse(),
            Ok(ListenAddr::Unix("/run/a.sock".into()))
        );
    }
}
