//! Setup (b), `nginx/ipm-basic-auth.conf`, end to end: nginx's own Basic authentication with
//! an htpasswd file made by `openssl passwd -apr1`, user names mapped to emails, and authz and
//! ipm-api on unix sockets.

use warp::http::Method;

use crate::nginx::Setup;
use crate::stack::{As, Stack};
use crate::support::{Reply, SECRET};

const ALICE: As = As::Basic("alice", "alice-password");
const CAROL: As = As::Basic("carol", "carol-password");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/test"]
async fn basic_authentication_end_to_end() {
    let stack = Stack::start(Setup::BasicAuth).await;
    let id = stack
        .create_project(ALICE, "holiday", "photographers")
        .await;

    // No credentials: 401 with the Basic challenge, so browsers ask.
    let r = stack.get(As::Anonymous, "/api/projects").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "unauthenticated");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"ipm\""));
    assert_eq!(r.header_count("www-authenticate"), 1);
    // A wrong password, or the right one under another spelling of the name: the same.
    for who in [
        As::Basic("alice", "carol-password"),
        As::Basic("ALICE", "alice-password"),
    ] {
        let r = stack.get(who, "/api/projects").await;
        assert_eq!(r.status, 401, "{who:?}");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"ipm\""));
    }

    // The right password: the user's email reaches authz and the API.
    let r = stack.get(ALICE, "/api/projects").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["items"][0]["id"], id.as_str());
    assert_eq!(r.json()["items"][0]["created_by"], "alice@example.com");

    // Another group's project: out of reach, even when claiming to be alice.
    let path = format!("/api/projects/{id}");
    assert_eq!(stack.get(CAROL, &path).await.status, 403);
    let forged = stack
        .request(CAROL, Method::GET, "/api/projects")
        .header("x-user-email", "alice@example.com")
        .header("x-proxy-secret", SECRET)
        .header("x_user_email", "alice@example.com")
        .send()
        .await
        .unwrap();
    let forged = Reply::read(forged).await;
    assert_eq!(forged.status, 200);
    assert_eq!(forged.json()["items"], serde_json::json!([]));

    // A valid password for a user with no email in the map: refused, without a challenge
    // (asking again would not help).
    let r = stack
        .get(As::Basic("zed", "zed-password"), "/api/projects")
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("www-authenticate"), None);

    // The frontend is behind the password too; health checks are not.
    let r = stack.get(As::Anonymous, "/").await;
    assert_eq!(r.status, 401);
    let r = stack.get(ALICE, "/").await;
    assert!(r.body.contains("<title>ipm</title>"), "{}", r.body);
    let r = stack.get(As::Anonymous, "/healthz").await;
    assert_eq!(r.status, 200);
}
