//! API keys for server-to-server use: create (the secret is shown once), list, get, revoke and
//! rotate. A caller can only grant scopes it holds itself.

use super::path_id::PathId;
use axum::{Extension, extract::State, http::StatusCode, response::IntoResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{ApiKeysRead, ApiKeysWrite},
    },
    error::{ApiError, ErrorCode, Problem},
    json::{ApiJson, OptionalJson},
    pagination::{self, Page, PageParams},
    query::ApiQuery,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{ApiKeyId, TenantId},
        secret::ShownOnce,
    },
    events,
    state::AppState,
    tenancy::{
        API_KEY_COLUMNS, ApiKey, KeySpec, create_api_key,
        revocation::{self, Revocable},
    },
};

/// API keys as [`revocation`] revokes them.
const API_KEYS: Revocable = Revocable { table: "api_keys", columns: API_KEY_COLUMNS, event: "api_key.revoked" };

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(revoke))
        .routes(routes!(rotate))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, e.g. `erp-sync`.
    pub label: String,
    /// What the key may do; each must be held by the caller.
    #[schema(value_type = Vec<crate::domain::scope::Scope>)]
    pub scopes: Vec<String>,
    /// When the key stops working; never when absent.
    pub expires_at: Option<DateTime<Utc>>,
    /// IP addresses or CIDR networks the key may be used from; anywhere when empty.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

/// A key with its secret, as returned once at creation and rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyWithSecret {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret key. It is shown this once: store it now.
    pub secret: ShownOnce,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKey {
    /// How long the old key keeps working alongside the new one, in seconds (default 86400,
    /// at most 30 days; 0 retires it at once).
    pub overlap_seconds: Option<u32>,
}

/// Create an API key
///
/// Returns the key with its `secret`, which is never shown again: only a hash is stored. The
/// secret's prefix (`sk_live_` or `sk_test_`) follows the tenant's environment.
#[utoipa::path(
    post,
    path = "/api_keys",
    tag = "api_keys",
    request_body = CreateApiKey,
    responses(
        (status = 201, body = ApiKeyWithSecret),
        (status = 403, description = "A requested scope is not held by the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["api_keys:write"]), ("bearer" = ["api_keys:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ApiKeysWrite>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    let spec = KeySpec::parse(&body.label, &body.scopes, body.expires_at, &body.allowed_networks)?;
    if let Some(missing) = spec.scopes.0.iter().find(|s| !principal.scopes.grants(**s)) {
        return Err(ApiError::insufficient_scope(missing));
    }
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let (key, secret) =
        create_api_key(&mut tx, &principal.tenant.id, principal.tenant.environment, &spec, Some(principal.actor.id()))
            .await?;
    events::record(&mut tx, &principal.tenant.id, "api_key.created", &key).await?;
    tx.commit().await?;
    let audit = AuditResource::new("api_key", &key.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(ApiKeyWithSecret { key, secret: ShownOnce(secret) })))
}

