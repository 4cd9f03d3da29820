//! Importing transactions into manual accounts (accounts no bank feed covers): a JSON batch of
//! up to 1,000 rows written at once, or a CSV file processed by a background job in batches.
//! Invoice CSV files go through the same machinery ([`invoice_csv`], [`invoice_job`]).
//!
//! Rows are keyed by `(account, external_id)`: importing the same rows again changes nothing
//! (`unchanged`), a known external id with other content updates the transaction (`updated`),
//! and a row that fails a check is `rejected` with the reason while the others are imported.

pub mod apply;
pub mod csv_file;
pub mod invoice_csv;
pub mod invoice_job;
pub mod job;
pub mod rows;

use std::collections::HashMap;

use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;

use self::rows::{RowInput, RowResult, RowStatus, Rules};
use crate::{
    db::tenant::begin_tenant,
    domain::{ids::TenantId, money::Currency},
    state::AppState,
};

/// Most rows in one JSON request; larger imports are CSV files.
pub const MAX_JSON_ROWS: usize = 1_000;
/// Largest CSV upload (64 MiB: room for several hundred thousand rows).
pub const UPLOAD_LIMIT: usize = 64 << 20;

/// A manual account, as an import needs it.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub currency: Currency,
}

/// What an account id names, for an import.
#[derive(Debug)]
pub enum Target {
    /// No account of this tenant has the id.
    Missing,
    /// A bank-feed account: its transactions come from the bank.
    BankFeed,
    Manual(Account),
}

/// Looks up the account an import writes into.
pub async fn target(conn: &mut PgConnection, tenant: &TenantId, account_id: &str) -> Result<Target, sqlx::Error> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("select kind, currency from bank_accounts where tenant_id = $1 and id = $2")
            .bind(tenant.as_str())
            .bind(account_id)
            .fetch_optional(conn)
            .await?;
    Ok(match row {
        None => Target::Missing,
        Some((kind, currency)) => match (kind.as_str(), currency.as_deref().and_then(Currency::parse)) {
            ("manual", Some(currency)) => Target::Manual(Account { id: account_id.to_owned(), currency }),
            _ => Target::BankFeed,
        },
    })
}

/// The outcome of an import: counts, and one result per row.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(example = json!({"created": 1, "unchanged": 0, "updated": 0, "rejected": 1, "results": [
    {"row": 0, "external_id": "2026-11-20-0001", "status": "created", "transaction_id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718", "error": null},
    {"row": 1, "external_id": "2026-11-20-0002", "status": "rejected", "transaction_id": null, "error": "amount: \"12.505\" has more decimal places than EUR allows (2)"}
]}))]
pub struct ImportReport {
    pub created: usize,
    pub unchanged: usize,
    pub updated: usize,
    pub rejected: usize,
    /// One per row, in the request's order.
    pub results: Vec<RowResult>,
}

impl ImportReport {
    pub fn count(&mut self, results: &[RowResult]) {
        for result in results {
            match result.status {
                RowStatus::Created => self.created += 1,
                RowStatus::Unchanged => self.unchanged += 1,
                RowStatus::Updated => self.updated += 1,
                RowStatus::Rejected => self.rejected += 1,
            }
        }
    }
}

/// Imports a JSON batch in one tenant-bound transaction: rows that pass their checks are written,
/// the others are reported rejected. `inputs` holds rows already refused while being read.
pub async fn import_now(
    state: &AppState,
    tenant: &TenantId,
    account: &Account,
    inputs: Vec<Result<RowInput, RowResult>>,
) -> Result<ImportReport, sqlx::Error> {
    let rules =
        Rules { currency: account.currency, date_format: csv_file::DEFAULT_DATE_FORMAT.into(), refuse_formulas: false };
    let (readable, mut results): (Vec<RowInput>, Vec<RowResult>) =
        inputs.into_iter().fold((Vec::new(), Vec::new()), |(mut ok, mut bad), input| {
            match input {
                Ok(row) => ok.push(row),
                Err(result) => bad.push(result),
            }
            (ok, bad)
        });
    let (valid, rejected) = rows::check(readable, &rules, &mut HashMap::new());
    results.extend(rejected);
    let mut tx = begin_tenant(&state.db, tenant).await?;
    results.extend(apply::apply(&mut tx, tenant, account, valid).await?);
    tx.commit().await?;
    results.sort_by_key(|r| r.row);
    let mut report = ImportReport::default();
    report.count(&results);
    report.results = results;
    Ok(report)
}
