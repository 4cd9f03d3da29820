//! Taking a card payment and refunding one at the tenant's Stripe account, through Payymo. The
//! caller's `Idempotency-Key` is required and is passed on to Stripe, derived per tenant and
//! credential (so two tenants' keys never collide there): a request retried after Payymo
//! crashed between Stripe's answer and its own commit gets Stripe's first answer again, never a
//! second charge. The payment is written as Stripe has it, with its events, as the inbox would.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{
    StripeError,
    payments::{self, Applied, StripePayment},
};
use crate::{db::tenant::begin_tenant, domain::ids::TenantId, providers::stripe::StripeCallError, state::AppState};

/// A card payment to take.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub amount: i64,
    /// ISO 4217, any case.
    pub currency: String,
    pub payment_method: String,
    pub customer: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A refund Stripe made.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "re_3PgafuB7WZ01zgkW0Ab1Cd2E", "payment_id": "ch_3PgafuB7WZ01zgkWXYmPNZs8", "amount": 500,
    "currency": "EUR", "status": "succeeded", "reason": "requested_by_customer",
    "created": "2026-12-04T10:12:00Z"
}))]
pub struct StripeRefund {
    /// Stripe's refund id (`re_…`).
    pub id: String,
    /// The payment refunded (`ch_…`).
    pub payment_id: String,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    /// `succeeded`, `pending`, `failed` or `canceled`.
    pub status: String,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
    pub created: chrono::DateTime<Utc>,
}

/// The key Stripe sees for the caller's `idempotency_key`: a digest of the tenant, the
/// credential, the operation and the caller's key.
pub fn stripe_key(tenant: &TenantId, credential: &str, operation: &str, idempotency_key: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}\n{credential}\n{operation}\n{idempotency_key}"));
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("payymo_{hex}")
}

/// Creates and confirms a payment intent; returns the payment as written.
pub async fn create(
    state: &AppState,
    tenant: &TenantId,
    stripe_key: &str,
    new: &NewPayment,
) -> Result<StripePayment, StripeError> {
    let (sealed, stripe) = super::client_for(state, tenant).await?;
    let amount = new.amount.to_string();
    let currency = new.currency.to_ascii_lowercase();
    let mut form: Vec<(String, String)> = vec![
        ("amount".into(), amount),
        ("currency".into(), currency),
        ("payment_method".into(), new.payment_method.clone()),
        ("payment_method_types[]".into(), "card".into()),
        ("confirm".into(), "true".into()),
    ];
    form.extend(new.customer.iter().map(|c| ("customer".into(), c.clone())));
    form.extend(new.description.iter().map(|d| ("description".into(), d.clone())));
    form.extend(new.metadata.iter().map(|(k, v)| (format!("metadata[{k}]"), v.clone())));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let intent = stripe.post("payment_intents", &form, stripe_key).await.map_err(refusal)?;
    let charge = intent["latest_charge"]
        .as_str()
        .ok_or_else(|| StripeError::Unavailable("Stripe confirmed the payment without a charge".into()))?;
    write(state, tenant, &sealed.id, &stripe, charge).await
}

/// Refunds `amount` (all that is left when `None`) of the tenant's payment `payment_id`.
pub async fn refund(
    state: &AppState,
    tenant: &TenantId,
    stripe_key: &str,
    payment_id: &str,
    amount: Option<i64>,
    reason: Option<&str>,
) -> Result<Option<StripeRefund>, StripeError> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let known = payments::get(&mut tx, tenant, payment_id).await?;
    crate::db::tenant::end_read(tx);
    if known.is_none() {
        return Ok(None);
    }
    let (sealed, stripe) = super::client_for(state, tenant).await?;
    let amount = amount.map(|a| a.to_string());
    let mut form = vec![("charge", payment_id)];
    form.extend(amount.as_deref().map(|a| ("amount", a)));
    form.extend(reason.map(|r| ("reason", r)));
    let made = stripe.post("refunds", &form, stripe_key).await.map_err(refusal)?;
    write(state, tenant, &sealed.id, &stripe, payment_id).await?;
    Ok(Some(StripeRefund {
        id: made["id"].as_str().unwrap_or_default().to_owned(),
        payment_id: payment_id.to_owned(),
        amount: made["amount"].as_i64().unwrap_or(0),
        currency: made["currency"].as_str().unwrap_or_default().to_ascii_uppercase(),
        status: made["status"].as_str().unwrap_or("pending").to_owned(),
        reason: made["reason"].as_str().map(str::to_owned),
        created: made["created"].as_i64().and_then(|s| chrono::DateTime::from_timestamp(s, 0)).unwrap_or_else(Utc::now),
    }))
}

/// Fetches the charge as Stripe has it now and writes it with its events.
async fn write(
    state: &AppState,
    tenant: &TenantId,
    connection_id: &str,
    stripe: &crate::providers::stripe::Stripe,
    charge_id: &str,
) -> Result<StripePayment, StripeError> {
    let charge = stripe.get(&format!("charges/{charge_id}"), &[("expand[]", "balance_transaction")]).await?;
    let fee = charge["balance_transaction"]["fee"].as_i64();
    if charge["balance_transaction"].is_object() {
        let txn = [charge["balance_transaction"].clone()];
        let mut tx = begin_tenant(&state.db, tenant).await?;
        super::balance_transactions::keep(&mut tx, tenant, connection_id, None, &txn).await?;
        tx.commit().await?;
    }
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let applied = payments::apply_charge(&mut tx, tenant, connection_id, &charge, fee, Utc::now()).await?;
    let payment = match applied {
        Applied::Changed { now, before } => {
            payments::announce(&mut tx, tenant, &now, before.as_deref()).await?;
            *now
        }
        Applied::Unchanged => payments::get(&mut tx, tenant, charge_id)
            .await?
            .ok_or_else(|| StripeError::Unavailable("the payment vanished while it was written".into()))?,
    };
    tx.commit().await?;
    Ok(payment)
}

/// What Stripe's refusal of a payment or refund means for the caller.
fn refusal(error: StripeCallError) -> StripeError {
    match error {
        StripeCallError::Rejected { kind, code, message, .. } if kind == "card_error" => {
            StripeError::Declined { code: code.unwrap_or_else(|| "card_declined".into()), message }
        }
        StripeCallError::Rejected { kind, message, .. } if kind == "idempotency_error" => {
            StripeError::IdempotencyReused(message)
        }
        StripeCallError::Rejected { status: 400 | 404, param: Some(param), message, .. } => {
            let field = match param.as_str() {
                "charge" | "payment_intent" => "id".to_owned(),
                other => other.split('[').next().unwrap_or(other).to_owned(),
            };
            StripeError::invalid(field, format!("Stripe: {message}"))
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_stripe_sees_differs_by_tenant_credential_and_operation() {
        let (a, b) = (TenantId::generate(), TenantId::generate());
        let key = stripe_key(&a, "key_1", "payment", "order-1");
        assert_eq!(key, stripe_key(&a, "key_1", "payment", "order-1"), "stable for a retry");
        assert!(key.starts_with("payymo_") && key.len() == 47, "{key}");
        for other in [
            stripe_key(&b, "key_1", "payment", "order-1"),
            stripe_key(&a, "key_2", "payment", "order-1"),
            stripe_key(&a, "key_1", "refund ch_1", "order-1"),
            stripe_key(&a, "key_1", "payment", "order-2"),
        ] {
            assert_ne!(key, other);
        }
    }
}
