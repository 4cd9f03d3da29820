//! Reconciliation: ties bank credits to the invoices and Stripe payouts they pay
//! (docs/reconciliation.md).
//!
//! - [`matches`]: the model. A match groups bank transactions with allocations to invoices and
//!   payouts and typed adjustments, balances per currency or is refused, and keeps each invoice's
//!   `amount_paid` and each transaction's `match_status`. Creating and unmatching are the only
//!   ways either changes.
//! - [`exclusion`]: taking a transaction out of reconciliation, and back.
//! - [`settings`]: each tenant's thresholds, tolerances and signals (defaults when unset).
//! - [`rules`]: each tenant's rules (assign a customer, exclude, prefer) and their pure evaluator.
//! - [`report`]: the end-of-day report: balances, the day's money, what is reconciled, overdue
//!   invoices.
//!
//! Every decision is written to the audit log with its actor and, for the engine's, its reasons
//! and scores.

pub mod engine;
pub mod exclusion;
pub mod matches;
pub mod report;
pub mod rules;
pub mod runs;
pub mod scoring;
pub mod settings;
pub mod suggestions;
pub mod text;

use crate::domain::validation::FieldError;

/// Why a reconciliation operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReconciliationError {
    /// The input breaks a rule; each entry names the field.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<FieldError>),
    /// No such resource for this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change conflicts with the current state (already matched, already paid, a run in
    /// progress). The text says what to do.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl ReconciliationError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Who made a decision: the engine, or an authenticated caller (a user, an API key, an OAuth
/// client). Recorded on the match and in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    Engine,
    Caller(crate::auth::Actor),
}

impl DecidedBy {
    /// `engine`, `user`, `api_key` or `oauth_client`.
    pub fn kind(&self) -> &'static str {
        match self {
            DecidedBy::Engine => "engine",
            DecidedBy::Caller(actor) => actor.kind(),
        }
    }

    /// `engine`, or `kind:id` (`user:usr_…`, `api_key:key_…`).
    pub fn label(&self) -> String {
        match self {
            DecidedBy::Engine => "engine".into(),
            DecidedBy::Caller(actor) => format!("{}:{}", actor.kind(), actor.id()),
        }
    }

    /// The audit entry's actor columns.
    pub fn audit_actor(&self) -> (String, Option<String>) {
        match self {
            DecidedBy::Engine => ("engine".into(), None),
            DecidedBy::Caller(actor) => (actor.kind().into(), Some(actor.id().into())),
        }
    }
}
