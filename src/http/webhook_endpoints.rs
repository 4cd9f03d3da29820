//! Webhook endpoints: register where events go, rotate signing secrets, send a test ping, and
//! inspect or re-send deliveries.

use super::path_id::PathId;
use std::collections::BTreeMap;

use axum::{
    Extension,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{WebhooksRead, WebhooksWrite},
    },
    error::{ApiError, ErrorCode, FieldError, Problem},
    json::{ApiJson, OptionalJson, merge_metadata},
    pagination::{self, Page, PageParams},
    query::ApiQuery,
};
use crate::{
    auth::{Environment, Principal},
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{WebhookDeliveryId, WebhookEndpointId},
        secret::ShownOnce,
        states::DeliveryStatus,
    },
    events,
    state::AppState,
    webhooks::{
        deliveries::{self, DeliveryFilter, WebhookDelivery},
        endpoints::{
            self, ENDPOINT_COLUMNS, MAX_ENDPOINTS, WebhookEndpoint, WebhookEndpointWithSecret, check_event_types,
        },
        health,
        signing::SigningSecret,
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(rotate_secret))
        .routes(routes!(test))
        .routes(routes!(list_deliveries))
        .routes(routes!(recover))
}

/// Default and longest overlap of a rotated-out secret.
const DEFAULT_OVERLAP_SECONDS: u32 = 24 * 3600;
const MAX_OVERLAP_SECONDS: u32 = 7 * 24 * 3600;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://erp.example.com/hooks/payymo",
    "event_types": ["transaction.created", "transaction.updated"], "description": "ERP sync",
    "metadata": {"team": "finance"}}))]
pub struct CreateWebhookEndpoint {
    /// Where to POST events: `https` for live tenants (test tenants may use `http`). Internal
    /// addresses (loopback, private, link-local, metadata services, …) are refused.
    pub url: String,
    /// Event type names, or `["*"]` for every type.
    pub event_types: Vec<String>,
    /// At most 500 characters.
    pub description: Option<String>,
    /// Your own key-value pairs (at most 50 keys of 40 characters, values of 500).
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Absent: unchanged. `description: null` clears it; metadata merges (`null` or `""` removes a key).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true, "event_types": ["*"]}))]
pub struct UpdateWebhookEndpoint {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub metadata: Option<BTreeMap<String, Option<String>>>,
    /// `false` stops deliveries (pending ones wait); `true` resumes them, also after the endpoint
    /// was disabled automatically.
    pub enabled: Option<bool>,
}

/// Checks a URL with the SSRF guard (resolving its name) and the tenant's environment.
async fn check_url(state: &AppState, principal: &Principal, url: &str, errors: &mut Vec<FieldError>) {
    let live = principal.tenant.environment == Environment::Live;
    if let Err(refusal) = state.webhook_guard.check_url_resolving(url, live).await {
        errors.push(FieldError { field: "url".into(), message: refusal.to_string() });
    }
}

fn check_description(description: Option<&str>, errors: &mut Vec<FieldError>) {
    if description.is_some_and(|d| d.chars().count() > 500) {
        errors.push(FieldError { field: "description".into(), message: "must be at most 500 characters".into() });
    }
}

fn checked_event_types(types: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    check_event_types(types).unwrap_or_else(|message| {
        errors.push(FieldError { field: "event_types".into(), message });
        Vec::new()
    })
}

