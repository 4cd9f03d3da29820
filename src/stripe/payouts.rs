//! A connected account's payouts and the balance transactions each carries: written from the
//! inbox's events (a payout only when the event is newer than what is stored), summed into the
//! payout's summary, read by the API.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use crate::domain::ids::TenantId;

/// A payout from the connected Stripe account to its bank account.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "po_1PgafuB7WZ01zgkWq2x4HmVb", "connection_id": "sc_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "status": "paid", "amount": 9536, "currency": "EUR", "arrival_date": "2026-12-06", "automatic": true,
    "method": "standard", "statement_descriptor": "PAYYMO SANDBOX", "trace_id": "4821907735120046",
    "failure_code": null, "failure_message": null, "balance_transaction_id": "txn_1PgafuB7WZ01zgkWs0aPb3Ld",
    "summary": {"gross": 10000, "refunds": 0, "adjustments": 0, "fees": 464, "net": 9536,
                "transaction_count": 5, "adds_up": true, "difference": 0},
    "created": "2026-12-04T00:00:00Z", "updated_at": "2026-12-06T00:00:01.120374Z"
}))]
pub struct StripePayout {
    /// Stripe's payout id (`po_…`).
    pub id: String,
    /// The Stripe connection it came through (`sc_…`).
    pub connection_id: String,
    /// `pending`, `in_transit`, `paid`, `failed` or `canceled`.
    pub status: String,
    /// Minor units, what the bank receives.
    pub amount: i64,
    /// ISO 4217, uppercase.
    pub currency: String,
    /// The day the bank is expected to receive it (the day it arrived, once `paid`).
    pub arrival_date: NaiveDate,
    /// Made by Stripe's payout schedule (not by hand).
    pub automatic: bool,
    /// `standard` or `instant`.
    pub method: Option<String>,
    /// What the bank statement shows.
    pub statement_descriptor: Option<String>,
    /// The bank's trace number, once Stripe has it: a bank line quoting it is this payout.
    pub trace_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub balance_transaction_id: Option<String>,
    /// The balance transactions it carries, summed; null until they have been read.
    pub summary: Option<PayoutSummary>,
    /// When Stripe created the payout.
    pub created: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A payout's balance transactions summed by kind, minor units:
/// `net` = `gross` + `refunds` + `adjustments` − `fees`, and it should equal the payout's amount.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PayoutSummary {
    /// Card payments (charges) paid out, before fees.
    pub gross: i64,
    /// Refunds taken back (zero or negative).
    pub refunds: i64,
    /// Everything else: disputes and their reversals, failed earlier payouts returned, Stripe's
    /// adjustments (signed).
    pub adjustments: i64,
    /// Stripe's fees on all of the above (zero or positive).
    pub fees: i64,
    /// What the transactions add up to.
    pub net: i64,
    /// How many balance transactions (the payout's own left out).
    pub transaction_count: i32,
    /// `net` equals the payout's amount. A payout that does not add up is shown, never hidden.
    pub adds_up: bool,
    /// The payout's amount − `net`: zero when it adds up.
    pub difference: i64,
}

