//! Tenant-bound and platform transactions: the only two ways the application opens a transaction
//! on tenant-owned tables.
//!
//! A tenant-bound transaction sets `payymo.tenant_id` for its own duration, so row-level security
//! shows it that tenant's rows and nothing else, even to a query that forgets its `tenant_id`
//! filter. A platform transaction sets `payymo.platform = 'on'` instead and sees every tenant; it
//! is for authentication lookups and platform administration only.

use std::borrow::Cow;

use sqlx::{PgPool, Postgres, Transaction};

use crate::domain::ids::TenantId;

/// A transaction that sees only `tenant`'s rows.
pub async fn begin_tenant(pool: &PgPool, tenant: &TenantId) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    // BEGIN and the setting travel in one round trip. Inlining is safe: a TenantId is only ever
    // `ten_` and 32 lowercase hex digits (checked again here, so a bug elsewhere cannot inject).
    let id = tenant.as_str();
    if TenantId::parse(id).is_none() {
        return Err(sqlx::Error::Protocol(format!("refusing to bind a transaction to malformed tenant id {id:?}")));
    }
    // SET LOCAL is set_config(…, true) without a planned SELECT: measurably cheaper per request.
    begin(pool, format!("begin; set local payymo.tenant_id = '{id}'").into()).await
}

/// A transaction that sees every tenant. Use for authentication and platform administration only.
pub async fn begin_platform(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    begin(pool, "begin; set local payymo.platform = 'on'".into()).await
}

/// Begins with `statement` in a task of its own, so that beginning always runs to the end.
///
/// A caller can be dropped while it waits for the answer to `BEGIN` (a request whose client hung
/// up, a timeout). sqlx 0.8 then leaves the connection inside that transaction, because its
/// rollback guard only acts once the transaction is counted, and the pool hands the connection to
/// its next user with this binding still set: a platform binding under someone else's
/// tenant-bound transaction, or an autocommit write that joins the open transaction and is rolled
/// back with it. In its own task the begin completes whatever happens to the caller, and a
/// transaction nobody waits for any more is dropped there, which rolls it back.
async fn begin(pool: &PgPool, statement: Cow<'static, str>) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    match tokio::spawn(async move { pool.begin_with(statement).await }).await {
        Ok(began) => began,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only when the runtime shuts down under us.
        Err(_) => Err(sqlx::Error::PoolClosed),
    }
}

/// Whether the connected role bypasses row-level security (superuser or BYPASSRLS), in which case
/// the second wall of tenant isolation is down and only the queries' own filters remain.
pub async fn role_bypasses_rls(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select rolsuper or rolbypassrls from pg_roles where rolname = current_user")
        .fetch_one(pool)
        .await
}

/// Ends a read-only transaction without waiting for the database: the rollback is queued and
/// travels with the connection's next statement, saving a round trip per read. Only for
/// transactions that wrote nothing.
pub fn end_read(tx: Transaction<'static, Postgres>) {
    drop(tx);
}