/// Create a webhook endpoint
///
/// Events of the chosen types are delivered to `url` from now on, signed with the secret in this
/// answer: store it, it is not shown again. Each delivery carries the Standard Webhooks headers
/// (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and `X-Webhook-Signature`; see
/// `docs/webhooks.md` for verifying them. A tenant may have 50 endpoints. The URL is refused with
/// a 422 when it points at an internal address, and live tenants need `https`. Zapier's
/// subscribe and Make's attach call this; the answer's `id` is what their unsubscribe and detach
/// delete.
#[utoipa::path(
    post,
    path = "/webhook_endpoints",
    tag = "webhooks",
    request_body = CreateWebhookEndpoint,
    responses(
        (status = 201, body = WebhookEndpointWithSecret),
        (status = 409, description = "The tenant already has 50 endpoints", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]), ("bearer" = ["webhooks:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksWrite>,
    ApiJson(body): ApiJson<CreateWebhookEndpoint>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    check_url(&state, &principal, &body.url, &mut errors).await;
    let event_types = checked_event_types(&body.event_types, &mut errors);
    check_description(body.description.as_deref(), &mut errors);
    let changes = body.metadata.unwrap_or_default().into_iter().map(|(k, v)| (k, Some(v))).collect();
    let metadata = merge_metadata(&BTreeMap::new(), changes, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let tenant = &principal.tenant.id;
    let keys = state.keys.get().await.map_err(ApiError::Internal)?;
    let id = WebhookEndpointId::generate();
    let secret = SigningSecret::generate();
    let sealed = endpoints::seal_secret(keys, tenant, &id, &secret).map_err(|e| ApiError::Internal(e.into()))?;

    let mut tx = begin_tenant(&state.db, tenant).await?;
    // One creation at a time per tenant, so two concurrent ones cannot both pass the cap.
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('webhook_endpoints/' || $1, 0))")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    let count: i64 = sqlx::query_scalar("select count(*) from webhook_endpoints where tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_ENDPOINTS {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("a tenant may have at most {MAX_ENDPOINTS} webhook endpoints; delete one first"),
        ));
    }
    let endpoint: WebhookEndpoint = sqlx::query_as(&format!(
        "insert into webhook_endpoints (tenant_id, id, url, description, event_types, metadata, secret)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning {ENDPOINT_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(&body.url)
    .bind(&body.description)
    .bind(&event_types)
    .bind(sqlx::types::Json(&metadata))
    .bind(&sealed)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let audit = AuditResource::new("webhook_endpoint", &endpoint.id);
    let secret = secret.expose().to_owned();
    Ok((
        StatusCode::CREATED,
        Extension(audit),
        ApiJson(WebhookEndpointWithSecret { endpoint, secret: ShownOnce(secret) }),
    ))
}

/// List webhook endpoints
///
/// Newest first. Secrets are never listed.
#[utoipa::path(
    get,
    path = "/webhook_endpoints",
    tag = "webhooks",
    params(PageParams),
    responses((status = 200, body = Page<WebhookEndpoint>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["webhooks:read"]), ("bearer" = ["webhooks:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksRead>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<WebhookEndpoint>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let after = cursors.after(params.cursor.as_deref(), WebhookEndpointId::parse)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows: Vec<WebhookEndpoint> = sqlx::query_as(&format!(
        "select {ENDPOINT_COLUMNS} from webhook_endpoints
         where tenant_id = $1 and ($2::text is null or id < $2)
         order by id desc limit $3"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(after.as_ref().map(WebhookEndpointId::as_str))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |e| e.id.clone())))
}

/// The 404 for an endpoint id this tenant does not have.
/// Get a webhook endpoint
#[utoipa::path(
    get,
    path = "/webhook_endpoints/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`we_…`)")),
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["webhooks:read"]), ("bearer" = ["webhooks:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksRead>,
    PathId(parsed): PathId<WebhookEndpointId>,
) -> Result<ApiJson<WebhookEndpoint>, ApiError> {
    let id = parsed.as_str();
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let endpoint = endpoints::load(&mut tx, &principal.tenant.id, &parsed, false).await?;
    end_read(tx);
    match endpoint {
        Some(endpoint) => Ok(ApiJson(endpoint)),
        None => Err(ApiError::not_found_in(Probe::WebhookEndpoints, id)),
    }
}

/// Update a webhook endpoint
///
/// Changes only the fields sent. A new `url` is checked as on creation. `enabled: false` stops
/// deliveries to the endpoint (events that arrive meanwhile are not queued for it; deliveries
/// already pending wait); `enabled: true` resumes them and clears `disabled_reason` and
/// `failing_since`, also for an endpoint disabled automatically.
#[utoipa::path(
    patch,
    path = "/webhook_endpoints/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`we_…`)")),
    request_body = UpdateWebhookEndpoint,
    responses(
        (status = 200, body = WebhookEndpoint),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]), ("bearer" = ["webhooks:write"]))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksWrite>,
    PathId(parsed): PathId<WebhookEndpointId>,
    ApiJson(body): ApiJson<UpdateWebhookEndpoint>,
) -> Result<Response, ApiError> {
    let id = parsed.as_str();
    let mut errors = Vec::new();
    if let Some(url) = &body.url {
        check_url(&state, &principal, url, &mut errors).await;
    }
    let event_types = body.event_types.as_deref().map(|t| checked_event_types(t, &mut errors));
    check_description(body.description.as_ref().and_then(Option::as_deref), &mut errors);
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let Some(current) = endpoints::load(&mut tx, tenant, &parsed, true).await? else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::WebhookEndpoints, id));
    };
    let metadata = body.metadata.map(|changes| merge_metadata(&current.metadata.0, changes, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let endpoint: WebhookEndpoint = sqlx::query_as(&format!(
        "update webhook_endpoints set
             url = coalesce($3, url),
             event_types = coalesce($4, event_types),
             description = case when $5 then $6 else description end,
             metadata = coalesce($7, metadata)
         where tenant_id = $1 and id = $2
         returning {ENDPOINT_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(parsed.as_str())
    .bind(&body.url)
    .bind(&event_types)
    .bind(body.description.is_some())
    .bind(body.description.flatten())
    .bind(metadata.as_ref().map(sqlx::types::Json))
    .fetch_one(&mut *tx)
    .await?;
    let endpoint = match body.enabled {
        Some(enabled) => health::set_enabled(&mut tx, tenant, endpoint, enabled).await?,
        None => endpoint,
    };
    tx.commit().await?;
    Ok((Extension(AuditResource::new("webhook_endpoint", &endpoint.id)), ApiJson(endpoint)).into_response())
}

/// Delete a webhook endpoint
///
/// Stops all deliveries to it at once and deletes its delivery history. Answers with the
/// endpoint as it was. Zapier's unsubscribe and Make's detach call this.
#[utoipa::path(
    delete,
    path = "/webhook_endpoints/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`we_…`)")),
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["webhooks:write"]), ("bearer" = ["webhooks:write"]))
)]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksWrite>,
    PathId(parsed): PathId<WebhookEndpointId>,
) -> Result<Response, ApiError> {
    let id = parsed.as_str();
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let endpoint: Option<WebhookEndpoint> = sqlx::query_as(&format!(
        "delete from webhook_endpoints where tenant_id = $1 and id = $2 returning {ENDPOINT_COLUMNS}"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(parsed.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(endpoint) = endpoint else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::WebhookEndpoints, id));
    };
    tx.commit().await?;
    Ok((Extension(AuditResource::new("webhook_endpoint", &endpoint.id)), ApiJson(endpoint)).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"overlap_seconds": 3600}))]
