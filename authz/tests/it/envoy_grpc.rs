//! Envoy ext_authz over gRPC, driven by a tonic client: allow, every kind of denial, health
//! and reflection. A denial is always a successful RPC carrying a non-OK status.

use std::collections::HashMap;
use std::sync::Arc;

use authz::config::Config;
use authz::server::{Overrides, ServerHandle, run_with};
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use ipm_policy::groups::{GroupError, GroupFuture, GroupSource};
use ipm_policy::identity::Email;
use ipm_testkit::copy_policies;
use tonic::transport::Channel;

use crate::support::{SECRET, spawn_app, spawn_with};

const ALICE: &str = "alice@example.com";

/// A group source whose directory is down.
struct DownGroups;

impl GroupSource for DownGroups {
    fn groups<'a>(&'a self, _user: &'a Email) -> GroupFuture<'a> {
        Box::pin(std::future::ready(Err(GroupError::Unavailable(
            "directory unreachable".into(),
        ))))
    }

    fn kind(&self) -> &'static str {
        "down"
    }
}

pub async fn client(handle: &ServerHandle) -> AuthorizationClient<Channel> {
    let addr = handle.grpc_tcp_addr().expect("a gRPC TCP listener");
    AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .expect("gRPC connects")
}

/// A `CheckRequest` as Envoy builds it: lower-case keys, the query inside `path`.
pub fn check_request(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "192.0.2.7".into(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn as_user(user: &str, method: &str, path: &str) -> CheckRequest {
    check_request(
        method,
        path,
        &[("x-proxy-secret", SECRET), ("x-user-email", user)],
    )
}

async fn check(client: &mut AuthorizationClient<Channel>, req: CheckRequest) -> CheckResponse {
    client
        .check(req)
        .await
        .expect("the RPC succeeds")
        .into_inner()
}

/// The HTTP status, headers and body of a denial; panics on an allow.
fn denial(r: &CheckResponse) -> (i32, HashMap<String, String>, serde_json::Value) {
    let code = r.status.as_ref().map_or(0, |s| s.code);
    assert_ne!(code, 0, "expected a denial, got OK: {r:?}");
    let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
        panic!("a denial without a denied_response: {r:?}");
    };
    let headers = d
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    let body = serde_json::from_str(&d.body).expect("a JSON body");
    (d.status.as_ref().map_or(0, |s| s.code), headers, body)
}

fn assert_denied(r: &CheckResponse, status: i32, reason: &str) {
    let (got, headers, body) = denial(r);
    assert_eq!(
        (got, body["reason"].as_str()),
        (status, Some(reason)),
        "{r:?}"
    );
    assert_eq!(headers["content-type"], "application/json");
    let expected = match status {
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        _ => tonic::Code::Unavailable,
    };
    assert_eq!(r.status.as_ref().map(|s| s.code), Some(expected as i32));
}

#[tokio::test]
async fn member_is_allowed_with_overwritten_identity_and_the_secret_removed() {
    let app = spawn_app().await;
    let mut c = client(&app.handle).await;
    let r = check(
        &mut c,
        as_user("bob@example.com", "GET", "/api/projects?limit=5"),
    )
    .await;
    assert_eq!(r.status.as_ref().map(|s| s.code), Some(0), "{r:?}");
    let Some(HttpResponse::OkResponse(ok)) = &r.http_response else {
        panic!("an allow without ok_response: {r:?}");
    };
    let set: HashMap<_, _> = ok
        .headers
        .iter()
        .map(|h| {
            // OVERWRITE_IF_EXISTS_OR_ADD: a client's own copy is replaced, never appended to.
            assert_eq!(h.append_action, 2, "{h:?}");
            // Envoy would honour the deprecated `append` over `append_action`.
            #[allow(deprecated)]
            let no_append = h.append.is_none();
            assert!(no_append, "{h:?}");
            let h = h.header.as_ref().unwrap();
            (h.key.as_str(), h.value.as_str())
        })
        .collect();
    assert_eq!(set["x-authz-user"], "bob@example.com");
    assert_eq!(set["x-authz-groups"], "editors,photographers");
    assert!(ok.headers_to_remove.contains(&"x-proxy-secret".to_string()));
    assert!(
        ok.headers_to_remove
            .contains(&"x-authz-groups-truncated".to_string())
    );
    app.handle.shutdown().await;
}

#[tokio::test]
async fn policy_and_route_denials_are_403() {
    let app = spawn_app().await;
    let mut c = client(&app.handle).await;
    // In no group: the app is for members only.
    let r = check(
        &mut c,
        as_user("nobody@example.com", "GET", "/api/projects"),
    )
    .await;
    assert_denied(&r, 403, "policy_denied");
    // Suspended: a forbid beats her permits.
    let r = check(
        &mut c,
        as_user("mallory@example.com", "GET", "/api/projects"),
    )
    .await;
    assert_denied(&r, 403, "policy_denied");
    let r = check(&mut c, as_user(ALICE, "GET", "/not/a/route")).await;
    assert_denied(&r, 403, "no_route");
    let r = check(&mut c, as_user(ALICE, "PUT", "/api/projects")).await;
    assert_denied(&r, 403, "no_route");
    let r = check(&mut c, as_user(ALICE, "", "/api/projects")).await;
    assert_denied(&r, 403, "missing_original_request");
    app.handle.shutdown().await;
}

#[tokio::test]
async fn missing_wrong_or_merged_secret_is_401() {
    let app = spawn_app().await;
    let mut c = client(&app.handle).await;
    let r = check(
        &mut c,
        check_request("GET", "/api/projects", &[("x-user-email", ALICE)]),
    )
    .await;
    assert_denied(&r, 401, "missing_proxy_secret");
    for secret in [
        "wrong-secret-0123456789abcdef0123456789",
        "",
        // Envoy joins repeated headers with commas.
        &format!("{SECRET},{SECRET}"),
    ] {
        let r = check(
            &mut c,
            check_request(
                "GET",
                "/api/projects",
                &[("x-user-email", ALICE), ("x-proxy-secret", secret)],
            ),
        )
        .await;
        assert_denied(&r, 401, "invalid_proxy_secret");
    }
    // The same header under a second spelling is a duplicate, not a second chance.
    let r = check(
        &mut c,
        check_request(
            "GET",
            "/api/projects",
            &[
                ("x-user-email", ALICE),
                ("x-proxy-secret", "wrong"),
                ("X-Proxy-Secret", SECRET),
            ],
        ),
    )
    .await;
    assert_denied(&r, 401, "duplicate_proxy_secret");
    app.handle.shutdown().await;
}

#[tokio::test]
async fn missing_or_bad_email_is_401() {
    let app = spawn_app().await;
    let mut c = client(&app.handle).await;
    let r = check(
        &mut c,
        check_request("GET", "/api/projects", &[("x-proxy-secret", SECRET)]),
    )
    .await;
    assert_denied(&r, 401, "missing_user");
    for bad in [
        "not-an-email",
        "alice@example.com,admin@example.com",
        "alice@example.com\r\nx-authz-user: admin@example.com",
        "",
    ] {
        let r = check(&mut c, as_user(bad, "GET", "/api/projects")).await;
        assert_denied(&r, 401, "invalid_user");
    }
    app.handle.shutdown().await;
}

#[tokio::test]
async fn no_http_attributes_is_a_denial() {
    let app = spawn_app().await;
    let mut c = client(&app.handle).await;
    let r = check(&mut c, CheckRequest::default()).await;
    assert_denied(&r, 401, "missing_proxy_secret");
    let mut req = as_user(ALICE, "GET", "/api/projects");
    req.attributes.as_mut().unwrap().request = None;
    assert_denied(&check(&mut c, req).await, 401, "missing_proxy_secret");
    app.handle.shutdown().await;
}

#[tokio::test]
async fn group_source_down_is_503_never_ok() {
    let root = tempfile::tempdir().unwrap();
    let policy_dir = root.path().join("policies");
    copy_policies(&policy_dir);
    let config = Config::for_test(&policy_dir, &policy_dir.join("groups.toml"), SECRET);
    let handle = run_with(
        config,
        Overrides {
            groups: Some(Arc::new(DownGroups)),
            ..Overrides::default()
        },
    )
    .await
    .unwrap();
    let mut c = client(&handle).await;
    let r = check(&mut c, as_user(ALICE, "GET", "/api/projects")).await;
    assert_denied(&r, 503, "groups_unavailable");
    // Authentication comes first: a bad secret is still 401, without asking the directory.
    let r = check(
        &mut c,
        check_request(
            "GET",
            "/api/projects",
            &[("x-user-email", ALICE), ("x-proxy-secret", "wrong")],
        ),
    )
    .await;
    assert_denied(&r, 401, "invalid_proxy_secret");
    handle.shutdown().await;
}

#[tokio::test]
async fn decisions_are_counted_under_the_grpc_adapter() {
    let app = spawn_app().await;
    let mut c = client(&app.handle).await;
    check(&mut c, as_user(ALICE, "GET", "/api/projects")).await;
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("adapter=\"envoy_grpc\"") && l.contains("outcome=\"allow\"")),
        "{metrics}"
    );
    assert!(!metrics.contains(SECRET));
    app.handle.shutdown().await;
}

