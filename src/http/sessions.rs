//! User sessions for client portals: sign in with email, password and tenant; rotate the refresh
//! token; sign out; and `GET /me`.
//!
//! Each sign-in starts a family of refresh tokens. Every refresh uses up its token and issues the
//! next; presenting a used token again means it was copied, so the whole family is revoked and the
//! reuse is audited as a security incident.

use std::time::Duration;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::ClientIp,
    error::{ApiError, ErrorCode, Problem},
    json::ApiJson,
    request_id::RequestId,
};
use crate::{
    audit,
    auth::{Actor, Environment, Principal, password},
    db::tenant::{begin_platform, begin_tenant},
    domain::{
        ids::{RefreshFamilyId, RefreshTokenId, TenantId, UserId},
        scope::{Role, Scope},
        secret::{random_base62, sha256},
    },
    ratelimit::Quota,
    state::AppState,
};

/// Sign-in attempts allowed per account (email and tenant), and per client IP.
const LOGIN_PER_ACCOUNT: Quota = Quota { limit: 10, period: Duration::from_secs(15 * 60) };
const LOGIN_PER_IP: Quota = Quota { limit: 100, period: Duration::from_secs(15 * 60) };

/// Public: sign-in, refresh, sign-out.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(refresh)).routes(routes!(logout))
}

/// Authenticated: who am I.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// The tenant to sign in to (`ten_…`); the user must be a member.
    pub tenant_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// An access token and the refresh token that renews it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: exchange it at `/auth/refresh` for a new pair.
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
    pub tenant_id: String,
    pub user_id: String,
    pub role: Role,
}

/// Sign in
///
/// Returns an access token (JWT, 15 minutes by default) and a refresh token. Wrong email,
/// password or tenant all answer the same 401. Attempts are limited per account (10 per 15
/// minutes) and per IP address (100 per 15 minutes).
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = Login,
    responses(
        (status = 200, body = Session),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    request_id: RequestId,
    ApiJson(body): ApiJson<Login>,
) -> Result<impl IntoResponse, ApiError> {
    let email = body.email.trim().to_lowercase();
    for (key, quota) in [
        (format!("login:account:{}:{email}", body.tenant_id), LOGIN_PER_ACCOUNT),
        (format!("login:ip:{}", ip.0), LOGIN_PER_IP),
    ] {
        let decision = state.limiter.check(&key, quota).await;
        if !decision.allowed {
            return Err(super::rate_limit::refusal(&decision, "too many sign-in attempts; try again later"));
        }
    }
    let invalid = || ApiError::new(ErrorCode::InvalidCredentials, "the email, password or tenant is not right");
    if body.password.len() > password::MAX_LENGTH {
        return Err(invalid());
    }
    let tenant = TenantId::parse(&body.tenant_id);
    let found: Option<(String, String, Option<String>)> = match &tenant {
        Some(tenant) => {
            let mut tx = begin_platform(&state.db).await?;
            let row = sqlx::query_as(
                "select u.id, u.password_hash, m.role from users u
                 left join memberships m on m.user_id = u.id and m.tenant_id = $2
                 where lower(u.email) = $1",
            )
            .bind(&email)
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        }
        None => None,
    };
    // Always verify against a hash, so timing does not reveal whether the account exists.
    let stored = found.as_ref().map_or(password::DUMMY_HASH.to_owned(), |(_, hash, _)| hash.clone());
    let password_ok = password::verify(body.password, stored).await;
    let member = match (found, tenant, password_ok) {
        (Some((user, _, Some(role))), Some(tenant), true) => Some((UserId::from_db(user), tenant, role)),
        (found, Some(tenant), _) => {
            record(
                &state,
                &tenant,
                found.map(|(user, ..)| user),
                "auth.login",
                audit::Outcome::Failure,
                401,
                ip,
                &request_id,
            )
            .await;
            None
        }
        _ => None,
    };
    let (user, tenant, role) = member.ok_or_else(invalid)?;
    let role = Role::parse(&role).ok_or_else(invalid)?;
    let session = start_session(&state, &tenant, &user, role, None).await?;
    record(&state, &tenant, Some(user.to_string()), "auth.login", audit::Outcome::Success, 200, ip, &request_id).await;
    Ok(no_store(ApiJson(session)))
}