pub struct RotateWebhookSecret {
    /// How long the old secret keeps signing alongside the new one: 0 to 604800 seconds (7 days),
    /// default 86400 (24 h).
    pub overlap_seconds: Option<u32>,
}

/// Rotate a webhook endpoint's signing secret
///
/// Answers with the new secret, shown this once. For `overlap_seconds` (default 24 h) every
/// delivery is signed with both secrets (two entries in `webhook-signature`, two `v1=` in
/// `X-Webhook-Signature`), so a receiver can switch secrets without failing a delivery. A secret
/// replaced by an earlier rotation stops signing at once.
#[utoipa::path(
    post,
    path = "/webhook_endpoints/{id}/rotate_secret",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`we_…`)")),
    request_body(content = Option<RotateWebhookSecret>, description = "Optional"),
    responses(
        (status = 200, body = WebhookEndpointWithSecret),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]), ("bearer" = ["webhooks:write"]))
)]
async fn rotate_secret(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksWrite>,
    PathId(parsed): PathId<WebhookEndpointId>,
    OptionalJson(body): OptionalJson<RotateWebhookSecret>,
) -> Result<Response, ApiError> {
    let id = parsed.as_str();
    let overlap = body.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(ApiError::invalid_field("overlap_seconds", "must be from 0 to 604800 (7 days)"));
    }
    let tenant = &principal.tenant.id;
    let keys = state.keys.get().await.map_err(ApiError::Internal)?;
    let secret = SigningSecret::generate();
    let sealed = endpoints::seal_secret(keys, tenant, &parsed, &secret).map_err(|e| ApiError::Internal(e.into()))?;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let endpoint: Option<WebhookEndpoint> = sqlx::query_as(&format!(
        "update webhook_endpoints set previous_secret = secret, secret = $3,
             previous_secret_expires_at = now() + make_interval(secs => $4)
         where tenant_id = $1 and id = $2
         returning {ENDPOINT_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(parsed.as_str())
    .bind(&sealed)
    .bind(f64::from(overlap))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(endpoint) = endpoint else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::WebhookEndpoints, id));
    };
    tx.commit().await?;
    let audit = AuditResource::new("webhook_endpoint", &endpoint.id);
    let secret = secret.expose().to_owned();
    Ok((Extension(audit), ApiJson(WebhookEndpointWithSecret { endpoint, secret: ShownOnce(secret) })).into_response())
}

