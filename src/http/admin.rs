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
use sqlx::PgConnection;
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
    tenancy::{self, ApiKey, KeySpec, NewTenant, Tenant},
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
    let tenant = create_tenant_as_platform(&mut tx, body, Via::Api(&request_id)).await?;
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
    let member = add_member_as_platform(&mut tx, &tenant_id, body, Via::Api(&request_id)).await?;
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
        create_api_key_as_platform(&mut tx, &tenant_id, environment, &spec, Via::Api(&request_id)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(ApiKeyWithSecret { key, secret: crate::domain::secret::ShownOnce(secret) })))
}

async fn load_tenant(state: &AppState, id: &str) -> Result<Tenant, ApiError> {
    let id = TenantId::parse(id).ok_or_else(ApiError::not_found)?;
    let mut tx = begin_platform(&state.db).await?;
    let tenant = tenancy::find_tenant(&mut tx, &id).await?;
    tx.commit().await?;
    tenant.ok_or_else(ApiError::not_found)
}

/// Where a platform change came from: an admin API request, or the `payymo` CLI on the server.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    Api(&'a RequestId),
    Cli,
}

fn admin_entry(action: &str, resource_type: &str, resource_id: &str, via: Via<'_>) -> audit::Entry {
    let (request_id, status, detail) = match via {
        Via::Api(request_id) => (Some(request_id.0.clone()), Some(201), serde_json::json!({})),
        Via::Cli => (None, None, serde_json::json!({"via": "cli"})),
    };
    audit::Entry {
        actor_type: "platform_admin".into(),
        action: action.into(),
        resource_type: Some(resource_type.into()),
        resource_id: Some(resource_id.into()),
        request_id,
        status,
        detail,
        ..audit::Entry::default()
    }
}

/// Creates a tenant as the platform (admin API or CLI); its audit log starts with its creation.
/// `conn` is a platform transaction.
pub async fn create_tenant_as_platform(
    conn: &mut PgConnection,
    new: NewTenant,
    via: Via<'_>,
) -> Result<Tenant, ApiError> {
    let tenant = tenancy::create_tenant(conn, new).await?;
    let id = TenantId::from_db(tenant.id.clone());
    audit::append_in(conn, &id, admin_entry("admin.tenants.create", "tenant", &tenant.id, via)).await?;
    Ok(tenant)
}

/// Adds a user (created when the email is new) to a tenant as the platform (admin API or CLI):
/// audited, and announced with `member.added` as when a member is added through the API. `conn`
/// is bound to the tenant.
pub async fn add_member_as_platform(
    conn: &mut PgConnection,
    tenant: &TenantId,
    new: AdminNewMember,
    via: Via<'_>,
) -> Result<Member, ApiError> {
    let user = tenancy::ensure_user(conn, &new.email, new.name.as_deref(), new.password).await?;
    tenancy::add_member(conn, tenant, &user.id, new.role).await?;
    audit::append_in(conn, tenant, admin_entry("admin.members.add", "member", &user.id, via)).await?;
    let member =
        Member { user_id: user.id, email: user.email, name: user.name, role: new.role, created_at: user.created_at };
    events::record(conn, tenant, "member.added", &member).await?;
    Ok(member)
}

/// Creates an API key for a tenant as the platform (admin API or CLI): audited, and announced
/// with `api_key.created`. Returns the key and its secret. `conn` is bound to the tenant.
pub async fn create_api_key_as_platform(
    conn: &mut PgConnection,
    tenant: &TenantId,
    environment: Environment,
    spec: &KeySpec,
    via: Via<'_>,
) -> Result<(ApiKey, String), ApiError> {
    let created_by = match via {
        Via::Api(_) => "platform_admin",
        Via::Cli => "cli",
    };
    let (key, secret) = tenancy::create_api_key(conn, tenant, environment, spec, Some(created_by)).await?;
    audit::append_in(conn, tenant, admin_entry("admin.api_keys.create", "api_key", &key.id, via)).await?;
    events::record(conn, tenant, "api_key.created", &key).await?;
    Ok((key, secret))
}
