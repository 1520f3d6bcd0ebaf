//! `spawn_api(backend)`: a running ipm-api on a copy of the shipped policies, a test groups
//! file, and a fresh database: a SQLite file, or a PostgreSQL database dropped afterwards.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipm_api::config::Config;
use ipm_api::image_config::S3Config;
use ipm_api::server::{ApiHandle, run};
use ipm_testkit::{PgDatabase, S3Server, copy_policies, files_under};
use reqwest::Method;
use serde_json::Value;

/// The secret the tests' proxy sends.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

pub const ADMIN: &str = "admin@example.com";
/// In `team-a`.
pub const ALICE: &str = "alice@example.com";
/// In `team-a` too.
pub const ANN: &str = "ann@example.com";
/// The reference setup's user, in `team-a`.
pub const REF_USER: &str = "user@example.com";
/// In `team-b`.
pub const BOB: &str = "bob@example.com";
/// In `team-a` and `suspended`.
pub const MALLORY: &str = "mallory@example.com";
/// In no group.
pub const NOBODY: &str = "nobody@example.com";
/// In the ten groups `g0` … `g9`.
pub const TEN: &str = "ten@example.com";

const GROUPS: &str = r#"
[groups]
admins = ["admin@example.com"]
team-a = ["alice@example.com", "ann@example.com", "mallory@example.com", "user@example.com"]
team-b = ["bob@example.com"]
suspended = ["mallory@example.com"]
g0 = ["ten@example.com"]
g1 = ["ten@example.com"]
g2 = ["ten@example.com"]
g3 = ["ten@example.com"]
g4 = ["ten@example.com"]
g5 = ["ten@example.com"]
g6 = ["ten@example.com"]
g7 = ["ten@example.com"]
g8 = ["ten@example.com"]
g9 = ["ten@example.com"]
"#;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running ipm-api and what it reads.
pub struct TestApp {
    pub addr: SocketAddr,
    pub policy_dir: PathBuf,
    pub groups_file: PathBuf,
    pub client: reqwest::Client,
    pub pg: Option<PgDatabase>,
    /// Kept for the test's duration: the server's reloaders and its files.
    _handle: ApiHandle,
    _root: tempfile::TempDir,
}

/// Copies the shipped policies into `dest` and writes the tests' groups file there.
pub fn policies_with_test_groups(dest: &Path) {
    copy_policies(dest);
    std::fs::write(dest.join("groups.toml"), GROUPS).unwrap();
}

/// A fresh database URL for `backend`, and the PostgreSQL database to drop later.
pub async fn fresh_database(backend: Backend, root: &Path) -> (String, Option<PgDatabase>) {
    match backend {
        Backend::Sqlite => (
            format!("sqlite://{}/data/ipm.db?mode=rwc", root.display()),
            None,
        ),
        Backend::Postgres => {
            let db = PgDatabase::create().await;
            (db.url.clone(), Some(db))
        }
    }
}

pub async fn spawn_api(backend: Backend) -> TestApp {
    spawn_with(backend, |_| {}).await
}

/// Starts ipm-api after `adjust` has changed the test configuration.
pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let root = tempfile::tempdir().unwrap();
    let (database_url, pg) = fresh_database(backend, root.path()).await;
    start(root, database_url, pg, adjust).await
}

/// Starts ipm-api on `pg`, a database the test made itself.
pub async fn spawn_on(pg: PgDatabase, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let url = pg.url.clone();
    start(tempfile::tempdir().unwrap(), url, Some(pg), adjust).await
}

async fn start(
    root: tempfile::TempDir,
    database_url: String,
    pg: Option<PgDatabase>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let policy_dir = root.path().join("policies");
    policies_with_test_groups(&policy_dir);
    let groups_file = policy_dir.join("groups.toml");
    let mut config = Config::for_test(&policy_dir, &groups_file, SECRET, &database_url);
    adjust(&mut config);
    let handle = run(config).await.expect("ipm-api starts");
    let addr = handle.tcp_addr().expect("a TCP listener");
    TestApp {
        addr,
        policy_dir,
        groups_file,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        pg,
        _handle: handle,
        _root: root,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request with the given headers and optional JSON body text.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        req.send().await.expect("ipm-api answers")
    }

    /// A request as the proxy sends it for `user`.
    pub async fn call(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let r = self
            .raw(
                method,
                path,
                &[("x-proxy-secret", SECRET), ("x-user-email", user)],
                body,
            )
            .await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, user: &str, path: &str) -> (u16, Value) {
        self.call(user, Method::GET, path, None).await
    }

    /// Creates a project and returns it; panics unless the answer is 201.
    pub async fn create(&self, user: &str, group: &str, name: &str) -> Value {
        let body = serde_json::json!({ "name": name, "meta_group_id": group }).to_string();
        let (status, v) = self
            .call(user, Method::POST, "/api/projects", Some(&body))
            .await;
        assert_eq!(status, 201, "{user} creating {name} in {group}: {v}");
        v
    }

    /// Every project `user` sees, following cursors with pages of `limit`.
    pub async fn list_all(&self, user: &str, limit: u32) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/projects?limit={limit}&cursor={c}"),
                None => format!("/api/projects?limit={limit}"),
            };
            let (status, page) = self.get(user, &path).await;
            assert_eq!(status, 200, "{page}");
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }
}

/// The test's root: the policies' parent, where `Config::for_test` puts `data/images`.
pub fn root_of(app: &TestApp) -> PathBuf {
    app.policy_dir.parent().unwrap().to_path_buf()
}

pub fn storage_dir(app: &TestApp) -> PathBuf {
    root_of(app).join("data/images")
}

pub fn database_url(app: &TestApp) -> String {
    match &app.pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}/data/ipm.db?mode=rwc", root_of(app).display()),
    }
}

/// The stored images' files (their thumbnails, `<key>.thumb`, left out).
pub fn objects(app: &TestApp) -> Vec<PathBuf> {
    files_under(&storage_dir(app).join("objects"))
        .into_iter()
        .filter(|f| f.extension().is_none_or(|e| e != "thumb"))
        .collect()
}

/// ipm-api's settings for `server`'s bucket.
pub fn s3_config(server: &S3Server) -> S3Config {
    S3Config {
        endpoint: Some(server.endpoint()),
        bucket: S3Server::BUCKET.into(),
        region: S3Server::REGION.into(),
        access_key_id: S3Server::ACCESS_KEY.into(),
        secret_access_key: ipm_policy::secret::Secret::new(
            S3Server::SECRET_KEY.as_bytes().to_vec(),
        ),
        force_path_style: true,
        prefix: "images/".into(),
    }
}

/// Runs one scenario against both databases, as two tests: `name::sqlite`, `name::postgres`.
/// The PostgreSQL one is skipped when PostgreSQL is not reachable (and fails then under CI).
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $scenario:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $scenario($crate::support::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ipm_testkit::require_postgres!();
                $scenario($crate::support::Backend::Postgres).await;
            }
        }
    };
}
