//! The fetch of a list that follows the policies (`ipm_policy::visible`): the projects a
//! caller's filter selects (by group, and by id whatever the group), in id order, after a
//! cursor. ipm-api's project list and authz's AuthZEN resource search run this same SQL; the
//! caller picks the columns, and the item route's question has the last word on every row.

use ipm_policy::visible::{ProjectFilter, ProjectRows, ProjectRowsFuture, Set};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::db::DbPool;
use crate::db_entities::DbEntityResolver;

/// Every column of `projects`, in the order `ipm-api`'s `Project` reads them.
pub const ALL_COLUMNS: &str =
    "id, name, description, meta_group_id, created_by, created_at, updated_at";

/// The id and the group: what a decision about a project needs.
pub const ID_AND_GROUP: &str = "id, meta_group_id";

/// Projects with ids after `after`, in id order, at most `limit`: those in `groups`, and those
/// whose id is in `ids` (only in `group`, when given), as rows of `columns` (one of the
/// constants above; never text from a request).
pub async fn projects_where<T>(
    db: &DbPool,
    columns: &'static str,
    groups: &Set,
    ids: &[Uuid],
    group: Option<&str>,
    after: Uuid,
    limit: u32,
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let limit = i64::from(limit);
    let (only, listed): (bool, Vec<String>) = match groups {
        Set::All => (false, Vec::new()),
        Set::Only(g) => (true, g.clone()),
        Set::AllBut(g) => (false, g.clone()),
    };
    match db {
        // SQLite has no arrays: lists travel as JSON arrays; ids as lower-case hex.
        DbPool::Sqlite(p) => {
            let listed = serde_json::to_string(&listed).unwrap_or_default();
            let ids: Vec<String> = ids.iter().map(|i| hex::encode(i.as_bytes())).collect();
            let ids = serde_json::to_string(&ids).unwrap_or_default();
            // `columns` is one of this module's constants: the only text put into the SQL.
            let sql = format!(
                "SELECT {columns} FROM projects \
                 WHERE id > $1 AND ($2 IS NULL OR meta_group_id = $2) \
                   AND ((CASE WHEN $3 THEN meta_group_id IN (SELECT value FROM json_each($4)) \
                              ELSE meta_group_id NOT IN (SELECT value FROM json_each($4)) END) \
                        OR lower(hex(id)) IN (SELECT value FROM json_each($5))) \
                 ORDER BY id LIMIT $6"
            );
            sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(group)
                .bind(only)
                .bind(listed)
                .bind(ids)
                .bind(limit)
                .fetch_all(p)
                .await
        }
        DbPool::Postgres(p) => {
            let sql = if only {
                // A few groups: one index range per group, each cut at the page size, then
                // merged, so the work is bounded by groups x page size whatever the table's size.
                format!(
                    "SELECT {columns} FROM ( \
                         SELECT p.* FROM unnest($1::text[]) AS g(name) \
                         CROSS JOIN LATERAL ( \
                             SELECT {ALL_COLUMNS} FROM projects \
                             WHERE meta_group_id = g.name AND id > $2 ORDER BY id LIMIT $3) AS p \
                         UNION \
                         SELECT {ALL_COLUMNS} FROM projects WHERE id = ANY($4) AND id > $2) AS x \
                     WHERE ($5::text IS NULL OR meta_group_id = $5) \
                     ORDER BY id LIMIT $3"
                )
            } else {
                // All groups but a few: the primary key in order, skipping those groups.
                format!(
                    "SELECT {columns} FROM projects \
                     WHERE id > $2 AND ($5::text IS NULL OR meta_group_id = $5) \
                       AND (meta_group_id <> ALL($1::text[]) OR id = ANY($4)) \
                     ORDER BY id LIMIT $3"
                )
            };
            sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql))
                .bind(listed)
                .bind(after)
                .bind(limit)
                .bind(ids)
                .bind(group)
                .fetch_all(p)
                .await
        }
    }
}

impl ProjectRows for DbEntityResolver {
    fn fetch<'a>(
        &'a self,
        filter: &'a ProjectFilter,
        after: Uuid,
        limit: u32,
    ) -> ProjectRowsFuture<'a> {
        Box::pin(async move {
            let ids: Vec<Uuid> = filter
                .ids
                .iter()
                .filter_map(|i| ipm_policy::entities::parse_id(i))
                .collect();
            projects_where::<(Uuid, String)>(
                self.db(),
                ID_AND_GROUP,
                &filter.groups,
                &ids,
                None,
                after,
                limit,
            )
            .await
            .map_err(|e| format!("{}: {e}", self.db().backend()))
        })
    }
}
