//! The `authz` binary as deployers run it: refusals that name the variable, debug mode's
//! warnings, SIGHUP and SIGTERM, and secrets that never reach stdout or the log file.

use std::path::Path;
use std::process::{Command, Stdio};

use ipm_testkit::{Running, copy_policies};

use crate::support::SECRET;

fn authz(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authz"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AUTHZ_LISTEN", "127.0.0.1:0")
        .env("AUTHZ_GRPC_LISTEN", "127.0.0.1:0")
        .env("LOG_FILE", dir.join("logs/app.json"))
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_policies(&dir.path().join("policies"));
    dir
}

/// Runs the binary to completion and returns (exit code, stderr).
fn refusal(env: &[(&str, &str)], dir: &Path) -> (i32, String) {
    let out = authz(dir, env).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refuses_to_start_and_names_the_variable() {
    let dir = workdir();
    let d = dir.path();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "PROXY_SHARED_SECRET is not set"),
        (
            vec![("PROXY_SHARED_SECRET", "too-short")],
            "PROXY_SHARED_SECRET: the secret must be at least 32 bytes",
        ),
        (
            vec![
                ("PROXY_SHARED_SECRET", SECRET),
                ("SKIP_HEADER_CHECK", "true"),
            ],
            "SKIP_HEADER_CHECK",
        ),
        (
            vec![
                ("PROXY_SHARED_SECRET", SECRET),
                ("DEBUG", "false"),
                ("SKIP_HEADER_CHECK", "true"),
            ],
            "SKIP_HEADER_CHECK",
        ),
        (
            vec![("PROXY_SHARED_SECRET", SECRET), ("POLICY_DIR", "missing")],
            "POLICY_DIR",
        ),
        (
            vec![("PROXY_SHARED_SECRET_FILE", "/nonexistent/secret")],
            "PROXY_SHARED_SECRET_FILE",
        ),
        (
            vec![
                ("PROXY_SHARED_SECRET", SECRET),
                ("GROUPS_FILE", "missing.toml"),
            ],
            "GROUPS_FILE",
        ),
        (
            vec![
                ("PROXY_SHARED_SECRET", SECRET),
                ("AUTHZ_LISTEN", "not-an-address"),
            ],
            "AUTHZ_LISTEN",
        ),
    ];
    for (env, want) in cases {
        let (code, stderr) = refusal(&env, d);
        assert_eq!(code, 2, "{env:?}: {stderr}");
        assert!(stderr.contains(want), "{env:?}: {stderr}");
        assert!(
            !stderr.contains(SECRET) && !stderr.contains("too-short"),
            "{stderr}"
        );
    }
}

#[test]
fn refuses_broken_policies_with_file_line_and_column() {
    let dir = workdir();
    let p = dir.path().join("policies");
    std::fs::write(
        p.join("broken.cedar"),
        "permit (principal, action, resource)\nwhen { principal.email == };\n",
    )
    .unwrap();
    let (code, stderr) = refusal(&[("PROXY_SHARED_SECRET", SECRET)], dir.path());
    assert_eq!(code, 2);
    assert!(stderr.contains("POLICY_DIR"), "{stderr}");
    assert!(stderr.contains("broken.cedar:2:"), "{stderr}");
    assert!(
        stderr.contains("when { principal.email == };"),
        "the source line is shown: {stderr}"
    );
}

/// The address the running binary logs that it listens on.
fn listen_addr(app: &mut Running) -> String {
    let line = app.wait_for("authz listening");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["listen"].as_str().unwrap().to_string()
}

async fn call(addr: &str, headers: &[(&str, &str)]) -> u16 {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = client.get(format!("http://{addr}/auth"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn secrets_never_reach_stdout_or_the_log_file() {
    let dir = workdir();
    let mut app = Running::start(authz(
        dir.path(),
        &[("PROXY_SHARED_SECRET", SECRET), ("RUST_LOG", "trace")],
    ));
    let addr = listen_addr(&mut app);
    let req = [
        ("x-user-email", "alice@example.com"),
        ("x-original-method", "GET"),
        ("x-original-uri", "/api/projects?token=abc"),
    ];
    let mut with_secret = req.to_vec();
    with_secret.push(("x-proxy-secret", SECRET));
    assert_eq!(call(&addr, &with_secret).await, 200);
    let wrong = format!("{}x", &SECRET[..SECRET.len() - 1]);
    let mut with_wrong = req.to_vec();
    with_wrong.push(("x-proxy-secret", &wrong));
    assert_eq!(call(&addr, &with_wrong).await, 401);
    let line = app.wait_for("invalid_proxy_secret");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["target"], "authz::decision");
    assert_eq!(v["path"], "/api/projects", "query strings are not logged");
    app.signal("-TERM");
    let status = app.wait();
    assert!(status.success(), "SIGTERM drains and exits 0");
    let output = app.output();
    let log = std::fs::read_to_string(dir.path().join("logs/app.json")).unwrap();
    assert!(log.contains("\"decision\":\"allow\""), "{log}");
    for text in [log.as_str(), output.as_str()] {
        assert!(!text.contains(SECRET), "the secret leaked");
        assert!(!text.contains(&SECRET[..16]), "part of the secret leaked");
        assert!(!text.contains(&wrong[..16]), "the offered secret leaked");
    }
}

#[tokio::test]
async fn debug_skip_mode_warns_at_start_and_on_every_decision() {
    let dir = workdir();
    let mut app = Running::start(authz(
        dir.path(),
        &[
            ("PROXY_SHARED_SECRET", "dev"),
            ("DEBUG", "true"),
            ("SKIP_HEADER_CHECK", "true"),
        ],
    ));
    app.wait_for("the proxy secret is NOT checked");
    let addr = listen_addr(&mut app);
    let status = call(
        &addr,
        &[
            ("x-user-email", "alice@example.com"),
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/projects"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let line = app.wait_for("\"target\":\"authz::decision\"");
    assert!(line.contains("\"level\":\"WARN\""), "{line}");
    assert!(line.contains("SKIP_HEADER_CHECK=true"), "{line}");
    // The email is still required.
    assert_eq!(
        call(
            &addr,
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/api/projects")
            ]
        )
        .await,
        401
    );
}

#[tokio::test]
async fn sighup_reloads() {
    let dir = workdir();
    let mut app = Running::start(authz(
        dir.path(),
        &[
            ("PROXY_SHARED_SECRET", SECRET),
            ("AUTHZ_POLICY_POLL_SECONDS", "0"),
        ],
    ));
    let _ = listen_addr(&mut app);
    app.signal("-HUP");
    app.wait_for("SIGHUP: reloading policies and groups");
    assert!(app.try_wait().is_none(), "still running after SIGHUP");
}
