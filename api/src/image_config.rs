//! Image settings: where the bytes are stored (`STORAGE_*`, `S3_*`), how large and what kind
//! of upload is accepted, how long it may stall and how many run at once, how downloads are
//! answered, how often deleted images' objects are retried and how thumbnails are made
//! (`IMAGE_*`, `MAX_UPLOAD_BYTES`, `API_UPLOAD_IDLE_TIMEOUT_SECONDS`,
//! `API_MAX_CONCURRENT_UPLOADS*`, `API_DELETE_RETRY_SECONDS`, `API_*THUMBNAIL*`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipm_policy::secret::Secret;
use ipm_runtime::config::spec::{
    API_DELETE_RETRY_SECONDS, API_MAX_CONCURRENT_THUMBNAILS, API_MAX_CONCURRENT_UPLOADS,
    API_MAX_CONCURRENT_UPLOADS_PER_USER, API_THUMBNAIL_MAX_PIXELS, API_UPLOAD_IDLE_TIMEOUT_SECONDS,
    IMAGE_ALLOW_SVG, IMAGE_DOWNLOAD, IMAGE_REDIRECT_EXPIRY_SECONDS, MAX_UPLOAD_BYTES,
    S3_ACCESS_KEY_ID, S3_BUCKET, S3_ENDPOINT, S3_FORCE_PATH_STYLE, S3_KEY_PREFIX, S3_REGION,
    S3_SECRET_ACCESS_KEY, S3_SECRET_ACCESS_KEY_FILE, STORAGE_BACKEND, STORAGE_DIR, Unset, Var,
};
use ipm_runtime::config::{ConfigError, Env, environment};

/// The default upload limit: 100 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = MAX_UPLOAD_BYTES.default;

/// Where image bytes are stored.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// [`STORAGE_BACKEND`]`=local` (the default): files under [`STORAGE_DIR`].
    Local { dir: PathBuf },
    /// `STORAGE_BACKEND=s3`.
    S3(S3Config),
}

/// An S3 bucket. `Debug` never shows the secret key.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// [`S3_ENDPOINT`]: the server's URL (MinIO, another S3-compatible server); unset for AWS.
    pub endpoint: Option<String>,
    /// [`S3_BUCKET`] (required). It must exist: checked at start.
    pub bucket: String,
    /// [`S3_REGION`]
    pub region: String,
    /// [`S3_ACCESS_KEY_ID`] (required)
    pub access_key_id: String,
    /// [`S3_SECRET_ACCESS_KEY`] or `S3_SECRET_ACCESS_KEY_FILE` (required)
    pub secret_access_key: Secret,
    /// [`S3_FORCE_PATH_STYLE`]: `endpoint/bucket/key` URLs, as MinIO needs.
    pub force_path_style: bool,
    /// [`S3_KEY_PREFIX`]: objects live under it; `ipm-api gc` looks nowhere else.
    pub prefix: String,
}

/// How `GET /api/images/{id}/content` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadMode {
    /// `IMAGE_DOWNLOAD=stream` (the default): the API streams the bytes.
    Stream,
    /// `IMAGE_DOWNLOAD=redirect` (S3 only): 302 to a presigned URL of the object.
    Redirect,
}

/// How thumbnails are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbnailConfig {
    /// [`API_THUMBNAIL_MAX_PIXELS`]: larger images get no thumbnail.
    pub max_pixels: u64,
    /// [`API_MAX_CONCURRENT_THUMBNAILS`]: thumbnails made at once.
    pub concurrency: usize,
}

impl Default for ThumbnailConfig {
    fn default() -> Self {
        Self {
            max_pixels: API_THUMBNAIL_MAX_PIXELS.default,
            concurrency: API_MAX_CONCURRENT_THUMBNAILS.default,
        }
    }
}

