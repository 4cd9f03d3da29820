//! Events: what happened to a tenant's resources. Each is recorded in the same transaction as the
//! change it announces (the outbox), so a committed change always has its event and a rolled-back
//! one never does. Webhook delivery and `GET /api/v1/events` read them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use crate::domain::ids::{EventId, TenantId};

/// Every event type this build emits. Filters accept only these.
pub const EVENT_TYPES: &[&str] = &[
    "api_key.created",
    "api_key.revoked",
    "api_key.rotated",
    "oauth_client.created",
    "oauth_client.revoked",
    "member.added",
    "member.updated",
    "member.removed",
    "bank_connection.created",
    "bank_connection.updated",
    "bank_connection.expiring",
    "bank_connection.expired",
    "transaction.created",
    "transaction.updated",
    "transaction.matched",
    "transaction.unmatched",
    "transaction.needs_review",
    "reconciliation.suggested",
    "reconciliation.run.completed",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "invoice.created",
    "invoice.updated",
    "invoice.voided",
    "invoice.deleted",
    "invoice.paid",
    "invoice.partially_paid",
    "stripe_connection.connected",
    "stripe_connection.failed",
    "stripe_connection.disconnected",
    "stripe_payment.succeeded",
    "stripe_payment.failed",
    "stripe_payment.refunded",
    "stripe_payment.disputed",
    "stripe_payout.paid",
    "stripe_payout.failed",
    "webhook_endpoint.disabled",
    "ping",
];

/// An event, in the envelope webhooks deliver.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "evt_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "event_type": "api_key.revoked",
    "timestamp": "2026-11-21T09:30:00.000000Z",
    "tenant_id": "ten_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "data": {"id": "key_0192f3c4d5e6478fa1b2c3d4e5f60718", "label": "erp-sync"}
}))]
pub struct Event {
    /// Stable: receivers de-duplicate on it.
    pub id: String,
    /// One of the catalogue's types, e.g. `api_key.revoked`.
    pub event_type: String,
    /// When the change happened (RFC 3339, UTC).
    #[sqlx(rename = "occurred_at")]
    pub timestamp: DateTime<Utc>,
    pub tenant_id: String,
    /// The resource as it was after the change (secrets never included).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

pub const EVENT_COLUMNS: &str = "id, event_type, occurred_at, tenant_id, data";

/// Records an event inside the transaction (bound to `tenant`) that makes the change.
/// The JSON of an event's `data`. A value that does not serialize is an error, never a silently
/// empty payload.
pub fn payload(data: impl Serialize) -> Result<serde_json::Value, sqlx::Error> {
    serde_json::to_value(data).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

pub async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    event_type: &'static str,
    data: impl Serialize,
) -> Result<Event, sqlx::Error> {
    debug_assert!(EVENT_TYPES.contains(&event_type), "{event_type} is not in EVENT_TYPES");
    let data = payload(data)?;
    sqlx::query_as(&format!(
        "insert into events (tenant_id, id, event_type, data) values ($1, $2, $3, $4) returning {EVENT_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(EventId::generate().as_str())
    .bind(event_type)
    .bind(data)
    .fetch_one(conn)
    .await
}

/// Records one event of `event_type` per payload, in one statement, inside the transaction that
/// makes the changes (a sync creating thousands of transactions).
pub async fn record_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    event_type: &'static str,
    payloads: Vec<serde_json::Value>,
) -> Result<(), sqlx::Error> {
    debug_assert!(EVENT_TYPES.contains(&event_type), "{event_type} is not in EVENT_TYPES");
    if payloads.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = payloads.iter().map(|_| EventId::generate().as_str().to_owned()).collect();
    sqlx::query(
        "insert into events (tenant_id, id, event_type, data)
         select $1, e.id, $2, e.data from unnest($3::text[], $4::jsonb[]) as e(id, data)",
    )
    .bind(tenant.as_str())
    .bind(event_type)
    .bind(&ids)
    .bind(&payloads)
    .execute(conn)
    .await?;
    Ok(())
}
