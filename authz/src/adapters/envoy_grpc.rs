//! The Envoy ext_authz gRPC adapter: `envoy.service.auth.v3.Authorization/Check`, with gRPC health
//! and reflection beside it. It only translates; every error is a denial carried in a successful RPC.

use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Address, Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::rpc;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;

use ipm_policy::denial::{Denial, DenialKind};
use ipm_policy::pipeline::Decision;
use ipm_policy::request::{AuthzRequest, HeaderField};
use ipm_runtime::config::ListenAddr;
use ipm_runtime::enforcer::Enforcer;
use ipm_runtime::listen::{BindError, remove_stale_socket};
use ipm_runtime::service::StartError;

use super::http::{GROUPS_HEADER, GROUPS_TRUNCATED_HEADER, HeaderNames, USER_HEADER};

/// The adapter name in decision logs and metrics.
pub const ADAPTER: &str = "envoy_grpc";

/// `envoy.service.auth.v3` and everything it imports, for reflection (grpcurl needs it to
/// describe `Check`). Regenerate with `scripts/gen-ext-authz-descriptor.sh`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("../../proto/ext_authz.bin");

/// The `Authorization` service: one `Enforcer`, shared with the HTTP adapters.
#[derive(Debug, Clone)]
pub struct ExtAuthz {
    enforcer: Arc<Enforcer>,
    names: Arc<HeaderNames>,
}

impl ExtAuthz {
    pub fn new(enforcer: Arc<Enforcer>, names: Arc<HeaderNames>) -> Self {
        Self { enforcer, names }
    }

    /// Decides one `CheckRequest`. Never fails: a request it cannot read is denied.
    pub async fn check_request(&self, check: &CheckRequest) -> CheckResponse {
        let http = check
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let req = authz_request(http, client_ip(check), &self.names);
        let decision = self.enforcer.authorize_concealed(&req, ADAPTER).await;
        check_response(&decision, &self.names)
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            self.check_request(request.get_ref()).await,
        ))
    }
}

/// Adds one occurrence of a header: a second one makes the field ambiguous.
fn push<'a>(field: &mut HeaderField<'a>, value: &'a [u8]) {
    *field = match field {
        HeaderField::Missing => HeaderField::One(value),
        _ => HeaderField::Many,
    };
}

/// The user and secret headers, from whichever of the two header encodings Envoy used.
/// Keys arrive lower-cased from Envoy, but a key in any case counts, so that no spelling of
/// a header can slip past as a second, unseen copy.
fn identity_headers<'a>(
    http: &'a HttpRequest,
    names: &HeaderNames,
) -> (HeaderField<'a>, HeaderField<'a>) {
    let (mut user, mut secret) = (HeaderField::Missing, HeaderField::Missing);
    let mut visit = |key: &str, value: &'a [u8]| {
        if key.eq_ignore_ascii_case(names.user.as_str()) {
            push(&mut user, value);
        } else if key.eq_ignore_ascii_case(names.secret.as_str()) {
            push(&mut secret, value);
        }
    };
    for (key, value) in &http.headers {
        visit(key, value.as_bytes());
    }
    // `encode_raw_headers: true` sends every occurrence here, in `raw_value`.
    for h in http.header_map.iter().flat_map(|m| &m.headers) {
        let value = if h.raw_value.is_empty() {
            h.value.as_bytes()
        } else {
            &h.raw_value
        };
        visit(&h.key, value);
    }
    (user, secret)
}

fn text_field(s: &str) -> HeaderField<'_> {
    if s.is_empty() {
        HeaderField::Missing
    } else {
        HeaderField::One(s.as_bytes())
    }
}

/// Builds the protocol-neutral request; missing attributes leave fields `Missing`, which the
/// enforcer denies.
pub fn authz_request<'a>(
    http: Option<&'a HttpRequest>,
    client_ip: Option<IpAddr>,
    names: &HeaderNames,
) -> AuthzRequest<'a> {
    let Some(http) = http else {
        return AuthzRequest {
            method: HeaderField::Missing,
            uri: HeaderField::Missing,
            user: HeaderField::Missing,
            secret: HeaderField::Missing,
            client_ip,
        };
    };
    let (user, secret) = identity_headers(http, names);
    AuthzRequest {
        method: text_field(&http.method),
        uri: text_field(&http.path),
        user,
        secret,
        client_ip,
    }
}

/// The downstream address as Envoy saw it; a client cannot set it with a header.
fn client_ip(check: &CheckRequest) -> Option<IpAddr> {
    let peer = check.attributes.as_ref()?.source.as_ref()?;
    match peer.address.as_ref()?.address.as_ref()? {
        Address::SocketAddress(s) => s.address.parse().ok(),
        _ => None,
    }
}

fn overwrite(key: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value,
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn rpc_code(kind: DenialKind) -> tonic::Code {
    match kind {
        DenialKind::Unauthenticated => tonic::Code::Unauthenticated,
        DenialKind::Forbidden => tonic::Code::PermissionDenied,
        DenialKind::NotFound => tonic::Code::NotFound,
        DenialKind::Unavailable => tonic::Code::Unavailable,
    }
}

/// A denial: a non-OK status in a successful RPC, so Envoy answers the client itself.
pub fn denied(denial: Denial) -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status {
            code: rpc_code(denial.kind()) as i32,
            message: denial.reason().to_string(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(denial.status()),
            }),
            headers: vec![
                overwrite("content-type", "application/json".into()),
                overwrite("cache-control", "no-store".into()),
            ],
            body: denial.body(),
        })),
        ..Default::default()
    }
}