/// Send a test event to a webhook endpoint
///
/// Records a `ping` event and delivers it to this endpoint only (no other endpoint receives
/// pings), signed and retried like any delivery. Answers 202 with the delivery; follow it at
/// `GET /webhook_endpoints/{id}/deliveries`. A disabled endpoint is a 409: enable it first.
#[utoipa::path(
    post,
    path = "/webhook_endpoints/{id}/test",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`we_…`)")),
    responses(
        (status = 202, body = WebhookDelivery),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]), ("bearer" = ["webhooks:write"]))
)]
async fn test(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksWrite>,
    PathId(parsed): PathId<WebhookEndpointId>,
) -> Result<Response, ApiError> {
    let id = parsed.as_str();
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let Some(endpoint) = endpoints::load(&mut tx, tenant, &parsed, false).await? else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::WebhookEndpoints, id));
    };
    if !endpoint.enabled {
        return Err(ApiError::new(ErrorCode::Conflict, "the endpoint is disabled; enable it to send it a test event"));
    }
    let event = events::record(
        &mut tx,
        tenant,
        "ping",
        json!({"webhook_endpoint_id": endpoint.id, "message": "A test event from Payymo."}),
    )
    .await?;
    let delivery = deliveries::create(&mut tx, tenant, &event.id, &endpoint.id, "test").await?;
    let delivery = deliveries::by_ids(&mut tx, tenant, &[delivery]).await?.pop().ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    let audit = AuditResource::new("webhook_endpoint", &endpoint.id);
    Ok((StatusCode::ACCEPTED, Extension(audit), ApiJson(delivery)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    pub status: Option<DeliveryStatus>,
    /// Deliveries created at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Deliveries created before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<super::pagination::Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl super::query::QueryParams for DeliveryParams {
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            problems.push(FieldError { field: "until".into(), message: "must be after since".into() });
        }
        problems
    }
}

impl DeliveryParams {
    /// The filter these parameters ask for, or a 422 naming a bad cursor.
    pub fn filter(&self, cursors: &pagination::Cursors) -> Result<(DeliveryFilter, u32), ApiError> {
        let limit = pagination::limit(self.limit);
        let before = cursors.after(self.cursor.as_deref(), WebhookDeliveryId::parse)?;
        let filter =
            DeliveryFilter { status: self.status, since: self.since, until: self.until, before, ..Default::default() };
        Ok((filter, limit))
    }
}

