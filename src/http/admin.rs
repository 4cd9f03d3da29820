//! The platform admin API under `/admin/v1`: create tenants, their first users and API keys.
//! Guarded by `PAYYMO_ADMIN_TOKEN`; without it configured, every admin route answers 404, as if
//! it did not exist.

use super::path_id::PathId;
use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    api_keys::ApiKeyWithSecret,
    error::{ApiError, Problem},
    json::ApiJson,
    members::Member,
    request_id::RequestId,
};
use crate::{
    db::tenant::{begin_platform, begin_tenant},
    domain::ids::TenantId,
    state::AppState,
    tenancy::{
        self, AdminNewMember, KeySpec, NewTenant, Tenant, Via, add_member_as_platform, create_api_key_as_platform,
        create_tenant_as_platform,
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().nest(
        "/admin/v1",
        OpenApiRouter::new()
            .routes(routes!(create_tenant))
            .routes(routes!(get_tenant))
            .routes(routes!(add_member))
            .routes(routes!(create_key)),
    )
}

/// Refuses every request without the configured admin token; hides the API when none is set.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.config.admin_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        next.run(request).await
    } else {
        ApiError::unauthenticated("the admin API needs `Authorization: Bearer <PAYYMO_ADMIN_TOKEN>`").into_response()
    }
}

/// Create a tenant
#[utoipa::path(
    post,
    path = "/tenants",
    tag = "admin",
    request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("admin_token" = []))
)]
async fn create_tenant(
    State(state): State<AppState>,
    request_id: RequestId,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = begin_platform(&state.db).await?;
    let tenant = create_tenant_as_platform(&mut tx, body, Via::Api(&request_id.0)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(tenant)))
}

/// Get a tenant
#[utoipa::path(
    get,
    path = "/tenants/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id (`ten_…`)")),
    responses((status = 200, body = Tenant), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("admin_token" = []))
)]
async fn get_tenant(State(state): State<AppState>, PathId(id): PathId<TenantId>) -> Result<ApiJson<Tenant>, ApiError> {
    let mut tx = begin_platform(&state.db).await?;
    let tenant = tenancy::find_tenant(&mut tx, &id).await?;
    tx.commit().await?;
    tenant.map(ApiJson).ok_or_else(ApiError::not_found)
}

/// Add a user to a tenant
///
/// Creates the user when the email is new (a password is then required).
#[utoipa::path(
    post,
    path = "/tenants/{id}/members",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id (`ten_…`)")),
    request_body = AdminNewMember,
    responses((status = 201, body = Member), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("admin_token" = []))
)]
async fn add_member(
    State(state): State<AppState>,
    PathId(id): PathId<TenantId>,
    request_id: RequestId,
    ApiJson(body): ApiJson<AdminNewMember>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = load_tenant(&state, &id).await?;
    let tenant_id = TenantId::from_db(tenant.id);
    let mut tx = begin_tenant(&state.db, &tenant_id).await?;
    let member = add_member_as_platform(&mut tx, &tenant_id, body, Via::Api(&request_id.0)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(member)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminNewApiKey {
    pub label: String,
    #[schema(value_type = Vec<crate::domain::scope::Scope>)]
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

/// Create an API key for a tenant
///
/// How a new tenant gets its first key. The secret is shown once.
#[utoipa::path(
    post,
    path = "/tenants/{id}/api_keys",
    tag = "admin",
    params(("id" = String, Path, description = "The tenant's id (`ten_…`)")),
    request_body = AdminNewApiKey,
    responses((status = 201, body = ApiKeyWithSecret), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("admin_token" = []))
)]
async fn create_key(
    State(state): State<AppState>,
    PathId(id): PathId<TenantId>,
    request_id: RequestId,
    ApiJson(body): ApiJson<AdminNewApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = load_tenant(&state, &id).await?;
    let environment = tenant.environment;
    let tenant_id = TenantId::from_db(tenant.id);
    let spec = KeySpec::parse(&body.label, &body.scopes, body.expires_at, &body.allowed_networks)?;
    let mut tx = begin_tenant(&state.db, &tenant_id).await?;
    let (key, secret) =
        create_api_key_as_platform(&mut tx, &tenant_id, environment, &spec, Via::Api(&request_id.0)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(ApiKeyWithSecret { key, secret: crate::domain::secret::ShownOnce(secret) })))
}

async fn load_tenant(state: &AppState, id: &TenantId) -> Result<Tenant, ApiError> {
    let mut tx = begin_platform(&state.db).await?;
    let tenant = tenancy::find_tenant(&mut tx, id).await?;
    tx.commit().await?;
    tenant.ok_or_else(ApiError::not_found)
}
