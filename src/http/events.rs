//! Events: what happened, newest first. Integrations poll this (Zapier's sample list is
//! `GET /api/v1/events?type=…&limit=3`) and webhooks deliver the same objects.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{Probe, not_found},
    auth::{ClientIp, Needs, scopes::WebhooksRead},
    error::{ApiError, Problem},
    json::ApiJson,
    pagination::{self, Page},
    query::ApiQuery,
    request_id::RequestId,
};
use crate::{
    app::AppState,
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::ids::EventId,
    events::{EVENT_COLUMNS, EVENT_TYPES, Event},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(get))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventFilters {
    /// Only events of this type, e.g. `api_key.revoked`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Events at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Events before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 25).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List events
///
/// Newest first, with stable ids. Event types: `api_key.created`, `api_key.revoked`,
/// `api_key.rotated`, `oauth_client.created`, `oauth_client.revoked`, `member.added`,
/// `member.updated`, `member.removed` (more arrive with bank feeds, transactions and payments).
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(EventFilters),
    responses((status = 200, body = Page<Event>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["webhooks:read"]), ("bearer" = ["webhooks:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksRead>,
    ApiQuery(f): ApiQuery<EventFilters>,
) -> Result<ApiJson<Page<Event>>, ApiError> {
    if let Some(event_type) = &f.event_type
        && !EVENT_TYPES.contains(&event_type.as_str())
    {
        return Err(ApiError::invalid_field(
            "type",
            format!("is not an event type; known types: {}", EVENT_TYPES.join(", ")),
        ));
    }
    if let (Some(since), Some(until)) = (f.since, f.until)
        && since >= until
    {
        return Err(ApiError::invalid_field("until", "must be after since"));
    }
    let limit = pagination::limit(f.limit)?;
    let after = pagination::after(f.cursor.as_deref(), EventId::parse)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows: Vec<Event> = sqlx::query_as(&format!(
        "select {EVENT_COLUMNS} from events
         where tenant_id = $1 and ($2::text is null or event_type = $2)
           and ($3::timestamptz is null or occurred_at >= $3) and ($4::timestamptz is null or occurred_at < $4)
           and ($5::text is null or id < $5)
         order by id desc limit $6"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(&f.event_type)
    .bind(f.since)
    .bind(f.until)
    .bind(after.as_ref().map(EventId::as_str))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    end_read(tx);
    Ok(ApiJson(pagination::page(rows, limit, |e| e.id.clone())))
}

/// Get an event
#[utoipa::path(
    get,
    path = "/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "The event's id (`evt_…`)")),
    responses((status = 200, body = Event), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["webhooks:read"]), ("bearer" = ["webhooks:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksRead>,
    Path(id): Path<String>,
    ip: ClientIp,
    request_id: RequestId,
) -> Result<ApiJson<Event>, ApiError> {
    let id = EventId::parse(&id).ok_or_else(ApiError::not_found)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let event: Option<Event> =
        sqlx::query_as(&format!("select {EVENT_COLUMNS} from events where tenant_id = $1 and id = $2"))
            .bind(principal.tenant.id.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    end_read(tx);
    match event {
        Some(event) => Ok(ApiJson(event)),
        None => Err(not_found(&state, &principal, Probe::Events, id.as_str(), ip, &request_id).await),
    }
}