/// List a webhook endpoint's deliveries
///
/// Newest first, each with every attempt: when it started, the status code, the latency, the
/// error, and the first bytes (up to 1 KiB) of the receiver's answer. Filter by `status` and by
/// creation time.
#[utoipa::path(
    get,
    path = "/webhook_endpoints/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`we_…`)"), DeliveryParams),
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
    PathId(parsed): PathId<WebhookEndpointId>,
    ApiQuery(params): ApiQuery<DeliveryParams>,
) -> Result<ApiJson<Page<WebhookDelivery>>, ApiError> {
    let id = parsed.as_str();
    let cursors = pagination::Cursors::of(&state).await?;
    let (mut filter, limit) = params.filter(&cursors)?;
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    if endpoints::load(&mut tx, tenant, &parsed, false).await?.is_none() {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::WebhookEndpoints, id));
    }
    filter.endpoint = Some(parsed);
    let rows = deliveries::list(&mut tx, tenant, &filter, i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |d| d.id.clone())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"since": "2026-11-20T00:00:00Z"}))]
pub struct RecoverWebhookEndpoint {
    /// Re-send events whose delivery to this endpoint failed at or after this time (RFC 3339).
    pub since: DateTime<Utc>,
    /// Up to this time (RFC 3339); default now.
    pub until: Option<DateTime<Utc>>,
}

/// How many deliveries a request queued.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"queued": 42}))]
pub struct Queued {
    pub queued: i64,
}

/// Recover failed deliveries
///
/// Queues a new delivery (`reason: recover`) of every event whose delivery to this endpoint
/// failed within [`since`, `until`) and that has not reached it since (no later delivery
/// succeeded or is pending). Use it after fixing a receiver that was down. The endpoint must be
/// enabled. Answers 202 with how many were queued.
#[utoipa::path(
    post,
    path = "/webhook_endpoints/{id}/recover",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`we_…`)")),
    request_body = RecoverWebhookEndpoint,
    responses(
        (status = 202, body = Queued),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]), ("bearer" = ["webhooks:write"]))
)]
async fn recover(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<WebhooksWrite>,
    PathId(parsed): PathId<WebhookEndpointId>,
    ApiJson(body): ApiJson<RecoverWebhookEndpoint>,
) -> Result<Response, ApiError> {
    let id = parsed.as_str();
    let until = body.until.unwrap_or_else(Utc::now);
    if body.since >= until {
        return Err(ApiError::invalid_field("since", "must be before until (default: now)"));
    }
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let Some(endpoint) = endpoints::load(&mut tx, tenant, &parsed, true).await? else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::WebhookEndpoints, id));
    };
    if !endpoint.enabled {
        return Err(ApiError::new(ErrorCode::Conflict, "the endpoint is disabled; enable it before recovering"));
    }
    let queued = sqlx::query(
        "insert into webhook_deliveries (tenant_id, id, event_id, endpoint_id, reason)
         select $1, 'whd_' || payymo_uuid7_hex(), f.event_id, $2, 'recover'
         from (select distinct d.event_id from webhook_deliveries d
               where d.tenant_id = $1 and d.endpoint_id = $2 and d.status = 'failed'
                 and d.completed_at >= $3 and d.completed_at < $4) f
         where not exists (select 1 from webhook_deliveries later
                           where later.tenant_id = $1 and later.endpoint_id = $2 and later.event_id = f.event_id
                             and later.status in ('pending', 'succeeded'))",
    )
    .bind(tenant.as_str())
    .bind(parsed.as_str())
    .bind(body.since)
    .bind(until)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    let audit = AuditResource::new("webhook_endpoint", &endpoint.id);
    let queued = Queued { queued: i64::try_from(queued).unwrap_or(i64::MAX) };
    Ok((StatusCode::ACCEPTED, Extension(audit), ApiJson(queued)).into_response())
}
