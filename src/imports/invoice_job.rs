//! Invoice CSV imports, run by a job on the shared import machinery ([`super::job`]): the file
//! is read 1,000 rows at a time, and each batch goes through the invoice batch upsert (the same
//! checks, the same events, customers upserted by their external id) in one transaction with its
//! row results and the import's progress.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::{
    csv_file,
    invoice_csv::{InvoiceCsvOptions, InvoiceLayout},
    job::{StoredRow, finish, record_batch, start, target_of},
    rows::RowStatus,
};
use crate::{
    db::tenant::begin_tenant,
    domain::{
        ids::{ImportId, TenantId},
        validation::FieldError,
    },
    invoices::{
        InvoiceError,
        batch::{MAX_ROWS, RowOutcome, upsert_invoices},
        invoice::NewInvoice,
    },
    jobs::Job,
    state::AppState,
};

/// The job handler of invoice imports; [`super::job::abandon`] ends one whose job died.
pub async fn handle(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let (tenant, id) = target_of(job)?;
    run(state, &tenant, &id).await
}

/// The rows of one batch: those read into invoices, with their row numbers, and those refused.
#[derive(Default)]
struct Batch {
    invoices: Vec<(i32, NewInvoice)>,
    refused: Vec<StoredRow>,
}

impl Batch {
    fn refuse(&mut self, row: i32, external_id: Option<String>, errors: Vec<FieldError>) {
        self.refused.push(refused(row, external_id, errors));
    }

    fn len(&self) -> usize {
        self.invoices.len() + self.refused.len()
    }
}

fn refused(row: i32, external_id: Option<String>, errors: Vec<FieldError>) -> StoredRow {
    let error = errors
        .iter()
        .map(|e| if e.field.is_empty() { e.message.clone() } else { format!("{}: {}", e.field, e.message) })
        .collect::<Vec<_>>()
        .join("; ");
    StoredRow {
        row,
        external_id,
        status: RowStatus::Rejected,
        object_id: None,
        error: Some(error),
        errors: Some(json!(errors)),
    }
}

/// Processes an invoice import from its last committed batch to the end.
pub async fn run(state: &AppState, tenant: &TenantId, id: &ImportId) -> anyhow::Result<()> {
    let Some(stored) = start(state, tenant, id).await? else { return Ok(()) };
    let options: InvoiceCsvOptions = serde_json::from_value(stored.options)?;
    let Some(file) = stored.file else {
        return finish(state, tenant, id, Some("the uploaded file is no longer stored")).await;
    };
    // Checked at upload; checked again so a run never works from a different reading.
    let text = csv_file::text(&file).map_err(|e| anyhow::anyhow!("{}", e[0].message))?;
    let layout =
        InvoiceLayout::check(&options, text).map_err(|e| anyhow::anyhow!("{}: {}", e[0].field, e[0].message))?;
    let done = usize::try_from(stored.processed_rows).unwrap_or(0);

    // The first row of each external id and number in the file: a later row repeating one is
    // refused, whichever batch it falls in.
    let (mut external_ids, mut numbers) = (HashMap::new(), HashMap::new());
    let mut records = layout.table.records(text).peekable();
    let mut start = 0;
    while records.peek().is_some() {
        let mut batch = Batch::default();
        for (row, record) in records.by_ref().take(MAX_ROWS) {
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    batch.refuse(row, None, vec![FieldError::new("", format!("the row cannot be read: {error}"))]);
                    continue;
                }
            };
            let external_id = layout.external_id_of(&record);
            match layout.row(&record) {
                Err(errors) => batch.refuse(row, external_id, errors),
                Ok(invoice) => {
                    let mut errors = Vec::new();
                    if let Some(first) = first_of(&mut external_ids, invoice.external_id.clone(), row) {
                        errors.push(FieldError::new(
                            "external_id",
                            format!("appears earlier in this file (row {first})"),
                        ));
                    }
                    if let Some(first) = first_of(&mut numbers, Some(invoice.number.clone()), row) {
                        errors.push(FieldError::new("number", format!("appears earlier in this file (row {first})")));
                    }
                    if errors.is_empty() {
                        batch.invoices.push((row, invoice));
                    } else {
                        batch.refuse(row, external_id, layout.describe(errors));
                    }
                }
            }
        }
        let count = batch.len();
        // Earlier batches were committed by a previous run: only their keys matter now.
        if start + count > done {
            write_batch(state, tenant, id, &layout, batch, start, start + count).await?;
        }
        start += count;
    }
    finish(state, tenant, id, None).await
}

