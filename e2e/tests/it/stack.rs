//! The whole stack as deployed: authz and ipm-api (in-process, on one SQLite database and one
//! policy directory), nginx on a shipped setup in front, and the identity layer for setup (a).

use std::path::PathBuf;

use authz::server::ServerHandle;
use ipm_api::server::ApiHandle;
use ipm_runtime::config::ListenAddr;
use ipm_testkit::copy_policies;
use warp::http::Method;

use crate::nginx::{Nginx, Prefix, Setup, Upstreams};
use crate::stand_ins::{IdentityLayer, Relay, session_cookie};
use crate::support::{LAYER_IP, SECRET, http_client, https_client};

/// The htpasswd users of setup (b). `zed` has a password but no email in the shipped map;
/// `carol` is in the map, as the shipped example has her.
pub const BASIC_USERS: &[(&str, &str)] = &[
    ("alice", "alice-password"),
    ("carol", "carol-password"),
    ("zed", "zed-password"),
];

/// Who makes a request.
#[derive(Debug, Clone, Copy)]
pub enum As {
    /// Nobody signed in.
    Anonymous,
    /// Signed in at the identity layer (setup a): `alice`, `bob`, `carol`, `admin`, `mallory`.
    Session(&'static str),
    /// Basic credentials (setup b).
    Basic(&'static str, &'static str),
}

pub struct Stack {
    pub authz: Option<ServerHandle>,
    pub api: Option<ApiHandle>,
    /// Between nginx and the API in setup (a): counts the bytes that reach the API.
    pub relay: Option<Relay>,
    pub nginx: Nginx,
    pub layer: Option<IdentityLayer>,
    pub policy_dir: PathBuf,
    /// Clients talk to the layer over plain HTTP.
    pub plain: reqwest::Client,
    /// Clients that reach nginx directly, from 127.0.0.1.
    pub direct: reqwest::Client,
    /// Reaches nginx from the identity layer's address: a test playing the layer itself.
    pub as_layer: reqwest::Client,
    /// Holds the database, policies, sockets and nginx's prefix; removed on drop.
    _root: tempfile::TempDir,
}

impl Stack {
    pub async fn start(setup: Setup) -> Self {
        Self::start_with_secret(setup, SECRET).await
    }

    /// The stack with nginx sending `nginx_secret` (authz and the API expect `SECRET`).
    pub async fn start_with_secret(setup: Setup, nginx_secret: &str) -> Self {
        Self::start_with(setup, nginx_secret, &[]).await
    }

