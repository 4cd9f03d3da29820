//! CSV imports as durable background work: the upload is stored in `imports` with a queued job;
//! the job reads the file in batches, and each batch (its transactions or invoices, their events,
//! its row results and the progress counters) commits as one transaction.
//!
//! Re-running after a crash is safe: the job resumes after the last committed batch, and a batch
//! written twice would change nothing anyway, since rows are keyed by external id.
//!
//! This module holds what every kind of import shares (the stored import, its progress, its end)
//! and runs transaction imports; [`super::invoice_job`] runs invoice imports.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::{
    Account, Target, apply,
    csv_file::{self, CsvOptions, Layout},
    rows::{self, RowResult, Rules},
};
use crate::{
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{ImportId, TenantId},
        states::{ImportKind, JobStatus, RunStatus},
    },
    jobs::{Job, NewJob, queue},
    state::AppState,
};

/// The job kind that processes one transaction import (payload `{"import_id": "imp_…"}`).
pub const IMPORT_JOB: &str = "transactions.import";
/// The job kind that processes one invoice import (payload `{"import_id": "imp_…"}`).
pub const INVOICE_IMPORT_JOB: &str = "invoices.import";
/// Rows per batch: each batch commits on its own, so progress shows as it goes.
pub const BATCH: usize = 5_000;
/// Attempts before an import is declared failed.
const MAX_ATTEMPTS: i32 = 5;

fn job_kind(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Transactions => IMPORT_JOB,
        ImportKind::Invoices => INVOICE_IMPORT_JOB,
    }
}

/// A CSV import and its progress.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "imp_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "kind": "transactions",
    "account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "status": "running",
    "total_rows": 100000,
    "processed_rows": 45000,
    "created": 44990,
    "unchanged": 0,
    "updated": 0,
    "rejected": 10,
    "error": null,
    "created_at": "2026-11-21T09:30:00Z",
    "finished_at": null
}))]
pub struct Import {
    pub id: String,
    /// What the import writes: `transactions` or `invoices`.
    pub kind: ImportKind,
    /// The manual account a transaction import writes into; null for an invoice import.
    pub account_id: Option<String>,
    /// `succeeded` once every row has a result; `failed`: see `error`.
    pub status: RunStatus,
    /// Data rows in the file (the header not counted).
    pub total_rows: i32,
    /// Rows with a result so far.
    pub processed_rows: i32,
    pub created: i32,
    pub unchanged: i32,
    pub updated: i32,
    /// Rows refused; `GET /transactions/imports/{id}/rows?status=rejected` (or
    /// `/invoices/imports/{id}/rows`) says why.
    pub rejected: i32,
    /// Why a `failed` import stopped.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const IMPORT_COLUMNS: &str =
    "id, kind, account_id, status, total_rows, processed_rows, created, unchanged, updated, rejected,
    error, created_at, finished_at";

/// What an upload stores besides its file.
pub struct NewImport<'a> {
    pub kind: ImportKind,
    /// The manual account, for a transaction import.
    pub account_id: Option<&'a str>,
    /// The options as accepted (column mapping, formats), read again by the job.
    pub options: serde_json::Value,
    pub total_rows: usize,
}

