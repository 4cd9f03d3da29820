//! Reconciliation on demand and by itself, on the job queue.
//!
//! - A **run** (`POST /reconciliation/runs`) looks again at every unmatched or suggested credit
//!   booked in a date range: its first step marks them pending, then each step is one engine
//!   batch in one short transaction that also moves the run's counters, so progress is visible
//!   while it works and a crash loses one batch at most (the pending flag is the position). One
//!   run per tenant at a time, across instances (a unique index on the active run).
//! - The **incremental** job looks at whatever is pending (new credits from a sync or an import,
//!   credits an invoice or payout change made worth another look), and is queued by those
//!   changes and by a periodic sweep, one per tenant at a time (the queue's dedup key).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{FromRow, PgConnection, PgPool};
use utoipa::ToSchema;

use super::{
    DecidedBy, ReconciliationError,
    engine::{self, Context, Scope},
};
use crate::{
    db::tenant::{begin_platform, begin_tenant},
    domain::{
        ids::{ReconciliationRunId, TenantId},
        states::{JobStatus, RunStatus},
    },
    events,
    jobs::{Job, NewJob, queue},
};

/// A run's job (payload `{"run_id": "rrun_…"}`).
pub const RUN_JOB: &str = "reconciliation.run";
/// The incremental job (per tenant, payload `{}`).
pub const RECONCILE_JOB: &str = "reconciliation.reconcile";
/// The sweep that queues the incremental job for tenants with pending credits.
pub const SWEEP_JOB: &str = "reconciliation.sweep";
pub const SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// A run over a date range, and how far it got.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "rrun_0192f3c4d5e6478fa1b2c3d4e5f60718", "status": "running",
    "date_from": "2026-11-01", "date_to": "2026-11-30", "requested_by": "user:usr_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "total": 12500, "examined": 4000, "auto_matched": 3310, "suggested": 520, "unmatched": 150, "excluded": 20,
    "error": null, "created_at": "2026-12-04T09:30:00Z", "started_at": "2026-12-04T09:30:01Z", "finished_at": null
}))]
pub struct ReconciliationRun {
    /// `rrun_…`
    pub id: String,
    pub status: RunStatus,
    /// Credits booked from this day (none: from the first).
    pub date_from: Option<NaiveDate>,
    /// Credits booked up to this day (none: to the last).
    pub date_to: Option<NaiveDate>,
    pub requested_by: String,
    /// Unmatched and suggested credits in range when the run started.
    pub total: Option<i64>,
    /// Credits looked at so far.
    pub examined: i64,
    pub auto_matched: i64,
    pub suggested: i64,
    /// Left with nothing plausible.
    pub unmatched: i64,
    /// Excluded by a rule.
    pub excluded: i64,
    /// Why it failed (`failed` only).
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, status, date_from, date_to, requested_by, total, examined, auto_matched, suggested, unmatched,
    excluded, error, created_at, started_at, finished_at";

/// Starts a run and queues its job, in the caller's transaction. A run already queued or running
/// for the tenant is a 409 naming it.
pub async fn start(
    conn: &mut PgConnection,
    tenant: &TenantId,
    date_from: Option<NaiveDate>,
    date_to: Option<NaiveDate>,
    decided_by: &DecidedBy,
) -> Result<ReconciliationRun, ReconciliationError> {
    if let (Some(from), Some(to)) = (date_from, date_to)
        && from > to
    {
        return Err(ReconciliationError::invalid("date_to", "must not be before date_from"));
    }
    let id = ReconciliationRunId::generate();
    let inserted = sqlx::query_as(&format!(
        "insert into reconciliation_runs (tenant_id, id, date_from, date_to, requested_by)
         values ($1, $2, $3, $4, $5) on conflict do nothing returning {COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(date_from)
    .bind(date_to)
    .bind(decided_by.label())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run) = inserted else {
        let active: String = sqlx::query_scalar(
            "select id from reconciliation_runs where tenant_id = $1 and status in ('queued', 'running')",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *conn)
        .await?;
        return Err(ReconciliationError::Conflict(format!(
            "run {active} is still in progress; one run per tenant at a time"
        )));
    };
    let job = NewJob::new(RUN_JOB, json!({"run_id": id.as_str()})).tenant(tenant.clone()).dedup_key(id.as_str());
    queue::enqueue(&mut *conn, &job).await?;
    Ok(run)
}

/// One of the tenant's runs.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &ReconciliationRunId,
) -> Result<Option<ReconciliationRun>, sqlx::Error> {
    sqlx::query_as(&format!("select {COLUMNS} from reconciliation_runs where tenant_id = $1 and id = $2"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// A page of runs, newest first, after `before`.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    before: Option<&ReconciliationRunId>,
    limit: i64,
) -> Result<Vec<ReconciliationRun>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from reconciliation_runs where tenant_id = $1 and ($2::text is null or id < $2)
         order by id desc limit $3"
    ))
    .bind(tenant.as_str())
    .bind(before.map(ReconciliationRunId::as_str))
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[derive(FromRow)]
struct Position {
    status: RunStatus,
    date_from: Option<NaiveDate>,
    date_to: Option<NaiveDate>,
}

/// The run job: runs the run to its end, batch by batch.
pub async fn handle(db: &PgPool, job: &Job) -> anyhow::Result<()> {
    let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("a reconciliation run needs a tenant"))?;
    let run_id = job.payload["run_id"]
        .as_str()
        .and_then(ReconciliationRunId::parse)
        .ok_or_else(|| anyhow::anyhow!("a reconciliation run job needs payload.run_id"))?;
    let context = {
        let mut tx = begin_tenant(db, &tenant).await?;
        let context = Context::load(&mut tx, &tenant).await?;
        tx.commit().await?;
        context
    };
    while step(db, &tenant, &run_id, &context).await? {}
    Ok(())
}

/// One step of a run in one transaction: the first marks the range pending; each next one is an
/// engine batch; the last marks the run succeeded and sends `reconciliation.run.completed`.
/// True while there is more to do. Public so tests can stop a run part-way, as a crash would.
pub async fn step(
    db: &PgPool,
    tenant: &TenantId,
    run_id: &ReconciliationRunId,
    context: &Context,
) -> Result<bool, ReconciliationError> {
    let mut tx = begin_tenant(db, tenant).await?;
    // The lock serialises steps: a second worker (after a lease expired) waits, then continues.
    let position: Option<Position> = sqlx::query_as(
        "select status, date_from, date_to from reconciliation_runs where tenant_id = $1 and id = $2 for update",
    )
    .bind(tenant.as_str())
    .bind(run_id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(position) = position else { return Ok(false) };
    match position.status {
        RunStatus::Succeeded | RunStatus::Failed => return Ok(false),
        RunStatus::Queued => {
            let marked = sqlx::query(
                "update transactions set reconcile_pending = true
                 where tenant_id = $1 and match_status in ('unmatched', 'suggested') and amount > 0
                   and ($2::date is null or list_date >= $2) and ($3::date is null or list_date <= $3)",
            )
            .bind(tenant.as_str())
            .bind(position.date_from)
            .bind(position.date_to)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "update reconciliation_runs set status = 'running', started_at = now(), total = $3
                 where tenant_id = $1 and id = $2",
            )
            .bind(tenant.as_str())
            .bind(run_id.as_str())
            .bind(marked.rows_affected() as i64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(true);
        }
        RunStatus::Running => {}
    }
    let scope = Scope { date_from: position.date_from, date_to: position.date_to };
    let counts = engine::next_batch(&mut tx, tenant, context, &scope).await?;
    if counts.examined == 0 {
        let run: ReconciliationRun = sqlx::query_as(&format!(
            "update reconciliation_runs set status = 'succeeded', finished_at = now()
             where tenant_id = $1 and id = $2 returning {COLUMNS}"
        ))
        .bind(tenant.as_str())
        .bind(run_id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        events::record(&mut tx, tenant, "reconciliation.run.completed", &run).await?;
        tx.commit().await?;
        return Ok(false);
    }
    sqlx::query(
        "update reconciliation_runs set examined = examined + $3, auto_matched = auto_matched + $4,
             suggested = suggested + $5, unmatched = unmatched + $6, excluded = excluded + $7
         where tenant_id = $1 and id = $2",
    )
    .bind(tenant.as_str())
    .bind(run_id.as_str())
    .bind(counts.examined as i64)
    .bind(counts.auto_matched as i64)
    .bind(counts.suggested as i64)
    .bind(counts.unmatched as i64)
    .bind(counts.excluded as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The dead-job handler: a run whose job died is `failed`, never `running` forever.
pub async fn abandon(db: &PgPool, job: &Job) -> anyhow::Result<()> {
    let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("a reconciliation run needs a tenant"))?;
    let Some(run_id) = job.payload["run_id"].as_str().and_then(ReconciliationRunId::parse) else { return Ok(()) };
    let mut tx = begin_tenant(db, &tenant).await?;
    sqlx::query(
        "update reconciliation_runs set status = 'failed', error = $3, finished_at = now()
         where tenant_id = $1 and id = $2 and status in ('queued', 'running')",
    )
    .bind(tenant.as_str())
    .bind(run_id.as_str())
    .bind(if job.status == JobStatus::Dead {
        "the run stopped on our side before it finished; start a new one"
    } else {
        "the run failed repeatedly on our side; start a new one"
    })
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Queues the incremental job for `tenant` (once while one is pending), in the caller's
/// transaction when given one.
pub async fn queue_incremental(conn: &mut PgConnection, tenant: &TenantId) -> Result<(), sqlx::Error> {
    let job =
        NewJob::new(RECONCILE_JOB, json!({})).tenant(tenant.clone()).dedup_key(format!("{RECONCILE_JOB}:{tenant}"));
    queue::enqueue(conn, &job).await?;
    Ok(())
}

/// The incremental job: whatever is pending for the tenant.
pub async fn handle_incremental(db: &PgPool, job: &Job) -> anyhow::Result<()> {
    let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("reconciliation needs a tenant"))?;
    let counts = engine::reconcile_pending(db, &tenant).await?;
    if counts.examined > 0 {
        tracing::info!(tenant = %tenant, ?counts, "reconciled pending credits");
    }
    Ok(())
}

/// The sweep: queues the incremental job for every tenant with pending credits.
pub async fn sweep(db: &PgPool) -> anyhow::Result<()> {
    let mut tx = begin_platform(db).await?;
    let tenants: Vec<String> = sqlx::query_scalar(
        "select distinct tenant_id from transactions
         where reconcile_pending and match_status in ('unmatched', 'suggested') and amount > 0",
    )
    .fetch_all(&mut *tx)
    .await?;
    for tenant in tenants {
        queue_incremental(&mut tx, &TenantId::from_db(tenant)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Marks for another look the open credits a new or changed invoice might be what they pay (its
/// amount due, or its number in their text, in its currency), and queues the incremental job.
/// Called in the transaction that writes the invoices; only open credits are scanned.
pub async fn invoices_changed(
    conn: &mut PgConnection,
    tenant: &TenantId,
    invoices: &[String],
) -> Result<(), sqlx::Error> {
    if invoices.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update transactions t set reconcile_pending = true
         from invoices i
         where i.tenant_id = $1 and i.id = any($2) and i.status in ('open', 'partially_paid')
           and t.tenant_id = $1 and t.match_status in ('unmatched', 'suggested') and t.amount > 0
           and not t.reconcile_pending and t.currency = i.currency
           and (t.amount = i.amount_total - i.amount_paid or t.search_text like '%' || lower(i.number) || '%')",
    )
    .bind(tenant.as_str())
    .bind(invoices)
    .execute(&mut *conn)
    .await?;
    queue_incremental(conn, tenant).await
}

/// Marks for another look the open credits of a payout's currency and amount (it was just paid),
/// and queues the incremental job. Called in the transaction that records the payout.
pub async fn payout_paid(
    conn: &mut PgConnection,
    tenant: &TenantId,
    currency: &str,
    amount: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update transactions set reconcile_pending = true
         where tenant_id = $1 and match_status in ('unmatched', 'suggested') and amount = $3 and currency = $2
           and not reconcile_pending",
    )
    .bind(tenant.as_str())
    .bind(currency)
    .bind(amount)
    .execute(&mut *conn)
    .await?;
    queue_incremental(conn, tenant).await
}