/// Notes `key` as first seen on `row`, or returns the row it was first seen on.
fn first_of(seen: &mut HashMap<String, i32>, key: Option<String>, row: i32) -> Option<i32> {
    let key = key?;
    match seen.get(&key) {
        Some(first) => Some(*first),
        None => {
            seen.insert(key, row);
            None
        }
    }
}

/// Upserts one batch's invoices and records its results and progress, in one transaction.
async fn write_batch(
    state: &AppState,
    tenant: &TenantId,
    id: &ImportId,
    layout: &InvoiceLayout,
    batch: Batch,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let mut rows = batch.refused;
    rows.extend(upsert(&mut tx, tenant, layout, batch.invoices).await?);
    rows.sort_by_key(|r| r.row);
    record_batch(&mut tx, tenant, id, rows, from, to).await?;
    tx.commit().await?;
    Ok(())
}

async fn upsert(
    tx: &mut PgConnection,
    tenant: &TenantId,
    layout: &InvoiceLayout,
    invoices: Vec<(i32, NewInvoice)>,
) -> anyhow::Result<Vec<StoredRow>> {
    if invoices.is_empty() {
        return Ok(Vec::new());
    }
    let (numbers, invoices): (Vec<i32>, Vec<NewInvoice>) = invoices.into_iter().unzip();
    let result = match upsert_invoices(tx, tenant, invoices).await {
        Ok(result) => result,
        // Another writer took a key between the checks and the write: the job runs again.
        Err(InvoiceError::Conflict(message)) => anyhow::bail!("{message}"),
        Err(InvoiceError::Invalid(errors)) => anyhow::bail!("the batch was refused: {errors:?}"),
        Err(InvoiceError::Database(error)) => return Err(error.into()),
    };
    crate::reconciliation::runs::invoices_changed(tx, tenant, &result.written_ids()).await?;
    Ok(result
        .results
        .into_iter()
        .map(|r| {
            let row = numbers[r.index];
            let status = match r.status {
                RowOutcome::Created => RowStatus::Created,
                RowOutcome::Updated => RowStatus::Updated,
                RowOutcome::Unchanged => RowStatus::Unchanged,
                RowOutcome::Error => return refused(row, r.external_id, layout.describe(r.errors)),
            };
            StoredRow { row, external_id: r.external_id, status, object_id: r.id, error: None, errors: None }
        })
        .collect())
}

/// What an invoice import did with one row of the file.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"row": 7, "external_id": "X-1042", "status": "rejected", "invoice_id": null,
    "errors": [{"field": "amount_total", "message": "column \"Total\": \"12,50\" is not a decimal amount"}]}))]
pub struct InvoiceRowResult {
    /// The row's number in the file (the header is row 1).
    pub row: i32,
    pub external_id: Option<String>,
    pub status: RowStatus,
    /// The invoice the row created, updated or left unchanged.
    pub invoice_id: Option<String>,
    /// Why a `rejected` row was refused, each naming the invoice field (and its column).
    pub errors: Vec<FieldError>,
}

impl From<StoredRow> for InvoiceRowResult {
    fn from(r: StoredRow) -> Self {
        let errors = r.errors.and_then(|errors| serde_json::from_value(errors).ok()).unwrap_or_default();
        Self { row: r.row, external_id: r.external_id, status: r.status, invoice_id: r.object_id, errors }
    }
}
