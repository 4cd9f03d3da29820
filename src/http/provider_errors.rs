//! What the bank feeds' errors (the provider's, the client's, a connection's) mean to an API
//! client: each refusal as a problem with its code, detail and `Retry-After`.

use axum::http::header::RETRY_AFTER;

use super::error::{ApiError, ErrorCode};
use crate::{
    bank::connections::BankError,
    providers::gocardless::{ClientError, ProviderError},
};

impl From<BankError> for ApiError {
    fn from(error: BankError) -> Self {
        match error {
            BankError::Invalid(errors) => ApiError::validation(errors),
            BankError::NotFound => ApiError::not_found(),
            BankError::Expired => expired_error(),
            BankError::NotLinked(detail) => ApiError::new(ErrorCode::BankConnectionNotLinked, detail),
            BankError::BudgetSpent { resets_in_seconds } => budget_spent(resets_in_seconds),
            BankError::Provider(error) => error.into(),
            BankError::Client(error) => error.into(),
            BankError::Database(error) => error.into(),
            BankError::Internal(error) => ApiError::Internal(error),
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        match error {
            ProviderError::Unavailable { detail, retry_after } => {
                let seconds = retry_after.map_or(30, |d| d.as_secs().max(1));
                ApiError::new(
                    ErrorCode::ProviderUnavailable,
                    format!("the bank data provider is unavailable ({detail}); retry in {seconds} s"),
                )
                .with_header(RETRY_AFTER, &seconds.to_string())
            }
            ProviderError::RateLimited { retry_after } => ApiError::new(
                ErrorCode::ProviderUnavailable,
                format!("the bank data provider's rate limit is reached; retry in {} s", retry_after.as_secs()),
            )
            .with_header(RETRY_AFTER, &retry_after.as_secs().max(1).to_string()),
            ProviderError::BudgetSpent { resets_in } => budget_spent(resets_in.as_secs()),
            ProviderError::AccessExpired => expired_error(),
            ProviderError::Suspended => ApiError::new(
                ErrorCode::BankConnectionNotLinked,
                "the bank has suspended access to this account after repeated errors; create a new bank connection",
            ),
            ProviderError::Credentials(detail) => ApiError::new(
                ErrorCode::ProviderError,
                format!(
                    "GoCardless refused our credentials ({detail}); check GOCARDLESS_SECRET_ID/KEY or the tenant's provider credentials"
                ),
            ),
            ProviderError::NotFound(detail)
            | ProviderError::Rejected { detail, .. }
            | ProviderError::Malformed(detail) => {
                ApiError::new(ErrorCode::ProviderError, format!("the bank data provider refused the request: {detail}"))
            }
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::NotConfigured => ApiError::new(ErrorCode::ProviderNotConfigured, error.to_string()),
            ClientError::Database(e) => e.into(),
            ClientError::Unreadable(e) => ApiError::Internal(e.into()),
            ClientError::KeyRing(e) => ApiError::Internal(anyhow::anyhow!(e)),
        }
    }
}

fn expired_error() -> ApiError {
    ApiError::new(
        ErrorCode::BankConnectionExpired,
        "the bank connection has expired: ask the account holder to re-authorise by creating a new bank connection",
    )
}

/// The refusal when today's calls are spent.
fn budget_spent(resets_in_seconds: u64) -> ApiError {
    let seconds = resets_in_seconds.max(1);
    ApiError::new(
        ErrorCode::SyncBudgetExhausted,
        format!(
            "the bank allows only a few calls per account per day and today's are spent; try again in {seconds} s (scheduled syncs resume by themselves)"
        ),
    )
    .with_header(RETRY_AFTER, &seconds.to_string())
}
