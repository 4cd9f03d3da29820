//! Batch upserts: up to [`MAX_ROWS`] invoices (or customers) by `external_id` in one request, the
//! way CRMs sync. One result per row, in input order; a row that fails is reported with its field
//! errors and the valid rows are applied, or nothing is with `atomic`. A row that changes nothing
//! writes nothing and emits nothing, so sending the same batch twice is a no-op.
//!
//! Invoices are written set by set (`invoice_batch`); customers, fewer and smaller, row by row,
//! each in a savepoint.

use serde::Serialize;
use sqlx::{Acquire, PgConnection};
use utoipa::ToSchema;

use super::{
    InvoiceError,
    customer::{self, Customer, NewCustomer},
    invoice::NewInvoice,
};
use crate::domain::{ids::TenantId, validation::FieldError};

pub use super::invoice_batch::upsert_invoices;

/// Most rows one batch holds.
pub const MAX_ROWS: usize = 1000;

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    Created,
    Updated,
    /// The row matched what was stored: nothing written, no event.
    Unchanged,
    /// Refused; see `errors`. Nothing of this row was written.
    Error,
}

/// One row's result, at the row's place in the input. Named `BatchRowResult` in the OpenAPI
/// document, apart from a transactions import's `RowResult`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = BatchRowResult)]
pub struct RowResult {
    /// The row's position in the input, from 0.
    pub index: usize,
    pub status: RowOutcome,
    /// The invoice's or customer's id (absent for a refused row).
    pub id: Option<String>,
    pub external_id: Option<String>,
    /// Why the row was refused, each naming its field within the row.
    pub errors: Vec<FieldError>,
}

/// A batch's results, with counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchResult {
    pub results: Vec<RowResult>,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
}

impl BatchResult {
    /// The ids of the rows created or updated.
    pub fn written_ids(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| matches!(r.status, RowOutcome::Created | RowOutcome::Updated))
            .filter_map(|r| r.id.clone())
            .collect()
    }

    pub(super) fn of(results: Vec<RowResult>) -> Self {
        let count = |outcome| results.iter().filter(|r| r.status == outcome).count();
        let (created, updated, unchanged, failed) = (
            count(RowOutcome::Created),
            count(RowOutcome::Updated),
            count(RowOutcome::Unchanged),
            count(RowOutcome::Error),
        );
        Self { results, created, updated, unchanged, failed }
    }

    /// Every row's errors, named `{list}[{index}].{field}`: the 422 of an atomic batch.
    pub fn field_errors(&self, list: &str) -> Vec<FieldError> {
        self.results
            .iter()
            .flat_map(|row| {
                row.errors.iter().map(move |e| {
                    let field = match e.field.as_str() {
                        "" => format!("{list}[{}]", row.index),
                        field => format!("{list}[{}].{field}", row.index),
                    };
                    FieldError::new(field, &e.message)
                })
            })
            .collect()
    }
}

/// Refuses a batch that is empty or too long, naming `list`.
pub fn check_size(list: &str, rows: usize) -> Result<(), InvoiceError> {
    match rows {
        0 => Err(InvoiceError::invalid(list, "holds no rows")),
        n if n > MAX_ROWS => Err(InvoiceError::invalid(list, format!("holds {n} rows; at most {MAX_ROWS}"))),
        _ => Ok(()),
    }
}

/// The error of a row whose `(source, external_id)` an earlier row of the batch has.
fn duplicate_of(first: usize) -> FieldError {
    FieldError::new("external_id", format!("appears earlier in this batch (row {first}); send each once"))
}

/// Marks rows repeating an earlier row's key; returns each row's key, or the row's errors.
pub(super) fn keys<'a>(
    rows: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Vec<Result<(String, String), Vec<FieldError>>> {
    let mut seen: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    rows.enumerate()
        .map(|(index, (source, external_id))| {
            let Some(external_id) = external_id else {
                return Err(vec![FieldError::new(
                    "external_id",
                    "is required in a batch: it is the key rows are upserted by",
                )]);
            };
            let key = (source.unwrap_or("api").to_owned(), external_id.to_owned());
            if let Some(first) = seen.get(&key) {
                return Err(vec![duplicate_of(*first)]);
            }
            seen.insert(key.clone(), index);
            Ok(key)
        })
        .collect()
}

/// A row's result from its outcome; a database failure other than a row's own conflict fails
/// the whole batch.
fn row_result(
    index: usize,
    external_id: Option<String>,
    outcome: Result<(String, RowOutcome), InvoiceError>,
) -> Result<RowResult, InvoiceError> {
    Ok(match outcome {
        Ok((id, status)) => RowResult { index, status, id: Some(id), external_id, errors: Vec::new() },
        Err(InvoiceError::Invalid(errors)) => {
            RowResult { index, status: RowOutcome::Error, id: None, external_id, errors }
        }
        Err(InvoiceError::Conflict(message)) => RowResult {
            index,
            status: RowOutcome::Error,
            id: None,
            external_id,
            errors: vec![FieldError::new("", message)],
        },
        Err(error @ InvoiceError::Database(_)) => return Err(error),
    })
}

