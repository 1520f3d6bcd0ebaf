//! The variables both binaries read: the shared secret, header names, modes, policies, the
//! group source and its cache, logs and the database.

use super::Readers::Both;
use super::{Section, Unset, Var};
use crate::config::EXAMPLE_SECRET;

pub(super) const SECRET: Section = Section {
    title: "Shared secret between the proxy and authz / ipm-api",
    vars: &[
        &PROXY_SHARED_SECRET,
        &PROXY_SHARED_SECRET_FILE,
        &PROXY_SHARED_SECRET_PREVIOUS,
        &PROXY_SHARED_SECRET_PREVIOUS_FILE,
    ],
};

pub const PROXY_SHARED_SECRET: Var<Unset> = Var::unset(
    "PROXY_SHARED_SECRET",
    Both,
    "Required. At least 32 bytes, printable ASCII. Generate with: openssl rand -hex 32\n\
     The value below is refused on purpose: replace it.",
)
.secret()
.example(EXAMPLE_SECRET)
.set_in_example();

pub const PROXY_SHARED_SECRET_FILE: Var<Unset> = Var::unset(
    "PROXY_SHARED_SECRET_FILE",
    Both,
    "Or read it from a file (secret managers, Kubernetes secrets); set one of the two, not both.",
);

pub const PROXY_SHARED_SECRET_PREVIOUS: Var<Unset> = Var::unset(
    "PROXY_SHARED_SECRET_PREVIOUS",
    Both,
    "During a rotation, the old secret stays accepted while the proxies are updated:\n\
     1. set PROXY_SHARED_SECRET_PREVIOUS=<old> and PROXY_SHARED_SECRET=<new>, restart authz;\n\
     2. update the proxies to send <new>; 3. remove PROXY_SHARED_SECRET_PREVIOUS.",
)
.secret();

pub const PROXY_SHARED_SECRET_PREVIOUS_FILE: Var<Unset> = Var::unset(
    "PROXY_SHARED_SECRET_PREVIOUS_FILE",
    Both,
    "Or read the old secret from a file; set one of the two, not both.",
);

pub(super) const HEADERS: Section = Section {
    title: "Header names",
    vars: &[
        &X_USER_ID_HEADER,
        &X_PROXY_SECRET_HEADER,
        &EMAIL_LOCAL_PART_CASE,
    ],
};

pub const X_USER_ID_HEADER: Var<&str> = Var::new(
    "X_USER_ID_HEADER",
    Both,
    "X-User-Email",
    "The header in which the proxy sends the signed-in user's email address.",
);

pub const X_PROXY_SECRET_HEADER: Var<&str> = Var::new(
    "X_PROXY_SECRET_HEADER",
    Both,
    "X-Proxy-Secret",
    "The header in which the proxy sends PROXY_SHARED_SECRET; not X_USER_ID_HEADER.",
);

pub const EMAIL_LOCAL_PART_CASE: Var<&str> = Var::new(
    "EMAIL_LOCAL_PART_CASE",
    Both,
    "insensitive",
    "insensitive: `Alice@example.com` is `alice@example.com` (the whole address is lower-cased\n\
     in decisions, groups, caches and the API's rows, and policies must name users in lower\n\
     case); sensitive: the part before @ keeps its case, for directories that tell them apart.",
);

pub(super) const MODES: Section = Section {
    title: "Modes",
    vars: &[&DEBUG, &SKIP_HEADER_CHECK],
};

pub const DEBUG: Var<bool> = Var::new(
    "DEBUG",
    Both,
    false,
    "DEBUG=true allows secrets shorter than 32 bytes and SKIP_HEADER_CHECK.",
);

pub const SKIP_HEADER_CHECK: Var<bool> = Var::new(
    "SKIP_HEADER_CHECK",
    Both,
    false,
    "SKIP_HEADER_CHECK=true skips the secret check (only with DEBUG=true; warns on every decision).",
);

pub(super) const POLICIES: Section = Section {
    title: "Policies and groups",
    vars: &[&POLICY_DIR, &GROUPS_FILE],
};

