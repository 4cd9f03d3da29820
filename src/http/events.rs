//! Events: what happened, newest first. Integrations poll this (Zapier's sample list is
//! `GET /api/v1/events?type=…&limit=3`) and webhooks deliver the same objects.

use super::path_id::PathId;
use axum::{
    Extension,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{WebhooksRead, WebhooksWrite},
    },
    error::{ApiError, ErrorCode, Problem},
    json::{ApiJson, OptionalJson},
    pagination::{self, Page},
    query::ApiQuery,
    webhook_endpoints::DeliveryParams,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::ids::{EventId, WebhookEndpointId},
    events::{EVENT_COLUMNS, EVENT_TYPES, Event},
    http::reads::Reader,
    state::AppState,
    webhooks::deliveries::{self, WebhookDelivery},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
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
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<super::pagination::Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl super::query::QueryParams for EventFilters {
    fn problems(&self) -> Vec<super::error::FieldError> {
        let mut problems = Vec::new();
        if let Some(event_type) = &self.event_type
            && !EVENT_TYPES.contains(&event_type.as_str())
        {
            let message = format!("is not an event type; known types: {}", EVENT_TYPES.join(", "));
            problems.push(super::error::FieldError { field: "type".into(), message });
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            problems.push(super::error::FieldError { field: "until".into(), message: "must be after since".into() });
        }
        problems
    }
}

/// List events
///
/// Newest first, with stable ids: the sample list integrations such as Zapier read
/// (`?type=…&limit=3`). The catalogue of event types, with their payloads, is in
/// `docs/webhooks.md`.
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
    reader: Reader,
    principal: Principal,
    _: Needs<WebhooksRead>,
    ApiQuery(f): ApiQuery<EventFilters>,
) -> Result<ApiJson<Page<Event>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(f.limit);
    let after = cursors.after(f.cursor.as_deref(), EventId::parse)?;
    let mut tx = reader.begin(&principal.tenant.id).await?;
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
    Ok(ApiJson(cursors.page(rows, limit, |e| e.id.clone())))
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
    reader: Reader,
    principal: Principal,
    _: Needs<WebhooksRead>,
    PathId(id): PathId<EventId>,
) -> Result<ApiJson<Event>, ApiError> {
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let event: Option<Event> =
        sqlx::query_as(&format!("select {EVENT_COLUMNS} from events where tenant_id = $1 and id = $2"))
            .bind(principal.tenant.id.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    end_read(tx);
    match event {
        Some(event) => Ok(ApiJson(event)),
        None => Err(ApiError::not_found_in(Probe::Events, id.as_str())),
    }
}

/// The event `id` names, or the 404 (recorded as a probe when another tenant has it).
async fn load_event(principal: &Principal, tx: &mut sqlx::PgConnection, id: &EventId) -> Result<Event, ApiError> {
    let event: Option<Event> =
        sqlx::query_as(&format!("select {EVENT_COLUMNS} from events where tenant_id = $1 and id = $2"))
            .bind(principal.tenant.id.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    match event {
        Some(event) => Ok(event),
        None => Err(ApiError::not_found_in(Probe::Events, id)),
    }
}

/// List an event's deliveries
///
/// Its delivery to each endpoint (and any re-sends), newest first, each with every attempt.
/// Filter by `status` and by creation time.
#[utoipa::path(
    get,
    path = "/events/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The event's id (`evt_…`)"), DeliveryParams),
    responses(
        (status = 200, body = Page<WebhookDelivery>),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:read"]), ("bearer" = ["webhooks:read"]))
)]
async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksRead>,
    PathId(id): PathId<EventId>,
    ApiQuery(params): ApiQuery<DeliveryParams>,
) -> Result<ApiJson<Page<WebhookDelivery>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let (mut filter, limit) = params.filter(&cursors)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let event = load_event(&principal, &mut tx, &id).await?;
    filter.event = Some(EventId::from_db(event.id));
    let rows = deliveries::list(&mut tx, &principal.tenant.id, &filter, i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |d| d.id.clone())))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"endpoint_id": "we_0192f3c4d5e6478fa1b2c3d4e5f60718"}))]
pub struct Redeliver {
    /// Only to this endpoint (`we_…`), whether or not its filter names the event's type. Absent:
    /// to every enabled endpoint whose filter matches.
    pub endpoint_id: Option<String>,
}

/// The deliveries a request created.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deliveries {
    pub data: Vec<WebhookDelivery>,
}

/// Redeliver an event
///
/// Sends the event again, as a new delivery (`reason: redeliver`) with the same event `id`, so
/// receivers that de-duplicate on it stay correct. Answers 202 with the deliveries queued. An
/// `endpoint_id` that is not one of the tenant's endpoints is a 422; a disabled endpoint, or no
/// enabled endpoint subscribed to the event's type, is a 409.
#[utoipa::path(
    post,
    path = "/events/{id}/redeliver",
    tag = "webhooks",
    params(("id" = String, Path, description = "The event's id (`evt_…`)")),
    request_body(content = Option<Redeliver>, description = "Optional"),
    responses(
        (status = 202, body = Deliveries),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]), ("bearer" = ["webhooks:write"]))
)]
async fn redeliver(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksWrite>,
    PathId(id): PathId<EventId>,
    OptionalJson(body): OptionalJson<Redeliver>,
) -> Result<Response, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let event = load_event(&principal, &mut tx, &id).await?;
    let targets: Vec<String> = match &body.endpoint_id {
        Some(endpoint_id) => {
            let endpoint = match WebhookEndpointId::parse(endpoint_id) {
                Some(parsed) => crate::webhooks::endpoints::load(&mut tx, tenant, &parsed, false).await?,
                None => None,
            };
            let Some(endpoint) = endpoint else {
                return Err(ApiError::invalid_field("endpoint_id", "is not one of this tenant's webhook endpoints"));
            };
            if !endpoint.enabled {
                return Err(ApiError::new(ErrorCode::Conflict, "the endpoint is disabled; enable it first"));
            }
            vec![endpoint.id]
        }
        None => {
            sqlx::query_scalar(
                "select id from webhook_endpoints
                 where tenant_id = $1 and enabled and payymo_webhook_subscribed(event_types, $2)",
            )
            .bind(tenant.as_str())
            .bind(&event.event_type)
            .fetch_all(&mut *tx)
            .await?
        }
    };
    if targets.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("no enabled webhook endpoint subscribes to {}; name one with endpoint_id", event.event_type),
        ));
    }
    let mut created = Vec::with_capacity(targets.len());
    for endpoint in &targets {
        created.push(deliveries::create(&mut tx, tenant, &event.id, endpoint, "redeliver").await?);
    }
    let data = deliveries::by_ids(&mut tx, tenant, &created).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Extension(AuditResource::new("event", &event.id)), ApiJson(Deliveries { data }))
        .into_response())
}
