//! Applying the categorisation rules to existing transactions, on demand, as a durable job.
//!
//! A run walks the tenant's transactions (or one account's) by id in batches. Each batch is one
//! short transaction: lock the run row, read the next rows after the run's committed position
//! (without locking them: a write happens only if the row still holds what was read),
//! re-evaluate those whose category came from a rule or is unset, write the changes with their
//! `transaction.updated` events, and move the position and counters forward. Rows a user
//! categorised are walked but never changed. A job killed mid-batch loses that batch's
//! uncommitted work only; the queue runs it again and it continues from the committed position,
//! and re-evaluating a row already right changes nothing, so a retry never doubles an event.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{FromRow, PgConnection, PgPool};
use utoipa::ToSchema;

use super::rules::{Candidate, RuleSet};
use crate::{
    bank::model::{TRANSACTION_COLUMNS, Transaction},
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{CategorizationRuleRunId, TenantId},
        states::{JobStatus, RunStatus},
    },
    events,
    jobs::{Job, NewJob, queue},
};

/// The job kind (payload `{"run_id": "crr_…"}`).
pub const APPLY_JOB: &str = "transactions.apply_categorization_rules";
/// Transactions per batch (one database transaction each).
pub const BATCH: i64 = 1_000;

/// One application of the rules to existing transactions, and how far it got.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "crr_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "account_id": null,
    "status": "running",
    "total": 125000,
    "processed": 42000,
    "changed": 1730,
    "error": null,
    "created_at": "2026-11-21T09:30:00Z",
    "started_at": "2026-11-21T09:30:01Z",
    "finished_at": null
}))]
pub struct CategorizationRuleRun {
    pub id: String,
    /// The account whose transactions the run covers; null for all of them.
    pub account_id: Option<String>,
    pub status: RunStatus,
    /// Transactions in scope, counted when the run started (on success: the number walked).
    pub total: i64,
    /// Transactions walked so far, a user's categorised ones included.
    pub processed: i64,
    /// Transactions whose category or category source the run changed.
    pub changed: i64,
    /// Why the run failed (`failed` only).
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The columns [`CategorizationRuleRun`] reads.
pub const RUN_COLUMNS: &str =
    "id, account_id, status, total, processed, changed, error, created_at, started_at, finished_at";

/// Creates a queued run and its job, inside the caller's tenant-bound transaction (so both
/// commit or neither does). `account_id` must be one of the tenant's accounts, or `None`.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    account_id: Option<&str>,
) -> Result<CategorizationRuleRun, sqlx::Error> {
    let id = CategorizationRuleRunId::generate();
    let run: CategorizationRuleRun = sqlx::query_as(&format!(
        "insert into categorization_rule_runs (tenant_id, id, account_id) values ($1, $2, $3) returning {RUN_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(account_id)
    .fetch_one(&mut *conn)
    .await?;
    let job = NewJob::new(APPLY_JOB, json!({ "run_id": id.as_str() })).tenant(tenant.clone()).dedup_key(id.as_str());
    queue::enqueue(&mut *conn, &job).await?;
    Ok(run)
}

/// Reads a run.
pub async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &CategorizationRuleRunId,
) -> Result<Option<CategorizationRuleRun>, sqlx::Error> {
    sqlx::query_as(&format!("select {RUN_COLUMNS} from categorization_rule_runs where tenant_id = $1 and id = $2"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// The job handler: runs the run to its end. When its last attempt fails, [`abandon`] marks the
/// run `failed`.
pub async fn handle(db: &PgPool, job: Job) -> anyhow::Result<()> {
    let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("a categorisation run needs a tenant"))?;
    let run_id = job.payload["run_id"]
        .as_str()
        .and_then(CategorizationRuleRunId::parse)
        .ok_or_else(|| anyhow::anyhow!("a categorisation run job needs payload.run_id"))?;
    run(db, &tenant, &run_id).await
}

/// The dead-job handler, the one place a run is marked `failed`: its job died (its last attempt
/// failed, or its worker stopped), so it never shows `running` forever.
pub async fn abandon(db: &PgPool, job: &Job) -> anyhow::Result<()> {
    let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("a categorisation run needs a tenant"))?;
    let Some(run_id) = job.payload["run_id"].as_str().and_then(CategorizationRuleRunId::parse) else { return Ok(()) };
    let mut tx = begin_tenant(db, &tenant).await?;
    sqlx::query(
        "update categorization_rule_runs set status = 'failed', error = $3, finished_at = now()
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

/// Runs `run_id` from its committed position to its end, with the rules as they are now
/// (loaded and compiled once).
pub async fn run(db: &PgPool, tenant: &TenantId, run_id: &CategorizationRuleRunId) -> anyhow::Result<()> {
    let mut tx = begin_tenant(db, tenant).await?;
    let rules = RuleSet::load(&mut tx, tenant).await?;
    end_read(tx);
    while step(db, tenant, run_id, &rules, BATCH).await? == Step::More {}
    Ok(())
}

/// What a [`step`] left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More transactions may follow.
    More,
    /// The run is finished (now or already).
    Done,
}

/// A run's row, as a step needs it.
#[derive(Debug, FromRow)]
struct Position {
    status: RunStatus,
    account_id: Option<String>,
    last_transaction_id: Option<String>,
}

/// A transaction as the run re-evaluates it.
#[derive(Debug, FromRow)]
struct Row {
    id: String,
    account_id: String,
    amount: i64,
    description: Option<String>,
    counterparty_name: Option<String>,
    category: Option<String>,
    category_source: Option<String>,
}

/// Processes one batch of at most `batch` transactions in one database transaction, starting the
/// run first if it is still queued. Public so that tests can stop a run part-way, as a killed
/// worker would.
pub async fn step(
    db: &PgPool,
    tenant: &TenantId,
    run_id: &CategorizationRuleRunId,
    rules: &RuleSet,
    batch: i64,
) -> anyhow::Result<Step> {
    let mut tx = begin_tenant(db, tenant).await?;
    // The lock serialises steps: a second worker (after a lease expired) waits, then continues
    // from the position this one commits.
    let position: Option<Position> = sqlx::query_as(
        "select status, account_id, last_transaction_id from categorization_rule_runs
         where tenant_id = $1 and id = $2 for update",
    )
    .bind(tenant.as_str())
    .bind(run_id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(position) = position else { return Ok(Step::Done) };
    match position.status {
        RunStatus::Queued => {
            sqlx::query(
                "update categorization_rule_runs set status = 'running', started_at = now(),
                     total = (select count(*) from transactions where tenant_id = $1 and ($3::text is null or account_id = $3))
                 where tenant_id = $1 and id = $2",
            )
            .bind(tenant.as_str())
            .bind(run_id.as_str())
            .bind(&position.account_id)
            .execute(&mut *tx)
            .await?;
        }
        RunStatus::Running => {}
        RunStatus::Succeeded | RunStatus::Failed => return Ok(Step::Done),
    }

    // Every id sorts after '': the first batch starts at the beginning.
    let rows: Vec<Row> = sqlx::query_as(
        "select id, account_id, amount, description, counterparty_name, category, category_source
         from transactions
         where tenant_id = $1 and id > $2 and ($3::text is null or account_id = $3)
         order by id limit $4",
    )
    .bind(tenant.as_str())
    .bind(position.last_transaction_id.as_deref().unwrap_or(""))
    .bind(&position.account_id)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let changed = if rows.is_empty() { 0 } else { recategorize(&mut tx, tenant, rules, &rows).await? };
    // A short batch is the last: the run ends in the same transaction as its last changes.
    let finished = (rows.len() as i64) < batch;
    sqlx::query(
        "update categorization_rule_runs
         set processed = processed + $3, changed = changed + $4,
             last_transaction_id = coalesce($5, last_transaction_id),
             status = case when $6 then 'succeeded' else status end,
             finished_at = case when $6 then now() else finished_at end,
             total = case when $6 then processed + $3 else total end
         where tenant_id = $1 and id = $2",
    )
    .bind(tenant.as_str())
    .bind(run_id.as_str())
    .bind(rows.len() as i64)
    .bind(changed as i64)
    .bind(rows.last().map(|r| r.id.as_str()))
    .bind(finished)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(if finished { Step::Done } else { Step::More })
}

/// Re-evaluates `rows`, writes the ones whose category changes and records their
/// `transaction.updated` events. Returns how many changed.
async fn recategorize(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rules: &RuleSet,
    rows: &[Row],
) -> Result<usize, sqlx::Error> {
    let mut ids = Vec::new();
    let mut categories: Vec<Option<String>> = Vec::new();
    let mut rule_ids: Vec<Option<String>> = Vec::new();
    let (mut old_categories, mut old_sources) = (Vec::new(), Vec::new());
    let mut previous = std::collections::HashMap::new();
    for row in rows {
        if row.category_source.as_deref() == Some("user") {
            continue;
        }
        let candidate =
            Candidate::new(&row.account_id, row.amount, row.description.as_deref(), row.counterparty_name.as_deref());
        let rule = rules.first_match(&candidate);
        let category = rule.map(|r| r.category.clone());
        let source = rule.map(|_| "rule");
        if category == row.category && source == row.category_source.as_deref() {
            continue;
        }
        ids.push(row.id.clone());
        categories.push(category);
        rule_ids.push(rule.map(|r| r.id.clone()));
        old_categories.push(row.category.as_deref());
        old_sources.push(row.category_source.as_deref());
        previous.insert(row.id.clone(), json!({ "category": row.category, "category_source": row.category_source }));
    }
    if ids.is_empty() {
        return Ok(0);
    }
    // The rows were read without locks (so a batch never waits on, or deadlocks with, a sync):
    // a row is written only if it still holds what was read. One changed meanwhile (a user's
    // category, another run) is left as it now is, and `previous_attributes` is always exact.
    let updated: Vec<Transaction> = sqlx::query_as(&format!(
        "update transactions set category = u.u_category,
             category_source = case when u.u_category is null then null else 'rule' end,
             category_rule_id = u.u_rule
         from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
              as u(u_id, u_category, u_rule, u_old_category, u_old_source)
         where tenant_id = $1 and id = u.u_id and category_source is distinct from 'user'
           and category is not distinct from u.u_old_category
           and category_source is not distinct from u.u_old_source
         returning {TRANSACTION_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&categories)
    .bind(&rule_ids)
    .bind(&old_categories)
    .bind(&old_sources)
    .fetch_all(&mut *conn)
    .await?;
    let changed = updated.len();
    let payloads: Vec<Value> = updated
        .into_iter()
        .map(|transaction| {
            let before = previous.remove(&transaction.id).unwrap_or_default();
            let mut data = events::payload(transaction)?;
            data["previous_attributes"] = before;
            Ok(data)
        })
        .collect::<Result<_, sqlx::Error>>()?;
    events::record_many(conn, tenant, "transaction.updated", payloads).await?;
    Ok(changed)
}
