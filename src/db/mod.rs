//! The database: connection pool, embedded default cluster, migrations and readiness.

pub mod embedded;
pub mod notify;
pub mod replica;
pub mod tenant;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::{
    PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::Config;
use embedded::{EmbeddedError, EmbeddedPostgres};

/// The migrations in `migrations/`, compiled into the binary (`build.rs` reruns on changes).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The database name the service uses inside the embedded cluster.
pub const EMBEDDED_DATABASE: &str = "payymo";
/// The ordinary (not superuser) role the service connects as inside the embedded cluster, so
/// row-level security applies to it.
pub const EMBEDDED_ROLE: &str = "payymo";

/// Lets free-text search (`q`) use its trigram index. Under row-level security PostgreSQL makes a
/// condition an index condition only when its function is LEAKPROOF, and `textlike` (LIKE) is not
/// marked so, because it can raise an error for a malformed *pattern*. Payymo's patterns are built
/// and escaped by the API, never taken from a column, so nothing can leak through it. Marking it
/// needs a superuser, once per database (the embedded cluster and the test clusters do it
/// themselves); without it search still works, but reads every row the other filters select.
pub const INDEXED_SEARCH_SQL: &str = "alter function pg_catalog.textlike(text, text) leakproof";

/// Runs [`INDEXED_SEARCH_SQL`] in the database `superuser` names.
pub async fn allow_indexed_search(superuser: &PgConnectOptions) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(superuser).await?;
    sqlx::query(INDEXED_SEARCH_SQL).execute(&mut conn).await?;
    conn.close().await
}

/// Whether free-text search can use its index in this database (see [`INDEXED_SEARCH_SQL`]).
pub async fn search_is_indexed(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select proleakproof from pg_proc where oid = 'pg_catalog.textlike(text, text)'::regprocedure")
        .fetch_one(pool)
        .await
}

/// Where the database is, and the embedded cluster to stop at shutdown, if we started one.
#[derive(Debug)]
pub struct Database {
    pub options: PgConnectOptions,
    pub embedded: Option<EmbeddedPostgres>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("DATABASE_URL: {0}")]
    InvalidUrl(sqlx::Error),
    #[error("cannot prepare the embedded database: {0}")]
    Prepare(sqlx::Error),
}

impl Database {
    /// Resolves `DATABASE_URL`, or starts (or reuses) the embedded cluster and makes sure its
    /// `payymo` database exists.
    pub async fn locate(config: &Config) -> Result<Self, DatabaseError> {
        if let Some(url) = &config.database_url {
            let options: PgConnectOptions = url.expose_secret().parse().map_err(DatabaseError::InvalidUrl)?;
            return Ok(Self { options: options.application_name("payymo"), embedded: None });
        }
        let cluster = EmbeddedPostgres::start(&config.data_dir).await?;
        let admin = cluster.connect_options("postgres");
        ensure_role(&admin, EMBEDDED_ROLE, None).await.map_err(DatabaseError::Prepare)?;
        create_database_if_missing(&admin, EMBEDDED_DATABASE, Some(EMBEDDED_ROLE))
            .await
            .map_err(DatabaseError::Prepare)?;
        allow_indexed_search(&admin.clone().database(EMBEDDED_DATABASE)).await.map_err(DatabaseError::Prepare)?;
        Ok(Self {
            options: cluster.connect_options(EMBEDDED_DATABASE).username(EMBEDDED_ROLE).application_name("payymo"),
            embedded: Some(cluster),
        })
    }

    /// Stops the embedded cluster if this process started it.
    pub async fn shutdown(self) {
        if let Some(cluster) = self.embedded
            && let Err(error) = cluster.stop().await
        {
            tracing::warn!(%error, "the embedded PostgreSQL cluster did not stop cleanly");
        }
    }
}

/// A lazily connecting pool: the service starts even while the database is away, answers 503
/// meanwhile, and recovers by itself when it returns.
pub fn pool(options: PgConnectOptions, config: &Config) -> PgPool {
    lazy_pool(options, config, config.db_acquire_timeout)
}

