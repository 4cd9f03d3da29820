//! Customers and invoices: the other side of the ledger, what the money in the bank should pay.
//! Tenants push them from their CRM or ERP; reconciliation reads them and keeps `amount_paid`.
//!
//! Every write records its change in the changes feed ([`changes`]) and its event, in the same
//! transaction, and only when something really changed.

pub mod batch;
pub mod changes;
pub mod customer;
pub mod invoice;
mod invoice_batch;
pub mod payments;

use crate::domain::validation::FieldError;

/// Why a customer or invoice operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    /// The input breaks a rule; each entry names the field.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<FieldError>),
    /// The change conflicts with what exists: a number or external id taken, a state that does
    /// not allow it. The text says what to do.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl InvoiceError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// The name of the unique constraint a database error broke, if it is a unique violation.
pub(crate) fn unique_violation(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => db.constraint().map(str::to_owned),
        _ => None,
    }
}

/// Checks a source name: 1 to 100 characters of lowercase letters, digits, `_`, `-` and `.`.
pub(crate) fn check_source(source: &str, errors: &mut Vec<FieldError>) {
    let valid = (1..=100).contains(&source.len())
        && source.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
    if !valid {
        errors.push(FieldError::new("source", "must be 1 to 100 lowercase letters, digits, _, - or ."));
    }
}

/// Checks an external id: 1 to 255 characters.
pub(crate) fn check_external_id(external_id: Option<&str>, errors: &mut Vec<FieldError>) {
    if let Some(id) = external_id
        && !(1..=255).contains(&id.chars().count())
    {
        errors.push(FieldError::new("external_id", "must be 1 to 255 characters"));
    }
}
