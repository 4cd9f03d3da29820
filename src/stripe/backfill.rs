//! The backfill of a connected account's history, from a start date the tenant chooses (90 days
//! by default): its charges (with their balance transactions, fee and net), its refunds (with
//! theirs), and its payouts (with every balance transaction each carries, summed), read page by
//! page as a job on the queue. Each page is written in the transaction that moves the backfill's
//! position past it, so a crash resumes at the page after the last one written, and a page read
//! twice writes nothing new. The next page is read from Stripe while one is written. Progress is visible on the connection (`backfill`).
//!
//! History is written without outbox events: the events (`stripe_payment.*`, `stripe_payout.*`)
//! tell what happens from the connection on, not what happened before it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use tokio_util::task::AbortOnDropHandle;
use utoipa::ToSchema;

use super::{StripeError, balance_transactions, payments, payouts};
use crate::{
    db::tenant::begin_tenant,
    domain::ids::TenantId,
    jobs::{Job, NewJob, queue},
    providers::stripe::Stripe,
    state::AppState,
};

/// The job that reads a connection's history (payload `{"connection_id": "sc_…"}`).
pub const BACKFILL_JOB: &str = "stripe.backfill";
/// How far back a backfill reads when the tenant does not say.
pub const DEFAULT_DAYS: i64 = 90;
/// Objects per page (Stripe's maximum).
const PAGE: &str = "100";

/// How far a connection's backfill has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "status": "running", "since": "2026-09-05T00:00:00Z", "until": "2026-12-04T09:30:00.120374Z", "phase": "refunds", "charges": 1842, "refunds": 12,
    "payouts": 0, "balance_transactions": 1854, "error": null, "started_at": "2026-12-04T09:30:00.120374Z",
    "completed_at": null
}))]
pub struct BackfillProgress {
    /// `running`, `completed` or `failed` (see `error`; `PUT` the connection again to retry).
    pub status: String,
    /// The history read starts here.
    pub since: DateTime<Utc>,
    /// ... and ends here, when it started: what was created after arrives as Stripe's events.
    pub until: DateTime<Utc>,
    /// What is being read: `charges`, then `refunds`, then `payouts`; `done` at the end.
    pub phase: String,
    /// Objects read so far, per kind.
    pub charges: i64,
    pub refunds: i64,
    pub payouts: i64,
    pub balance_transactions: i64,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Stripe's "now" for the account: the time of its newest event (every change makes one), so
/// that the backfill reads what exists up to it and the events after it bring the rest. Real
/// time when the account has no event, or the key may not read them.
pub async fn stripe_now(stripe: &Stripe) -> DateTime<Utc> {
    let newest = stripe.get("events", &[("limit", "1")]).await.ok();
    newest
        .and_then(|page| page["data"][0]["created"].as_i64())
        .and_then(|at| DateTime::from_timestamp(at + 1, 0))
        .unwrap_or_else(Utc::now)
}

/// Starts (or starts again) the backfill of `connection_id` from `since` until `until`, and
/// queues its job (due at once).
pub async fn start(
    conn: &mut PgConnection,
    tenant: &TenantId,
    connection_id: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into stripe_backfills (tenant_id, connection_id, since, until) values ($1, $2, $3, $4)
         on conflict (tenant_id, connection_id) do update set status = 'running', since = excluded.since,
             until = excluded.until,
             phase = 'charges', position = null, charges = 0, refunds = 0, payouts = 0, balance_transactions = 0,
             error = null, started_at = now(), completed_at = null",
    )
    .bind(tenant.as_str())
    .bind(connection_id)
    .bind(since)
    .bind(until)
    .execute(&mut *conn)
    .await?;
    queue::enqueue_now(conn, &job(tenant, connection_id)).await
}

/// Queues the backfill job of `connection_id` (a no-op while one is queued or running).
pub async fn enqueue(conn: &mut PgConnection, tenant: &TenantId, connection_id: &str) -> Result<(), sqlx::Error> {
    queue::enqueue(conn, &job(tenant, connection_id)).await.map(drop)
}

fn job(tenant: &TenantId, connection_id: &str) -> NewJob {
    NewJob::new(BACKFILL_JOB, json!({ "connection_id": connection_id })).tenant(tenant.clone()).dedup_key(connection_id)
}

/// Whether the connection has a backfill that has not finished.
pub async fn is_running(conn: &mut PgConnection, tenant: &TenantId, connection_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from stripe_backfills
                        where tenant_id = $1 and connection_id = $2 and status = 'running')",
    )
    .bind(tenant.as_str())
    .bind(connection_id)
    .fetch_one(conn)
    .await
}

/// The job handler.
pub async fn handle(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("a Stripe backfill job needs a tenant"))?;
    let connection_id = job.payload["connection_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("a Stripe backfill job needs payload.connection_id"))?;
    run(state, &tenant, connection_id).await
}

/// Where a backfill stands, as the job reads it before each page.
#[derive(Clone, PartialEq, sqlx::FromRow)]
struct Position {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    phase: String,
    position: Option<String>,
}

/// A page read from Stripe, not yet written: the list, the balance transactions each payout
/// carries (payouts phase), and where the backfill stands once it is written.
struct Page {
    data: Vec<Value>,
    carried: Vec<Vec<Value>>,
    next: Position,
}