/// The read replica's pool (`DATABASE_READ_URL`): like [`pool`], as large, but waiting at most
/// 500 ms for a connection, so that a replica with none free sends the read to the primary rather
/// than keep it waiting.
pub fn replica_pool(options: PgConnectOptions, config: &Config) -> PgPool {
    lazy_pool(
        options.application_name("payymo-read"),
        config,
        config.db_acquire_timeout.min(Duration::from_millis(500)),
    )
}

fn lazy_pool(options: PgConnectOptions, config: &Config, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        // No ping before each acquire: it costs a round trip on every request (measured: the
        // largest single cost of an authenticated read, bench/README.md). A connection that
        // died while the database was away fails its next query, is discarded, and the request
        // answers a retryable 503.
        .test_before_acquire(false)
        .connect_lazy_with(options)
}

/// Creates the login role `name` (not superuser, no BYPASSRLS) unless it exists.
pub async fn ensure_role(
    maintenance: &PgConnectOptions,
    name: &str,
    password: Option<&str>,
) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(maintenance).await?;
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_roles where rolname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let password = password.map(|p| format!(" password '{}'", p.replace('\'', "''"))).unwrap_or_default();
        let sql = format!("create role {} login nosuperuser nobypassrls{password}", quote_ident(name));
        match sqlx::query(&sql).execute(&mut conn).await {
            Ok(_) => {}
            // 42710 duplicate_object, 23505: created concurrently.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42710" | "23505")) => {}
            Err(e) => return Err(e),
        }
    }
    conn.close().await
}

/// Creates `name` (owned by `owner`, when given) unless it exists. Safe to race: a concurrent
/// creator's win is not an error.
pub async fn create_database_if_missing(
    maintenance: &PgConnectOptions,
    name: &str,
    owner: Option<&str>,
) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(maintenance).await?;
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let owner = owner.map(|o| format!(" owner {}", quote_ident(o))).unwrap_or_default();
        let sql = format!("create database {}{owner}", quote_ident(name));
        match sqlx::query(&sql).execute(&mut conn).await {
            Ok(_) => {}
            // 42P04 duplicate_database, 23505 unique_violation: someone else created it first.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e),
        }
    }
    conn.close().await
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Why the database is not ready to serve.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
    #[error("the database schema is behind: migration {expected} is not applied yet (run `payymo migrate`)")]
    MigrationsPending { expected: i64 },
}

/// Checks that the database answers and that every embedded migration has been applied.
pub async fn check_ready(pool: &PgPool, within: Duration) -> Result<(), NotReady> {
    let expected = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied = match tokio::time::timeout(within, applied_migration(pool)).await {
        Ok(Ok(applied)) => applied,
        Ok(Err(error)) => return Err(NotReady::Unreachable(error.to_string())),
        Err(_) => return Err(NotReady::Unreachable(format!("no answer within {within:?}"))),
    };
    if applied < expected {
        return Err(NotReady::MigrationsPending { expected });
    }
    Ok(())
}

/// The newest successfully applied migration, 0 when none (or no migrations table) exists.
async fn applied_migration(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // Checked first: a query naming a missing table fails at parse time, even inside a CASE.
    let has_table: bool =
        sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null").fetch_one(&mut *conn).await?;
    if !has_table {
        return Ok(0);
    }
    let applied: Option<i64> =
        sqlx::query_scalar("select max(version) from _sqlx_migrations where success").fetch_one(&mut *conn).await?;
    Ok(applied.unwrap_or(0))
}

/// A LIKE pattern matching text that contains `text`: `%`, `_` and `\` in it are escaped
/// (backslash is LIKE's default escape character), so they match themselves.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("payymo"), "\"payymo\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn migrations_are_embedded() {
        assert!(MIGRATOR.iter().count() >= 1);
    }
}
