//! The platform admin API under `/admin/v1`: create tenants, their first users and API keys.
//! Guarded by `PAYYMO_ADMIN_TOKEN`; without it configured, every admin route answers 404, as if
//! it did not exist.

use axum::{
    extract::{Path, Request, State},
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
    app::AppState,
    audit,
    auth::Environment,
    db::tenant::{begin_platform, begin_tenant},
    domain::{ids::TenantId, scope::Role},
    events,
    tenancy::{self, KeySpec, NewTenant, Tenant},
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
    let tenant = tenancy::create_tenant(&mut tx, body).await?;
    let id = TenantId::from_db(tenant.id.clone());
    // The tenant's log starts with its own creation.
    audit::append_in(&mut tx, &id, admin_entry("admin.tenants.create", "tenant", &tenant.id, &request_id)).await?;
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
async fn get_tenant(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<Tenant>, ApiError> {
    let id = TenantId::parse(&id).ok_or_else(ApiError::not_found)?;
    let mut tx = begin_platform(&state.db).await?;
    let tenant = tenancy::find_tenant(&mut tx, &id).await?;
    tx.commit().await?;
    tenant.map(ApiJson).ok_or_else(ApiError::not_found)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminNewMember {
    pub email: String,
    /// Required when no user with this email exists yet.
    pub password: Option<String>,
    pub name: Option<String>,
    pub role: Role,
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
    Path(id): Path<String>,
    request_id: RequestId,
    ApiJson(body): ApiJson<AdminNewMember>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = load_tenant(&state, &id).await?;
    let tenant_id = TenantId::from_db(tenant.id);
    let mut tx = begin_tenant(&state.db, &tenant_id).await?;
    let user = tenancy::ensure_user(&mut tx, &body.email, body.name.as_deref(), body.password).await?;
    tenancy::add_member(&mut tx, &tenant_id, &user.id, body.role).await?;
    audit::append_in(&mut tx, &tenant_id, admin_entry("admin.members.add", "member", &user.id, &request_id)).await?;
    let member = Member {
        user_id: user.id.clone(),
        email: user.email,
        name: user.name,
        role: body.role,
        created_at: user.created_at,
    };
    events::record(&mut tx, &tenant_id, "member.added", &member).await?;
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
    Path(id): Path<String>,
    request_id: RequestId,
    ApiJson(body): ApiJson<AdminNewApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = load_tenant(&state, &id).await?;
    let environment = Environment::parse(&tenant.environment).unwrap_or(Environment::Test);
    let tenant_id = TenantId::from_db(tenant.id);
    let spec = KeySpec::parse(&body.label, &body.scopes, body.expires_at, &body.allowed_networks)?;
    let mut tx = begin_tenant(&state.db, &tenant_id).await?;
    let (key, secret) =
        tenancy::create_api_key(&mut tx, &tenant_id, environment, &spec, Some("platform_admin")).await?;
    audit::append_in(&mut tx, &tenant_id, admin_entry("admin.api_keys.create", "api_key", &key.id, &request_id))
        .await?;
    events::record(&mut tx, &tenant_id, "api_key.created", &key).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(ApiKeyWithSecret { key, secret })))
}

async fn load_tenant(state: &AppState, id: &str) -> Result<Tenant, ApiError> {
    let id = TenantId::parse(id).ok_or_else(ApiError::not_found)?;
    let mut tx = begin_platform(&state.db).await?;
    let tenant = tenancy::find_tenant(&mut tx, &id).await?;
    tx.commit().await?;
    tenant.ok_or_else(ApiError::not_found)
}

fn admin_entry(action: &str, resource_type: &str, resource_id: &str, request_id: &RequestId) -> audit::Entry {
    audit::Entry {
        actor_type: "platform_admin".into(),
        action: action.into(),
        resource_type: Some(resource_type.into()),
        resource_id: Some(resource_id.into()),
        request_id: Some(request_id.0.clone()),
        status: Some(201),
        detail: serde_json::json!({}),
        ..audit::Entry::default()
    }
}
