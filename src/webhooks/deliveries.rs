//! Deliveries as the API shows them: one event to one endpoint, with every attempt.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use crate::domain::{
    ids::{EventId, TenantId, WebhookDeliveryId, WebhookEndpointId},
    states::DeliveryStatus,
};

/// One attempt to deliver: what was sent when, and what came back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttempt {
    /// 1 for the first attempt.
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    /// From sending to the answer (or the error).
    pub latency_ms: i32,
    /// The receiver's HTTP status; null when no answer came (refused address, connection error,
    /// timeout).
    pub status_code: Option<i32>,
    /// True for a 2xx answer.
    pub succeeded: bool,
    /// What went wrong, e.g. `answered 500`, `timed out`, or why the address was refused.
    pub error: Option<String>,
    /// The first bytes of the receiver's answer (at most 1 KiB).
    pub response_body: Option<String>,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "whd_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "event_id": "evt_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "event_type": "transaction.created",
    "endpoint_id": "we_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "reason": "event",
    "status": "succeeded",
    "attempt_count": 2,
    "next_attempt_at": null,
    "last_status_code": 200,
    "last_error": null,
    "created_at": "2026-11-21T09:30:00Z",
    "completed_at": "2026-11-21T09:30:05Z",
    "attempts": [
        {"attempt": 1, "started_at": "2026-11-21T09:30:00Z", "latency_ms": 41, "status_code": 500,
         "succeeded": false, "error": "answered 500", "response_body": "upstream down"},
        {"attempt": 2, "started_at": "2026-11-21T09:30:05Z", "latency_ms": 12, "status_code": 200,
         "succeeded": true, "error": null, "response_body": "ok"}
    ]
}))]
pub struct WebhookDelivery {
    /// `whd_…`
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    /// Why it was made: `event` (fan-out of a new event), `test` (a ping), `redeliver` or
    /// `recover` (sent again on request).
    pub reason: String,
    /// `failed`: every attempt failed, or the receiver answered 410 Gone.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempt_count: i32,
    /// When a pending delivery is next tried.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Every attempt, first to last.
    #[schema(value_type = Vec<WebhookAttempt>)]
    pub attempts: sqlx::types::Json<Vec<WebhookAttempt>>,
}

/// Which deliveries to list.
#[derive(Debug, Default)]
pub struct DeliveryFilter {
    pub endpoint: Option<WebhookEndpointId>,
    pub event: Option<EventId>,
    pub status: Option<DeliveryStatus>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only deliveries with an id below this one (the page cursor).
    pub before: Option<WebhookDeliveryId>,
}

const DELIVERY_SELECT: &str = "select d.id, d.event_id, e.event_type, d.endpoint_id, d.reason, d.status,
        d.attempts as attempt_count,
        case when d.status = 'pending' then d.next_attempt_at end as next_attempt_at,
        d.last_status_code, d.last_error, d.created_at, d.completed_at,
        coalesce((select json_agg(json_build_object('attempt', a.attempt, 'started_at', a.started_at,
                      'latency_ms', a.latency_ms, 'status_code', a.status_code, 'succeeded', a.succeeded,
                      'error', a.error, 'response_body', a.response_body) order by a.attempt)
                  from webhook_attempts a where a.tenant_id = d.tenant_id and a.delivery_id = d.id),
                 '[]') as attempts
    from webhook_deliveries d
    join events e on e.tenant_id = d.tenant_id and e.id = d.event_id";

/// Deliveries matching `filter`, newest first, at most `limit`.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    filter: &DeliveryFilter,
    limit: i64,
) -> Result<Vec<WebhookDelivery>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{DELIVERY_SELECT}
         where d.tenant_id = $1
           and ($2::text is null or d.endpoint_id = $2) and ($3::text is null or d.event_id = $3)
           and ($4::text is null or d.status = $4)
           and ($5::timestamptz is null or d.created_at >= $5) and ($6::timestamptz is null or d.created_at < $6)
           and ($7::text is null or d.id < $7)
         order by d.id desc limit $8"
    ))
    .bind(tenant.as_str())
    .bind(filter.endpoint.as_ref().map(WebhookEndpointId::as_str))
    .bind(filter.event.as_ref().map(EventId::as_str))
    .bind(filter.status)
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.before.as_ref().map(WebhookDeliveryId::as_str))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The deliveries with these ids, newest first.
pub async fn by_ids(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[String],
) -> Result<Vec<WebhookDelivery>, sqlx::Error> {
    sqlx::query_as(&format!("{DELIVERY_SELECT} where d.tenant_id = $1 and d.id = any($2) order by d.id desc"))
        .bind(tenant.as_str())
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// Creates a delivery of `event` to `endpoint` for `reason`, due now. Returns its id.
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    event: &str,
    endpoint: &str,
    reason: &str,
) -> Result<String, sqlx::Error> {
    let id = WebhookDeliveryId::generate();
    sqlx::query(
        "insert into webhook_deliveries (tenant_id, id, event_id, endpoint_id, reason) values ($1, $2, $3, $4, $5)",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(event)
    .bind(endpoint)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(id.as_str().to_owned())
}
