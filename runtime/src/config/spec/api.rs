//! ipm-api's own variables: its listener, database pool and headers (`API_*`, `DB_*`, `CSP`,
//! `HSTS`), and where images live and what is accepted (`STORAGE_*`, `S3_*`, `IMAGE_*`).

use super::Readers::Api;
use super::{Section, Unset, Var};

pub(super) const API: Section = Section {
    title: "ipm-api",
    vars: &[
        &API_LISTEN,
        &API_CLIENT_IP_HEADER,
        &API_ALLOWED_ORIGINS,
        &API_POLICY_POLL_SECONDS,
        &DB_AUTO_MIGRATE,
        &DB_MAX_CONNECTIONS,
        &DB_ACQUIRE_TIMEOUT_MS,
        &CSP,
        &API_UI_CSP,
        &HSTS,
    ],
};

pub const API_LISTEN: Var<&str> = Var::new(
    "API_LISTEN",
    Api,
    "127.0.0.1:8000",
    "IP:PORT or unix:/path/to/socket",
);

pub const API_CLIENT_IP_HEADER: Var<&str> = Var::new(
    "API_CLIENT_IP_HEADER",
    Api,
    "X-Real-IP",
    "The client address header for ipm-api's own decisions (the peer address when the request\n\
     has none); empty uses the peer address only.",
);

pub const API_ALLOWED_ORIGINS: Var<Unset> = Var::unset(
    "API_ALLOWED_ORIGINS",
    Api,
    "Origins besides the API's own whose pages may send POST, PATCH or DELETE (comma-separated,\n\
     as browsers send them in Origin). Unset: only pages served from the Host the request was\n\
     sent to (nginx passes the client's own Host); other browsers' cross-site requests answer 403.",
)
.example("https://app.example.com");

pub const API_POLICY_POLL_SECONDS: Var<u64> = Var::new(
    "API_POLICY_POLL_SECONDS",
    Api,
    2,
    "Rescan interval of POLICY_DIR and GROUPS_FILE backing up file events, in seconds; 0 disables.",
);

pub const DB_AUTO_MIGRATE: Var<Unset> = Var::unset(
    "DB_AUTO_MIGRATE",
    Api,
    "Apply migrations at start: true by default for SQLite, false for PostgreSQL\n\
     (run `ipm-api migrate`).",
);

pub const DB_MAX_CONNECTIONS: Var<u32> = Var::new(
    "DB_MAX_CONNECTIONS",
    Api,
    10,
    "Connections in the pool (1..1000).",
);

pub const DB_ACQUIRE_TIMEOUT_MS: Var<u64> = Var::new(
    "DB_ACQUIRE_TIMEOUT_MS",
    Api,
    3000,
    "How long a request waits for a connection before answering 503 (10..60000).",
);

pub const CSP: Var<&str> = Var::new(
    "CSP",
    Api,
    "default-src 'none'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
    "Content-Security-Policy on every API response (the web UI's own is API_UI_CSP); the API\n\
     serves JSON only, so nothing may load.",
);

pub const API_UI_CSP: Var<Unset> = Var::unset(
    "API_UI_CSP",
    Api,
    "Content-Security-Policy on the web UI's pages and files (`/`, `/projects/…`, `/assets/…`).\n\
     Unset: its own scripts, styles, images and API calls only; nothing inline, no framing:\n\
     default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';\n\
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
);

pub const HSTS: Var<bool> = Var::new(
    "HSTS",
    Api,
    false,
    "Strict-Transport-Security on every API response (only behind HTTPS).",
);

pub(super) const IMAGES: Section = Section {
    title: "Images (ipm-api)",
    vars: &[
        &STORAGE_BACKEND,
        &STORAGE_DIR,
        &S3_ENDPOINT,
        &S3_BUCKET,
        &S3_REGION,
        &S3_ACCESS_KEY_ID,
        &S3_SECRET_ACCESS_KEY,
        &S3_SECRET_ACCESS_KEY_FILE,
        &S3_FORCE_PATH_STYLE,
        &S3_KEY_PREFIX,
        &MAX_UPLOAD_BYTES,
        &API_UPLOAD_IDLE_TIMEOUT_SECONDS,
        &API_MAX_CONCURRENT_UPLOADS,
        &API_MAX_CONCURRENT_UPLOADS_PER_USER,
        &API_DELETE_RETRY_SECONDS,
        &IMAGE_DOWNLOAD,
        &IMAGE_REDIRECT_EXPIRY_SECONDS,
        &IMAGE_ALLOW_SVG,
        &API_THUMBNAIL_MAX_PIXELS,
        &API_MAX_CONCURRENT_THUMBNAILS,
    ],
};

pub const STORAGE_BACKEND: Var<&str> = Var::new(
    "STORAGE_BACKEND",
    Api,
    "local",
    "local: files under STORAGE_DIR; s3: a bucket on AWS S3, MinIO or any S3-compatible server.",
);

