//! authz as operators run it, for the soak and fault tests: the built binary as a child
//! process, its output appended to a file beside the policy directory, and its resident
//! memory, open files and threads read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ipm_testkit::{copy_policies, free_port, loopback, metric_value, wait_listening};

use crate::support::SECRET;

/// A running `authz serve`; killed on drop.
pub struct Authz {
    child: Child,
    pub base: String,
    pub root: tempfile::TempDir,
    pub policy_dir: PathBuf,
    /// Where stdout and stderr go, beside the policy directory (`authz serve >> authz.log`).
    pub log: PathBuf,
    pub client: reqwest::Client,
}

/// The process's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub rss_kib: u64,
    pub fds: usize,
    pub threads: usize,
}

impl Authz {
    /// Starts authz on a copy of the shipped policies in a fresh directory, with `env` added
    /// (decision logging on at `info`, `LOG_FILE` beside the policy directory too).
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let policy_dir = root.path().join("policies");
        copy_policies(&policy_dir);
        let log = root.path().join("authz.log");
        let port = free_port();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authz"));
        cmd.current_dir(root.path())
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PROXY_SHARED_SECRET", SECRET)
            .env("AUTHZ_LISTEN", loopback(port).to_string())
            .env("AUTHZ_GRPC_LISTEN", "off")
            .env("POLICY_DIR", &policy_dir)
            .env("GROUPS_FILE", policy_dir.join("groups.toml"))
            .env("LOG_FILE", root.path().join("authz-file.log"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let listening = wait_listening(loopback(port), Duration::from_secs(20)).await;
        let app = Self {
            child,
            base: format!("http://{}", loopback(port)),
            root,
            policy_dir,
            log,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        if listening.is_none() {
            panic!(
                "authz did not listen; its output:\n{}",
                std::fs::read_to_string(&app.log).unwrap_or_default()
            );
        }
        app
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn auth(&self, user: &str, method: &str, path: &str) -> Option<reqwest::Response> {
        self.client
            .get(format!("{}/auth", self.base))
            .header("x-proxy-secret", SECRET)
            .header("x-user-email", user)
            .header("x-original-method", method)
            .header("x-original-uri", path)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()
    }

    /// `/auth` as nginx asks it: the status, or `None` when no answer came.
    pub async fn status_as(&self, user: &str, method: &str, path: &str) -> Option<u16> {
        self.auth(user, method, path)
            .await
            .map(|r| r.status().as_u16())
    }

    /// The status and the denial's `reason` (empty for an allow).
    pub async fn decision(&self, user: &str, method: &str, path: &str) -> (Option<u16>, String) {
        let Some(r) = self.auth(user, method, path).await else {
            return (None, String::new());
        };
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        let reason = body["reason"].as_str().unwrap_or_default().to_string();
        (Some(status), reason)
    }

    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric_value(&text, name, labels)
    }

    /// The async tasks alive in authz, from its metrics.
    pub async fn tasks(&self) -> u64 {
        self.metric("authz_runtime_alive_tasks", &[]).await.unwrap() as u64
    }

    /// Resident memory, open files and threads, from `/proc`.
    pub fn usage(&self) -> Usage {
        usage_of(self.pid())
    }
}

impl Drop for Authz {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `dir/name` through a temporary name and a rename.
pub fn save(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

pub fn usage_of(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    let count = |dir: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{dir}"))
            .unwrap()
            .count()
    };
    Usage {
        rss_kib: field("VmRSS:"),
        fds: count("fd"),
        threads: count("task"),
    }
}