#[tokio::test]
async fn health_reports_serving_and_reflection_describes_check() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = spawn_app().await;
    let addr = app.handle.grpc_tcp_addr().unwrap();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("envoy.service.auth.v3.Authorization".into()),
    ]
    .map(|m| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers
        .message()
        .await
        .unwrap()
        .and_then(|r| r.message_response)
    else {
        panic!("no service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "envoy.service.auth.v3.Authorization",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) = answers
        .message()
        .await
        .unwrap()
        .and_then(|r| r.message_response)
    else {
        panic!("no descriptor for Check");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    app.handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_the_grpc_listener_and_off_disables_it() {
    let app = spawn_app().await;
    let addr = app.handle.grpc_tcp_addr().unwrap();
    app.handle.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let app = spawn_with(|c| c.grpc_listen = None).await;
    assert!(app.handle.grpc_listen.is_none());
    app.handle.shutdown().await;
}

#[tokio::test]
async fn a_taken_grpc_address_refuses_the_start_and_names_the_variable() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let root = tempfile::tempdir().unwrap();
    let policy_dir = root.path().join("policies");
    copy_policies(&policy_dir);
    let mut config = Config::for_test(&policy_dir, &policy_dir.join("groups.toml"), SECRET);
    config.grpc_listen = Some(ipm_runtime::config::ListenAddr::Tcp(addr));
    let Err(e) = authz::server::run(config).await else {
        panic!("authz started on a taken gRPC address");
    };
    assert!(
        e.to_string()
            .starts_with("AUTHZ_GRPC_LISTEN: cannot listen on"),
        "{e}"
    );
}
