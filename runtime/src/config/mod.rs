//! Configuration both binaries read the same way: the environment overlaid on `.env`, the
//! listener address form, the shared secret, the identity header names, the typo guard.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipm_policy::secret::{MIN_SECRET_LEN, Secret, SecretSet};

mod directory;

pub use directory::{
    CacheBackend, DEFAULT_GROUPS_PATH, DirectoryConfig, GroupSourceKind, RedisConfig,
};

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

pub fn get<'a>(env: &'a Env, var: &str) -> Option<&'a str> {
    env.get(var).map(String::as_str)
}

pub fn invalid(var: &str, message: impl Into<String>) -> ConfigError {
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
