//! Stripe as a source of payments and payouts: a tenant connects its Stripe account with a key
//! ([`connection`]) or with Stripe Connect OAuth ([`oauth`]). Calls go through the defended
//! client in `providers::stripe`.

pub mod account;
pub mod apply;
pub mod backfill;
pub mod balance;
pub mod balance_transactions;
pub mod charge;
pub mod connect;
pub mod connection;
pub mod inbox;
pub mod oauth;
pub mod oauth_state;
pub mod payments;
pub mod payouts;
pub mod poll;

use crate::{domain::validation::FieldError, providers::stripe::StripeCallError};

/// Why a Stripe operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// The input breaks a rule; each entry names the field.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<FieldError>),
    /// The tenant has no Stripe account connected.
    #[error("no Stripe account is connected")]
    NotConnected,
    /// Stripe could not be reached or kept failing: try again later.
    #[error("{0}")]
    Unavailable(String),
    /// Another request changed the connection at the same moment: try again.
    #[error("{0}")]
    Conflict(String),
    /// The card was declined (Stripe's `card_error`): `code` is Stripe's decline code.
    #[error("{message}")]
    Declined { code: String, message: String },
    /// Stripe holds another request under the same idempotency key.
    #[error("{0}")]
    IdempotencyReused(String),
    /// Stripe refused what we asked in a way that needs the caller to change something.
    #[error("{0}")]
    Refused(String),
    /// A Connect OAuth authorization cannot be finished: its state was altered or expired, the
    /// account holder refused, or Stripe refused the code. Start again.
    #[error("{0}")]
    Authorization(String),
    /// The deployment is not set up for this (no live Connect platform).
    #[error("{0}")]
    NotConfigured(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the key ring: {0}")]
    Keys(String),
}

/// The key ring that seals keys and secrets; unavailable while the database is.
pub(crate) async fn key_ring(state: &crate::state::AppState) -> Result<&crate::crypto::KeyRing, StripeError> {
    state.keys.get().await.map_err(|e| StripeError::Keys(e.to_string()))
}

impl From<crate::crypto::CryptoError> for StripeError {
    fn from(error: crate::crypto::CryptoError) -> Self {
        Self::Keys(error.to_string())
    }
}

impl StripeError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<StripeCallError> for StripeError {
    fn from(error: StripeCallError) -> Self {
        match error {
            StripeCallError::Unavailable(detail) => Self::Unavailable(format!("Stripe is unavailable: {detail}")),
            StripeCallError::Malformed(detail) => Self::Unavailable(format!("Stripe answered strangely: {detail}")),
            other => Self::Refused(other.to_string()),
        }
    }
}

/// The tenant's connected account and a client for it, to call Stripe on the tenant's behalf:
/// [`StripeError::NotConnected`] when there is none, or when it failed (its key must be
/// replaced first).
pub(crate) async fn client_for(
    state: &crate::state::AppState,
    tenant: &crate::domain::ids::TenantId,
) -> Result<(connection::Sealed, crate::providers::stripe::Stripe), StripeError> {
    let mut tx = crate::db::tenant::begin_tenant(&state.db, tenant).await?;
    let sealed = connection::sealed_of(&mut tx, tenant).await?;
    crate::db::tenant::end_read(tx);
    let sealed = sealed.ok_or(StripeError::NotConnected)?;
    if sealed.status != connection::StripeConnectionStatus::Connected {
        return Err(StripeError::Refused(
            "the Stripe connection has failed; PUT a working key to /api/v1/stripe/connection first".into(),
        ));
    }
    let key = connection::key_of(&sealed.key_sealed, key_ring(state).await?, tenant)?;
    let stripe = state.stripe.client(sealed.livemode, key, &sealed.account_id);
    Ok((sealed, stripe))
}
