//! Row-level security: the second wall between tenants, checked structurally (every tenant-owned
//! table, including tables added later) and behaviourally (a query that forgets its filter).

use std::time::Duration;

use payymo::{
    db::tenant::{begin_platform, begin_tenant, role_bypasses_rls},
    domain::ids::TenantId,
};
use sqlx::postgres::PgPoolOptions;

use crate::support::TestApp;

#[tokio::test]
async fn every_tenant_owned_table_forces_rls_and_leads_its_primary_key_with_tenant_id() {
    let app = TestApp::spawn().await;
    let tables: Vec<(String, bool, bool, Option<String>)> = sqlx::query_as(
        "select c.relname, c.relrowsecurity, c.relforcerowsecurity,
                (select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                 where i.indrelid = c.oid and i.indisprimary)
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind = 'r'
           -- Tenant-owned means a mandatory tenant_id; platform tables (jobs) may name a tenant optionally.
           and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id'
                       and a.attnotnull and not a.attisdropped)
         order by c.relname",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(tables.len() >= 7, "{tables:?}");
    for (table, enabled, forced, first_pk_column) in tables {
        assert!(enabled && forced, "{table}: row-level security must be enabled and forced");
        assert_eq!(first_pk_column.as_deref(), Some("tenant_id"), "{table}: tenant_id must lead the primary key");
    }
}

#[tokio::test]
async fn the_app_connects_as_a_role_that_rls_applies_to() {
    let app = TestApp::spawn().await;
    assert!(!role_bypasses_rls(&app.db).await.unwrap(), "tests must run as an ordinary role, or RLS proves nothing");
}

#[tokio::test]
async fn an_unfiltered_query_in_a_tenant_bound_transaction_sees_only_that_tenant() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    app.key(&a, &["api_keys:read"]).await;
    app.key(&b, &["api_keys:read"]).await;

    for tenant in [&a, &b] {
        let id = TenantId::parse(&tenant.id).unwrap();
        let mut tx = begin_tenant(&app.db, &id).await.unwrap();
        // Deliberately no `where tenant_id = ...`.
        let owners: Vec<String> =
            sqlx::query_scalar("select tenant_id from api_keys").fetch_all(&mut *tx).await.unwrap();
        assert_eq!(owners.len(), 2, "each tenant has two keys");
        assert!(owners.iter().all(|o| *o == tenant.id), "{owners:?}");
        tx.commit().await.unwrap();
    }

    // Outside any binding nothing is visible at all.
    let unbound: i64 = sqlx::query_scalar("select count(*) from api_keys").fetch_one(&app.db).await.unwrap();
    assert_eq!(unbound, 0);

    // A platform transaction sees everything.
    let mut tx = begin_platform(&app.db).await.unwrap();
    let all: i64 = sqlx::query_scalar("select count(*) from api_keys").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(all, 4);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_tenant_bound_transaction_cannot_write_another_tenants_rows() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let a_id = TenantId::parse(&a.id).unwrap();

    let mut tx = begin_tenant(&app.db, &a_id).await.unwrap();
    let insert = sqlx::query(
        "insert into api_keys (tenant_id, id, label, scopes, key_hash, key_prefix) values ($1, 'key_x', 'x', '{}', '\\x00', 'x')",
    )
    .bind(&b.id)
    .execute(&mut *tx)
    .await;
    let error = insert.unwrap_err().to_string();
    assert!(error.contains("row-level security"), "{error}");
    drop(tx);

    let mut tx = begin_tenant(&app.db, &a_id).await.unwrap();
    let updated = sqlx::query("update api_keys set label = 'hijacked' where tenant_id = $1")
        .bind(&b.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0, "B's rows are invisible to A's transaction, so nothing is updated");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_malformed_tenant_id_is_never_inlined() {
    let app = TestApp::spawn().await;
    // TenantId can only be built valid; from_db trusts the database, so check the guard directly.
    let evil = TenantId::from_db("ten_x', true); drop table tenants; --".into());
    assert!(begin_tenant(&app.db, &evil).await.is_err());
    let tenants: i64 = sqlx::query_scalar("select count(*) from tenants").fetch_one(&app.db).await.unwrap();
    assert_eq!(tenants, 0);
}

/// A request whose client hangs up is dropped wherever it is waiting, including between sending
/// `BEGIN; SET LOCAL ...` and reading the answer. sqlx 0.8 then leaves the connection inside that
/// transaction (its rollback guard only acts once the transaction is counted), and the pool hands
/// it to the next caller with the earlier binding still set: a platform binding would let a
/// tenant-bound transaction see every tenant, and an autocommit write would join the open
/// transaction and be rolled back with it. Beginning must leave nothing behind when cancelled.
#[tokio::test]
async fn a_transaction_dropped_while_it_begins_leaves_its_connection_clean() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    app.key(&a, &["api_keys:read"]).await;
    app.key(&b, &["api_keys:read"]).await;
    let a_id = TenantId::parse(&a.id).unwrap();
    // One connection, so the next caller gets the very connection the dropped future used.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with((*app.db.connect_options()).clone())
        .await
        .unwrap();

    for round in 0..10 {
        let mut begin = Box::pin(begin_platform(&pool));
        // The first poll sends BEGIN and then waits for the answer; drop the future unanswered.
        let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(begin.as_mut().poll(cx))).await;
        assert!(polled.is_pending(), "round {round}: beginning should wait for the database");
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(begin);

        let mut tx = begin_tenant(&pool, &a_id).await.unwrap();
        let owners: Vec<String> =
            sqlx::query_scalar("select tenant_id from api_keys").fetch_all(&mut *tx).await.unwrap();
        assert!(owners.iter().all(|o| *o == a.id), "round {round}: a tenant-bound transaction saw {owners:?}");
        assert_eq!(owners.len(), 2, "round {round}");
        tx.rollback().await.unwrap();

        // Outside a transaction nothing is bound, and each statement is its own transaction: a
        // setting local to one is gone in the next.
        let platform: Option<String> =
            sqlx::query_scalar("select nullif(current_setting('payymo.platform', true), '')")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(platform, None, "round {round}: the connection kept a platform binding");
        sqlx::query("select set_config('payymo.probe', 'still open', true)").execute(&pool).await.unwrap();
        let probe: Option<String> = sqlx::query_scalar("select nullif(current_setting('payymo.probe', true), '')")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(probe, None, "round {round}: the connection was left inside a transaction");
    }
}
