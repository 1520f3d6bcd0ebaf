//! The web UI in a real browser: Debian's Chromium, driven by Playwright (`e2e/browser/`),
//! through the identity layer, nginx on the shipped `ipm.conf`, authz and ipm-api, as users
//! of two groups. The journeys, the accessibility checks and the screenshots are the script's;
//! this test starts the stack, hands it the users and fails when the script does.

use std::path::PathBuf;
use std::process::Command;

use ipm_testkit::{eventually, repo_root};
use warp::http::Method;

use crate::nginx::Setup;
use crate::stack::{As, Stack};
use crate::stand_ins::session_cookie;
use crate::support::DEADLINE;

const NEEDS: &str = "run scripts/test, which installs Chromium and the browser modules";

/// Small enough for a browser test to send a file over it.
const MAX_UPLOAD_BYTES: u64 = 2 << 20;

/// Where the screenshots go: `$CARGO_TARGET_DIR/ui-artifacts/`.
fn artifacts() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("ui-artifacts")
}

fn user(name: &str, group: &str) -> serde_json::Value {
    serde_json::json!({
        "cookie": session_cookie(name),
        "email": format!("{name}@example.com"),
        "group": group,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, Chromium and the browser modules: run scripts/test"]
async fn the_web_ui_in_chromium() {
    let chromium = std::env::var("CHROMIUM_BIN").expect(NEEDS);
    let modules = std::env::var("BROWSER_MODULES").expect(NEEDS);
    let stack = Stack::start_with_api(Setup::IdentityLayer, |c| {
        c.images.max_upload_bytes = MAX_UPLOAD_BYTES;
    })
    .await;
    let layer = stack
        .layer
        .as_ref()
        .expect("setup (a) has the identity layer");

    // bob reads his groups' projects but may not upload: the 403 the UI must explain.
    stack.save_policy(
        "no-uploads-for-bob.cedar",
        "@id(\"bob-no-uploads\")\nforbid (\n  principal == User::\"bob@example.com\",\n  \
         action == Action::\"UploadImage\",\n  resource\n);\n",
    );
    let probe = stack
        .create_project(As::Session("alice"), "probe", "photographers")
        .await;
    let denied = eventually(DEADLINE, || async {
        let r = stack
            .request(
                As::Session("bob"),
                Method::POST,
                &format!("/api/projects/{probe}/images?filename=x.png"),
            )
            .header("content-type", "image/png")
            .send()
            .await
            .unwrap();
        r.status() == 403
    })
    .await;
    assert!(denied.is_some(), "the policy did not come into force");
    let r = stack
        .request(
            As::Session("alice"),
            Method::DELETE,
            &format!("/api/projects/{probe}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let users = serde_json::json!({
        "alice": user("alice", "photographers"),
        "bob": user("bob", "photographers"),
        "carol": user("carol", "editors"),
    });
    let dir = artifacts();
    let _ = std::fs::remove_dir_all(&dir);
    println!("screenshots: {}", dir.display());
    let script = repo_root().join("e2e/browser/journeys.mjs");
    let base = layer.url("");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .env("IPM_URL", base)
            .env("IPM_USERS", users.to_string())
            .env("IPM_ARTIFACTS", &dir)
            .env("IPM_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES.to_string())
            .env("CHROMIUM_BIN", chromium)
            .env("BROWSER_MODULES", modules)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("journeys: all passed"), "{stdout}");
    for shot in [
        "00-projects",
        "01-projects-empty",
        "02-project",
        "03-upload-refused",
        "04-image",
        "05-other-group",
    ] {
        let file = artifacts().join(format!("{shot}.png"));
        assert!(file.is_file(), "{} was not saved", file.display());
    }
}
