//! The baseline: the rows a backfill wrote, read back as the rows of another tenant's
//! connection, written again by one `COPY` per table in one transaction.

use std::time::Instant;

use futures_util::TryStreamExt;
use payymo::domain::ids::TenantId;
use serde_json::Value;
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};

/// The columns the backfill writes, per table (the rest keep their defaults).
const PAYMENTS: &str = "tenant_id, connection_id, id, payment_intent_id, status, amount, currency, fee, net, \
                        amount_refunded, disputed, customer, description, metadata, balance_transaction_id, payout_id, \
                        failure_code, created, version";
const TRANSACTIONS: &str = "tenant_id, connection_id, id, payout_id, type, reporting_category, amount, fee, net, \
                            currency, source, status, description, fee_details, exchange_rate, available_on, created";

/// A connection that may `COPY` into the Stripe tables.
pub struct Copier {
    conn: PgConnection,
    /// The tables written: the real ones, or (for a role under row-level security, which `COPY
    /// FROM` refuses) tables of the same shape.
    payments: &'static str,
    transactions: &'static str,
}

impl Copier {
    pub async fn connect(options: &PgConnectOptions) -> anyhow::Result<Self> {
        let mut conn = PgConnection::connect_with(options).await?;
        sqlx::query("set payymo.platform = 'on'").execute(&mut conn).await?;
        let bypasses: bool =
            sqlx::query_scalar("select rolsuper or rolbypassrls from pg_roles where rolname = current_user")
                .fetch_one(&mut conn)
                .await?;
        if bypasses {
            return Ok(Self { conn, payments: "stripe_payments", transactions: "stripe_balance_transactions" });
        }
        eprintln!(
            "bench-stripe-backfill: DATABASE_URL's role is under row-level security, which COPY FROM refuses: the \
             baseline writes into tables of the same shape (indexes, no foreign keys or triggers) instead"
        );
        for table in ["stripe_payments", "stripe_balance_transactions"] {
            sqlx::query(&format!("create temporary table {table}_copy (like {table} including all)"))
                .execute(&mut conn)
                .await?;
        }
        Ok(Self { conn, payments: "stripe_payments_copy", transactions: "stripe_balance_transactions_copy" })
    }

    /// Checks what the backfill of `tenant` wrote against what was seeded (counts, amounts and
    /// fees); returns the rows written.
    pub async fn check(&mut self, tenant: &TenantId, seed: &Value) -> anyhow::Result<u64> {
        let (payments, amount, fee): (i64, i64, i64) = sqlx::query_as(
            "select count(*), coalesce(sum(amount), 0)::int8, coalesce(sum(fee), 0)::int8
             from stripe_payments where tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut self.conn)
        .await?;
        let (transactions, net): (i64, i64) = sqlx::query_as(
            "select count(*), coalesce(sum(net), 0)::int8 from stripe_balance_transactions where tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut self.conn)
        .await?;
        let expected = (seed["charges"].as_i64(), seed["amount"].as_i64(), seed["fee"].as_i64(), seed["net"].as_i64());
        anyhow::ensure!(
            (Some(payments), Some(amount), Some(fee), Some(net)) == expected && transactions == payments,
            "the backfill wrote {payments} payments (amount {amount}, fee {fee}) and {transactions} balance \
             transactions (net {net}); seeded {seed}"
        );
        Ok((payments + transactions) as u64)
    }

    /// Reads `from`'s rows as `to`'s on `connection`, then times one `COPY` per table of them, in
    /// one transaction; returns the seconds.
    pub async fn copy(&mut self, from: &TenantId, to: &TenantId, connection: &str) -> anyhow::Result<f64> {
        let mut texts = Vec::new();
        for (table, columns) in [("stripe_payments", PAYMENTS), ("stripe_balance_transactions", TRANSACTIONS)] {
            let values = columns.replacen(
                "tenant_id, connection_id",
                &format!("{}, {}", literal(to.as_str()), literal(connection)),
                1,
            );
            let query =
                format!("copy (select {values} from {table} where tenant_id = {}) to stdout", literal(from.as_str()));
            let chunks: Vec<bytes::Bytes> = self.conn.copy_out_raw(&query).await?.try_collect().await?;
            let (rows, text) =
                (chunks.iter().map(|c| c.iter().filter(|b| **b == b'\n').count()).sum::<usize>(), chunks.concat());
            texts.push((rows as u64, text));
        }
        let started = Instant::now();
        let mut tx = self.conn.begin().await?;
        for ((table, columns), (rows, text)) in
            [(self.payments, PAYMENTS), (self.transactions, TRANSACTIONS)].into_iter().zip(texts)
        {
            let mut copying = tx.copy_in_raw(&format!("copy {table} ({columns}) from stdin")).await?;
            copying.send(text).await?;
            anyhow::ensure!(copying.finish().await? == rows, "COPY into {table} wrote another number of rows");
        }
        tx.commit().await?;
        Ok(started.elapsed().as_secs_f64())
    }
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
