//! An independent client: `tests/python/authzen_client.py`, written against the specification
//! with Python's standard library, drives the real server.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{SECRET, spawn_authzen};

#[tokio::test]
async fn a_python_urllib_client_gets_every_interop_decision() {
    let app = spawn_authzen(|_| {}).await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("tests/python/authzen_client.py");
    let data =
        root.join("authz/tests/data/authzen-interop/todo/decisions-authorization-api-1_0-02.json");
    let base = format!("http://{}", app.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(base)
            .arg(data)
            .env("AUTHZ_TEST_SECRET", SECRET)
            .env("NO_PROXY", "*")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("40/40 single evaluations"), "{stdout}");
}