/// Image settings. Each field names its variable; the defaults and documentation are in
/// [`spec`](ipm_runtime::config::spec).
#[derive(Debug, Clone)]
pub struct ImageConfig {
    pub storage: StorageConfig,
    /// [`MAX_UPLOAD_BYTES`]: larger uploads answer 413.
    pub max_upload_bytes: u64,
    /// [`API_UPLOAD_IDLE_TIMEOUT_SECONDS`]: an upload that sends nothing for this long answers
    /// 408.
    pub upload_idle_timeout: Duration,
    /// [`API_MAX_CONCURRENT_UPLOADS`]: uploads in progress at once; one more answers 503.
    pub max_uploads: usize,
    /// [`API_MAX_CONCURRENT_UPLOADS_PER_USER`]: one user's uploads in progress at once; one
    /// more answers 429.
    pub max_uploads_per_user: usize,
    /// [`API_DELETE_RETRY_SECONDS`]: how often queued object removals are retried.
    pub delete_retry: Duration,
    /// [`IMAGE_DOWNLOAD`]
    pub download: DownloadMode,
    /// [`IMAGE_REDIRECT_EXPIRY_SECONDS`]: how long a presigned URL works (1 to 3600).
    pub redirect_expiry: Duration,
    /// [`IMAGE_ALLOW_SVG`]: accept SVG (scripts can hide in it; downloads are always
    /// attachments under a strict CSP).
    pub allow_svg: bool,
    pub thumbnails: ThumbnailConfig,
}

impl ImageConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&environment()?)
    }

    pub fn from_map(env: &Env) -> Result<Self, ConfigError> {
        let storage = match STORAGE_BACKEND.choice(env).as_str() {
            "local" => StorageConfig::Local {
                dir: STORAGE_DIR.path(env),
            },
            "s3" => StorageConfig::S3(S3Config::from_map(env)?),
            other => {
                return Err(STORAGE_BACKEND.invalid(format!("`{other}` is not `local` or `s3`")));
            }
        };
        let max_upload_bytes = MAX_UPLOAD_BYTES.get(env)?;
        if max_upload_bytes == 0 {
            return Err(MAX_UPLOAD_BYTES.invalid("must be at least 1"));
        }
        let idle = API_UPLOAD_IDLE_TIMEOUT_SECONDS.get(env)?;
        if !(1..=3600).contains(&idle) {
            return Err(
                API_UPLOAD_IDLE_TIMEOUT_SECONDS.invalid("must be between 1 and 3600 seconds")
            );
        }
        let max_uploads = API_MAX_CONCURRENT_UPLOADS.get(env)?;
        if !(1..=10_000).contains(&max_uploads) {
            return Err(API_MAX_CONCURRENT_UPLOADS.invalid("must be between 1 and 10000"));
        }
        let max_uploads_per_user = API_MAX_CONCURRENT_UPLOADS_PER_USER.get(env)?;
        if !(1..=max_uploads).contains(&max_uploads_per_user) {
            return Err(API_MAX_CONCURRENT_UPLOADS_PER_USER
                .invalid("must be between 1 and API_MAX_CONCURRENT_UPLOADS"));
        }
        let delete_retry = API_DELETE_RETRY_SECONDS.get(env)?;
        if !(1..=86_400).contains(&delete_retry) {
            return Err(API_DELETE_RETRY_SECONDS.invalid("must be between 1 and 86400 seconds"));
        }
        let download = match IMAGE_DOWNLOAD.choice(env).as_str() {
            "stream" => DownloadMode::Stream,
            "redirect" => DownloadMode::Redirect,
            other => {
                return Err(
                    IMAGE_DOWNLOAD.invalid(format!("`{other}` is not `stream` or `redirect`"))
                );
            }
        };
        if download == DownloadMode::Redirect && matches!(storage, StorageConfig::Local { .. }) {
            return Err(IMAGE_DOWNLOAD.invalid(
                "`redirect` needs STORAGE_BACKEND=s3 (local files have no URL to redirect to)",
            ));
        }
        let expiry = IMAGE_REDIRECT_EXPIRY_SECONDS.get(env)?;
        if !(1..=3600).contains(&expiry) {
            return Err(IMAGE_REDIRECT_EXPIRY_SECONDS.invalid("must be between 1 and 3600 seconds"));
        }
        let max_pixels = API_THUMBNAIL_MAX_PIXELS.get(env)?;
        if !(1..=400_000_000).contains(&max_pixels) {
            return Err(API_THUMBNAIL_MAX_PIXELS.invalid("must be between 1 and 400000000"));
        }
        let concurrency = API_MAX_CONCURRENT_THUMBNAILS.get(env)?;
        if !(1..=64).contains(&concurrency) {
            return Err(API_MAX_CONCURRENT_THUMBNAILS.invalid("must be between 1 and 64"));
        }
        Ok(Self {
            storage,
            max_upload_bytes,
            upload_idle_timeout: Duration::from_secs(idle),
            max_uploads,
            max_uploads_per_user,
            delete_retry: Duration::from_secs(delete_retry),
            download,
            redirect_expiry: Duration::from_secs(expiry),
            allow_svg: IMAGE_ALLOW_SVG.get(env)?,
            thumbnails: ThumbnailConfig {
                max_pixels,
                concurrency,
            },
        })
    }

    /// Local storage in `dir`, the spec's defaults otherwise.
    pub fn for_test(dir: &Path) -> Self {
        Self {
            storage: StorageConfig::Local {
                dir: dir.to_path_buf(),
            },
            max_upload_bytes: MAX_UPLOAD_BYTES.default,
            upload_idle_timeout: Duration::from_secs(API_UPLOAD_IDLE_TIMEOUT_SECONDS.default),
            max_uploads: API_MAX_CONCURRENT_UPLOADS.default,
            max_uploads_per_user: API_MAX_CONCURRENT_UPLOADS_PER_USER.default,
            delete_retry: Duration::from_secs(API_DELETE_RETRY_SECONDS.default),
            download: DownloadMode::Stream,
            redirect_expiry: Duration::from_secs(IMAGE_REDIRECT_EXPIRY_SECONDS.default),
            allow_svg: IMAGE_ALLOW_SVG.default,
            thumbnails: ThumbnailConfig::default(),
        }
    }
}