pub const POLICY_DIR: Var<&str> = Var::new(
    "POLICY_DIR",
    Both,
    "policies",
    "Cedar policies (*.cedar), schema.cedarschema and routes.toml; reloaded when saved.",
);

pub const GROUPS_FILE: Var<&str> = Var::new(
    "GROUPS_FILE",
    Both,
    "policies/groups.toml",
    "Group membership (TOML: group = [emails]) with GROUP_SOURCE=file; reloaded when saved.",
);

pub(super) const DIRECTORY: Section = Section {
    title: "Groups from the organisation's directory (GROUP_SOURCE=http)",
    vars: &[
        &GROUP_SOURCE,
        &AUTH_SERVER_URL,
        &AUTH_API_TOKEN,
        &AUTH_API_TOKEN_FILE,
        &AUTH_GROUPS_PATH,
        &AUTH_GROUPS_FIELD,
        &AUTH_TIMEOUT_MS,
        &AUTH_MAX_BODY_BYTES,
        &AUTH_MAX_CONCURRENCY,
        &AUTH_ALLOW_HTTP,
    ],
};

pub const GROUP_SOURCE: Var<&str> = Var::new(
    "GROUP_SOURCE",
    Both,
    "file",
    "file: GROUPS_FILE above. http: GET {AUTH_SERVER_URL}{AUTH_GROUPS_PATH} with a bearer token,\n\
     answered with JSON such as {\"groups\": [\"editors\", \"photographers\"]}. A directory that fails\n\
     (timeout, refused connection, non-2xx, bad JSON, oversized answer) makes authz answer 503.",
);

pub const AUTH_SERVER_URL: Var<Unset> = Var::unset(
    "AUTH_SERVER_URL",
    Both,
    "Required with http: the directory's base URL. https, unless the host is loopback,\n\
     DEBUG=true or AUTH_ALLOW_HTTP=true. No credentials in it.",
)
.example("https://auth.yourcompany.com");

pub const AUTH_API_TOKEN: Var<Unset> = Var::unset(
    "AUTH_API_TOKEN",
    Both,
    "Required with http: sent as Authorization: Bearer. Never logged.",
)
.secret();

pub const AUTH_API_TOKEN_FILE: Var<Unset> = Var::unset(
    "AUTH_API_TOKEN_FILE",
    Both,
    "Or read the token from a file; set one of the two, not both.",
);

pub const AUTH_GROUPS_PATH: Var<&str> = Var::new(
    "AUTH_GROUPS_PATH",
    Both,
    "/api/user/{email}/groups",
    "Appended to AUTH_SERVER_URL; {email} is replaced by the percent-encoded address\n\
     (alice%40example.com).",
);

pub const AUTH_GROUPS_FIELD: Var<&str> = Var::new(
    "AUTH_GROUPS_FIELD",
    Both,
    "groups",
    "The JSON field holding the list; dots go into nested objects (data.groups).",
);

pub const AUTH_TIMEOUT_MS: Var<u64> = Var::new(
    "AUTH_TIMEOUT_MS",
    Both,
    2000,
    "Longest wait for one answer, body included (1..60000).",
);

pub const AUTH_MAX_BODY_BYTES: Var<usize> = Var::new(
    "AUTH_MAX_BODY_BYTES",
    Both,
    256 * 1024,
    "Larger answers are refused (1024..16777216).",
);

pub const AUTH_MAX_CONCURRENCY: Var<usize> = Var::new(
    "AUTH_MAX_CONCURRENCY",
    Both,
    32,
    "Directory calls in flight at once (1..1024); more wait their turn within AUTH_TIMEOUT_MS,\n\
     so a burst of new users (a cold start, a flush-all) cannot flood the directory.",
);

pub const AUTH_ALLOW_HTTP: Var<bool> = Var::new(
    "AUTH_ALLOW_HTTP",
    Both,
    false,
    "Allows a plain-http directory on another host: the token then crosses the network in clear.",
);

pub(super) const CACHE: Section = Section {
    title: "Group cache (GROUP_SOURCE=http)",
    vars: &[
        &GROUP_CACHE_TTL_SECONDS,
        &GROUP_CACHE_STALE_SECONDS,
        &GROUP_CACHE_MAX_USERS,
        &GROUP_CACHE,
        &REDIS_URL,
        &REDIS_HMAC_KEY,
        &REDIS_HMAC_KEY_FILE,
        &REDIS_KEY_PREFIX,
        &REDIS_TIMEOUT_MS,
    ],
};

