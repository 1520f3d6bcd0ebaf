//! authz's own variables (`AUTHZ_*`, `POLICY_SHADOW_DIR`) and its admin listener, which
//! ipm-api checks too since it reads the same group-source settings.

use super::Readers::{Authz, Both};
use super::{Section, Unset, Var};

pub(super) const AUTHZ: Section = Section {
    title: "authz",
    vars: &[
        &AUTHZ_LISTEN,
        &AUTHZ_GRPC_LISTEN,
        &AUTHZ_CLIENT_IP_HEADER,
        &AUTHZ_GROUPS_HEADER_MAX,
        &AUTHZ_POLICY_POLL_SECONDS,
        &POLICY_SHADOW_DIR,
        &AUTHZ_ENTITY_CACHE_TTL_MS,
    ],
};

pub const AUTHZ_LISTEN: Var<&str> = Var::new(
    "AUTHZ_LISTEN",
    Authz,
    "127.0.0.1:8181",
    "nginx auth_request and Envoy's HTTP mode (/envoy/): IP:PORT or unix:/path/to/socket.",
);

pub const AUTHZ_GRPC_LISTEN: Var<&str> = Var::new(
    "AUTHZ_GRPC_LISTEN",
    Authz,
    "127.0.0.1:9191",
    "Envoy ext_authz over gRPC (envoy.service.auth.v3.Authorization, gRPC health, reflection):\n\
     IP:PORT, unix:/path/to/socket, or off. Not the same address as AUTHZ_LISTEN.",
);

pub const AUTHZ_CLIENT_IP_HEADER: Var<&str> = Var::new(
    "AUTHZ_CLIENT_IP_HEADER",
    Authz,
    "X-Real-IP",
    "The header carrying the client address (context.client_ip in policies); empty disables.",
);

pub const AUTHZ_GROUPS_HEADER_MAX: Var<usize> = Var::new(
    "AUTHZ_GROUPS_HEADER_MAX",
    Authz,
    2048,
    "Most bytes of X-Authz-Groups (64..16384); longer lists are cut at a group boundary and\n\
     X-Authz-Groups-Truncated: true is added. Keep it under nginx's proxy_buffer_size.",
);

pub const AUTHZ_POLICY_POLL_SECONDS: Var<u64> = Var::new(
    "AUTHZ_POLICY_POLL_SECONDS",
    Authz,
    2,
    "Rescan interval of POLICY_DIR and GROUPS_FILE backing up file events, in seconds; 0 disables.",
);

pub const POLICY_SHADOW_DIR: Var<Unset> = Var::unset(
    "POLICY_SHADOW_DIR",
    Authz,
    "Shadow mode: a candidate policy directory decided beside POLICY_DIR on every request and never\n\
     enforced. Disagreements are logged (target authz::shadow) and counted in\n\
     authz_shadow_decisions_total; /readyz shows the candidate's hash. Unset: off.",
)
.example("policies-candidate");

pub const AUTHZ_ENTITY_CACHE_TTL_MS: Var<u64> = Var::new(
    "AUTHZ_ENTITY_CACHE_TTL_MS",
    Authz,
    2000,
    "How long authz keeps a project or image it read from DATABASE_URL, in milliseconds;\n\
     0 disables.",
);

pub(super) const AUTHZEN: Section = Section {
    title: "authz AuthZEN endpoint (OpenID AuthZEN Authorization API 1.0)",
    vars: &[
        &AUTHZ_AUTHZEN_LISTEN,
        &AUTHZ_AUTHZEN_TOKEN,
        &AUTHZ_AUTHZEN_TOKEN_FILE,
        &AUTHZ_AUTHZEN_PDP_URL,
    ],
};

pub const AUTHZ_AUTHZEN_LISTEN: Var<&str> = Var::new(
    "AUTHZ_AUTHZEN_LISTEN",
    Authz,
    "main",
    "Where /access/v1/evaluation(s), /access/v1/search/{subject,resource,action} and\n\
     /.well-known/authzen-configuration are served: main (on AUTHZ_LISTEN), off, or their own\n\
     IP:PORT or unix:/path/to/socket.",
);

pub const AUTHZ_AUTHZEN_TOKEN: Var<Unset> = Var::unset(
    "AUTHZ_AUTHZEN_TOKEN",
    Authz,
    "The bearer token AuthZEN callers send (Authorization: Bearer TOKEN), at least 32 bytes. Unset:\n\
     callers send PROXY_SHARED_SECRET in the X_PROXY_SECRET_HEADER header instead. Never logged.",
)
.secret();

pub const AUTHZ_AUTHZEN_TOKEN_FILE: Var<Unset> = Var::unset(
    "AUTHZ_AUTHZEN_TOKEN_FILE",
    Authz,
    "Or read the AuthZEN token from a file; set one of the two, not both.",
);

pub const AUTHZ_AUTHZEN_PDP_URL: Var<Unset> = Var::unset(
    "AUTHZ_AUTHZEN_PDP_URL",
    Authz,
    "The PDP identifier in /.well-known/authzen-configuration (e.g. https://pdp.example.com), the\n\
     base of the endpoint URLs there. Unset: http://HOST from the request's Host header.",
)
.example("https://pdp.example.com");

pub(super) const ADMIN: Section = Section {
    title: "authz admin endpoints (cache flush)",
    vars: &[
        &AUTHZ_ADMIN_LISTEN,
        &AUTHZ_ADMIN_TOKEN,
        &AUTHZ_ADMIN_TOKEN_FILE,
    ],
};

pub const AUTHZ_ADMIN_LISTEN: Var<&str> = Var::new(
    "AUTHZ_ADMIN_LISTEN",
    Both,
    "off",
    "off, IP:PORT or unix:/path. Needs GROUP_SOURCE=http and AUTHZ_ADMIN_TOKEN (also on loopback:\n\
     in a pod, loopback is shared with the application). Endpoints, with Authorization: Bearer TOKEN:\n\
     \x20 POST /admin/groups/flush?user=alice%40example.com   POST /admin/groups/flush-all\n\
     A 503 with \"reach\": \"local_only\" means Redis did not take the flush: retry.",
);

pub const AUTHZ_ADMIN_TOKEN: Var<Unset> = Var::unset(
    "AUTHZ_ADMIN_TOKEN",
    Both,
    "Required with AUTHZ_ADMIN_LISTEN: at least 32 bytes (openssl rand -hex 32). Never logged.",
)
.secret();

pub const AUTHZ_ADMIN_TOKEN_FILE: Var<Unset> = Var::unset(
    "AUTHZ_ADMIN_TOKEN_FILE",
    Both,
    "Or read the admin token from a file; set one of the two, not both.",
);