/// List API keys
///
/// Newest first, secrets never included.
#[utoipa::path(
    get,
    path = "/api_keys",
    tag = "api_keys",
    params(PageParams),
    responses((status = 200, body = Page<ApiKey>)),
    security(("api_key" = ["api_keys:read"]), ("bearer" = ["api_keys:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ApiKeysRead>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<ApiKey>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let after = cursors.after(params.cursor.as_deref(), ApiKeyId::parse)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows: Vec<ApiKey> = sqlx::query_as(&format!(
        "select {API_KEY_COLUMNS} from api_keys
         where tenant_id = $1 and ($2::text is null or id < $2)
         order by id desc limit $3"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(after.as_ref().map(ApiKeyId::as_str))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ApiJson(cursors.page(rows, limit, |k| k.id.clone())))
}

/// Get an API key
#[utoipa::path(
    get,
    path = "/api_keys/{id}",
    tag = "api_keys",
    params(("id" = String, Path, description = "The key's id (`key_…`)")),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["api_keys:read"]), ("bearer" = ["api_keys:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ApiKeysRead>,
    PathId(id): PathId<ApiKeyId>,
) -> Result<ApiJson<ApiKey>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let key = fetch(&mut tx, &principal.tenant.id, &id).await?;
    end_read(tx);
    match key {
        Some(key) => Ok(ApiJson(key)),
        None => Err(ApiError::not_found_in(Probe::ApiKeys, id.as_str())),
    }
}

/// Revoke an API key
///
/// Takes effect at once on this instance and within `PAYYMO_CREDENTIAL_CACHE_TTL` (5 s by
/// default) on every other. Revoking a revoked key changes nothing.
#[utoipa::path(
    post,
    path = "/api_keys/{id}/revoke",
    tag = "api_keys",
    params(("id" = String, Path, description = "The key's id (`key_…`)")),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["api_keys:write"]), ("bearer" = ["api_keys:write"]))
)]
async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ApiKeysWrite>,
    PathId(id): PathId<ApiKeyId>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let key: Option<ApiKey> = revocation::revoke(&mut tx, &principal.tenant.id, id.as_str(), &API_KEYS).await?;
    tx.commit().await?;
    let Some(key) = key else {
        return Err(ApiError::not_found_in(Probe::ApiKeys, id.as_str()));
    };
    state.auth.forget_cached_credentials();
    Ok((Extension(AuditResource::new("api_key", &key.id)), ApiJson(key)))
}

/// Rotate an API key
///
/// Issues a new key with the same label, scopes, networks and expiry, and lets the old one keep
/// working for `overlap_seconds` (default 24 h) so callers can switch without downtime. Returns
/// the new key with its secret.
#[utoipa::path(
    post,
    path = "/api_keys/{id}/rotate",
    tag = "api_keys",
    params(("id" = String, Path, description = "The key's id (`key_…`)")),
    request_body(content = Option<RotateApiKey>, description = "Optional; defaults apply when absent"),
    responses(
        (status = 201, body = ApiKeyWithSecret),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked or already rotated", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["api_keys:write"]), ("bearer" = ["api_keys:write"]))
)]
async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ApiKeysWrite>,
    PathId(id): PathId<ApiKeyId>,
    OptionalJson(body): OptionalJson<RotateApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    let overlap = body.overlap_seconds.unwrap_or(86_400);
    if overlap > 30 * 86_400 {
        return Err(ApiError::invalid_field("overlap_seconds", "must be at most 2592000 (30 days)"));
    }
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let old: Option<ApiKey> =
        sqlx::query_as(&format!("select {API_KEY_COLUMNS} from api_keys where tenant_id = $1 and id = $2 for update"))
            .bind(principal.tenant.id.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let Some(old) = old else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::ApiKeys, id.as_str()));
    };
    if old.revoked_at.is_some() || old.rotated_to.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this key is revoked or was already rotated; rotate its successor instead",
        ));
    }
    let spec =
        KeySpec::parse(&old.label, &old.scopes, old.expires_at.filter(|at| *at > Utc::now()), &old.allowed_networks)?;
    let (key, secret) =
        create_api_key(&mut tx, &principal.tenant.id, principal.tenant.environment, &spec, Some(principal.actor.id()))
            .await?;
    sqlx::query(
        "update api_keys set rotated_to = $3,
                expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => $4))
         where tenant_id = $1 and id = $2",
    )
    .bind(principal.tenant.id.as_str())
    .bind(id.as_str())
    .bind(&key.id)
    .bind(f64::from(overlap))
    .execute(&mut *tx)
    .await?;
    let rotated = serde_json::json!({ "id": old.id, "rotated_to": key.id, "overlap_seconds": overlap });
    events::record(&mut tx, &principal.tenant.id, "api_key.rotated", rotated).await?;
    tx.commit().await?;
    state.auth.forget_cached_credentials();
    let audit = AuditResource::new("api_key", &old.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(ApiKeyWithSecret { key, secret: ShownOnce(secret) })))
}

async fn fetch(conn: &mut PgConnection, tenant: &TenantId, id: &ApiKeyId) -> Result<Option<ApiKey>, sqlx::Error> {
    sqlx::query_as(&format!("select {API_KEY_COLUMNS} from api_keys where tenant_id = $1 and id = $2"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}
