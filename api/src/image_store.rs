//! Image rows on SQLite or PostgreSQL: the metadata of each stored object, inserted after the
//! object is stored and deleted in a transaction that commits only once the object is gone.

use std::future::Future;

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

/// Why a delete did not happen.
#[derive(Debug)]
pub enum DeleteError<E> {
    Db(DbError),
    /// Removing the object failed; the row was kept.
    Object(E),
}

fn unavailable(db: &Db, e: &sqlx::Error) -> DbError {
    DbError::Unavailable {
        backend: db.backend(),
        message: e.to_string(),
    }
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

    /// A project's images with ids after `after`, in id order, at most `limit`.
    pub async fn list(
        &self,
        project: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Image>, DbError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM images WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        with_pool!(self.pool(), p => {
            sqlx::query_as::<_, Image>(sql)
                .bind(project)
                .bind(after.unwrap_or(Uuid::nil()))
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .map_err(|e| unavailable(&self.db, &e))
    }

    /// Deletes the row, calling `remove_object` with its storage key inside the transaction:
    /// the delete commits only if the object is gone, so a storage outage keeps the image
    /// whole. `Ok(None)` when there was no such image.
    pub async fn delete_with<F, Fut, E>(
        &self,
        id: Uuid,
        remove_object: F,
    ) -> Result<Option<Image>, DeleteError<E>>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let sql = concat!("DELETE FROM images WHERE id = $1 RETURNING ", columns!());
        let db_err = |e: sqlx::Error| DeleteError::Db(unavailable(&self.db, &e));
        with_pool!(self.pool(), p => {
            let mut tx = p.begin().await.map_err(db_err)?;
            let row = sqlx::query_as::<_, Image>(sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some(image) = row else {
                return Ok(None);
            };
            if let Err(e) = remove_object(image.storage_key.clone()).await {
                let _ = tx.rollback().await;
                return Err(DeleteError::Object(e));
            }
            tx.commit().await.map_err(db_err)?;
            Ok(Some(image))
        })
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

    /// Deletes a row whose object is gone (`ipm-api gc --apply`).
    pub async fn delete_row(&self, id: Uuid) -> Result<bool, DbError> {
        with_pool!(self.pool(), p => {
            sqlx::query("DELETE FROM images WHERE id = $1")
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map(|n| n > 0)
        .map_err(|e| unavailable(&self.db, &e))
    }
}
