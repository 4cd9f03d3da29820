//! A connected account's card payments, normalised from Stripe's charges: written from the
//! inbox's events (only when the event is newer than what is stored), read by the API.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use crate::domain::ids::TenantId;

/// A card payment at the connected Stripe account (a Stripe charge).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "ch_3PgafuB7WZ01zgkWXYmPNZs8", "connection_id": "sc_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "payment_intent_id": "pi_3PgafuB7WZ01zgkW1aBcDeFg", "status": "succeeded", "amount": 2000, "currency": "EUR",
    "fee": 88, "net": 1912, "amount_refunded": 0, "disputed": false, "customer": "cus_QXg1o8vcGmoR32",
    "description": "Order 1042", "metadata": {"order": "1042"}, "balance_transaction_id": "txn_3PgafuB7WZ01zgkW",
    "payout_id": "po_1PgafuB7WZ01zgkWq2x4HmVb", "failure_code": null, "created": "2026-12-04T09:30:00Z", "updated_at": "2026-12-04T09:30:01.120374Z"
}))]
pub struct StripePayment {
    /// Stripe's charge id (`ch_…`).
    pub id: String,
    /// The Stripe connection it came through (`sc_…`).
    pub connection_id: String,
    pub payment_intent_id: Option<String>,
    /// `succeeded`, `pending` or `failed`.
    pub status: String,
    /// Minor units, what the customer paid.
    pub amount: i64,
    /// ISO 4217, uppercase.
    pub currency: String,
    /// Stripe's fee, minor units (null until its balance transaction is known).
    pub fee: Option<i64>,
    /// `amount` − `fee`: what reaches the balance.
    pub net: Option<i64>,
    pub amount_refunded: i64,
    pub disputed: bool,
    /// Stripe's customer id (`cus_…`), if any.
    pub customer: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub metadata: Value,
    pub balance_transaction_id: Option<String>,
    /// The payout that carried it to the bank (`po_…`), once Payymo has read that payout.
    pub payout_id: Option<String>,
    pub failure_code: Option<String>,
    /// When Stripe created the charge.
    pub created: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, connection_id, payment_intent_id, status, amount, currency, fee, net, amount_refunded, \
                       disputed, customer, description, metadata, balance_transaction_id, payout_id, failure_code, created, \
                       updated_at";

/// What applying a charge did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The payment is new, or changed: it as stored now, and before (when it existed).
    Changed { now: Box<StripePayment>, before: Option<Box<StripePayment>> },
    /// An event no newer than what is stored, or one that changes nothing.
    Unchanged,
}

/// Writes `charge` (a Stripe charge object, with its balance transaction's `fee` when known) as
/// of `version`, unless what is stored is newer or the same.
pub async fn apply_charge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    connection_id: &str,
    charge: &Value,
    fee: Option<i64>,
    version: DateTime<Utc>,
) -> Result<Applied, sqlx::Error> {
    let id = charge["id"].as_str().unwrap_or_default();
    let before: Option<StripePayment> =
        sqlx::query_as(&format!("select {COLUMNS} from stripe_payments where tenant_id = $1 and id = $2 for update"))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let now = upsert(conn, tenant, connection_id, &[(charge, fee)], version).await?.pop();
    // Nothing returned: an older event, or one that changes nothing (no write, no event).
    Ok(match now {
        Some(now) => Applied::Changed { now: Box::new(now), before: before.map(Box::new) },
        None => Applied::Unchanged,
    })
}

/// Records the outbox events a change of payment calls for: `stripe_payment.succeeded`,
/// `.failed` and `.disputed` when first so, `.refunded` each time more is refunded.
pub async fn announce(
    conn: &mut PgConnection,
    tenant: &TenantId,
    now: &StripePayment,
    before: Option<&StripePayment>,
) -> Result<(), sqlx::Error> {
    let newly = |was: fn(&StripePayment) -> bool| was(now) && before.is_none_or(|b| !was(b));
    let refunded_more = now.amount_refunded > before.map_or(0, |b| b.amount_refunded);
    let outbox = [
        ("stripe_payment.succeeded", newly(|p| p.status == "succeeded")),
        ("stripe_payment.failed", newly(|p| p.status == "failed")),
        ("stripe_payment.refunded", refunded_more),
        ("stripe_payment.disputed", newly(|p| p.disputed)),
    ];
    for (event_type, happened) in outbox {
        if happened {
            crate::events::record(&mut *conn, tenant, event_type, now).await?;
        }
    }
    Ok(())
}