/// Header values Envoy would refuse (and so fail the check) are a denial instead.
fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Turns a decision into Envoy's reply: `OK` with identity headers set (not appended) and the
/// secret header removed before the request goes upstream, or the denial.
pub fn check_response(d: &Decision, names: &HeaderNames) -> CheckResponse {
    let Some((user, groups, truncated)) = d.identity(names.groups_max) else {
        return denied(d.denial.unwrap_or(Denial::PolicyError));
    };
    if !is_header_value(&user) || !is_header_value(&groups) {
        // Unreachable with validated emails and group names; never allow without identity.
        return denied(Denial::PolicyError);
    }
    let mut headers = vec![
        overwrite(USER_HEADER, user),
        overwrite(GROUPS_HEADER, groups),
    ];
    let mut headers_to_remove = vec![names.secret.as_str().to_string()];
    if truncated {
        headers.push(overwrite(GROUPS_TRUNCATED_HEADER, "true".into()));
    } else {
        headers_to_remove.push(GROUPS_TRUNCATED_HEADER.to_string());
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: tonic::Code::Ok as i32,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The running gRPC listener.
pub struct GrpcServer {
    /// The bound address (the real port when 0 was asked for).
    pub listen: ListenAddr,
    health: HealthReporter,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// Reports NOT_SERVING so health-checking proxies move away, then drains and stops.
    pub async fn shutdown(mut self) {
        self.health
            .set_not_serving::<AuthorizationServer<ExtAuthz>>()
            .await;
        self.health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        if let ListenAddr::Unix(path) = &self.listen {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds `listen` and serves `Check`, `grpc.health.v1.Health` and reflection on it.
pub async fn serve(
    var: &'static str,
    listen: &ListenAddr,
    ext_authz: ExtAuthz,
) -> Result<GrpcServer, StartError> {
    let bind_err = |e: std::io::Error| {
        StartError::Bind(BindError {
            var,
            addr: listen.to_string(),
            message: e.to_string(),
        })
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AuthorizationServer<ExtAuthz>>().await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Invalid {
            var,
            message: format!("gRPC reflection: {e}"),
        })?;
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(AuthorizationServer::new(ext_authz));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        let _ = rx.await;
    };
    let log = |r: Result<(), tonic::transport::Error>| {
        if let Err(e) = r {
            tracing::error!(error = %e, "gRPC listener stopped");
        }
    };
    let (bound, task) = match listen {
        ListenAddr::Tcp(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(bind_err)?;
            let bound = l.local_addr().map_err(bind_err)?;
            let incoming = TcpIncoming::from(l).with_nodelay(Some(true));
            let task = tokio::spawn(async move {
                log(router.serve_with_incoming_shutdown(incoming, signal).await);
            });
            (ListenAddr::Tcp(bound), task)
        }
        ListenAddr::Unix(path) => {
            remove_stale_socket(path);
            let l = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
            let incoming = UnixListenerStream::new(l);
            let task = tokio::spawn(async move {
                log(router.serve_with_incoming_shutdown(incoming, signal).await);
            });
            (ListenAddr::Unix(path.clone()), task)
        }
    };
    Ok(GrpcServer {
        listen: bound,
        health,
        shutdown: Some(tx),
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderMap;

    fn names() -> HeaderNames {
        HeaderNames {
            user: warp::http::HeaderName::from_static("x-user-email"),
            secret: warp::http::HeaderName::from_static("x-proxy-secret"),
            client_ip: None,
            groups_max: 2048,
        }
    }

    fn http(headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            path: "/api/projects?x=1".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn reads_method_path_and_identity() {
        let h = http(&[("x-user-email", "a@example.com"), ("x-proxy-secret", "s")]);
        let n = names();
        let r = authz_request(Some(&h), None, &n);
        assert_eq!(r.method, HeaderField::One(b"GET"));
        assert_eq!(r.uri, HeaderField::One(b"/api/projects?x=1"));
        assert_eq!(r.user, HeaderField::One(b"a@example.com"));
        assert_eq!(r.secret, HeaderField::One(b"s"));
    }

    #[test]
    fn a_second_spelling_or_raw_copy_is_ambiguous() {
        let n = names();
        let h = http(&[
            ("x-user-email", "a@example.com"),
            ("X-User-Email", "b@x.io"),
        ]);
        assert_eq!(authz_request(Some(&h), None, &n).user, HeaderField::Many);
        let mut h = http(&[]);
        h.header_map = Some(HeaderMap {
            headers: vec![
                HeaderValue {
                    key: "x-proxy-secret".into(),
                    raw_value: b"one".to_vec(),
                    ..Default::default()
                },
                HeaderValue {
                    key: "x-proxy-secret".into(),
                    raw_value: b"two".to_vec(),
                    ..Default::default()
                },
            ],
        });
        assert_eq!(authz_request(Some(&h), None, &n).secret, HeaderField::Many);
        let r = authz_request(None, None, &n);
        assert_eq!(
            (r.user, r.uri),
            (HeaderField::Missing, HeaderField::Missing)
        );
    }

    #[test]
    fn denials_carry_status_body_and_a_non_ok_code() {
        for (d, status, code) in [
            (Denial::MissingUser, 401, tonic::Code::Unauthenticated),
            (Denial::NoRoute, 403, tonic::Code::PermissionDenied),
            (Denial::GroupsUnavailable, 503, tonic::Code::Unavailable),
        ] {
            let r = denied(d);
            assert_eq!(r.status.as_ref().map(|s| s.code), Some(code as i32));
            let Some(HttpResponse::DeniedResponse(body)) = r.http_response else {
                unreachable!("a denial carries a denied response")
            };
            assert_eq!(body.status.map(|s| s.code), Some(status));
            assert_eq!(body.body, d.body());
        }
    }
}
