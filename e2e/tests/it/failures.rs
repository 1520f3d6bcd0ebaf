//! The stack under change and failure: authz stopped (nginx answers 500, the API hears
//! nothing), the API stopped, and a policy saved on disk changing the answer within a second.

use std::time::Duration;

use ipm_testkit::eventually;

use crate::nginx::Setup;
use crate::stack::{As, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn with_authz_stopped_nginx_answers_500_and_the_api_is_never_reached() {
    let mut stack = Stack::start(Setup::IdentityLayer).await;
    let relay = stack.relay.as_ref().unwrap();
    let before = relay.bytes_in();
    let r = stack.get(As::Session("alice"), "/api/projects").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        relay.bytes_in() > before,
        "the relay counts what reaches the API"
    );

    stack.stop_authz().await;
    let before = stack.relay.as_ref().unwrap().bytes_in();
    for who in [As::Session("alice"), As::Session("admin"), As::Anonymous] {
        let r = stack.get(who, "/api/projects").await;
        assert_eq!(r.status, 500, "{who:?}: {}", r.body);
        assert_eq!(r.json()["reason"], "authorization_unavailable");
    }
    let r = stack
        .request(
            As::Session("alice"),
            warp::http::Method::POST,
            "/api/projects",
        )
        .json(&serde_json::json!({ "name": "x", "meta_group_id": "photographers" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    // Not one byte went to the API: nginx did not pass the requests on for the API to refuse.
    assert_eq!(stack.relay.as_ref().unwrap().bytes_in(), before);
    assert!(
        stack
            .nginx
            .error_log()
            .contains("auth request unexpected status"),
        "{}",
        stack.nginx.error_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn with_the_api_stopped_nginx_answers_502_with_json() {
    let mut stack = Stack::start(Setup::IdentityLayer).await;
    stack.stop_api().await;
    let r = stack.get(As::Session("alice"), "/api/projects").await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.json()["reason"], "api_unreachable");
    // Still authorized first: nobody gets as far as finding out the API is down.
    let r = stack.get(As::Anonymous, "/api/projects").await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn a_policy_saved_on_disk_changes_the_answer_through_nginx_within_a_second() {
    let stack = Stack::start(Setup::IdentityLayer).await;
    let r = stack.get(As::Session("alice"), "/api/projects").await;
    assert_eq!(r.status, 200, "{}", r.body);

    stack.save_policy(
        "photographers.cedar",
        "@id(\"photographers-may-not-list\")\nforbid (principal in Group::\"photographers\", action == Action::\"ListProjects\", resource);\n",
    );
    // The body tells who refused: nginx's own, so authz decided it at the edge.
    let took = eventually(Duration::from_secs(5), || async {
        let r = stack.get(As::Session("alice"), "/api/projects").await;
        r.status == 403 && r.json()["reason"] == "denied_by_proxy"
    })
    .await
    .expect("the new policy never took effect through nginx");
    eprintln!("the saved policy answered through nginx after {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // Others are unaffected.
    let r = stack.get(As::Session("carol"), "/api/projects").await;
    assert_eq!(r.status, 200, "{}", r.body);

    std::fs::remove_file(stack.policy_dir.join("photographers.cedar")).unwrap();
    let took = eventually(Duration::from_secs(5), || async {
        stack
            .get(As::Session("alice"), "/api/projects")
            .await
            .status
            == 200
    })
    .await
    .expect("removing the policy never took effect");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