/// Upserts customers by `external_id`, each row in a savepoint of `tx`.
pub async fn upsert_customers(
    tx: &mut PgConnection,
    tenant: &TenantId,
    rows: Vec<NewCustomer>,
) -> Result<BatchResult, InvoiceError> {
    check_size("customers", rows.len())?;
    let keys = keys(rows.iter().map(|r| (r.source.as_deref(), r.external_id.as_deref())));
    let mut results = Vec::with_capacity(rows.len());
    for (index, (row, key)) in rows.into_iter().zip(keys).enumerate() {
        let external_id = row.external_id.clone();
        let outcome = match key {
            Err(errors) => Err(InvoiceError::Invalid(errors)),
            Ok(_) => {
                let mut savepoint = tx.begin().await?;
                match upsert_customer_spec(&mut savepoint, tenant, row).await {
                    Ok((customer, outcome)) => {
                        savepoint.commit().await?;
                        Ok((customer.id, outcome))
                    }
                    Err(error) => {
                        savepoint.rollback().await?;
                        Err(error)
                    }
                }
            }
        };
        results.push(row_result(index, external_id, outcome)?);
    }
    Ok(BatchResult::of(results))
}

/// The invoice with its inline `customer` (if any) created or updated by the customer's
/// `external_id` under the invoice's `source`, and pointed at by `customer_id`.
pub async fn with_inline_customer(
    conn: &mut PgConnection,
    tenant: &TenantId,
    mut new: NewInvoice,
) -> Result<NewInvoice, InvoiceError> {
    let Some(mut inline) = new.customer.take() else { return Ok(new) };
    if new.customer_id.is_some() {
        return Err(InvoiceError::invalid("customer", "give customer_id or an inline customer, not both"));
    }
    if inline.external_id.is_none() {
        return Err(InvoiceError::invalid(
            "customer.external_id",
            "is required: it is the key the customer is upserted by",
        ));
    }
    inline.source = new.source.clone();
    let (customer, _) = upsert_customer_spec(conn, tenant, *inline).await.map_err(|error| match error {
        InvoiceError::Invalid(errors) => InvoiceError::Invalid(
            errors.into_iter().map(|e| FieldError::new(format!("customer.{}", e.field), e.message)).collect(),
        ),
        other => other,
    })?;
    new.customer_id = Some(customer.id);
    Ok(new)
}

/// Creates or updates the customer with the row's `(source, external_id)`.
async fn upsert_customer_spec(
    conn: &mut PgConnection,
    tenant: &TenantId,
    row: NewCustomer,
) -> Result<(Customer, RowOutcome), InvoiceError> {
    let spec = row.check().map_err(InvoiceError::Invalid)?;
    let existing: Option<Customer> = sqlx::query_as(&format!(
        "select {} from customers where tenant_id = $1 and source = $2 and external_id = $3 for update",
        customer::CUSTOMER_COLUMNS
    ))
    .bind(tenant.as_str())
    .bind(&spec.source)
    .bind(&spec.external_id)
    .fetch_optional(&mut *conn)
    .await?;
    match existing {
        None => Ok((customer::create(conn, tenant, &spec).await?, RowOutcome::Created)),
        Some(current) => {
            let (updated, changed) = customer::update(conn, tenant, &current, &spec).await?;
            Ok((updated, if changed { RowOutcome::Updated } else { RowOutcome::Unchanged }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_key_is_required_and_each_key_comes_once() {
        let rows = [(None, Some("a")), (Some("api"), Some("a")), (Some("crm"), Some("a")), (None, None)];
        let keys = keys(rows.into_iter());
        assert_eq!(keys[0], Ok(("api".into(), "a".into())));
        assert_eq!(keys[1].as_ref().unwrap_err()[0].message, "appears earlier in this batch (row 0); send each once");
        assert_eq!(keys[2], Ok(("crm".into(), "a".into())), "another source, another key");
        assert_eq!(keys[3].as_ref().unwrap_err()[0].field, "external_id");
    }

    #[test]
    fn batches_hold_one_to_a_thousand_rows() {
        assert!(check_size("invoices", 0).is_err());
        assert!(check_size("invoices", 1).is_ok());
        assert!(check_size("invoices", MAX_ROWS).is_ok());
        assert!(
            matches!(check_size("invoices", MAX_ROWS + 1), Err(InvoiceError::Invalid(e)) if e[0].message.contains("1001"))
        );
    }
}