    /// The stack with `extra` substitutions in the setup file after the documented ones.
    pub async fn start_with(
        setup: Setup,
        nginx_secret: &str,
        extra: &[(&'static str, String)],
    ) -> Self {
        Self::start_configured(setup, nginx_secret, extra, |_| {}).await
    }

    /// The stack with ipm-api's settings changed by `api`.
    pub async fn start_with_api(
        setup: Setup,
        api: impl FnOnce(&mut ipm_api::config::Config),
    ) -> Self {
        Self::start_configured(setup, SECRET, &[], api).await
    }

    async fn start_configured(
        setup: Setup,
        nginx_secret: &str,
        extra: &[(&'static str, String)],
        adjust_api: impl FnOnce(&mut ipm_api::config::Config),
    ) -> Self {
        let root = tempfile::tempdir().unwrap();
        let policy_dir = root.path().join("policies");
        copy_policies(&policy_dir);
        let groups_file = policy_dir.join("groups.toml");
        let db = root.path().join("ipm.db");
        let unix = setup == Setup::BasicAuth;
        let listen = |name: &str| {
            if unix {
                ListenAddr::Unix(root.path().join(name))
            } else {
                "127.0.0.1:0".parse().unwrap()
            }
        };

        let mut api_config = ipm_api::config::Config::for_test(
            &policy_dir,
            &groups_file,
            SECRET,
            &format!("sqlite://{}?mode=rwc", db.display()),
        );
        api_config.listen = listen("api.sock");
        adjust_api(&mut api_config);
        let api = ipm_api::server::run(api_config)
            .await
            .expect("ipm-api starts");

        let mut authz_config = authz::config::Config::for_test(&policy_dir, &groups_file, SECRET);
        authz_config.listen = listen("authz.sock");
        authz_config.grpc_listen = None;
        authz_config.database_url = Some(format!("sqlite://{}", db.display()));
        let authz = authz::server::run(authz_config)
            .await
            .expect("authz starts");

        let (relay, upstreams) = match (&authz.listen, &api.listen) {
            (ListenAddr::Tcp(authz), ListenAddr::Tcp(api)) => {
                let relay = Relay::start(*api).await;
                let api = relay.addr;
                (Some(relay), Upstreams::Tcp { authz: *authz, api })
            }
            (ListenAddr::Unix(authz), ListenAddr::Unix(api)) => (
                None,
                Upstreams::Unix {
                    authz: authz.clone(),
                    api: api.clone(),
                },
            ),
            other => panic!("mixed listeners: {other:?}"),
        };
        let prefix = Prefix::create(root.path().join("nginx"), nginx_secret);
        if setup == Setup::BasicAuth {
            prefix.write_htpasswd(BASIC_USERS);
        }
        let nginx = Nginx::start(&prefix, setup, &upstreams, extra).await;
        let layer = match setup {
            Setup::IdentityLayer => Some(IdentityLayer::start(nginx.https, &prefix.ca_pem).await),
            Setup::BasicAuth => None,
        };
        let direct = https_client(&prefix.ca_pem, None);
        let as_layer = https_client(&prefix.ca_pem, Some(LAYER_IP));
        Self {
            authz: Some(authz),
            api: Some(api),
            relay,
            nginx,
            layer,
            policy_dir,
            plain: http_client(),
            direct,
            as_layer,
            _root: root,
        }
    }

    /// A request as `who`: through the identity layer in setup (a), straight to nginx in (b).
    pub fn request(&self, who: As, method: Method, path: &str) -> reqwest::RequestBuilder {
        match (&self.layer, who) {
            (Some(layer), As::Anonymous) => self.plain.request(method, layer.url(path)),
            (Some(layer), As::Session(user)) => self
                .plain
                .request(method, layer.url(path))
                .header("cookie", session_cookie(user)),
            (_, As::Basic(user, password)) => self
                .direct
                .request(method, self.nginx.url(path))
                .basic_auth(user, Some(password)),
            (None, As::Anonymous) => self.direct.request(method, self.nginx.url(path)),
            (None, As::Session(_)) => panic!("setup (b) has no identity layer"),
        }
    }

    /// `GET path` as `who`, asking for JSON as the frontend does.
    pub async fn get(&self, who: As, path: &str) -> crate::support::Reply {
        let r = self
            .request(who, Method::GET, path)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        crate::support::Reply::read(r).await
    }

    /// Creates a project in `group` as `who`; returns its id.
    pub async fn create_project(&self, who: As, name: &str, group: &str) -> String {
        let r = self
            .request(who, Method::POST, "/api/projects")
            .json(&serde_json::json!({ "name": name, "meta_group_id": group }))
            .send()
            .await
            .unwrap();
        let r = crate::support::Reply::read(r).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// Stops authz, as a crash or a deploy would.
    pub async fn stop_authz(&mut self) {
        if let Some(authz) = self.authz.take() {
            authz.shutdown().await;
        }
    }

    /// Stops ipm-api.
    pub async fn stop_api(&mut self) {
        if let Some(api) = self.api.take() {
            api.shutdown().await;
        }
    }

    /// Writes a policy file the way an editor saves: to a temporary name, then renamed.
    pub fn save_policy(&self, name: &str, text: &str) {
        let tmp = self.policy_dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.policy_dir.join(name)).unwrap();
    }
}
