//! User sessions for client portals: sign in with email and password; rotate the refresh token,
//! optionally switching tenant; sign out; and `GET /me`.
//!
//! Each sign-in starts a family of refresh tokens. Every refresh uses up its token and issues the
//! next; presenting a used token again means it was copied, so the whole family is revoked and the
//! reuse is audited as a security incident.
//!
//! The refresh token travels in the JSON body, or, for a browser portal that must not keep it
//! where JavaScript can read it, in an `HttpOnly` cookie (see [`cookie`]).

mod cookie;
mod me;

use std::time::Duration;

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
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
    auth::password,
    db::tenant::{begin_platform, begin_tenant},
    domain::{
        ids::{RefreshFamilyId, RefreshTokenId, TenantId, UserId},
        scope::Role,
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
    OpenApiRouter::new().routes(routes!(me::me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// The tenant to sign in to (`ten_…`); the user must be a member. Without it, the user's
    /// first tenant by name; `GET /me` lists the others, and `/auth/refresh` switches to them.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Where to deliver the refresh token: `body` (the default) or `cookie`.
    #[serde(default)]
    pub refresh_token_in: RefreshTokenIn,
}

/// Where a session's refresh token is delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefreshTokenIn {
    /// In the response body's `refresh_token`, for clients that keep it in secure storage.
    #[default]
    Body,
    /// In the `payymo_refresh` cookie (`HttpOnly`, `SameSite=Strict`, `Path=/api/v1/auth`) and
    /// not in the body: for browser portals, so that no script can read it.
    Cookie,
}

/// Every field may be left out: `{}` refreshes the session in the `payymo_refresh` cookie.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token; without it, the one in the `payymo_refresh` cookie.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Switch to this tenant (`ten_…`), one the user is a member of: the new session is for it,
    /// with the user's role there. Without it, the session stays in its tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The refresh token of the session to end; without it, the one in the `payymo_refresh` cookie.
    #[serde(default)]
    pub refresh_token: Option<String>,
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
    /// Single use: exchange it at `/auth/refresh` for a new pair. Absent when the refresh token
    /// was delivered in the `payymo_refresh` cookie instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refresh_token: Option<String>,
    pub refresh_token_expires_at: DateTime<Utc>,
    pub tenant_id: String,
    pub user_id: String,
    pub role: Role,
}

/// Sign in
///
/// Returns an access token (JWT, 15 minutes by default) and a refresh token. Without `tenant_id`
/// the session is for the user's first tenant by name. Wrong email, password or tenant all answer
/// the same 401. Attempts are limited per account (10 per 15 minutes) and per IP address (100 per
/// 15 minutes).
///
/// With `"refresh_token_in": "cookie"` the refresh token is not in the body but in a cookie,
/// `payymo_refresh=…; Path=/api/v1/auth; HttpOnly; SameSite=Strict; Max-Age=…` (plus `Secure`
/// when the service's public URL is `https://`): a browser portal then never holds it in
/// JavaScript-readable storage, and refreshes and signs out with the cookie alone.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = Login,
    responses(
        (status = 200, body = Session, headers(
            ("Set-Cookie" = String, description = "`payymo_refresh`, only with `refresh_token_in: cookie`"),
        )),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    request_id: RequestId,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_lowercase();
    let account = format!("login:account:{}:{email}", body.tenant_id.as_deref().unwrap_or(""));
    for (key, quota) in [(account, LOGIN_PER_ACCOUNT), (format!("login:ip:{}", ip.0), LOGIN_PER_IP)] {
        let decision = state.limiter.check(&key, quota).await;
        if !decision.allowed {
            return Err(super::rate_limit::refusal(&decision, "too many sign-in attempts; try again later"));
        }
    }
    let (user, tenant, role) =
        check_credentials(&state, &email, body.password, body.tenant_id.as_deref(), ip, &request_id).await?;
    let session = start_session(&state, &tenant, &user, role, None).await?;
    record(&state, &tenant, Some(user.to_string()), "auth.login", audit::Outcome::Success, 200, ip, &request_id).await;
    Ok(deliver(&state, session, body.refresh_token_in))
}

/// A user found by email, with the tenant they would sign in to and their role there.
#[derive(sqlx::FromRow)]
struct Account {
    user_id: String,
    password_hash: String,
    tenant_id: Option<String>,
    role: Option<String>,
}