/// Stores a checked upload and queues its job, in one transaction.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    new: NewImport<'_>,
    file: &[u8],
) -> Result<Import, sqlx::Error> {
    let id = ImportId::generate();
    let import: Import = sqlx::query_as(&format!(
        "insert into imports (tenant_id, id, kind, account_id, file, options, total_rows)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning {IMPORT_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(new.kind)
    .bind(new.account_id)
    .bind(file)
    .bind(new.options)
    .bind(i32::try_from(new.total_rows).unwrap_or(i32::MAX))
    .fetch_one(&mut *conn)
    .await?;
    let job = NewJob::new(job_kind(new.kind), json!({ "import_id": id.as_str() }))
        .tenant(tenant.clone())
        .dedup_key(format!("{tenant}/{id}"))
        .max_attempts(MAX_ATTEMPTS);
    queue::enqueue(&mut *conn, &job).await?;
    Ok(import)
}

/// The import of this kind with this id, if the tenant has one.
pub async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    kind: ImportKind,
    id: &ImportId,
) -> Result<Option<Import>, sqlx::Error> {
    sqlx::query_as(&format!("select {IMPORT_COLUMNS} from imports where tenant_id = $1 and id = $2 and kind = $3"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(kind)
        .fetch_optional(conn)
        .await
}

/// A page of an import's row results, in row order after `after`, optionally of one status.
pub async fn results(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &ImportId,
    status: Option<rows::RowStatus>,
    after: Option<i32>,
    limit: i64,
) -> Result<Vec<StoredRow>, sqlx::Error> {
    sqlx::query_as(
        "select row_number, external_id, status, object_id, error, errors from import_rows
         where tenant_id = $1 and import_id = $2 and ($3::text is null or status = $3) and row_number > $4
         order by row_number limit $5",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(status.map(|s| s.as_str()))
    .bind(after.unwrap_or(0))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A row's result as stored: one per data row of the file.
#[derive(Debug, FromRow)]
pub struct StoredRow {
    #[sqlx(rename = "row_number")]
    pub row: i32,
    pub external_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: rows::RowStatus,
    /// The transaction or invoice written.
    pub object_id: Option<String>,
    /// Why a rejected row was refused, in words.
    pub error: Option<String>,
    /// The same as field errors, for kinds that report them so.
    pub errors: Option<serde_json::Value>,
}

impl From<StoredRow> for RowResult {
    fn from(r: StoredRow) -> Self {
        Self { row: r.row, external_id: r.external_id, status: r.status, transaction_id: r.object_id, error: r.error }
    }
}

impl From<RowResult> for StoredRow {
    fn from(r: RowResult) -> Self {
        Self {
            row: r.row,
            external_id: r.external_id,
            status: r.status,
            object_id: r.transaction_id,
            error: r.error,
            errors: None,
        }
    }
}

/// The tenant and import a job is for.
pub(super) fn target_of(job: &Job) -> anyhow::Result<(TenantId, ImportId)> {
    let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("an import job needs a tenant"))?;
    let id = job.payload["import_id"]
        .as_str()
        .and_then(ImportId::parse)
        .ok_or_else(|| anyhow::anyhow!("an import job needs payload.import_id"))?;
    Ok((tenant, id))
}

/// The job handler of transaction imports. When its last attempt fails, [`abandon`] marks the
/// import `failed` with the reason.
pub async fn handle(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let (tenant, id) = target_of(job)?;
    run(state, &tenant, &id).await
}

/// The stored state a run starts from.
#[derive(FromRow)]
pub(super) struct Started {
    pub account_id: Option<String>,
    status: RunStatus,
    pub file: Option<Vec<u8>>,
    pub options: serde_json::Value,
    pub processed_rows: i32,
}

/// Marks an import `running` and returns what its run starts from; `None` when there is nothing
/// to run (no such import, or it already ended).
pub(super) async fn start(state: &AppState, tenant: &TenantId, id: &ImportId) -> anyhow::Result<Option<Started>> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let stored: Option<Started> = sqlx::query_as(
        "select account_id, status, file, options, processed_rows from imports where tenant_id = $1 and id = $2
         for update",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(stored) = stored.filter(|s| !matches!(s.status, RunStatus::Succeeded | RunStatus::Failed)) else {
        end_read(tx);
        return Ok(None);
    };
    sqlx::query("update imports set status = 'running' where tenant_id = $1 and id = $2")
        .bind(tenant.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(stored))
}

/// Processes a transaction import from its last committed batch to the end.
pub async fn run(state: &AppState, tenant: &TenantId, id: &ImportId) -> anyhow::Result<()> {
    let Some(stored) = start(state, tenant, id).await? else { return Ok(()) };
    let options: CsvOptions = serde_json::from_value(stored.options)?;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let target = super::target(&mut tx, tenant, stored.account_id.as_deref().unwrap_or_default()).await?;
    end_read(tx);
    let Target::Manual(account) = target else {
        return finish(state, tenant, id, Some("the account is no longer a manual account")).await;
    };
    let Some(file) = stored.file else {
        return finish(state, tenant, id, Some("the uploaded file is no longer stored")).await;
    };
    // Checked at upload; checked again so a run never works from a different reading.
    let text = csv_file::text(&file).map_err(|e| anyhow::anyhow!("{}", e[0].message))?;
    let layout = Layout::check(&options, text).map_err(|e| anyhow::anyhow!("{}: {}", e[0].field, e[0].message))?;
    let rules =
        Rules { currency: account.currency, date_format: layout.table.date_format.clone(), refuse_formulas: true };
    let done = usize::try_from(stored.processed_rows).unwrap_or(0);

    let mut seen = HashMap::new();
    let mut records = layout.table.records(text).peekable();
    let mut start = 0;
    while records.peek().is_some() {
        let mut inputs = Vec::with_capacity(BATCH);
        let mut results = Vec::new();
        for (row, record) in records.by_ref().take(BATCH) {
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    results.push(RowResult::rejected(row, None, format!("the row cannot be read: {error}")));
                    continue;
                }
            };
            match layout.row(row, &record) {
                Ok(input) => inputs.push(input),
                Err(reason) => results.push(RowResult::rejected(row, layout.external_id_of(&record), reason)),
            }
        }
        let count = inputs.len() + results.len();
        // Earlier batches were committed by a previous run: only their external ids matter now.
        let (valid, rejected) = rows::check(inputs, &rules, &mut seen);
        if start + count <= done {
            start += count;
            continue;
        }
        results.extend(rejected);
        write_batch(state, tenant, id, &account, valid, results, start, start + count).await?;
        start += count;
    }
    finish(state, tenant, id, None).await
}

/// Writes one batch of a transaction import and its progress.
#[allow(clippy::too_many_arguments)]
async fn write_batch(
    state: &AppState,
    tenant: &TenantId,
    id: &ImportId,
    account: &Account,
    valid: Vec<rows::ValidRow>,
    mut results: Vec<RowResult>,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    results.extend(apply::apply(&mut tx, tenant, account, valid).await?);
    let rows = results.into_iter().map(StoredRow::from).collect();
    record_batch(&mut tx, tenant, id, rows, from, to).await?;
    tx.commit().await?;
    Ok(())
}

/// Records a batch's row results and moves the import's progress from `from` to `to`, in the
/// batch's transaction. The move is conditional on the position, so two runs of the same import
/// (a lease that expired under a slow worker) cannot both count a batch: the second fails here
/// and its transaction, the batch's writes with it, rolls back.
pub(super) async fn record_batch(
    tx: &mut PgConnection,
    tenant: &TenantId,
    id: &ImportId,
    rows: Vec<StoredRow>,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    let count = |status| i32::try_from(rows.iter().filter(|r| r.status == status).count());
    let moved = sqlx::query(
        "update imports set processed_rows = $4, created = created + $5, unchanged = unchanged + $6,
             updated = updated + $7, rejected = rejected + $8
         where tenant_id = $1 and id = $2 and processed_rows = $3 and status = 'running'",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(i32::try_from(from)?)
    .bind(i32::try_from(to)?)
    .bind(count(rows::RowStatus::Created)?)
    .bind(count(rows::RowStatus::Unchanged)?)
    .bind(count(rows::RowStatus::Updated)?)
    .bind(count(rows::RowStatus::Rejected)?)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 1 {
        anyhow::bail!("import {id}: another run already wrote rows {from}..{to}");
    }
    let numbers: Vec<i32> = rows.iter().map(|r| r.row).collect();
    let external_ids: Vec<Option<&str>> = rows.iter().map(|r| r.external_id.as_deref()).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let object_ids: Vec<Option<&str>> = rows.iter().map(|r| r.object_id.as_deref()).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|r| r.error.as_deref()).collect();
    let field_errors: Vec<Option<&serde_json::Value>> = rows.iter().map(|r| r.errors.as_ref()).collect();
    sqlx::query(
        "insert into import_rows (tenant_id, import_id, row_number, external_id, status, object_id, error, errors)
         select $1, $2, r.* from unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[]) as r
         on conflict do nothing",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(&numbers)
    .bind(&external_ids)
    .bind(&statuses)
    .bind(&object_ids)
    .bind(&errors)
    .bind(&field_errors)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Ends an import: `succeeded`, or `failed` with `error`. The stored file is dropped either way;
/// the row results stay.
pub(super) async fn finish(
    state: &AppState,
    tenant: &TenantId,
    id: &ImportId,
    error: Option<&str>,
) -> anyhow::Result<()> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    sqlx::query(
        "update imports set status = case when $3::text is null then 'succeeded' else 'failed' end, error = $3,
             finished_at = now(), file = null
         where tenant_id = $1 and id = $2 and status in ('queued', 'running')",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The dead-job handler, the one place an import is marked `failed`: its job died (its last
/// attempt failed, or its worker stopped), so it never shows `running` forever.
pub async fn abandon(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let Ok((tenant, id)) = target_of(job) else { return Ok(()) };
    let reason = match (job.status, &job.last_error) {
        (JobStatus::Dead, _) => "the import's worker stopped during its last attempt".to_owned(),
        (_, Some(error)) => format!("the import stopped after {} attempts: {error}", job.attempts),
        (_, None) => "the import failed repeatedly on our side; import the file again".to_owned(),
    };
    finish(state, &tenant, &id, Some(&reason)).await
}