/// Reads pages until the backfill is done (or is no longer running: restarted, or its
/// connection gone). While a page is written, the next one is already being read from Stripe;
/// it is used only if the position written is the one it was read for. A Stripe outage fails
/// the job, which the queue retries from the position reached; a key Stripe refuses fails the
/// backfill.
pub async fn run(state: &AppState, tenant: &TenantId, connection_id: &str) -> anyhow::Result<()> {
    let (sealed, stripe) = match super::client_for(state, tenant).await {
        Ok(found) => found,
        Err(StripeError::NotConnected | StripeError::Refused(_)) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    if sealed.id != connection_id {
        return Ok(());
    }
    // The next page being read, and the position it is read after (stopped when dropped).
    let mut ahead: Option<(Position, AbortOnDropHandle<Result<Page, StripeError>>)> = None;
    loop {
        let mut tx = begin_tenant(&state.db, tenant).await?;
        let at: Option<Position> = sqlx::query_as(
            "select since, until, phase, position from stripe_backfills
             where tenant_id = $1 and connection_id = $2 and status = 'running'",
        )
        .bind(tenant.as_str())
        .bind(connection_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(at) = at else { return Ok(()) };
        if at.phase == "done" {
            finish(state, tenant, connection_id).await?;
            return Ok(());
        }
        let read = match ahead.take() {
            Some((from, reading)) if from == at => {
                reading.await.unwrap_or_else(|e| Err(StripeError::Unavailable(e.to_string())))
            }
            _ => read_page(&stripe, &at).await,
        };
        let written = match read {
            Ok(page) => {
                if page.next.phase != "done" {
                    let (stripe, next) = (stripe.clone(), page.next.clone());
                    let reading = tokio::spawn(async move { read_page(&stripe, &next).await });
                    ahead = Some((page.next.clone(), AbortOnDropHandle::new(reading)));
                }
                write_page(state, tenant, connection_id, &at, page).await
            }
            Err(error) => Err(error),
        };
        match written {
            Ok(()) => {}
            Err(StripeError::Refused(reason)) => {
                let mut tx = begin_tenant(&state.db, tenant).await?;
                sqlx::query(
                    "update stripe_backfills set status = 'failed', error = $3
                     where tenant_id = $1 and connection_id = $2 and status = 'running'",
                )
                .bind(tenant.as_str())
                .bind(connection_id)
                .bind(format!("Stripe refused the backfill: {reason}"))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Reads the page after `at` from Stripe (with, for payouts, the transactions each carries).
async fn read_page(stripe: &Stripe, at: &Position) -> Result<Page, StripeError> {
    let (since, until) = (at.since.timestamp().to_string(), at.until.timestamp().to_string());
    let mut params = vec![("limit", PAGE), ("created[gte]", since.as_str()), ("created[lt]", until.as_str())];
    if let Some(after) = &at.position {
        params.push(("starting_after", after.as_str()));
    }
    let (path, next_phase) = match at.phase.as_str() {
        "charges" => ("charges", "refunds"),
        "refunds" => ("refunds", "payouts"),
        _ => ("payouts", "done"),
    };
    if at.phase != "payouts" {
        params.push(("expand[]", "data.balance_transaction"));
    }
    let list = stripe.get(path, &params).await?;
    let data = list["data"].as_array().cloned().unwrap_or_default();
    // A payout's balance transactions are read before the transaction that writes the page.
    let mut carried = Vec::new();
    if at.phase == "payouts" {
        for payout in &data {
            let id = payout["id"].as_str().unwrap_or_default();
            carried.push(super::apply::transactions_of(stripe, id).await?);
        }
    }
    let last = data.last().and_then(|o| o["id"].as_str()).map(str::to_owned);
    let more = list["has_more"] == true && last.is_some();
    let next = Position {
        since: at.since,
        until: at.until,
        phase: if more { at.phase.clone() } else { next_phase.to_owned() },
        position: if more { last } else { None },
    };
    Ok(Page { data, carried, next })
}

/// Writes `page`, read after `at`, with the position it reached, in one transaction.
async fn write_page(
    state: &AppState,
    tenant: &TenantId,
    connection_id: &str,
    at: &Position,
    page: Page,
) -> Result<(), StripeError> {
    let Page { data, carried, next } = page;
    let version = Utc::now();
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let txns: Vec<Value> = data.iter().map(|o| o["balance_transaction"].clone()).filter(Value::is_object).collect();
    balance_transactions::keep(&mut tx, tenant, connection_id, None, &txns).await?;
    let mut txn_count = txns.len() as i64;
    match at.phase.as_str() {
        "charges" => {
            let charges: Vec<(&Value, Option<i64>)> =
                data.iter().map(|c| (c, c["balance_transaction"]["fee"].as_i64())).collect();
            payments::upsert(&mut tx, tenant, connection_id, &charges, version).await?;
        }
        "payouts" => {
            for (payout, lines) in data.iter().zip(&carried) {
                let id = payout["id"].as_str().unwrap_or_default();
                payouts::apply_payout(&mut tx, tenant, connection_id, payout, version).await?;
                payouts::keep_transactions(&mut tx, tenant, connection_id, id, lines).await?;
                txn_count += lines.len() as i64;
            }
        }
        _ => {}
    }
    let column = at.phase.as_str();
    sqlx::query(&format!(
        "update stripe_backfills set {column} = {column} + $3, balance_transactions = balance_transactions + $4,
             position = $5, phase = $6
         where tenant_id = $1 and connection_id = $2 and status = 'running' and phase = $7
           and position is not distinct from $8"
    ))
    .bind(tenant.as_str())
    .bind(connection_id)
    .bind(data.len() as i64)
    .bind(txn_count)
    .bind(&next.position)
    .bind(&next.phase)
    .bind(&at.phase)
    .bind(&at.position)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn finish(state: &AppState, tenant: &TenantId, connection_id: &str) -> Result<(), StripeError> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    sqlx::query(
        "update stripe_backfills set status = 'completed', completed_at = now()
         where tenant_id = $1 and connection_id = $2 and status = 'running'",
    )
    .bind(tenant.as_str())
    .bind(connection_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