impl S3Config {
    fn from_map(env: &Env) -> Result<Self, ConfigError> {
        let required = |var: Var<Unset>| {
            var.raw(env)
                .map(str::to_string)
                .ok_or(var.missing("STORAGE_BACKEND=s3 needs it"))
        };
        let endpoint = match S3_ENDPOINT.raw(env) {
            None => None,
            Some(e) if e.starts_with("http://") || e.starts_with("https://") => {
                Some(e.trim_end_matches('/').to_string())
            }
            Some(_) => {
                return Err(S3_ENDPOINT.invalid("must be an http:// or https:// URL"));
            }
        };
        let bucket = required(S3_BUCKET)?;
        if !(3..=63).contains(&bucket.len())
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(S3_BUCKET.invalid(format!(
                "`{bucket}` is not a bucket name (3 to 63 of a-z, 0-9, `-`, `.`)"
            )));
        }
        let secret_access_key = S3_SECRET_ACCESS_KEY
            .secret_value(env, &S3_SECRET_ACCESS_KEY_FILE)?
            .ok_or(
                S3_SECRET_ACCESS_KEY
                    .missing("STORAGE_BACKEND=s3 needs it (or S3_SECRET_ACCESS_KEY_FILE)"),
            )?;
        // Set empty, there is no prefix: objects live at the bucket's root.
        let prefix = S3_KEY_PREFIX.value_or_off(env).unwrap_or_default();
        if prefix.split('/').any(|s| s == ".." || s == ".") || prefix.starts_with('/') {
            return Err(
                S3_KEY_PREFIX.invalid("must not start with `/` or hold `.` or `..` segments")
            );
        }
        Ok(Self {
            endpoint,
            bucket,
            region: S3_REGION.value(env).to_string(),
            access_key_id: required(S3_ACCESS_KEY_ID)?,
            secret_access_key,
            force_path_style: S3_FORCE_PATH_STYLE.get(env)?,
            prefix: prefix.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        match ImageConfig::from_map(&env(pairs)) {
            Ok(_) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    const S3: &[(&str, &str)] = &[
        ("STORAGE_BACKEND", "s3"),
        ("S3_BUCKET", "images"),
        ("S3_ACCESS_KEY_ID", "AKID"),
        ("S3_SECRET_ACCESS_KEY", "very-secret-key"),
    ];

    #[test]
    fn defaults_store_locally_and_stream() {
        let c = ImageConfig::from_map(&env(&[])).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(
            matches!(c.storage, StorageConfig::Local { ref dir } if dir == Path::new("data/images"))
        );
        assert_eq!(c.max_upload_bytes, 100 * 1024 * 1024);
        assert_eq!(c.upload_idle_timeout, Duration::from_secs(30));
        assert_eq!(c.download, DownloadMode::Stream);
        assert!(!c.allow_svg);
        let s3 = ImageConfig::from_map(&env(S3)).unwrap_or_else(|e| unreachable!("{e}"));
        let StorageConfig::S3(s3) = s3.storage else {
            unreachable!()
        };
        assert_eq!(
            (s3.region.as_str(), s3.prefix.as_str()),
            ("us-east-1", "images/")
        );
        assert!(!format!("{s3:?}").contains("very-secret-key"));
    }

    #[test]
    fn refusals_name_the_variable() {
        assert!(err(&[("STORAGE_BACKEND", "ftp")]).starts_with("STORAGE_BACKEND is invalid"));
        assert!(
            err(&[("API_THUMBNAIL_MAX_PIXELS", "0")])
                .starts_with("API_THUMBNAIL_MAX_PIXELS is invalid")
        );
        assert!(
            err(&[("API_MAX_CONCURRENT_THUMBNAILS", "65")])
                .starts_with("API_MAX_CONCURRENT_THUMBNAILS is invalid")
        );
        assert!(err(&[("MAX_UPLOAD_BYTES", "10MB")]).starts_with("MAX_UPLOAD_BYTES is invalid"));
        assert!(
            err(&[("API_UPLOAD_IDLE_TIMEOUT_SECONDS", "0")])
                .starts_with("API_UPLOAD_IDLE_TIMEOUT_SECONDS is invalid")
        );
        assert!(
            err(&[("IMAGE_DOWNLOAD", "redirect")]).starts_with("IMAGE_DOWNLOAD is invalid"),
            "redirect needs S3"
        );
        assert!(err(&[("STORAGE_BACKEND", "s3")]).starts_with("S3_BUCKET is not set"));
        let mut s3 = S3.to_vec();
        s3.push(("S3_BUCKET", "Bad_Bucket"));
        assert!(err(&s3).starts_with("S3_BUCKET is invalid"));
        let mut s3 = S3.to_vec();
        s3.push(("S3_ENDPOINT", "minio:9000"));
        assert!(err(&s3).starts_with("S3_ENDPOINT is invalid"));
        let mut s3 = S3.to_vec();
        s3.push(("S3_KEY_PREFIX", "../x/"));
        assert!(err(&s3).starts_with("S3_KEY_PREFIX is invalid"));
        let mut s3 = S3.to_vec();
        s3.push(("IMAGE_DOWNLOAD", "redirect"));
        s3.push(("IMAGE_REDIRECT_EXPIRY_SECONDS", "0"));
        assert!(err(&s3).starts_with("IMAGE_REDIRECT_EXPIRY_SECONDS is invalid"));
    }
}
