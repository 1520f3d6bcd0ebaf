//! The organisation's directory as a `GroupSource`: one HTTPS `GET` per user, answered with
//! a JSON list of groups. Every failure is classified, counted and logged; none is a guess.

use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};

use crate::config::DirectoryConfig;
use crate::metrics::{Metrics, ResultLabels};
use ipm_policy::groups::{GroupError, GroupFuture, GroupSource, Groups, is_valid_group_name};
use ipm_policy::identity::Email;

/// Everything but RFC 3986's unreserved characters, so `@`, `+` and `/` never reach the
/// directory as path syntax.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why the directory gave no usable answer. The messages never carry the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("the directory did not answer within {0} ms")]
    Timeout(u128),
    #[error("cannot connect to the directory: {0}")]
    Connect(String),
    #[error("the directory answered HTTP {0}")]
    Status(u16),
    #[error("the directory's answer is not the expected JSON: {0}")]
    BadJson(String),
    #[error("the directory's answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the directory request failed: {0}")]
    Other(String),
    #[error("the directory client cannot be built: {0}")]
    Build(String),
}

impl DirectoryError {
    /// The metrics label: a fixed vocabulary.
    pub fn result(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Connect(_) => "connect",
            Self::Status(_) => "status",
            Self::BadJson(_) => "bad_json",
            Self::TooLarge(_) => "too_large",
            Self::Other(_) | Self::Build(_) => "other",
        }
    }
}

/// A usable answer from the directory.
#[derive(Debug)]
enum Answer {
    Groups(Groups),
    /// 404 or 410: the directory does not know the user (removed, or never there). That is an
    /// answer, no groups, and never an outage: the stale grace must not bring back the groups
    /// of someone who was deprovisioned.
    NoSuchUser(u16),
}

