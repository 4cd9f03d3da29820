//! The bare baseline of a full pass: the database work its outcome cannot do without, with no
//! matching at all. After the engine's pass, every row the pass wrote for the tenant (matches,
//! their transactions, allocations and adjustments, suggestions, events, audit entries, invoice
//! changes) is read out, and the new state of each transaction and invoice it changed; then one
//! transaction writes the same rows with one `COPY` per table into copies of those tables (same
//! columns, indexes, constraints and defaults, made with `like … including all`, logged like
//! the real ones) and applies the two updates to copies of the tenant's transactions and invoices
//! taken before the pass. No engine can write its outcome faster than this on the same machine,
//! so its time is the floor the pass is measured against.

use std::time::Instant;

use anyhow::Context as _;
use payymo::domain::ids::TenantId;
use sqlx::{Connection as _, PgConnection};

/// The tables a pass inserts into.
const WRITTEN: [&str; 8] = [
    "reconciliation_matches",
    "reconciliation_match_transactions",
    "reconciliation_allocations",
    "reconciliation_adjustments",
    "reconciliation_suggestions",
    "events",
    "audit_logs",
    "resource_changes",
];

/// The tables a pass updates.
const UPDATED: [&str; 2] = ["transactions", "invoices"];

const SCHEMA: &str = "bench_base";

/// Copies the tenant's transactions and invoices (the rows the pass will update) and makes empty
/// copies of the tables it inserts into. Untimed; call before the pass.
pub async fn prepare(session: &mut PgConnection, tenant: &TenantId) -> anyhow::Result<()> {
    sqlx::query(&format!("drop schema if exists {SCHEMA} cascade")).execute(&mut *session).await?;
    sqlx::query(&format!("create schema {SCHEMA}")).execute(&mut *session).await?;
    for table in WRITTEN.iter().chain(&UPDATED) {
        sqlx::query(&format!("create table {SCHEMA}.{table} (like public.{table} including all)"))
            .execute(&mut *session)
            .await
            .with_context(|| format!("copy of {table}"))?;
    }
    for table in UPDATED {
        let columns = insertable(session, table).await?;
        sqlx::query(&format!(
            "insert into {SCHEMA}.{table} ({columns}) select {columns} from public.{table} where tenant_id = $1"
        ))
        .bind(tenant.as_str())
        .execute(&mut *session)
        .await?;
    }
    sqlx::query(&format!("vacuum (analyze) {SCHEMA}.transactions, {SCHEMA}.invoices")).execute(&mut *session).await?;
    Ok(())
}

/// What the baseline wrote, and how long it took.
pub struct Baseline {
    pub seconds: f64,
    pub rows: u64,
    pub updated: u64,
}

/// Reads what the pass wrote (untimed), then writes it again into the copies in one timed
/// transaction. Drops the copies afterwards.
pub async fn run(session: &mut PgConnection, tenant: &TenantId) -> anyhow::Result<Baseline> {
    let mut dumps = Vec::new();
    for table in WRITTEN {
        let columns = insertable(session, table).await?;
        let mut out = session
            .copy_out_raw(&format!(
                "copy (select {columns} from public.{table} where tenant_id = '{}') to stdout with (format binary)",
                tenant.as_str()
            ))
            .await?;
        let mut data = Vec::new();
        while let Some(chunk) = futures_util::StreamExt::next(&mut out).await {
            data.extend_from_slice(&chunk?);
        }
        dumps.push((table, columns, data));
    }
    let transactions: Vec<(String, String)> = sqlx::query_as(
        "select id, match_status from transactions where tenant_id = $1 and match_status <> 'unmatched'",
    )
    .bind(tenant.as_str())
    .fetch_all(&mut *session)
    .await?;
    let invoices: Vec<(String, i64, String)> =
        sqlx::query_as("select id, amount_paid, status from invoices where tenant_id = $1 and amount_paid > 0")
            .bind(tenant.as_str())
            .fetch_all(&mut *session)
            .await?;

    let started = Instant::now();
    let mut tx = session.begin().await?;
    let mut rows = 0;
    for (table, columns, data) in &dumps {
        let mut copy =
            tx.copy_in_raw(&format!("copy {SCHEMA}.{table} ({columns}) from stdin with (format binary)")).await?;
        copy.send(data.as_slice()).await?;
        rows += copy.finish().await?;
    }
    let (ids, statuses): (Vec<&str>, Vec<&str>) = transactions.iter().map(|(i, s)| (i.as_str(), s.as_str())).unzip();
    let mut updated = sqlx::query(&format!(
        "update {SCHEMA}.transactions t set match_status = u.status, reconcile_pending = false
         from unnest($2::text[], $3::text[]) as u(id, status) where t.tenant_id = $1 and t.id = u.id"
    ))
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&statuses)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let ids: Vec<&str> = invoices.iter().map(|(i, _, _)| i.as_str()).collect();
    let paid: Vec<i64> = invoices.iter().map(|(_, p, _)| *p).collect();
    let statuses: Vec<&str> = invoices.iter().map(|(_, _, s)| s.as_str()).collect();
    updated += sqlx::query(&format!(
        "update {SCHEMA}.invoices i set amount_paid = u.paid, status = u.status, updated_at = now()
         from unnest($2::text[], $3::int8[], $4::text[]) as u(id, paid, status) where i.tenant_id = $1 and i.id = u.id"
    ))
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&paid)
    .bind(&statuses)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    let seconds = started.elapsed().as_secs_f64();
    sqlx::query(&format!("drop schema {SCHEMA} cascade")).execute(&mut *session).await?;
    Ok(Baseline { seconds, rows, updated })
}

/// The table's columns a row can be written to (not generated), comma-separated.
async fn insertable(session: &mut PgConnection, table: &str) -> anyhow::Result<String> {
    let columns: Vec<String> = sqlx::query_scalar(
        "select quote_ident(column_name) from information_schema.columns
         where table_schema = 'public' and table_name = $1 and is_generated = 'NEVER'
         order by ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *session)
    .await?;
    anyhow::ensure!(!columns.is_empty(), "no table {table}");
    Ok(columns.join(", "))
}
