//! `spawn_app()`: a running authz on a copy of the shipped policies, and helpers to call it.

use std::net::SocketAddr;
use std::path::PathBuf;

use authz::config::Config;
use authz::server::{ServerHandle, run};
use ipm_testkit::{copy_policies, metric_value};

/// The secret the tests' proxy sends.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// A running authz and the files it reads.
pub struct TestApp {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub root: tempfile::TempDir,
    pub policy_dir: PathBuf,
    pub groups_file: PathBuf,
    pub client: reqwest::Client,
}

/// Starts authz on the shipped policies and groups.
pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Starts authz after `adjust` has changed the test configuration.
pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_on(copy_policies, adjust).await
}

/// The AuthZEN interop example set, `policies/examples/authzen-todo`.
pub fn authzen_todo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/examples/authzen-todo")
}

/// Starts authz on a copy of the AuthZEN interop example set, with an empty groups file.
pub async fn spawn_authzen(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let copy = |dest: &std::path::Path| {
        std::fs::create_dir_all(dest).unwrap();
        for entry in std::fs::read_dir(authzen_todo_dir()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
        std::fs::write(dest.join("groups.toml"), "[groups]\n").unwrap();
    };
    spawn_on(copy, adjust).await
}

/// Starts authz on the policy directory `fill` writes, after `adjust`.
async fn spawn_on(
    fill: impl FnOnce(&std::path::Path),
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let root = tempfile::tempdir().unwrap();
    let policy_dir = root.path().join("policies");
    fill(&policy_dir);
    let groups_file = policy_dir.join("groups.toml");
    let mut config = Config::for_test(&policy_dir, &groups_file, SECRET);
    adjust(&mut config);
    let handle = run(config).await.expect("authz starts");
    // Unix-socket tests talk to the socket; the TCP address is unused there.
    let addr = handle
        .tcp_addr()
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    TestApp {
        addr,
        handle,
        root,
        policy_dir,
        groups_file,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Calls `/auth` as nginx would, with the given headers.
    pub async fn auth(&self, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.get(self.url("/auth"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("authz answers")
    }

    /// Calls `/auth` for `user` on `method path` with the right secret.
    pub async fn auth_as(&self, user: &str, method: &str, path: &str) -> reqwest::Response {
        self.auth(&[
            ("x-proxy-secret", SECRET),
            ("x-user-email", user),
            ("x-original-method", method),
            ("x-original-uri", path),
        ])
        .await
    }

    /// The status `/auth` answers for `user` on `method path`.
    pub async fn status_as(&self, user: &str, method: &str, path: &str) -> u16 {
        self.auth_as(user, method, path).await.status().as_u16()
    }

    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        let r = self.client.get(self.url("/readyz")).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let r = self.client.get(self.url("/metrics")).send().await.unwrap();
        r.text().await.unwrap()
    }

    /// One sample from `/metrics`: `name` with exactly `labels`, if it has been recorded.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric_value(&self.metrics().await, name, labels)
    }

    /// POSTs `body` to the AuthZEN endpoint `path` with the proxy's secret; the status and
    /// the JSON answer.
    pub async fn authzen(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("x-proxy-secret", SECRET)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Writes a policy file the way an editor saves: to a temporary name, then renamed.
    pub fn save_policy(&self, name: &str, text: &str) {
        let tmp = self.policy_dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.policy_dir.join(name)).unwrap();
    }
}

/// The API's database at `url`, opened for writing with its migrations applied, for a test to
/// put rows in as the API would.
pub async fn migrated_db(url: &str) -> ipm_runtime::db::DbPool {
    let db = ipm_runtime::db::DbPool::open_lazy(
        url,
        ipm_runtime::db::PoolSettings {
            read_only: false,
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_secs(5),
        },
    )
    .unwrap();
    let migrator = ipm_testkit::migrator(db.backend()).await;
    ipm_runtime::with_pool!(&db, pool => migrator.run(pool).await.unwrap());
    db
}

/// Inserts projects `(id, group)` as the API would, each named after its id.
pub async fn insert_projects(db: &ipm_runtime::db::DbPool, projects: &[(uuid::Uuid, &str)]) {
    for (id, group) in projects {
        ipm_runtime::with_pool!(db, pool => {
            sqlx::query(
                "INSERT INTO projects (id, name, description, meta_group_id, created_by, created_at, updated_at) \
                 VALUES ($1, $2, '', $3, 'seed@example.com', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            )
            .bind(id)
            .bind(id.to_string())
            .bind(group)
            .execute(pool)
            .await
            .unwrap();
        });
    }
}