/// The error and its causes on one line. The URL is left out: the caller logs the user.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Groups from an HTTP directory.
pub struct Directory {
    client: reqwest::Client,
    /// The URL up to `{email}`, and what follows it.
    url_head: String,
    url_tail: String,
    field: Vec<String>,
    authorization: HeaderValue,
    max_body: usize,
    timeout: Duration,
    /// Calls in flight at once; the wait for a turn counts against the timeout.
    turns: tokio::sync::Semaphore,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.url_template())
            .field("field", &self.field.join("."))
            .field("max_body", &self.max_body)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Builds the client: pooled connections, the timeout on every call, no redirects (a
    /// redirect would be a surprise worth failing on, and must not carry the token elsewhere).
    pub fn new(config: &DirectoryConfig, metrics: Arc<Metrics>) -> Result<Self, DirectoryError> {
        let base = config
            .server_url
            .as_deref()
            .ok_or_else(|| DirectoryError::Build("AUTH_SERVER_URL is not set".into()))?;
        let token = config
            .api_token
            .as_ref()
            .ok_or_else(|| DirectoryError::Build("AUTH_API_TOKEN is not set".into()))?;
        let (head, tail) = config
            .groups_path
            .split_once("{email}")
            .ok_or_else(|| DirectoryError::Build("AUTH_GROUPS_PATH has no `{email}`".into()))?;
        let mut authorization = HeaderValue::from_bytes(
            &[b"Bearer ".as_slice(), token.expose()].concat(),
        )
        .map_err(|_| DirectoryError::Build("AUTH_API_TOKEN is not a valid header value".into()))?;
        authorization.set_sensitive(true);
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("authz/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DirectoryError::Build(describe(e)))?;
        Ok(Self {
            client,
            url_head: format!("{}{head}", base.trim_end_matches('/')),
            url_tail: tail.to_string(),
            field: config.groups_field.split('.').map(String::from).collect(),
            authorization,
            max_body: config.max_body_bytes,
            timeout: config.timeout,
            turns: tokio::sync::Semaphore::new(config.max_concurrency.max(1)),
            metrics,
        })
    }

    /// The URL with `{email}` where the address goes, for logs.
    pub fn url_template(&self) -> String {
        format!("{}{{email}}{}", self.url_head, self.url_tail)
    }

    /// The URL asked for `user`.
    pub fn url_for(&self, user: &Email) -> String {
        format!(
            "{}{}{}",
            self.url_head,
            utf8_percent_encode(user.as_str(), PATH_SEGMENT),
            self.url_tail
        )
    }

    /// Asks the directory once, then counts and logs the outcome. A user the directory does
    /// not know (404, 410) has no groups; only failures (transport, timeout, 5xx, ...) are
    /// errors, which a cache may bridge with the last known value.
    pub async fn fetch(&self, user: &Email) -> Result<Groups, DirectoryError> {
        let started = Instant::now();
        // reqwest's timeout covers the body too; this one also bounds our own reading of it.
        let result = match tokio::time::timeout(self.timeout, self.ask(user)).await {
            Ok(r) => r,
            Err(_) => Err(DirectoryError::Timeout(self.timeout.as_millis())),
        };
        let elapsed = started.elapsed();
        self.metrics
            .directory_seconds
            .observe(elapsed.as_secs_f64());
        let label = match &result {
            Ok(Answer::Groups(_)) => "ok",
            Ok(Answer::NoSuchUser(_)) => "no_such_user",
            Err(e) => e.result(),
        };
        self.metrics
            .directory_requests
            .get_or_create(&ResultLabels { result: label })
            .inc();
        let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(Answer::Groups(groups)) => tracing::debug!(
                target: "authz::directory",
                user = user.as_str(), groups = groups.len(), latency_ms, "directory answered"
            ),
            Ok(Answer::NoSuchUser(status)) => tracing::info!(
                target: "authz::directory",
                user = user.as_str(), status, latency_ms, "the directory knows no such user: no groups"
            ),
            Err(e) => tracing::warn!(
                target: "authz::directory",
                user = user.as_str(), result = label, error = %e, latency_ms, "directory lookup failed"
            ),
        }
        result.map(|answer| match answer {
            Answer::Groups(groups) => groups,
            Answer::NoSuchUser(_) => Arc::from([]),
        })
    }

    async fn ask(&self, user: &Email) -> Result<Answer, DirectoryError> {
        let _turn = self
            .turns
            .acquire()
            .await
            .map_err(|e| DirectoryError::Other(e.to_string()))?;
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                DirectoryError::Timeout(self.timeout.as_millis())
            } else if e.is_connect() {
                DirectoryError::Connect(describe(e))
            } else {
                DirectoryError::Other(describe(e))
            }
        };
        let mut response = self
            .client
            .get(self.url_for(user))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Ok(Answer::NoSuchUser(status.as_u16()));
        }
        if !status.is_success() {
            return Err(DirectoryError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(DirectoryError::TooLarge(self.max_body));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(DirectoryError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        parse_groups(&body, &self.field).map(Answer::Groups)
    }
}

/// Reads the list at `field` (a path into nested objects). Any entry that is not a valid
/// group name refuses the whole answer: dropping a group could drop a `forbid`.
pub fn parse_groups(body: &[u8], field: &[String]) -> Result<Groups, DirectoryError> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| DirectoryError::BadJson(e.to_string()))?;
    let mut at = &doc;
    for name in field {
        at = at
            .get(name)
            .ok_or_else(|| DirectoryError::BadJson(format!("no field `{}`", field.join("."))))?;
    }
    let list = at
        .as_array()
        .ok_or_else(|| DirectoryError::BadJson(format!("`{}` is not a list", field.join("."))))?;
    let mut groups = Vec::with_capacity(list.len());
    for item in list {
        let name = item.as_str().ok_or_else(|| {
            DirectoryError::BadJson(format!(
                "`{}` holds a value that is not a string",
                field.join(".")
            ))
        })?;
        if !is_valid_group_name(name) {
            let shown: String = name.chars().take(64).collect();
            return Err(DirectoryError::BadJson(format!(
                "`{}` is not a valid group name",
                shown.escape_debug()
            )));
        }
        groups.push(name.to_string());
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(groups.into())
}

impl GroupSource for Directory {
    fn groups<'a>(&'a self, user: &'a Email) -> GroupFuture<'a> {
        Box::pin(async move {
            self.fetch(user)
                .await
                .map_err(|e| GroupError::Unavailable(e.to_string()))
        })
    }

    fn kind(&self) -> &'static str {
        "http"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn field(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn parses_sorts_and_dedups() {
        let g = parse_groups(br#"{"groups":["b","a","b"]}"#, &field("groups")).unwrap();
        assert_eq!(&*g, &["a".to_string(), "b".to_string()]);
        let g = parse_groups(br#"{"data":{"groups":[]}}"#, &field("data.groups")).unwrap();
        assert!(g.is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let f = field("groups");
        for body in [
            &b"not json"[..],
            br#"{"other":[]}"#,
            br#"{"groups":"admins"}"#,
            br#"{"groups":[1]}"#,
            br#"{"groups":["a,b"]}"#,
            br#"{"groups":[""]}"#,
        ] {
            assert!(
                matches!(parse_groups(body, &f), Err(DirectoryError::BadJson(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn encodes_the_email_as_one_segment() {
        let config = DirectoryConfig {
            server_url: Some("https://dir.example.com/base".into()),
            api_token: Some(ipm_policy::secret::Secret::new(b"t0ken".to_vec())),
            ..DirectoryConfig::default()
        };
        let d = Directory::new(&config, Arc::new(Metrics::new())).unwrap();
        let user: Email = "a.b+c@example.com".parse().unwrap();
        assert_eq!(
            d.url_for(&user),
            "https://dir.example.com/base/api/user/a.b%2Bc%40example.com/groups"
        );
        assert!(!format!("{d:?}").contains("t0ken"));
    }
}
