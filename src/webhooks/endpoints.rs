//! Webhook endpoints: where a tenant wants its events, which ones, and the endpoint's health.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::signing::SigningSecret;
use crate::{
    crypto::{CryptoError, KeyRing},
    domain::ids::{TenantId, WebhookEndpointId},
    events::EVENT_TYPES,
};

/// Most endpoints one tenant may have.
pub const MAX_ENDPOINTS: i64 = 50;
/// The filter that matches every event type.
pub const ALL_EVENTS: &str = "*";
/// Event types an endpoint cannot subscribe to: pings go only to the endpoint that asked.
const UNSUBSCRIBABLE: &[&str] = &["ping"];

/// A webhook endpoint. Its signing secret is shown once, when the endpoint is created or the
/// secret rotated, and never again.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "we_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "url": "https://erp.example.com/hooks/payymo",
    "description": "ERP sync",
    "event_types": ["transaction.created", "transaction.updated"],
    "metadata": {"team": "finance"},
    "enabled": true,
    "disabled_reason": null,
    "disabled_at": null,
    "failing_since": null,
    "paused_until": null,
    "previous_secret_expires_at": null,
    "created_at": "2026-11-21T09:30:00Z",
    "updated_at": "2026-11-21T09:30:00Z"
}))]
pub struct WebhookEndpoint {
    /// `we_…`
    pub id: String,
    /// Where deliveries are POSTed. `https` for live tenants.
    pub url: String,
    pub description: Option<String>,
    /// The event types delivered here, or `["*"]` for all.
    pub event_types: Vec<String>,
    /// Your own key-value pairs (at most 50 keys of 40 characters, values of 500).
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub metadata: sqlx::types::Json<std::collections::BTreeMap<String, String>>,
    /// Disabled endpoints receive nothing until enabled again; their pending deliveries wait.
    pub enabled: bool,
    /// Why the endpoint was disabled: by a user, after answering `410 Gone`, or after failing
    /// without a break for the configured period (5 days by default).
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// When the current unbroken run of failed attempts started; null while healthy.
    pub failing_since: Option<DateTime<Utc>>,
    /// While in the future, no delivery to the endpoint starts: it answered `Retry-After`, or it
    /// has failed 10 times in a row and is probed after growing pauses (1 s doubling to 60 s)
    /// until an attempt succeeds.
    pub paused_until: Option<DateTime<Utc>>,
    /// While set and in the future, the secret replaced by the last rotation still signs
    /// deliveries alongside the new one.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, metadata, enabled, disabled_reason, \
    disabled_at, failing_since, paused_until, previous_secret_expires_at, created_at, updated_at";

/// An endpoint with its signing secret: the answer to creating one or rotating its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "we_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "url": "https://erp.example.com/hooks/payymo",
    "description": "ERP sync",
    "event_types": ["*"],
    "metadata": {},
    "enabled": true,
    "disabled_reason": null,
    "disabled_at": null,
    "failing_since": null,
    "paused_until": null,
    "previous_secret_expires_at": null,
    "created_at": "2026-11-21T09:30:00Z",
    "updated_at": "2026-11-21T09:30:00Z",
    "secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oDdC0xMjM0NTY3OA=="
}))]
pub struct WebhookEndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// The signing secret (`whsec_` + base64). Shown this once: store it now.
    pub secret: crate::domain::secret::ShownOnce,
}

/// The checks on an event filter: known names or `*`, no duplicates. Returns the problem.
pub fn check_event_types(types: &[String]) -> Result<Vec<String>, String> {
    if types.is_empty() {
        return Err(format!("name at least one event type, or \"{ALL_EVENTS}\" for all"));
    }
    if types.len() > 100 {
        return Err("names at most 100 event types".into());
    }
    let mut kept: Vec<String> = Vec::with_capacity(types.len());
    for name in types {
        let known =
            name == ALL_EVENTS || (EVENT_TYPES.contains(&name.as_str()) && !UNSUBSCRIBABLE.contains(&name.as_str()));
        if !known {
            let catalogue: Vec<&str> = subscribable().collect();
            return Err(format!("\"{name}\" is not an event type; use \"*\" or any of: {}", catalogue.join(", ")));
        }
        if !kept.contains(name) {
            kept.push(name.clone());
        }
    }
    if kept.iter().any(|t| t == ALL_EVENTS) {
        kept = vec![ALL_EVENTS.to_owned()];
    }
    Ok(kept)
}

/// The event types an endpoint can subscribe to.
pub fn subscribable() -> impl Iterator<Item = &'static str> {
    EVENT_TYPES.iter().copied().filter(|t| !UNSUBSCRIBABLE.contains(t))
}

/// The sealing context of an endpoint's secrets: a sealed secret moved to another endpoint or
/// tenant does not open.
pub fn secret_context(tenant: &str, endpoint: &str) -> String {
    format!("webhook_endpoint/{tenant}/{endpoint}")
}

/// Seals `secret` for storage on `endpoint`.
pub fn seal_secret(
    keys: &KeyRing,
    tenant: &TenantId,
    endpoint: &WebhookEndpointId,
    secret: &SigningSecret,
) -> Result<String, CryptoError> {
    keys.seal(&secret_context(tenant.as_str(), endpoint.as_str()), secret.expose().as_bytes())
}

/// Opens a sealed secret of `endpoint`.
pub fn open_secret(keys: &KeyRing, tenant: &str, endpoint: &str, sealed: &str) -> Result<SigningSecret, CryptoError> {
    let bytes = keys.open(&secret_context(tenant, endpoint), sealed)?;
    String::from_utf8(bytes).ok().and_then(|text| SigningSecret::parse(&text)).ok_or(CryptoError::Unreadable)
}

/// Loads one of the tenant's endpoints, optionally locking it for an update.
pub async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &WebhookEndpointId,
    for_update: bool,
) -> Result<Option<WebhookEndpoint>, sqlx::Error> {
    let lock = if for_update { " for update" } else { "" };
    sqlx::query_as(&format!("select {ENDPOINT_COLUMNS} from webhook_endpoints where tenant_id = $1 and id = $2{lock}"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_take_known_names_or_the_wildcard() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(check_event_types(&names(&["transaction.created"])), Ok(names(&["transaction.created"])));
        assert_eq!(check_event_types(&names(&["*", "transaction.created"])), Ok(names(&["*"])));
        assert_eq!(
            check_event_types(&names(&["transaction.created", "transaction.created"])),
            Ok(names(&["transaction.created"]))
        );
        assert!(check_event_types(&[]).is_err());
        assert!(check_event_types(&names(&["transaction.deleted"])).unwrap_err().contains("transaction.deleted"));
        assert!(check_event_types(&names(&["ping"])).is_err(), "pings are not subscribable");
    }
}
