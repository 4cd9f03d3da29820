//! The connected account's Stripe balance, read from Stripe when asked (it changes with every
//! payment, so Payymo does not keep a copy that could be stale).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::StripeError;
use crate::{domain::ids::TenantId, state::AppState};

/// The account's balance per currency, as Stripe has it now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "account_id": "acct_1PgafTB7WZ01zgkW", "livemode": false,
    "available": [{"currency": "EUR", "amount": 9536}], "pending": [{"currency": "EUR", "amount": 1912}],
    "fetched_at": "2026-12-04T09:30:00.120374Z"
}))]
pub struct StripeBalance {
    pub account_id: String,
    pub livemode: bool,
    /// Funds that the next payout can take, per currency.
    pub available: Vec<Funds>,
    /// Funds not yet available (card payments settle after a few days), per currency.
    pub pending: Vec<Funds>,
    /// When Payymo read it from Stripe.
    pub fetched_at: DateTime<Utc>,
}

/// An amount in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Funds {
    /// ISO 4217, uppercase.
    pub currency: String,
    /// Minor units, signed (a balance can be negative after refunds and disputes).
    pub amount: i64,
}

/// Reads the tenant's balance from Stripe.
pub async fn current(state: &AppState, tenant: &TenantId) -> Result<StripeBalance, StripeError> {
    let (sealed, stripe) = super::client_for(state, tenant).await?;
    let balance = stripe.get("balance", &[]).await?;
    let funds = |list: &Value| -> Vec<Funds> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|f| Funds {
                currency: f["currency"].as_str().unwrap_or_default().to_ascii_uppercase(),
                amount: f["amount"].as_i64().unwrap_or(0),
            })
            .collect()
    };
    Ok(StripeBalance {
        account_id: sealed.account_id,
        livemode: sealed.livemode,
        available: funds(&balance["available"]),
        pending: funds(&balance["pending"]),
        fetched_at: Utc::now(),
    })
}