/// Writes charges (each with its balance transaction's `fee` when known; a charge without one
/// keeps the fee it had) as of `version`, in one statement: each unless what is stored is newer
/// or the same. Returns the payments written.
pub async fn upsert(
    conn: &mut PgConnection,
    tenant: &TenantId,
    connection_id: &str,
    charges: &[(&Value, Option<i64>)],
    version: DateTime<Utc>,
) -> Result<Vec<StripePayment>, sqlx::Error> {
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<&(&Value, Option<i64>)> =
        charges.iter().filter(|(c, _)| c["id"].as_str().is_some_and(|id| seen.insert(id.to_owned()))).collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let text =
        |name: &str| -> Vec<Option<String>> { rows.iter().map(|(c, _)| c[name].as_str().map(str::to_owned)).collect() };
    let int = |name: &str| -> Vec<i64> { rows.iter().map(|(c, _)| c[name].as_i64().unwrap_or(0)).collect() };
    let fees: Vec<Option<i64>> = rows.iter().map(|(_, fee)| *fee).collect();
    let disputed: Vec<bool> = rows.iter().map(|(c, _)| c["disputed"].as_bool().unwrap_or(false)).collect();
    let metadata: Vec<Value> = rows
        .iter()
        .map(|(c, _)| if c["metadata"].is_object() { c["metadata"].clone() } else { Value::Object(Default::default()) })
        .collect();
    // An expanded `balance_transaction` or `payment_intent` is an object: keep its id.
    let id_of = |name: &str| -> Vec<Option<String>> {
        rows.iter().map(|(c, _)| c[name].as_str().or_else(|| c[name]["id"].as_str()).map(str::to_owned)).collect()
    };
    let created: Vec<DateTime<Utc>> = rows
        .iter()
        .map(|(c, _)| c["created"].as_i64().and_then(|s| DateTime::from_timestamp(s, 0)).unwrap_or(version))
        .collect();
    sqlx::query_as(&format!(
        "insert into stripe_payments (tenant_id, connection_id, id, payment_intent_id, status, amount, currency, fee, net,
             amount_refunded, disputed, customer, description, metadata, balance_transaction_id, payout_id, failure_code,
             created, version)
         select $1, $2, c.id, c.payment_intent_id, coalesce(c.status, 'pending'), c.amount, upper(c.currency), c.fee,
                c.amount - c.fee, c.amount_refunded, c.disputed, c.customer, c.description, c.metadata,
                c.balance_transaction_id,
                (select b.payout_id from stripe_balance_transactions b
                 where b.tenant_id = $1 and b.id = c.balance_transaction_id),
                c.failure_code, c.created, $3
         from unnest($4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::bigint[], $10::bigint[],
                     $11::bool[], $12::text[], $13::text[], $14::jsonb[], $15::text[], $16::text[], $17::timestamptz[])
              as c(id, payment_intent_id, status, amount, currency, fee, amount_refunded, disputed, customer,
                   description, metadata, balance_transaction_id, failure_code, created)
         on conflict (tenant_id, id) do update set payment_intent_id = excluded.payment_intent_id,
             status = excluded.status, amount = excluded.amount, currency = excluded.currency,
             fee = coalesce(excluded.fee, stripe_payments.fee),
             net = excluded.amount - coalesce(excluded.fee, stripe_payments.fee),
             amount_refunded = excluded.amount_refunded, disputed = excluded.disputed,
             customer = excluded.customer, description = excluded.description, metadata = excluded.metadata,
             balance_transaction_id = excluded.balance_transaction_id,
             payout_id = coalesce(excluded.payout_id, stripe_payments.payout_id),
             failure_code = excluded.failure_code, version = excluded.version
         where stripe_payments.version <= excluded.version
           and (stripe_payments.payment_intent_id, stripe_payments.status, stripe_payments.amount,
                stripe_payments.currency, stripe_payments.fee, stripe_payments.amount_refunded,
                stripe_payments.disputed, stripe_payments.customer, stripe_payments.description,
                stripe_payments.metadata, stripe_payments.balance_transaction_id, stripe_payments.payout_id,
                stripe_payments.failure_code)
               is distinct from
               (excluded.payment_intent_id, excluded.status, excluded.amount, excluded.currency,
                coalesce(excluded.fee, stripe_payments.fee), excluded.amount_refunded, excluded.disputed,
                excluded.customer, excluded.description, excluded.metadata, excluded.balance_transaction_id,
                coalesce(excluded.payout_id, stripe_payments.payout_id), excluded.failure_code)
         returning {COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(connection_id)
    .bind(version)
    .bind(text("id"))
    .bind(id_of("payment_intent"))
    .bind(text("status"))
    .bind(int("amount"))
    .bind(text("currency"))
    .bind(fees)
    .bind(int("amount_refunded"))
    .bind(disputed)
    .bind(text("customer"))
    .bind(text("description"))
    .bind(metadata)
    .bind(id_of("balance_transaction"))
    .bind(text("failure_code"))
    .bind(created)
    .fetch_all(conn)
    .await
}

/// Filters of the payments list.
#[derive(Debug, Default, Clone)]
pub struct PaymentFilters {
    pub status: Option<String>,
    pub currency: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    pub payout_id: Option<String>,
    pub updated_since: Option<DateTime<Utc>>,
}

/// Newest first, after the `(created, id)` position `after`.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    filters: &PaymentFilters,
    after: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> Result<Vec<StripePayment>, sqlx::Error> {
    let (after_created, after_id) = after.map_or((None, None), |(c, i)| (Some(c), Some(i)));
    sqlx::query_as(&format!(
        "select {COLUMNS} from stripe_payments
         where tenant_id = $1 and ($2::text is null or status = $2) and ($3::text is null or currency = upper($3))
           and ($4::timestamptz is null or created >= $4) and ($5::timestamptz is null or created < $5)
           and ($6::timestamptz is null or (created, id) < ($6, $7))
           and ($9::bigint is null or amount >= $9) and ($10::bigint is null or amount <= $10)
           and ($11::text is null or payout_id = $11) and ($12::timestamptz is null or updated_at >= $12)
         order by created desc, id desc limit $8"
    ))
    .bind(tenant.as_str())
    .bind(&filters.status)
    .bind(&filters.currency)
    .bind(filters.created_from)
    .bind(filters.created_to)
    .bind(after_created)
    .bind(after_id)
    .bind(limit)
    .bind(filters.amount_min)
    .bind(filters.amount_max)
    .bind(&filters.payout_id)
    .bind(filters.updated_since)
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, tenant: &TenantId, id: &str) -> Result<Option<StripePayment>, sqlx::Error> {
    sqlx::query_as(&format!("select {COLUMNS} from stripe_payments where tenant_id = $1 and id = $2"))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(conn)
        .await
}
