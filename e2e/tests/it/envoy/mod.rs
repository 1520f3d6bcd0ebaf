//! Through a real Envoy, on the shipped `envoy/*.yaml`: in front of an upstream that echoes
//! what it got (`echo`), and in front of the real ipm-api (`api`). Needs `ENVOY_BIN` (and
//! `XDS_PYTHON`); ignored by a plain `cargo test`.

use std::process::Command;

use ipm_runtime::config::ListenAddr;
use ipm_testkit::repo_root;

use crate::support::{SECRET, spawn_authz};

mod api;
mod echo;
pub mod harness;

use harness::{Files, render, shipped, validate};

#[test]
#[ignore = "needs Envoy: run scripts/test"]
fn every_shipped_envoy_config_validates() {
    let files = Files::new();
    let path = |name: &str| files.dir.path().join(name).display().to_string();
    let mut names: Vec<_> = std::fs::read_dir(shipped(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 2, "{names:?}");
    for name in names {
        // Only the files that must exist: everything else as shipped.
        let text = render(
            &name,
            &[
                ("/etc/envoy/jwks.json", path("jwks.json")),
                ("/etc/envoy/secrets/proxy-secret", path("proxy-secret")),
            ],
        );
        let cfg = files.dir.path().join(&name);
        std::fs::write(&cfg, text).unwrap();
        match validate(&cfg) {
            // A deprecated field is removed in a later Envoy: the shipped file must not use one.
            Ok(out) => assert!(!out.contains("Deprecated field"), "envoy/{name}:\n{out}"),
            Err(out) => panic!("envoy/{name} does not validate:\n{out}"),
        }
        // Without its secret file Envoy refuses to start, rather than send no secret.
        std::fs::remove_file(files.dir.path().join("proxy-secret")).unwrap();
        let out = validate(&cfg).expect_err("Envoy starts without the secret file");
        assert!(out.contains("proxy-secret"), "{out}");
        std::fs::write(files.dir.path().join("proxy-secret"), SECRET).unwrap();
    }
}

#[tokio::test]
#[ignore = "needs XDS_PYTHON: run scripts/test"]
async fn independent_client_from_envoys_protos_is_never_allowed_what_it_should_not_be() {
    let python = std::env::var_os("XDS_PYTHON")
        .expect("XDS_PYTHON is not set: run scripts/test, which installs grpcio and xds-protos");
    let script = repo_root().join("tests/python/ext_authz_check.py");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("grpc.sock");
    let tcp = spawn_authz(|_| {}).await;
    let unix = {
        let sock = sock.clone();
        spawn_authz(move |c| c.grpc_listen = Some(ListenAddr::Unix(sock))).await
    };
    let targets = [
        tcp.handle.grpc_tcp_addr().unwrap().to_string(),
        format!("unix:{}", sock.display()),
    ];
    for target in targets {
        let python = python.clone();
        let script = script.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(python)
                .arg(script)
                .arg(&target)
                .env("AUTHZ_TEST_SECRET", SECRET)
                .output()
                .expect("XDS_PYTHON runs")
        })
        .await
        .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{report}");
        assert!(report.contains("cases as expected"), "{report}");
    }
    tcp.handle.shutdown().await;
    unix.handle.shutdown().await;
}