/// Refresh a session
///
/// Exchanges a refresh token for a new access token and a new refresh token. Each refresh token
/// works once: presenting a used one revokes every token of its session.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    request_id: RequestId,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let invalid = || ApiError::unauthenticated("the refresh token is not valid; sign in again");
    type Row =
        (String, String, String, String, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<String>);
    let mut tx = begin_platform(&state.db).await?;
    let row: Option<Row> = sqlx::query_as(
        "select r.tenant_id, r.id, r.user_id, r.family_id, r.expires_at, r.used_at, r.revoked_at, m.role
         from refresh_tokens r left join memberships m on m.tenant_id = r.tenant_id and m.user_id = r.user_id
         where r.token_hash = $1 for update of r",
    )
    .bind(sha256(&body.refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((tenant, id, user, family, expires_at, used_at, revoked_at, role)) = row else {
        return Err(invalid());
    };
    let tenant = TenantId::from_db(tenant);
    if used_at.is_some() && revoked_at.is_none() {
        sqlx::query("update refresh_tokens set revoked_at = now() where tenant_id = $1 and family_id = $2 and revoked_at is null")
            .bind(tenant.as_str())
            .bind(&family)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        state.auth.forget_cached_credentials();
        tracing::warn!(%tenant, family, "refresh token reused: session revoked");
        record(
            &state,
            &tenant,
            Some(user),
            "auth.refresh_token_reused",
            audit::Outcome::SecurityIncident,
            401,
            ip,
            &request_id,
        )
        .await;
        return Err(invalid());
    }
    let role = role.as_deref().and_then(Role::parse);
    if revoked_at.is_some() || expires_at <= Utc::now() || role.is_none() {
        return Err(invalid());
    }
    sqlx::query("update refresh_tokens set used_at = now() where tenant_id = $1 and id = $2")
        .bind(tenant.as_str())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let user = UserId::from_db(user);
    let role = role.ok_or_else(invalid)?;
    let session = start_session(&state, &tenant, &user, role, Some(RefreshFamilyId::from_db(family))).await?;
    Ok(no_store(ApiJson(session)))
}

/// Sign out
///
/// Revokes the session the refresh token belongs to: its refresh tokens at once, and the access
/// tokens issued to it within `PAYYMO_CREDENTIAL_CACHE_TTL` (5 s by default) on every instance.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Signed out (also when the token was already invalid)"))
)]
async fn logout(State(state): State<AppState>, ApiJson(body): ApiJson<RefreshRequest>) -> Result<StatusCode, ApiError> {
    let mut tx = begin_platform(&state.db).await?;
    sqlx::query(
        "update refresh_tokens set revoked_at = now()
         where (tenant_id, family_id) in (select tenant_id, family_id from refresh_tokens where token_hash = $1)
           and revoked_at is null",
    )
    .bind(sha256(&body.refresh_token))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.auth.forget_cached_credentials();
    Ok(StatusCode::NO_CONTENT)
}

async fn start_session(
    state: &AppState,
    tenant: &TenantId,
    user: &UserId,
    role: Role,
    family: Option<RefreshFamilyId>,
) -> Result<Session, ApiError> {
    let scope = role.scopes().to_strings().join(" ");
    let jwt = state.auth.jwt().await?;
    let family = family.unwrap_or_else(RefreshFamilyId::generate);
    let access_token = jwt.issue("user", user.as_str(), tenant.as_str(), &scope, Some(family.as_str()))?;
    let refresh_token = format!("rt_{}", random_base62(48));
    let expires_at =
        Utc::now() + chrono::Duration::from_std(state.config.refresh_token_ttl).unwrap_or(chrono::Duration::days(30));
    let mut tx = begin_tenant(&state.db, tenant).await?;
    sqlx::query(
        "insert into refresh_tokens (tenant_id, id, user_id, family_id, token_hash, expires_at) values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.as_str())
    .bind(RefreshTokenId::generate().as_str())
    .bind(user.as_str())
    .bind(family.as_str())
    .bind(sha256(&refresh_token))
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Session {
        access_token,
        token_type: "Bearer",
        expires_in: jwt.ttl.as_secs(),
        refresh_token,
        refresh_token_expires_at: expires_at,
        tenant_id: tenant.to_string(),
        user_id: user.to_string(),
        role,
    })
}

#[allow(clippy::too_many_arguments)]
async fn record(
    state: &AppState,
    tenant: &TenantId,
    user: Option<String>,
    action: &str,
    outcome: audit::Outcome,
    status: i32,
    ip: ClientIp,
    request_id: &RequestId,
) {
    let entry = audit::Entry {
        actor_type: "user".into(),
        actor_id: user,
        action: action.into(),
        outcome: Some(outcome),
        status: Some(status),
        ip: Some(ip.0.to_string()),
        request_id: Some(request_id.0.clone()),
        detail: serde_json::json!({}),
        ..audit::Entry::default()
    };
    // A tenant id that does not exist has no log to write to; that is not an error.
    if let Err(error) = audit::append(&state.db, tenant, entry).await
        && !matches!(&error, sqlx::Error::Database(e) if e.code().as_deref() == Some("23503"))
    {
        tracing::warn!(%error, "could not audit a session event");
    }
}

fn no_store(body: impl IntoResponse) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], body)
}

/// The caller, as this API sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub tenant_id: String,
    pub environment: Environment,
    /// `api_key`, `oauth_client` or `user`.
    pub actor_type: String,
    pub actor_id: String,
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
    /// For users: who they are.
    pub user: Option<MeUser>,
    /// For users: every tenant they belong to.
    pub memberships: Vec<MeMembership>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeUser {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct MeMembership {
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: String,
}

/// Who am I
///
/// The authenticated caller: its tenant, identity and scopes; for a user, also their details and
/// every tenant they belong to. Needs no particular scope.
#[utoipa::path(
    get,
    path = "/me",
    tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = []))
)]
async fn me(State(state): State<AppState>, principal: Principal) -> Result<ApiJson<Me>, ApiError> {
    let (mut user, mut memberships) = (None, Vec::new());
    if let Actor::User(id, _) = &principal.actor {
        let mut tx = begin_platform(&state.db).await?;
        let row: Option<(String, String, Option<String>)> =
            sqlx::query_as("select id, email, name from users where id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        user = row.map(|(id, email, name)| MeUser { id, email, name });
        memberships = sqlx::query_as(
            "select m.tenant_id, t.name as tenant_name, m.role from memberships m join tenants t on t.id = m.tenant_id
             where m.user_id = $1 order by t.name",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(ApiJson(Me {
        tenant_id: principal.tenant.id.to_string(),
        environment: principal.tenant.environment,
        actor_type: principal.actor.kind().to_owned(),
        actor_id: principal.actor.id().to_owned(),
        scopes: principal.scopes.to_strings(),
        user,
        memberships,
    }))
}
