//! The `ipm-api` binary on its embedded defaults: a SQLite file created under `data/`, the
//! reference curl checks, JSON logs with authentication attempts and never the secret.

use std::process::{Command, Stdio};

use ipm_testkit::Running;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_embedded_defaults_and_logs_without_the_secret() {
    let root = tempfile::tempdir().unwrap();
    policies_with_test_groups(&root.path().join("policies"));
    let bin = env!("CARGO_BIN_EXE_ipm-api");
    // `migrate` alone creates the database file; it needs no secret.
    let status = Command::new(bin)
        .arg("migrate")
        .current_dir(root.path())
        .env_remove("DATABASE_URL")
        .env_remove("PROXY_SHARED_SECRET")
        .env("LOG_FILE", "")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(root.path().join("data/ipm.db").is_file());

    let mut cmd = Command::new(bin);
    cmd.current_dir(root.path())
        .env_remove("DATABASE_URL")
        .env("PROXY_SHARED_SECRET", SECRET)
        .env("API_LISTEN", "127.0.0.1:0");
    let mut server = Running::start(cmd);
    let line = server.wait_for("ipm-api listening");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["message"], "ipm-api listening");
    assert_eq!(v["database"], "sqlite");
    let addr = v["listen"].as_str().unwrap().to_string();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/api/projects");
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(client.get(&url).send().await.unwrap()), 401);
    let ok = client
        .get(&url)
        .header("X-User-Email", REF_USER)
        .header("X-Proxy-Secret", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let page: serde_json::Value = ok.json().await.unwrap();
    assert!(page["items"].is_array());
    let wrong = client
        .get(&url)
        .header("X-User-Email", REF_USER)
        .header("X-Proxy-Secret", "wrong-secret-0123456789abcdef0123")
        .send()
        .await
        .unwrap();
    assert_eq!(status(wrong), 401);

    // SIGTERM drains and stops; the log file is flushed by then.
    server.signal("-TERM");
    assert!(server.wait().success());
    let log = std::fs::read_to_string(root.path().join("logs/app.json")).unwrap();
    let decisions: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["message"] == "decision")
        .collect();
    let reasons: Vec<&str> = decisions
        .iter()
        .filter_map(|v| v["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"missing_proxy_secret"), "{reasons:?}");
    assert!(reasons.contains(&"invalid_proxy_secret"), "{reasons:?}");
    assert!(reasons.contains(&"policy_allowed"), "{reasons:?}");
    assert!(decisions.iter().any(|v| v["user"] == REF_USER));
    assert!(!log.contains(SECRET) && !log.contains("wrong-secret"));
}