pub const GROUP_CACHE_TTL_SECONDS: Var<u64> = Var::new(
    "GROUP_CACHE_TTL_SECONDS",
    Both,
    300,
    "A membership is used for this long without asking again (at most 86400). Users the directory\n\
     gives no groups are cached too. Concurrent lookups for one user make one directory call.",
);

pub const GROUP_CACHE_STALE_SECONDS: Var<u64> = Var::new(
    "GROUP_CACHE_STALE_SECONDS",
    Both,
    0,
    "While the directory fails, a membership that expired at most this long ago is still used\n\
     (logged and counted as stale; at most 86400); 0 = never: a failure is a 503.",
);

pub const GROUP_CACHE_MAX_USERS: Var<usize> = Var::new(
    "GROUP_CACHE_MAX_USERS",
    Both,
    100_000,
    "Users kept in memory; the least recently used go first.",
);

pub const GROUP_CACHE: Var<&str> = Var::new(
    "GROUP_CACHE",
    Both,
    "memory",
    "memory: per process. redis: shared by every replica, and a flush on one reaches them all.\n\
     With Redis down, authz asks the directory (never allows without an answer).",
);

pub const REDIS_URL: Var<Unset> = Var::unset(
    "REDIS_URL",
    Both,
    "Required with GROUP_CACHE=redis: redis://[:password@]host:port[/db], rediss://... (TLS,\n\
     verified against the system's root certificates) or unix:///path. Never shown. Whoever can\n\
     write to this Redis can void the cache: prefer rediss:// and a Redis ACL user for authz.",
)
.secret()
.example("redis://127.0.0.1:6379");

pub const REDIS_HMAC_KEY: Var<Unset> = Var::unset(
    "REDIS_HMAC_KEY",
    Both,
    "Required with GROUP_CACHE=redis (at least 32 bytes; openssl rand -hex 32): every entry in\n\
     Redis carries an HMAC-SHA256 with this key, and one that does not verify is ignored, so\n\
     whoever can write to Redis cannot grant groups. Replicas that share a cache use the same key.",
)
.secret();

pub const REDIS_HMAC_KEY_FILE: Var<Unset> = Var::unset(
    "REDIS_HMAC_KEY_FILE",
    Both,
    "Or read the key from a file; set one of the two, not both.",
);

pub const REDIS_KEY_PREFIX: Var<&str> = Var::new(
    "REDIS_KEY_PREFIX",
    Both,
    "authz:",
    "Prefix of every key and of the flush channel; replicas that share a cache use the same one.",
);

pub const REDIS_TIMEOUT_MS: Var<u64> = Var::new(
    "REDIS_TIMEOUT_MS",
    Both,
    500,
    "Longest wait for one Redis command before asking the directory instead (1..60000).",
);

pub(super) const LOGS: Section = Section {
    title: "Logs and the database",
    vars: &[&LOG_FILE, &RUST_LOG, &DATABASE_URL],
};

pub const LOG_FILE: Var<&str> = Var::new(
    "LOG_FILE",
    Both,
    "logs/app.json",
    "JSON lines, also written to stdout; empty disables the file.",
);

/// Read by the logging library, not by the configuration: listed for `.env.example`.
pub const RUST_LOG: Var<&str> = Var::new(
    "RUST_LOG",
    Both,
    "info",
    "Which log lines are kept, in tracing's EnvFilter syntax (info,authz=debug).",
);

pub const DATABASE_URL: Var<&str> = Var::new(
    "DATABASE_URL",
    Both,
    "sqlite://data/ipm.db?mode=rwc",
    "ipm-api's database: a SQLite file (created on first start) or postgres://user:pass@host/db.\n\
     authz reads projects and images from it (read-only) to decide per-project routes at the edge;\n\
     unset for authz, those routes are allowed at the edge only by policies that need no project\n\
     data (admins). Never logged.",
)
.secret();
