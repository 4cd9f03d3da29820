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
pub mod simulate;
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

    /// The audit entry of a decision this actor made on a resource, with its detail.
    pub fn audit_entry(
        &self,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        detail: serde_json::Value,
    ) -> crate::audit::Entry {
        let (actor_type, actor_id) = match self {
            DecidedBy::Engine => ("engine".to_owned(), None),
            DecidedBy::Caller(actor) => (actor.kind().to_owned(), Some(actor.id().to_owned())),
        };
        crate::audit::Entry {
            actor_type,
            credential_id: actor_id.clone(),
            actor_id,
            action: action.into(),
            resource_type: Some(resource_type.into()),
            resource_id: Some(resource_id.into()),
            detail,
            ..Default::default()
        }
    }
}