/// Who `email` and `password` sign in as, in `tenant_id` or else the user's first tenant by name.
/// Every failure is the same 401 after the same work: a password is always verified, against a
/// dummy hash when there is no such user, so timing does not reveal whether the account exists.
async fn check_credentials(
    state: &AppState,
    email: &str,
    password: String,
    tenant_id: Option<&str>,
    ip: ClientIp,
    request_id: &RequestId,
) -> Result<(UserId, TenantId, Role), ApiError> {
    let invalid = || ApiError::new(ErrorCode::InvalidCredentials, "the email, password or tenant is not right");
    if password.len() > password::MAX_LENGTH {
        return Err(invalid());
    }
    let requested = tenant_id.map(TenantId::parse);
    let found: Option<Account> = match &requested {
        Some(None) => None, // not a tenant id: no one is a member
        _ => {
            let mut tx = begin_platform(&state.db).await?;
            let row = sqlx::query_as(
                "select u.id as user_id, u.password_hash, m.tenant_id, m.role from users u
                 left join lateral (
                     select m.tenant_id, m.role from memberships m join tenants t on t.id = m.tenant_id
                     where m.user_id = u.id and ($2::text is null or m.tenant_id = $2)
                     order by t.name, t.id limit 1
                 ) m on true
                 where lower(u.email) = $1",
            )
            .bind(email)
            .bind(requested.as_ref().and_then(|t| t.as_ref()).map(TenantId::as_str))
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        }
    };
    let stored = found.as_ref().map_or(password::DUMMY_HASH.to_owned(), |a| a.password_hash.clone());
    if password::verify(password, stored).await
        && let Some(Account { user_id: user, tenant_id: Some(tenant), role: Some(role), .. }) = &found
    {
        let role = Role::parse(role).ok_or_else(invalid)?;
        return Ok((UserId::from_db(user.clone()), TenantId::from_db(tenant.clone()), role));
    }
    // Audited in the tenant asked for, or else the one the user would have signed in to.
    let (user, member_of) = found.map_or((None, None), |a| (Some(a.user_id), a.tenant_id));
    if let Some(tenant) = requested.flatten().or_else(|| member_of.map(TenantId::from_db)) {
        record(state, &tenant, user, "auth.login", audit::Outcome::Failure, 401, ip, request_id).await;
    }
    Err(invalid())
}

/// A refresh token as presented, locked for the refresh, with the user's role in the tenant the
/// new session is to be for.
#[derive(sqlx::FromRow)]
struct PresentedToken {
    tenant_id: String,
    id: String,
    user_id: String,
    family_id: String,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    /// The tenant of the new session: the one asked for, or else the token's.
    target_tenant_id: String,
    /// The user's role there; `None` when not (or no longer) a member.
    role: Option<String>,
}

/// Refresh a session
///
/// Exchanges a refresh token for a new access token and a new refresh token. Each refresh token
/// works once: presenting a used one revokes every token of its session.
///
/// The token is the body's `refresh_token` or, when that is left out, the `payymo_refresh`
/// cookie's; from the cookie, the new refresh token comes back in the cookie too and not in the
/// body. The cookie is `SameSite=Strict` and this endpoint only takes a body sent as
/// `Content-Type: application/json` (otherwise 415), which an HTML form on another site cannot
/// send and a cross-site script cannot send without a CORS preflight that this API does not grant
/// to credentialed requests: together, the defence against cross-site request forgery. So send
/// `{}` even when every field is left out.
///
/// With `tenant_id` naming another tenant the user is a member of, the token is used up and the
/// new session is for that tenant, with the user's role there: a session of its own, whose access
/// tokens name the new tenant, but still descended from the same sign-in, so reusing a token from
/// before the switch, or signing out, ends it too. A tenant the user is not a member of answers
/// 403 `not_a_member`, and the token is left unused.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = Session, headers(
            ("Set-Cookie" = String, description = "The next `payymo_refresh`, when the token came from the cookie"),
        )),
        (
            status = 401, description = "`unauthenticated`: no refresh token, or not a valid one",
            body = Problem, content_type = "application/problem+json",
        ),
        (
            status = 403, description = "`not_a_member`: the user is not a member of `tenant_id`; the token was not used",
            body = Problem, content_type = "application/problem+json",
        ),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    request_id: RequestId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let invalid = || ApiError::unauthenticated("the refresh token is not valid; sign in again");
    let (presented, delivery) = match body.refresh_token {
        Some(token) => (token, RefreshTokenIn::Body),
        None => (cookie::read(&headers).ok_or_else(invalid)?, RefreshTokenIn::Cookie),
    };
    let mut tx = begin_platform(&state.db).await?;
    let token: Option<PresentedToken> = sqlx::query_as(
        "select r.tenant_id, r.id, r.user_id, r.family_id, r.expires_at, r.used_at, r.revoked_at,
                coalesce($2, r.tenant_id) as target_tenant_id, m.role
         from refresh_tokens r
         left join memberships m on m.tenant_id = coalesce($2, r.tenant_id) and m.user_id = r.user_id
         where r.token_hash = $1 for update of r",
    )
    .bind(sha256(&presented))
    .bind(body.tenant_id.as_deref())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(token) = token else {
        return Err(invalid());
    };
    let tenant = TenantId::from_db(token.tenant_id.clone());
    if token.used_at.is_some() && token.revoked_at.is_none() {
        revoke_copied(&state, tx, &tenant, &token, ip, &request_id).await?;
        return Err(invalid());
    }
    if token.revoked_at.is_some() || token.expires_at <= Utc::now() {
        return Err(invalid());
    }
    let switching = token.target_tenant_id != tenant.as_str();
    let Some(role) = token.role.as_deref().and_then(Role::parse) else {
        // The token stays unused, and the session where it was.
        tx.rollback().await?;
        if !switching {
            return Err(invalid());
        }
        if let Some(target) = TenantId::parse(&token.target_tenant_id) {
            let user = Some(token.user_id);
            record(&state, &target, user, "auth.switch_tenant", audit::Outcome::Failure, 403, ip, &request_id).await;
        }
        return Err(ApiError::new(ErrorCode::NotAMember, "you are not a member of that tenant"));
    };
    sqlx::query("update refresh_tokens set used_at = now() where tenant_id = $1 and id = $2")
        .bind(tenant.as_str())
        .bind(&token.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let user = UserId::from_db(token.user_id);
    let target = TenantId::from_db(token.target_tenant_id);
    let family = RefreshFamilyId::from_db(token.family_id);
    let session = start_session(&state, &target, &user, role, Some(family)).await?;
    if switching {
        let outcome = audit::Outcome::Success;
        record(&state, &target, Some(user.to_string()), "auth.switch_tenant", outcome, 200, ip, &request_id).await;
    }
    Ok(deliver(&state, session, delivery))
}

