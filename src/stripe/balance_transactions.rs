//! The balance transactions Payymo keeps (those its payouts carry), as the API shows them: what
//! each payout is made of, line by line.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use crate::domain::ids::TenantId;

/// One movement of the connected account's Stripe balance: a charge's funds, a refund, a
/// dispute, a fee, a payout.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "txn_3PgafuB7WZ01zgkW", "payout_id": "po_1PgafuB7WZ01zgkWq2x4HmVb", "type": "charge",
    "reporting_category": "charge", "amount": 2000, "fee": 88, "net": 1912, "currency": "EUR",
    "source": "ch_3PgafuB7WZ01zgkWXYmPNZs8", "status": "available", "description": null,
    "fee_details": [{"amount": 88, "currency": "eur", "description": "Stripe processing fees", "type": "stripe_fee"}],
    "exchange_rate": null, "available_on": "2026-12-06T00:00:00Z", "created": "2026-12-04T09:30:00Z"
}))]
pub struct StripeBalanceTransaction {
    /// Stripe's id (`txn_…`).
    pub id: String,
    /// The payout that carried it to the bank.
    pub payout_id: Option<String>,
    /// Stripe's `type`: `charge`, `refund`, `adjustment`, `payout`, `payout_failure`, …
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    /// Stripe's `reporting_category`: `charge`, `refund`, `dispute`, `payout`, …
    pub reporting_category: String,
    /// Minor units, signed: what it moved before fees.
    pub amount: i64,
    /// Stripe's fee on it, minor units.
    pub fee: i64,
    /// `amount` − `fee`.
    pub net: i64,
    /// ISO 4217, uppercase.
    pub currency: String,
    /// The object that caused it (`ch_…`, `re_…`, `dp_…`, `po_…`).
    pub source: Option<String>,
    /// `pending` or `available`.
    pub status: String,
    pub description: Option<String>,
    /// Stripe's fee breakdown (`amount`, `currency`, `description`, `type`).
    #[schema(value_type = Vec<Object>)]
    pub fee_details: Value,
    /// The rate applied when the charge's currency was not the balance's.
    #[schema(value_type = Option<String>)]
    pub exchange_rate: Option<String>,
    pub available_on: DateTime<Utc>,
    pub created: DateTime<Utc>,
}

/// Keeps balance transactions (Stripe `balance_transaction` objects), carried by `payout_id`
/// when known (a transaction kept without one keeps the payout it had), in one statement.
pub async fn keep(
    conn: &mut PgConnection,
    tenant: &TenantId,
    connection_id: &str,
    payout_id: Option<&str>,
    transactions: &[Value],
) -> Result<(), sqlx::Error> {
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<&Value> =
        transactions.iter().filter(|t| t["id"].as_str().is_some_and(|id| seen.insert(id.to_owned()))).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let text =
        |name: &str| -> Vec<Option<String>> { rows.iter().map(|t| t[name].as_str().map(str::to_owned)).collect() };
    let int = |name: &str| -> Vec<i64> { rows.iter().map(|t| t[name].as_i64().unwrap_or(0)).collect() };
    let at = |name: &str| -> Vec<Option<DateTime<Utc>>> {
        rows.iter().map(|t| t[name].as_i64().and_then(|s| DateTime::from_timestamp(s, 0))).collect()
    };
    let sources: Vec<Option<String>> =
        rows.iter().map(|t| t["source"].as_str().or_else(|| t["source"]["id"].as_str()).map(str::to_owned)).collect();
    let fee_details: Vec<Value> = rows
        .iter()
        .map(|t| if t["fee_details"].is_array() { t["fee_details"].clone() } else { Value::Array(Vec::new()) })
        .collect();
    let rates: Vec<Option<String>> = rows.iter().map(|t| t["exchange_rate"].as_f64().map(|r| r.to_string())).collect();
    sqlx::query(
        "insert into stripe_balance_transactions (tenant_id, connection_id, id, payout_id, type, reporting_category,
             amount, fee, net, currency, source, status, description, fee_details, exchange_rate, available_on,
             created)
         select $1, $2, t.id, $3, t.type, coalesce(t.reporting_category, t.type), t.amount, t.fee, t.net,
                upper(t.currency), t.source, coalesce(t.status, 'pending'), t.description, t.fee_details,
                t.exchange_rate::numeric, coalesce(t.available_on, t.created, now()), coalesce(t.created, now())
         from unnest($4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[],
                     $11::text[], $12::text[], $13::text[], $14::jsonb[], $15::text[], $16::timestamptz[],
                     $17::timestamptz[])
              as t(id, type, reporting_category, amount, fee, net, currency, source, status, description,
                   fee_details, exchange_rate, available_on, created)
         on conflict (tenant_id, id) do update set payout_id = coalesce(excluded.payout_id,
                stripe_balance_transactions.payout_id), status = excluded.status, description = excluded.description
         where (stripe_balance_transactions.payout_id, stripe_balance_transactions.status)
               is distinct from (coalesce(excluded.payout_id, stripe_balance_transactions.payout_id), excluded.status)",
    )
    .bind(tenant.as_str())
    .bind(connection_id)
    .bind(payout_id)
    .bind(text("id"))
    .bind(text("type"))
    .bind(text("reporting_category"))
    .bind(int("amount"))
    .bind(int("fee"))
    .bind(int("net"))
    .bind(text("currency"))
    .bind(sources)
    .bind(text("status"))
    .bind(text("description"))
    .bind(fee_details)
    .bind(rates)
    .bind(at("available_on"))
    .bind(at("created"))
    .execute(conn)
    .await
    .map(drop)
}

/// `payout_id`'s balance transactions, newest first, after the `(created, id)` position `after`.
pub async fn of_payout(
    conn: &mut PgConnection,
    tenant: &TenantId,
    payout_id: &str,
    after: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> Result<Vec<StripeBalanceTransaction>, sqlx::Error> {
    let (after_created, after_id) = after.map_or((None, None), |(c, i)| (Some(c), Some(i)));
    sqlx::query_as(
        "select id, payout_id, type, reporting_category, amount, fee, net, currency, source, status, description,
                fee_details, exchange_rate::text as exchange_rate, available_on, created
         from stripe_balance_transactions
         where tenant_id = $1 and payout_id = $2 and ($3::timestamptz is null or (created, id) < ($3, $4))
         order by created desc, id desc limit $5",
    )
    .bind(tenant.as_str())
    .bind(payout_id)
    .bind(after_created)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
