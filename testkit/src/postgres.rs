//! A PostgreSQL database per test, copied from a template the API's migrations have already
//! been applied to, and dropped when the test ends, also when it fails.
//!
//! The template is built once, by sqlx's migrator from `migrations/postgres` (as the API's
//! `sqlx::migrate!` does, so the API finds every migration applied), and named after a hash of
//! those files: test processes share it, and a change to the migrations makes a new one.

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use sqlx::Connection;
use tokio::sync::OnceCell;

use crate::repo::{migrations_dir, migrator};
use crate::services::Service;

/// The admin URL with database `name` instead.
fn url_of(admin: &str, name: &str) -> String {
    let (head, query) = admin
        .split_once('?')
        .map_or((admin, None), |(u, q)| (u, Some(q)));
    let authority = head.find("://").map_or(0, |i| i + 3);
    let base = head[authority..]
        .find('/')
        .map_or(head, |i| &head[..authority + i]);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A connection to the server's admin database, which creates and drops the tests' ones.
async fn admin() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&Service::Postgres.url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} refuses the tests: {e}",
                Service::Postgres.variable()
            )
        })
}

async fn admin_sql(sql: String) {
    let mut conn = admin().await;
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    if let Err(e) = done {
        panic!("{sql}: {e}");
    }
}

/// A database made for one test; dropped, connections and all, when this is dropped.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    /// A copy of the migrated template: the API's schema, no rows.
    pub async fn create() -> Self {
        let template = template().await;
        Self::create_with(&format!("TEMPLATE {template}")).await
    }

    /// An empty database, for a test of migrating one.
    pub async fn empty() -> Self {
        Self::create_with("").await
    }

    async fn create_with(options: &str) -> Self {
        let name = format!("ipm_test_{}", uuid::Uuid::now_v7().simple());
        admin_sql(format!("CREATE DATABASE {name} {options}")).await;
        Self {
            url: url_of(&Service::Postgres.url(), &name),
            name,
        }
    }

    /// Drops the database now, closing every connection to it (a server's pool included).
    pub async fn drop_now(name: &str) {
        admin_sql(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block; use a runtime of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(PgDatabase::drop_now(&name));
            }
        })
        .join();
    }
}

/// The migrated template's name, building it the first time in this process if no other
/// process has.
async fn template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE.get_or_init(build_template).await
}

/// `ipm_tpl_` and a hash of the migration files' names and contents.
fn template_name() -> String {
    let dir = migrations_dir("postgres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    for f in files {
        hash.update(f.file_name().unwrap().as_encoded_bytes());
        hash.update([0]);
        hash.update(std::fs::read(&f).unwrap());
        hash.update([0]);
    }
    format!("ipm_tpl_{}", &hex::encode(hash.finalize())[..16])
}

/// Migrates a database of its own and only then renames it to the template's name, so no
/// process ever copies a half-migrated template; when another process got there first, its
/// template is used and this one dropped.
async fn build_template() -> String {
    let name = template_name();
    if database_exists(&name).await {
        return name;
    }
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let building = format!(
        "ipm_tpl_building_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    admin_sql(format!("CREATE DATABASE {building}")).await;
    let migrated = async {
        let migrator = migrator("postgres").await;
        let mut conn =
            sqlx::PgConnection::connect(&url_of(&Service::Postgres.url(), &building)).await?;
        migrator.run(&mut conn).await?;
        conn.close().await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    if let Err(e) = migrated {
        PgDatabase::drop_now(&building).await;
        panic!("migrating the template database: {e}");
    }
    let mut conn = admin().await;
    let renamed = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {building} RENAME TO {name}"
    )))
    .execute(&mut conn)
    .await;
    let _ = conn.close().await;
    if let Err(e) = renamed {
        PgDatabase::drop_now(&building).await;
        assert!(database_exists(&name).await, "naming the template: {e}");
    }
    name
}

async fn database_exists(name: &str) -> bool {
    let mut conn = admin().await;
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    found.is_some()
}

#[cfg(test)]
mod tests {
    use super::url_of;

    #[test]
    fn another_database_on_the_admin_server() {
        for (admin, want) in [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            ("postgres://u:p@db:6000", "postgres://u:p@db:6000/x"),
            (
                "postgres://u@db/admin?sslmode=disable",
                "postgres://u@db/x?sslmode=disable",
            ),
        ] {
            assert_eq!(url_of(admin, "x"), want, "{admin}");
        }
    }
}