/// A used refresh token presented again was copied: revokes its whole family, in every tenant the
/// session was switched to (see [`start_session`]), and audits the incident.
async fn revoke_copied(
    state: &AppState,
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    tenant: &TenantId,
    token: &PresentedToken,
    ip: ClientIp,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    sqlx::query(
        "update refresh_tokens set revoked_at = now()
         where tenant_id in (select tenant_id from memberships where user_id = $1) and family_id = $2
           and revoked_at is null",
    )
    .bind(&token.user_id)
    .bind(&token.family_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.auth.forget_cached_credentials();
    tracing::warn!(%tenant, family = token.family_id, "refresh token reused: session revoked");
    let (user, outcome) = (Some(token.user_id.clone()), audit::Outcome::SecurityIncident);
    record(state, tenant, user, "auth.refresh_token_reused", outcome, 401, ip, request_id).await;
    Ok(())
}

/// Sign out
///
/// Revokes the session the refresh token belongs to, in every tenant it was switched between: its
/// refresh tokens at once, and the access tokens issued to it within `PAYYMO_CREDENTIAL_CACHE_TTL`
/// (5 s by default) on every instance.
///
/// The token is the body's `refresh_token` or the `payymo_refresh` cookie's (when both are sent,
/// both sessions end). The cookie is cleared (`Max-Age=0`) whenever the request carried it or
/// named no token in the body. Like `/auth/refresh`, this takes only a JSON body (send `{}`), so
/// another site cannot sign a user out.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    request_body = LogoutRequest,
    responses((status = 204, description = "Signed out (also when the token was already invalid)", headers(
        ("Set-Cookie" = String, description = "Clears `payymo_refresh`, when the cookie was sent or no token was"),
    )))
)]
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LogoutRequest>,
) -> Result<Response, ApiError> {
    let from_cookie = cookie::read(&headers);
    let clear = from_cookie.is_some() || body.refresh_token.is_none();
    let hashes: Vec<Vec<u8>> = body.refresh_token.iter().chain(&from_cookie).map(|token| sha256(token)).collect();
    if !hashes.is_empty() {
        let mut tx = begin_platform(&state.db).await?;
        sqlx::query(
            "update refresh_tokens set revoked_at = now()
             where (tenant_id, family_id) in (
                 select m.tenant_id, r.family_id from refresh_tokens r join memberships m on m.user_id = r.user_id
                 where r.token_hash = any($1)
             ) and revoked_at is null",
        )
        .bind(hashes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        state.auth.forget_cached_credentials();
    }
    let cleared = clear.then(|| [(header::SET_COOKIE, cookie::clear(cookie_secure(&state)))]);
    Ok((cleared, StatusCode::NO_CONTENT).into_response())
}

/// The session as JSON, with its refresh token moved into the cookie when `delivery` says so.
fn deliver(state: &AppState, mut session: Session, delivery: RefreshTokenIn) -> Response {
    let set_cookie = match delivery {
        RefreshTokenIn::Body => None,
        RefreshTokenIn::Cookie => session.refresh_token.take().map(|token| {
            [(header::SET_COOKIE, cookie::set(&token, state.config.refresh_token_ttl, cookie_secure(state)))]
        }),
    };
    (set_cookie, no_store(ApiJson(session))).into_response()
}

fn cookie_secure(state: &AppState) -> bool {
    cookie::secure_for(state.config.public_url.as_deref())
}

/// Issues an access token and a refresh token for `user` in `tenant`, continuing `family` or
/// starting a new one. A session switched to another tenant keeps its family id: there, the
/// (tenant, family) pair that access tokens are checked against is a new family; but reusing a
/// token from before the switch, or signing out, revokes the family id in every tenant, so a
/// switch cannot launder a stolen refresh token.
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
        refresh_token: Some(refresh_token),
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
