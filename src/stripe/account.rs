//! What Stripe says about a key before it is kept: whose account it opens and which reads a
//! restricted key lacks; and the webhook endpoint Payymo registers at that account (and removes
//! on disconnect).

use secrecy::SecretString;

use super::{
    StripeError,
    connection::{KeyShape, READ_PERMISSIONS, hint},
};
use crate::providers::stripe::{Stripe, StripeCallError, StripeClients};

/// The events Payymo's endpoint subscribes to.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.succeeded",
    "charge.failed",
    "charge.captured",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "refund.created",
    "refund.updated",
    "payout.created",
    "payout.updated",
    "payout.paid",
    "payout.failed",
    "payout.reconciliation_completed",
    "balance.available",
];

/// What Stripe said about a key: its account and the reads it lacks.
pub struct Checked {
    pub shape: KeyShape,
    pub account_id: String,
    pub account_name: Option<String>,
    pub missing: Vec<String>,
}

/// Asks Stripe whose account `key` opens and which of [`READ_PERMISSIONS`] it lacks.
pub async fn check_with_stripe(
    clients: &StripeClients,
    key: &str,
    shape: KeyShape,
) -> Result<(Checked, Stripe), StripeError> {
    let stripe = clients.client(shape.live, SecretString::from(key.to_owned()), &hint(key));
    let refused = |error: StripeCallError| match error {
        StripeCallError::Unauthorized(message) => {
            StripeError::invalid("api_key", format!("Stripe refused the key: {message}"))
        }
        StripeCallError::Forbidden(message) => StripeError::invalid(
            "api_key",
            format!("the key cannot read its own account ({message}); give it the Account: read permission"),
        ),
        other => other.into(),
    };
    let account = stripe.get("account", &[]).await.map_err(refused)?;
    let account_id = account["id"].as_str().unwrap_or_default().to_owned();
    if account_id.is_empty() {
        return Err(StripeError::Unavailable("Stripe answered GET /v1/account without an id".into()));
    }
    let account_name = account["business_profile"]["name"]
        .as_str()
        .or_else(|| account["settings"]["dashboard"]["display_name"].as_str())
        .map(str::to_owned);
    let missing = if shape.restricted { missing_reads(&stripe).await? } else { Vec::new() };
    Ok((Checked { shape, account_id, account_name, missing }, stripe))
}

async fn missing_reads(stripe: &Stripe) -> Result<Vec<String>, StripeError> {
    let mut missing = Vec::new();
    for (permission, path) in READ_PERMISSIONS {
        match stripe.get(path, &[("limit", "1")]).await {
            Ok(_) => {}
            Err(StripeCallError::Forbidden(_)) => missing.push((*permission).to_owned()),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(missing)
}

/// A registered endpoint's id and signing secret.
pub struct Registered {
    pub endpoint_id: String,
    pub secret: SecretString,
}

/// Registers `url` at the account for [`WEBHOOK_EVENTS`]; `Ok(Err(reason))` when the key may not
/// create webhook endpoints (a restricted key without that permission).
pub async fn register_endpoint(
    stripe: &Stripe,
    url: &str,
    connection_id: &str,
) -> Result<Result<Registered, String>, StripeError> {
    let mut form: Vec<(&str, &str)> =
        vec![("url", url), ("description", "Payymo"), ("metadata[payymo_connection]", connection_id)];
    form.extend(WEBHOOK_EVENTS.iter().map(|event| ("enabled_events[]", *event)));
    let idempotency_key = format!("payymo-webhook-{connection_id}-{}", uuid::Uuid::new_v4());
    match stripe.post("webhook_endpoints", &form, &idempotency_key).await {
        Ok(endpoint) => {
            let endpoint_id = endpoint["id"].as_str().unwrap_or_default().to_owned();
            let secret = endpoint["secret"].as_str().unwrap_or_default().to_owned();
            if endpoint_id.is_empty() || secret.is_empty() {
                return Err(StripeError::Unavailable(
                    "Stripe created a webhook endpoint without an id or secret".into(),
                ));
            }
            Ok(Ok(Registered { endpoint_id, secret: SecretString::from(secret) }))
        }
        Err(StripeCallError::Forbidden(message)) => Ok(Err(format!(
            "the key may not create webhook endpoints ({message}); grant it Webhook Endpoints: write and PUT it \
             again. Until then changes are caught by polling."
        ))),
        Err(error) => Err(error.into()),
    }
}

/// Removes the endpoint Payymo registered; already gone counts as done.
pub async fn unregister_endpoint(stripe: &Stripe, endpoint_id: &str) -> Result<(), StripeError> {
    Ok(stripe.delete(&format!("webhook_endpoints/{endpoint_id}")).await?)
}