#[derive(FromRow)]
struct PayoutRow {
    id: String,
    connection_id: String,
    status: String,
    amount: i64,
    currency: String,
    arrival_date: NaiveDate,
    automatic: bool,
    method: Option<String>,
    statement_descriptor: Option<String>,
    trace_id: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    balance_transaction_id: Option<String>,
    gross: Option<i64>,
    refunds: Option<i64>,
    adjustments: Option<i64>,
    fees: Option<i64>,
    net: Option<i64>,
    transaction_count: Option<i32>,
    created: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<PayoutRow> for StripePayout {
    fn from(row: PayoutRow) -> Self {
        let summary = match (row.gross, row.refunds, row.adjustments, row.fees, row.net, row.transaction_count) {
            (Some(gross), Some(refunds), Some(adjustments), Some(fees), Some(net), Some(transaction_count)) => {
                Some(PayoutSummary {
                    gross,
                    refunds,
                    adjustments,
                    fees,
                    net,
                    transaction_count,
                    adds_up: net == row.amount,
                    difference: row.amount - net,
                })
            }
            _ => None,
        };
        Self {
            id: row.id,
            connection_id: row.connection_id,
            status: row.status,
            amount: row.amount,
            currency: row.currency,
            arrival_date: row.arrival_date,
            automatic: row.automatic,
            method: row.method,
            statement_descriptor: row.statement_descriptor,
            trace_id: row.trace_id,
            failure_code: row.failure_code,
            failure_message: row.failure_message,
            balance_transaction_id: row.balance_transaction_id,
            summary,
            created: row.created,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "id, connection_id, status, amount, currency, arrival_date, automatic, method, \
                       statement_descriptor, trace_id, failure_code, failure_message, balance_transaction_id, gross, \
                       refunds, adjustments, fees, net, transaction_count, created, updated_at";

/// What applying a payout did: it as stored now and before, or nothing when the event was no
/// newer than what is stored or changed nothing.
pub type Applied = Option<(StripePayout, Option<StripePayout>)>;

fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    value.as_i64().and_then(|s| DateTime::from_timestamp(s, 0))
}

/// An expandable field's id, whether Stripe sent the id or the expanded object.
fn id_of(value: &Value) -> Option<String> {
    value.as_str().or_else(|| value["id"].as_str()).map(str::to_owned)
}

/// Writes `payout` (a Stripe payout object) as of `version`, unless what is stored is newer or
/// the same.
pub async fn apply_payout(
    conn: &mut PgConnection,
    tenant: &TenantId,
    connection_id: &str,
    payout: &Value,
    version: DateTime<Utc>,
) -> Result<Applied, sqlx::Error> {
    let id = payout["id"].as_str().unwrap_or_default();
    let before = get_locked(conn, tenant, id).await?;
    let created = timestamp(&payout["created"]).unwrap_or(version);
    let arrival = timestamp(&payout["arrival_date"]).unwrap_or(created).date_naive();
    let text = |name: &str| payout[name].as_str().map(str::to_owned);
    let row: Option<PayoutRow> = sqlx::query_as(&format!(
        "insert into stripe_payouts (tenant_id, connection_id, id, status, amount, currency, arrival_date, automatic,
             method, statement_descriptor, trace_id, description, destination, failure_code, failure_message,
             balance_transaction_id, failure_balance_transaction_id, created, version)
         values ($1, $2, $3, $4, $5, upper($6), $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
         on conflict (tenant_id, id) do update set status = excluded.status, amount = excluded.amount,
             currency = excluded.currency, arrival_date = excluded.arrival_date, automatic = excluded.automatic,
             method = excluded.method, statement_descriptor = excluded.statement_descriptor,
             trace_id = excluded.trace_id, description = excluded.description, destination = excluded.destination,
             failure_code = excluded.failure_code, failure_message = excluded.failure_message,
             balance_transaction_id = excluded.balance_transaction_id,
             failure_balance_transaction_id = excluded.failure_balance_transaction_id, version = excluded.version
         where stripe_payouts.version <= excluded.version
           and (stripe_payouts.status, stripe_payouts.amount, stripe_payouts.currency, stripe_payouts.arrival_date,
                stripe_payouts.statement_descriptor, stripe_payouts.trace_id, stripe_payouts.failure_code,
                stripe_payouts.balance_transaction_id, stripe_payouts.failure_balance_transaction_id)
               is distinct from
               (excluded.status, excluded.amount, excluded.currency, excluded.arrival_date,
                excluded.statement_descriptor, excluded.trace_id, excluded.failure_code,
                excluded.balance_transaction_id, excluded.failure_balance_transaction_id)
         returning {COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(connection_id)
    .bind(id)
    .bind(text("status").unwrap_or_else(|| "pending".into()))
    .bind(payout["amount"].as_i64().unwrap_or(0))
    .bind(text("currency").unwrap_or_default())
    .bind(arrival)
    .bind(payout["automatic"].as_bool().unwrap_or(true))
    .bind(text("method"))
    .bind(text("statement_descriptor"))
    .bind(payout["trace_id"]["value"].as_str())
    .bind(text("description"))
    .bind(id_of(&payout["destination"]))
    .bind(text("failure_code"))
    .bind(text("failure_message"))
    .bind(id_of(&payout["balance_transaction"]))
    .bind(id_of(&payout["failure_balance_transaction"]))
    .bind(created)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|now| (now.into(), before)))
}

/// Keeps the balance transactions `payout_id` carries (Stripe's `balance_transactions?payout=`
/// list, which includes the payout's own), points the payments they pay out at the payout, and
/// sums them into its summary. Returns the payout as it is now.
pub async fn keep_transactions(
    conn: &mut PgConnection,
    tenant: &TenantId,
    connection_id: &str,
    payout_id: &str,
    transactions: &[Value],
) -> Result<Option<StripePayout>, sqlx::Error> {
    super::balance_transactions::keep(conn, tenant, connection_id, Some(payout_id), transactions).await?;
    sqlx::query(
        "update stripe_payments p set payout_id = $2
         from stripe_balance_transactions b
         where p.tenant_id = $1 and b.tenant_id = $1 and b.payout_id = $2 and p.balance_transaction_id = b.id
           and p.payout_id is distinct from $2",
    )
    .bind(tenant.as_str())
    .bind(payout_id)
    .execute(&mut *conn)
    .await?;
    let row: Option<PayoutRow> = sqlx::query_as(&format!(
        "with parts as (
             select coalesce(sum(amount) filter (where type in ('charge', 'payment')), 0)::bigint as sum_gross,
                    coalesce(sum(amount) filter (where type in ('refund', 'payment_refund')), 0)::bigint as sum_refunds,
                    coalesce(sum(amount) filter (where type not in ('charge', 'payment', 'refund', 'payment_refund')),
                             0)::bigint as sum_adjustments,
                    coalesce(sum(fee), 0)::bigint as sum_fees,
                    coalesce(sum(net), 0)::bigint as sum_net,
                    count(*)::integer as sum_transaction_count
             from stripe_balance_transactions
             where tenant_id = $1 and payout_id = $2 and not (type = 'payout' and source = $2))
         update stripe_payouts set gross = parts.sum_gross, refunds = parts.sum_refunds, adjustments = parts.sum_adjustments,
                fees = parts.sum_fees, net = parts.sum_net, transaction_count = parts.sum_transaction_count
         from parts where tenant_id = $1 and id = $2
         returning {COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(payout_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(Into::into))
}

async fn get_locked(conn: &mut PgConnection, tenant: &TenantId, id: &str) -> Result<Option<StripePayout>, sqlx::Error> {
    let row: Option<PayoutRow> =
        sqlx::query_as(&format!("select {COLUMNS} from stripe_payouts where tenant_id = $1 and id = $2 for update"))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(Into::into))
}

/// Filters of the payouts list.
#[derive(Debug, Default, Clone)]
pub struct PayoutFilters {
    pub status: Option<String>,
    pub currency: Option<String>,
    pub arrival_date_from: Option<NaiveDate>,
    pub arrival_date_to: Option<NaiveDate>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub trace_id: Option<String>,
}

/// Newest first, after the `(created, id)` position `after`.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    filters: &PayoutFilters,
    after: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> Result<Vec<StripePayout>, sqlx::Error> {
    let (after_created, after_id) = after.map_or((None, None), |(c, i)| (Some(c), Some(i)));
    let rows: Vec<PayoutRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from stripe_payouts
         where tenant_id = $1 and ($2::text is null or status = $2) and ($3::text is null or currency = upper($3))
           and ($4::date is null or arrival_date >= $4) and ($5::date is null or arrival_date <= $5)
           and ($6::timestamptz is null or created >= $6) and ($7::timestamptz is null or created < $7)
           and ($8::text is null or trace_id = $8)
           and ($9::timestamptz is null or (created, id) < ($9, $10))
         order by created desc, id desc limit $11"
    ))
    .bind(tenant.as_str())
    .bind(&filters.status)
    .bind(&filters.currency)
    .bind(filters.arrival_date_from)
    .bind(filters.arrival_date_to)
    .bind(filters.created_from)
    .bind(filters.created_to)
    .bind(&filters.trace_id)
    .bind(after_created)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(conn: &mut PgConnection, tenant: &TenantId, id: &str) -> Result<Option<StripePayout>, sqlx::Error> {
    let row: Option<PayoutRow> =
        sqlx::query_as(&format!("select {COLUMNS} from stripe_payouts where tenant_id = $1 and id = $2"))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(Into::into))
}
