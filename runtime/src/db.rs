//! The database pool both binaries open: SQLite (the embedded default) or PostgreSQL, chosen
//! by `DATABASE_URL`, and the few reads the edge needs to resolve entities.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipm_policy::entities::ImageParent;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use uuid::Uuid;

/// Why a `DATABASE_URL` was refused.
#[derive(Debug, thiserror::Error)]
pub enum DbUrlError {
    #[error("DATABASE_URL: the scheme must be `sqlite:` or `postgres:`/`postgresql:`")]
    Scheme,
    #[error("DATABASE_URL: {0}")]
    Invalid(String),
}

/// How a pool is opened.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Reads only: SQLite opens the file read-only, PostgreSQL sessions default to read-only
    /// transactions.
    pub read_only: bool,
    pub max_connections: u32,
    /// How long a query waits for a connection before the database counts as down.
    pub acquire_timeout: Duration,
}

/// A connection pool on either backend. Cheap to clone.
#[derive(Debug, Clone)]
pub enum DbPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code on whichever pool is in use; `$pool` is the concrete pool.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::DbPool::Sqlite($pool) => $body,
            $crate::db::DbPool::Postgres($pool) => $body,
        }
    };
}

impl DbPool {
    /// Opens a pool without connecting: the first query connects, so a service can start
    /// before its database and answer 503 while it is down.
    pub fn open_lazy(url: &str, settings: PoolSettings) -> Result<Self, DbUrlError> {
        let invalid = |e: sqlx::Error| DbUrlError::Invalid(e.to_string());
        if url.starts_with("sqlite:") {
            let mut opts = SqliteConnectOptions::from_str(url).map_err(invalid)?;
            opts = if settings.read_only {
                opts.read_only(true).create_if_missing(false)
            } else {
                // WAL lets authz read while the API writes.
                opts.journal_mode(SqliteJournalMode::Wal)
            };
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_lazy_with(opts.foreign_keys(true));
            Ok(Self::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let mut opts = PgConnectOptions::from_str(url).map_err(invalid)?;
            if settings.read_only {
                opts = opts.options([("default_transaction_read_only", "on")]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_lazy_with(opts);
            Ok(Self::Postgres(pool))
        } else {
            Err(DbUrlError::Scheme)
        }
    }

    /// `sqlite` or `postgres`, for logs (never the URL, which may hold a password).
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// An image's project and that project's group, or `None` when there is no such image.
    pub async fn image_parent(&self, id: Uuid) -> Result<Option<ImageParent>, sqlx::Error> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, (Uuid, String)>(
                "SELECT i.project_id, p.meta_group_id FROM images i \
                 JOIN projects p ON p.id = i.project_id WHERE i.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(project, group)| ImageParent {
            project: project.hyphenated().to_string(),
            group: Arc::from(group),
        }))
    }

    /// The group a project belongs to, or `None` when there is no such project.
    pub async fn project_group(&self, id: Uuid) -> Result<Option<String>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>("SELECT meta_group_id FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }
}
