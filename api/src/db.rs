//! The project store on SQLite or PostgreSQL: migrations, keyset-paginated lists, and writes
//! that each run in one transaction. The same SQL serves both except where noted.

use std::str::FromStr;
use std::time::Duration;

use ipm_runtime::db::{DbPool, DbUrlError, PoolSettings};
use ipm_runtime::db_lists;
use ipm_runtime::with_pool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use uuid::Uuid;

use ipm_policy::visible::Set;

use crate::models::{NewProject, Project, ProjectChange};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint: a name already used in the group.
    #[error("a project with this name already exists in the group")]
    Conflict,
    /// Anything else: unreachable, dropped, out of connections, failing queries.
    #[error("{backend}: {message}")]
    Unavailable {
        backend: &'static str,
        message: String,
    },
    #[error("DATABASE_URL: {0}")]
    Url(#[from] DbUrlError),
    #[error("DATABASE_URL: cannot create the directory `{dir}`: {message}")]
    Directory { dir: String, message: String },
    #[error("migrations failed on {backend}: {message}")]
    Migrate {
        backend: &'static str,
        message: String,
    },
}

/// The API's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: DbPool,
}

impl Db {
    /// Opens a pool without connecting. For a SQLite file, creates its directory first so the
    /// embedded default works on a fresh checkout.
    pub fn open(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| DbUrlError::Invalid(e.to_string()))?;
            if let Some(dir) = opts
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                && !dir.exists()
            {
                std::fs::create_dir_all(dir).map_err(|e| DbError::Directory {
                    dir: dir.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        let pool = DbPool::open_lazy(
            url,
            PoolSettings {
                read_only: false,
                max_connections,
                acquire_timeout,
            },
        )?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    pub fn backend(&self) -> &'static str {
        self.pool.backend()
    }

    fn unavailable(&self, e: sqlx::Error) -> DbError {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict,
            _ => DbError::Unavailable {
                backend: self.backend(),
                message: e.to_string(),
            },
        }
    }

    /// Applies every migration not yet applied, each in its own transaction.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let result = match &self.pool {
            DbPool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            DbPool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        };
        result.map_err(|e| DbError::Migrate {
            backend: self.backend(),
            message: e.to_string(),
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        with_pool!(&self.pool, p => sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(p).await)
            .map(|_| ())
            .map_err(|e| self.unavailable(e))
    }

    /// Projects with ids after `after`, in id order, at most `limit`: those in `groups`, and
    /// those whose id is in `ids` (only in `group`, when given). A list's fetch (`lists`); the
    /// policies have the last word on each row.
    pub async fn list_where(
        &self,
        groups: &Set,
        ids: &[Uuid],
        group: Option<&str>,
        after: Uuid,
        limit: u32,
    ) -> Result<Vec<Project>, DbError> {
        db_lists::projects_where(
            &self.pool,
            db_lists::ALL_COLUMNS,
            groups,
            ids,
            group,
            after,
            limit,
        )
        .await
        .map_err(|e| self.unavailable(e))
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Project>, DbError> {
        with_pool!(&self.pool, p => {
            sqlx::query_as::<_, Project>(
                "SELECT id, name, description, meta_group_id, created_by, created_at, updated_at \
                 FROM projects WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await
        })
        .map_err(|e| self.unavailable(e))
    }

    /// Inserts a project; a name already used in the group is `Conflict`.
    pub async fn insert(&self, n: &NewProject) -> Result<Project, DbError> {
        with_pool!(&self.pool, p => async {
            let mut tx = p.begin().await?;
            let row = sqlx::query_as::<_, Project>(
                "INSERT INTO projects \
                 (id, name, description, meta_group_id, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 RETURNING id, name, description, meta_group_id, created_by, created_at, updated_at",
            )
            .bind(n.id)
            .bind(&n.name)
            .bind(&n.description)
            .bind(&n.meta_group_id)
            .bind(&n.created_by)
            .bind(n.at)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }.await)
        .map_err(|e| self.unavailable(e))
    }

    /// Changes the given fields; `None` when there is no such project.
    pub async fn update(&self, id: Uuid, c: &ProjectChange) -> Result<Option<Project>, DbError> {
        with_pool!(&self.pool, p => async {
            let mut tx = p.begin().await?;
            let row = sqlx::query_as::<_, Project>(
                "UPDATE projects \
                 SET name = COALESCE($2, name), description = COALESCE($3, description), updated_at = $4 \
                 WHERE id = $1 \
                 RETURNING id, name, description, meta_group_id, created_by, created_at, updated_at",
            )
            .bind(id)
            .bind(c.name.as_deref())
            .bind(c.description.as_deref())
            .bind(c.at)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }.await)
        .map_err(|e| self.unavailable(e))
    }

    /// Deletes a project; false when there was none.
    pub async fn delete(&self, id: Uuid) -> Result<bool, DbError> {
        with_pool!(&self.pool, p => async {
            let mut tx = p.begin().await?;
            let done = sqlx::query("DELETE FROM projects WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done.rows_affected() > 0)
        }.await)
        .map_err(|e| self.unavailable(e))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
