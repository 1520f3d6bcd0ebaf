//! Image rows on SQLite or PostgreSQL: the metadata of each stored object, inserted after the
//! object is stored. Deleting a row queues its object's key in `object_deletions` in the same
//! statement (a trigger, so a project's cascade queues too); the object is removed after the
//! delete has committed, never inside a write transaction, and its entry after that.

use ipm_runtime::db::DbPool;
use ipm_runtime::with_pool;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Db, DbError};

/// An image as stored and as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Image {
    pub id: Uuid,
    pub project_id: Uuid,
    /// Where the bytes are; never sent.
    #[serde(skip)]
    pub storage_key: String,
    /// As the uploader named it, made safe to show (see `upload::clean_filename`).
    pub filename: String,
    /// From the bytes, never from the client.
    pub content_type: String,
    pub size_bytes: i64,
    /// Hex; also the download's `ETag`.
    pub sha256: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub uploaded_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One page of a project's images and where the next one starts.
#[derive(Debug, Serialize)]
pub struct ImagePage {
    pub items: Vec<Image>,
    /// Opaque; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The columns of `Image`, in its order; a macro so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "id, project_id, storage_key, filename, content_type, size_bytes, sha256, width, height, \
         uploaded_by, created_at"
    };
}

/// Why an image could not be written or removed.
#[derive(Debug, thiserror::Error)]
pub enum ImageDbError {
    /// The project was deleted while the image was uploading.
    #[error("the project no longer exists")]
    ProjectGone,
    #[error(transparent)]
    Db(#[from] DbError),
}

fn unavailable(db: &Db, e: &sqlx::Error) -> DbError {
    DbError::Unavailable {
        backend: db.backend(),
        message: e.to_string(),
    }
}

/// Which image ids a list fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdFilter {
    All,
    Only(Vec<Uuid>),
    AllBut(Vec<Uuid>),
}

/// Image queries on the API's database.
#[derive(Debug, Clone)]
pub struct ImageStore {
    db: Db,
}

