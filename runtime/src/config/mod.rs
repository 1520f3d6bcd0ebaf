//! Configuration both binaries read the same way: the environment overlaid on `.env`, the
//! listener address form, the shared secret, the identity header names. Every variable, its
//! default and its documentation are declared once, in [`spec`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipm_policy::secret::{MIN_SECRET_LEN, Secret, SecretSet};

mod directory;
pub mod spec;

pub use directory::{
    CacheBackend, DEFAULT_GROUPS_PATH, DirectoryConfig, GroupSourceKind, RedisConfig,
};
pub use spec::{Program, reject_unknown};

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

/// The variables a binary reads, by name.
pub type Env = HashMap<String, String>;

pub fn invalid(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var: var.to_string(),
        message: message.into(),
    }
}

/// A secret from `VAR` or from the file named by `VAR_FILE`, never both.
pub fn read_secret(
    env: &Env,
    var: &'static str,
    file_var: &'static str,
) -> Result<Option<Secret>, ConfigError> {
    let direct = env.get(var).filter(|v| !v.is_empty());
    let file = env.get(file_var).filter(|v| !v.is_empty());
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
        let debug = spec::DEBUG.get(env)?;
        let skip_header_check = spec::SKIP_HEADER_CHECK.get(env)?;
        if skip_header_check && !debug {
            return Err(ConfigError::Unsafe {
                var: spec::SKIP_HEADER_CHECK.name,
                message: "SKIP_HEADER_CHECK=true is allowed only with DEBUG=true".into(),
            });
        }
        let (var, file) = (spec::PROXY_SHARED_SECRET, spec::PROXY_SHARED_SECRET_FILE);
        let secret = var.secret_value(env, &file)?.ok_or(var.missing(
            "set PROXY_SHARED_SECRET or PROXY_SHARED_SECRET_FILE to the secret the proxy sends",
        ))?;
        check_secret_strength(&secret, var.name, debug)?;
        let (var, file) = (
            spec::PROXY_SHARED_SECRET_PREVIOUS,
            spec::PROXY_SHARED_SECRET_PREVIOUS_FILE,
        );
        let previous = var.secret_value(env, &file)?;
        if let Some(p) = &previous {
            check_secret_strength(p, var.name, debug)?;
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

/// The user and secret header names (`X_USER_ID_HEADER`, `X_PROXY_SECRET_HEADER`), which must differ.
pub fn identity_header_names(env: &Env) -> Result<(String, String), ConfigError> {
    let user_header = spec::X_USER_ID_HEADER.header(env)?;
    let secret_header = spec::X_PROXY_SECRET_HEADER.header(env)?;
    if user_header == secret_header {
        return Err(spec::X_PROXY_SECRET_HEADER.invalid("must differ from X_USER_ID_HEADER"));
    }
    Ok((user_header, secret_header))
}

/// `LOG_FILE`: where the JSON log lines also go; `None` when set empty.
pub fn log_file(env: &Env) -> Option<PathBuf> {
    spec::LOG_FILE.value_or_off(env).map(PathBuf::from)
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
