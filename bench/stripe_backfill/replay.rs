//! Where the backfill's time goes: the same pages read again through the same client, one after
//! the other, each written as the backfill job writes a page (its balance transactions, its
//! payments and the position, in one tenant-bound transaction) for another tenant, with the read
//! and the write timed apart.

use std::time::Instant;

use chrono::{DateTime, Utc};
use payymo::{
    db::tenant::begin_tenant,
    domain::ids::TenantId,
    providers::stripe::Stripe,
    stripe::{balance_transactions, payments},
};
use serde_json::Value;

/// Reads the charges the backfill `progress` covered, 100 a page with their balance
/// transactions, and writes each page for `tenant`'s `connection`; returns the seconds spent
/// reading and writing.
pub async fn replay(
    pool: &sqlx::PgPool,
    stripe: &Stripe,
    tenant: &TenantId,
    connection: &str,
    progress: &Value,
) -> anyhow::Result<(f64, f64)> {
    let at = |name: &str| -> anyhow::Result<String> {
        let text = progress[name].as_str().ok_or_else(|| anyhow::anyhow!("no {name} in {progress}"))?;
        Ok(DateTime::parse_from_rfc3339(text)?.timestamp().to_string())
    };
    let (since, until) = (at("since")?, at("until")?);
    let (mut fetch, mut write, mut read, mut after) = (0.0, 0.0, 0_i64, None::<String>);
    loop {
        let mut params = vec![("limit", "100"), ("created[gte]", since.as_str()), ("created[lt]", until.as_str())];
        if let Some(after) = &after {
            params.push(("starting_after", after.as_str()));
        }
        params.push(("expand[]", "data.balance_transaction"));
        let started = Instant::now();
        let list = stripe.get("charges", &params).await?;
        fetch += started.elapsed().as_secs_f64();

        let started = Instant::now();
        let data = list["data"].as_array().cloned().unwrap_or_default();
        let mut tx = begin_tenant(pool, tenant).await?;
        let txns: Vec<Value> = data.iter().map(|o| o["balance_transaction"].clone()).filter(Value::is_object).collect();
        balance_transactions::keep(&mut tx, tenant, connection, None, &txns).await?;
        let charges: Vec<(&Value, Option<i64>)> =
            data.iter().map(|c| (c, c["balance_transaction"]["fee"].as_i64())).collect();
        payments::upsert(&mut tx, tenant, connection, &charges, Utc::now()).await?;
        after = data.last().and_then(|o| o["id"].as_str()).map(str::to_owned);
        sqlx::query(
            "update stripe_backfills set charges = charges + $3, balance_transactions = balance_transactions + $4,
                 position = $5
             where tenant_id = $1 and connection_id = $2",
        )
        .bind(tenant.as_str())
        .bind(connection)
        .bind(data.len() as i64)
        .bind(txns.len() as i64)
        .bind(&after)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        write += started.elapsed().as_secs_f64();
        read += data.len() as i64;
        if list["has_more"] != true || after.is_none() {
            break;
        }
    }
    anyhow::ensure!(
        progress["charges"].as_i64() == Some(read),
        "read {read} charges again; the backfill read {progress}"
    );
    Ok((fetch, write))
}