pub const STORAGE_DIR: Var<&str> = Var::new(
    "STORAGE_DIR",
    Api,
    "data/images",
    "Where STORAGE_BACKEND=local keeps the files.",
);

pub const S3_ENDPOINT: Var<Unset> = Var::unset(
    "S3_ENDPOINT",
    Api,
    "With STORAGE_BACKEND=s3: the server's http:// or https:// URL (MinIO, another\n\
     S3-compatible server); unset for AWS.",
)
.example("http://127.0.0.1:9000");

pub const S3_BUCKET: Var<Unset> = Var::unset(
    "S3_BUCKET",
    Api,
    "Required with s3. It must exist: checked at start.",
)
.example("ipm-images");

pub const S3_REGION: Var<&str> = Var::new("S3_REGION", Api, "us-east-1", "The bucket's region.");

pub const S3_ACCESS_KEY_ID: Var<Unset> = Var::unset("S3_ACCESS_KEY_ID", Api, "Required with s3.");

pub const S3_SECRET_ACCESS_KEY: Var<Unset> = Var::unset(
    "S3_SECRET_ACCESS_KEY",
    Api,
    "Required with s3. Never logged.",
)
.secret();

pub const S3_SECRET_ACCESS_KEY_FILE: Var<Unset> = Var::unset(
    "S3_SECRET_ACCESS_KEY_FILE",
    Api,
    "Or read the secret key from a file; set one of the two, not both.",
);

pub const S3_FORCE_PATH_STYLE: Var<bool> = Var::new(
    "S3_FORCE_PATH_STYLE",
    Api,
    false,
    "true for MinIO and most S3-compatible servers (endpoint/bucket/key URLs).",
);

pub const S3_KEY_PREFIX: Var<&str> = Var::new(
    "S3_KEY_PREFIX",
    Api,
    "images/",
    "Objects live under this prefix (empty: none); `ipm-api gc` looks nowhere else.",
);

pub const MAX_UPLOAD_BYTES: Var<u64> = Var::new(
    "MAX_UPLOAD_BYTES",
    Api,
    100 << 20,
    "Larger uploads answer 413 (the default is 100 MiB).",
);

pub const API_UPLOAD_IDLE_TIMEOUT_SECONDS: Var<u64> = Var::new(
    "API_UPLOAD_IDLE_TIMEOUT_SECONDS",
    Api,
    30,
    "An upload that sends nothing for this long answers 408 and is discarded (1..3600).",
);

pub const API_MAX_CONCURRENT_UPLOADS: Var<usize> = Var::new(
    "API_MAX_CONCURRENT_UPLOADS",
    Api,
    32,
    "Uploads in progress at once, all users together; one more answers 503 with Retry-After\n\
     (1..10000).",
);

pub const API_MAX_CONCURRENT_UPLOADS_PER_USER: Var<usize> = Var::new(
    "API_MAX_CONCURRENT_UPLOADS_PER_USER",
    Api,
    4,
    "Uploads in progress at once for one user; one more answers 429 with Retry-After\n\
     (1..API_MAX_CONCURRENT_UPLOADS).",
);

pub const API_DELETE_RETRY_SECONDS: Var<u64> = Var::new(
    "API_DELETE_RETRY_SECONDS",
    Api,
    60,
    "How often the objects of deleted images that storage refused to remove are retried, and\n\
     once at start (1..86400).",
);

pub const IMAGE_DOWNLOAD: Var<&str> = Var::new(
    "IMAGE_DOWNLOAD",
    Api,
    "stream",
    "stream: the API sends the bytes; redirect (S3 only): 302 to a presigned URL of the object.",
);

pub const IMAGE_REDIRECT_EXPIRY_SECONDS: Var<u64> = Var::new(
    "IMAGE_REDIRECT_EXPIRY_SECONDS",
    Api,
    60,
    "How long a presigned URL of IMAGE_DOWNLOAD=redirect works (1..3600).",
);

pub const IMAGE_ALLOW_SVG: Var<bool> = Var::new(
    "IMAGE_ALLOW_SVG",
    Api,
    false,
    "SVG can carry scripts: refused unless true (downloads are always attachments).",
);

pub const API_THUMBNAIL_MAX_PIXELS: Var<u64> = Var::new(
    "API_THUMBNAIL_MAX_PIXELS",
    Api,
    40_000_000,
    "Thumbnails are made of images of at most this many pixels (width × height, checked before\n\
     decoding); one decode takes at most 8 bytes per pixel (1..400000000).",
);

pub const API_MAX_CONCURRENT_THUMBNAILS: Var<usize> = Var::new(
    "API_MAX_CONCURRENT_THUMBNAILS",
    Api,
    2,
    "Thumbnails made at once, off the request threads; the others wait their turn (1..64).",
);
