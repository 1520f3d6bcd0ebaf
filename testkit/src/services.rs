//! PostgreSQL and Redis for the tests that need them. Present, the test runs; absent, it is
//! skipped with a line saying how to provide it, except under CI (`CI` set), where it fails:
//! CI never passes by skipping.

use std::io::Write;
use std::time::Duration;

/// A server some tests need and a developer's machine may not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// At `TEST_PG_ADMIN_URL` [postgres://postgres@127.0.0.1:5432/postgres].
    Postgres,
    /// At `TEST_REDIS_URL` [redis://127.0.0.1:6379].
    Redis,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Redis => "Redis",
        }
    }

    /// The variable that says where the service runs.
    pub fn variable(self) -> &'static str {
        match self {
            Self::Postgres => "TEST_PG_ADMIN_URL",
            Self::Redis => "TEST_REDIS_URL",
        }
    }

    fn default_url(self) -> &'static str {
        match self {
            Self::Postgres => "postgres://postgres@127.0.0.1:5432/postgres",
            Self::Redis => "redis://127.0.0.1:6379",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Redis => 6379,
        }
    }

    /// The service's URL: the variable when set and not empty, else the default.
    pub fn url(self) -> String {
        std::env::var(self.variable())
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| self.default_url().into())
    }
}

/// Where the tests' Redis runs: `TEST_REDIS_URL` [redis://127.0.0.1:6379].
pub fn redis_url() -> String {
    Service::Redis.url()
}

/// Whether the tests run under CI: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
        .unwrap_or(false)
}

/// Whether the test may go on with `service`. When the service does not answer on its port,
/// prints `skipped: …` to the terminal (past the test harness's capture) and returns false, so
/// the test returns early; under CI it panics instead. A service that answers but refuses the
/// test (a wrong password, say) is not absent: the test goes on and fails on it.
pub async fn require(service: Service) -> bool {
    let url = service.url();
    let Some((host, port)) = host_port(&url, service.default_port()) else {
        // Not a TCP address this can check (a Unix socket, say): let the test find out.
        return true;
    };
    if reachable(&host, port).await {
        return true;
    }
    let why = format!(
        "{} is not reachable at {}:{port} (set {} to where it runs, or run scripts/test, which starts it)",
        service.name(),
        if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        },
        service.variable(),
    );
    if in_ci() {
        panic!("{why}; CI is set, so this fails instead of skipping");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    // Straight to the terminal: `eprintln!` would be captured and shown only on failure.
    let _ = writeln!(std::io::stderr(), "skipped: {why}: {test}");
    false
}

async fn reachable(host: &str, port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect((host, port));
    matches!(
        tokio::time::timeout(Duration::from_secs(2), connect).await,
        Ok(Ok(_))
    )
}

/// The host and port of a `scheme://[user[:password]@]host[:port][/…]` URL; never the password.
fn host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((host.to_string(), port))
}

/// Returns from the calling test, after printing why, when PostgreSQL is not reachable;
/// under CI, fails it instead. For async tests.
#[macro_export]
macro_rules! require_postgres {
    () => {
        if !$crate::require($crate::Service::Postgres).await {
            return;
        }
    };
}

/// Returns from the calling test, after printing why, when Redis is not reachable; under CI,
/// fails it instead. For async tests.
#[macro_export]
macro_rules! require_redis {
    () => {
        if !$crate::require($crate::Service::Redis).await {
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_and_port_without_the_password() {
        let hp = |u: &str| host_port(u, 5432);
        assert_eq!(
            hp("postgres://postgres@127.0.0.1:5432/postgres"),
            Some(("127.0.0.1".into(), 5432))
        );
        assert_eq!(
            hp("postgres://u:p@ss@db.example:6000/x?sslmode=disable"),
            Some(("db.example".into(), 6000))
        );
        assert_eq!(hp("redis://localhost"), Some(("localhost".into(), 5432)));
        assert_eq!(hp("redis://[::1]:6380/2"), Some(("::1".into(), 6380)));
        assert_eq!(hp("postgres:///db?host=/run/postgresql"), None);
        assert_eq!(hp("not a url"), None);
    }
}
