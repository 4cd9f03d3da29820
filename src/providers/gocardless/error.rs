//! What can go wrong talking to GoCardless, sorted by what the caller should do about it.

use std::time::Duration;

/// A failed GoCardless call, after the client's own retries.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// 5xx, timeouts, dropped connections, or the circuit is open: try again later.
    #[error("GoCardless is unavailable: {detail}")]
    Unavailable { detail: String, retry_after: Option<Duration> },
    /// The company-level rate limit, still exceeded after waiting as long as we may.
    #[error("GoCardless rate limit exceeded; retry in {}s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// The bank's daily budget of calls for this account and endpoint is spent.
    #[error("the bank's daily limit of calls for this account is spent; it resets in {}s", resets_in.as_secs())]
    BudgetSpent { resets_in: Duration },
    /// The end user's consent has expired or was revoked (401 `AccessExpiredError`).
    #[error("the bank connection's consent has expired or was revoked")]
    AccessExpired,
    /// The account was suspended by the provider after repeated errors (409).
    #[error("the bank account is suspended by the provider")]
    Suspended,
    /// Our own secret_id/secret_key were refused.
    #[error("GoCardless refused the credentials: {0}")]
    Credentials(String),
    /// The provider does not know the thing we asked about (404).
    #[error("GoCardless: not found: {0}")]
    NotFound(String),
    /// Any other refusal (4xx): the request needs changing, not repeating.
    #[error("GoCardless refused the request ({status}): {detail}")]
    Rejected { status: u16, detail: String },
    /// The answer did not have the documented shape.
    #[error("GoCardless sent an unexpected response: {0}")]
    Malformed(String),
}

impl ProviderError {
    /// Whether doing the same thing later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::RateLimited { .. } | Self::BudgetSpent { .. })
    }
}