impl ImageStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    fn pool(&self) -> &DbPool {
        self.db.pool()
    }

    pub async fn insert(&self, image: &Image) -> Result<Image, ImageDbError> {
        let sql = concat!(
            "INSERT INTO images (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
            columns!()
        );
        let result = with_pool!(self.pool(), p => {
            sqlx::query_as::<_, Image>(sql)
                .bind(image.id)
                .bind(image.project_id)
                .bind(&image.storage_key)
                .bind(&image.filename)
                .bind(&image.content_type)
                .bind(image.size_bytes)
                .bind(&image.sha256)
                .bind(image.width)
                .bind(image.height)
                .bind(&image.uploaded_by)
                .bind(image.created_at)
                .fetch_one(p)
                .await
        });
        result.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => ImageDbError::ProjectGone,
            _ => ImageDbError::Db(unavailable(&self.db, &e)),
        })
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Image>, DbError> {
        let sql = concat!("SELECT ", columns!(), " FROM images WHERE id = $1");
        with_pool!(self.pool(), p => {
            sqlx::query_as::<_, Image>(sql)
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(|e| unavailable(&self.db, &e))
    }

    /// A project's images with ids after `after`, in id order, at most `limit`, of those
    /// `ids` admits (see `lists`; the policies have the last word on each row).
    pub async fn list_where(
        &self,
        project: Uuid,
        ids: &IdFilter,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Image>, DbError> {
        let (mode, listed) = match ids {
            IdFilter::All => (0i32, Vec::new()),
            IdFilter::Only(v) => (1, v.clone()),
            IdFilter::AllBut(v) => (2, v.clone()),
        };
        let after = after.unwrap_or(Uuid::nil());
        let limit = i64::from(limit);
        let rows = match self.pool() {
            // SQLite has no arrays: the ids travel as a JSON array of lower-case hex.
            DbPool::Sqlite(p) => {
                let hexed: Vec<String> = listed.iter().map(|i| hex::encode(i.as_bytes())).collect();
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM images WHERE project_id = $1 AND id > $2 AND CASE $3 \
                      WHEN 1 THEN lower(hex(id)) IN (SELECT value FROM json_each($4)) \
                      WHEN 2 THEN lower(hex(id)) NOT IN (SELECT value FROM json_each($4)) \
                      ELSE 1 END ORDER BY id LIMIT $5"
                );
                sqlx::query_as::<_, Image>(sql)
                    .bind(project)
                    .bind(after)
                    .bind(mode)
                    .bind(serde_json::to_string(&hexed).unwrap_or_default())
                    .bind(limit)
                    .fetch_all(p)
                    .await
            }
            DbPool::Postgres(p) => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM images WHERE project_id = $1 AND id > $2 AND CASE $3 \
                      WHEN 1 THEN id = ANY($4) WHEN 2 THEN id <> ALL($4) ELSE true END \
                      ORDER BY id LIMIT $5"
                );
                sqlx::query_as::<_, Image>(sql)
                    .bind(project)
                    .bind(after)
                    .bind(mode)
                    .bind(listed)
                    .bind(limit)
                    .fetch_all(p)
                    .await
            }
        };
        rows.map_err(|e| unavailable(&self.db, &e))
    }

    /// Deletes the row, queueing its object for removal in the same statement. `Ok(None)`
    /// when there was no such image. The caller removes the object, then calls
    /// [`deletion_done`](Self::deletion_done).
    pub async fn delete(&self, id: Uuid) -> Result<Option<Image>, DbError> {
        let sql = concat!("DELETE FROM images WHERE id = $1 RETURNING ", columns!());
        with_pool!(self.pool(), p => {
            sqlx::query_as::<_, Image>(sql)
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(|e| unavailable(&self.db, &e))
    }

    /// Up to `limit` keys whose rows are gone and whose objects are still to be removed,
    /// oldest first.
    pub async fn queued_deletions(&self, limit: u32) -> Result<Vec<String>, DbError> {
        with_pool!(self.pool(), p => {
            sqlx::query_scalar::<_, String>(
                "SELECT storage_key FROM object_deletions ORDER BY queued_at, storage_key LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })
        .map_err(|e| unavailable(&self.db, &e))
    }

    /// Forgets a queued key once its object is gone.
    pub async fn deletion_done(&self, key: &str) -> Result<(), DbError> {
        with_pool!(self.pool(), p => {
            sqlx::query("DELETE FROM object_deletions WHERE storage_key = $1")
                .bind(key)
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(|e| unavailable(&self.db, &e))
    }

    /// Every row's id and storage key, for `ipm-api gc`.
    pub async fn all_keys(&self) -> Result<Vec<(Uuid, String)>, DbError> {
        with_pool!(self.pool(), p => {
            sqlx::query_as::<_, (Uuid, String)>("SELECT id, storage_key FROM images ORDER BY id")
                .fetch_all(p)
                .await
        })
        .map_err(|e| unavailable(&self.db, &e))
    }

    /// The storage keys of a project's images (before the project is deleted).
    pub async fn project_keys(&self, project: Uuid) -> Result<Vec<String>, DbError> {
        with_pool!(self.pool(), p => {
            sqlx::query_scalar::<_, String>("SELECT storage_key FROM images WHERE project_id = $1")
                .bind(project)
                .fetch_all(p)
                .await
        })
        .map_err(|e| unavailable(&self.db, &e))
    }

    /// Whether a row refers to `key`.
    pub async fn key_in_use(&self, key: &str) -> Result<bool, DbError> {
        with_pool!(self.pool(), p => {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM images WHERE storage_key = $1")
                .bind(key)
                .fetch_one(p)
                .await
        })
        .map(|n| n > 0)
        .map_err(|e| unavailable(&self.db, &e))
    }

    /// Deletes a row whose object is gone (`ipm-api gc --apply`), with nothing queued for it.
    pub async fn delete_row(&self, id: Uuid) -> Result<bool, DbError> {
        with_pool!(self.pool(), p => async {
            let mut tx = p.begin().await?;
            let key = sqlx::query_scalar::<_, String>(
                "DELETE FROM images WHERE id = $1 RETURNING storage_key",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(key) = &key {
                sqlx::query("DELETE FROM object_deletions WHERE storage_key = $1")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(key.is_some())
        }.await)
        .map_err(|e| unavailable(&self.db, &e))
    }
}
