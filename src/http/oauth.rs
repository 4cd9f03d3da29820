//! OAuth2 client credentials (RFC 6749 §4.4) for partner integrations: `POST /oauth/token` issues
//! short-lived JWT access tokens to registered clients, answering errors in RFC 6749's own shape
//! (`{error, error_description}`) because that is what OAuth client libraries parse. Clients are
//! managed under `/oauth_clients` (the secret is shown once).

use super::path_id::PathId;
use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{ApiKeysRead, ApiKeysWrite},
    },
    error::{ApiError, Problem},
    json::ApiJson,
    pagination::{self, Page, PageParams},
    problem::KeepErrorBody,
    query::ApiQuery,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_platform, begin_tenant},
    domain::{
        ids::{OAuthClientId, TenantId},
        scope::{Scope, Scopes},
        secret::{ShownOnce, random_base62, sha256},
    },
    events,
    state::AppState,
    tenancy::revocation::{self, Revocable},
};

/// Public: the token endpoint.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(token))
}

/// Authenticated: client management.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_client, list_clients))
        .routes(routes!(get_client))
        .routes(routes!(revoke_client))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: Option<String>,
    /// Space-separated scopes; defaults to everything the client was granted.
    pub scope: Option<String>,
    /// With `client_secret`, instead of HTTP Basic authentication.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The scopes granted, space-separated.
    pub scope: String,
}

/// An RFC 6749 §5.2 error.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type` or `invalid_scope`.
    pub error: &'static str,
    pub error_description: String,
}

/// Get an access token (client credentials)
///
/// Form-encoded. Authenticate the client with HTTP Basic (`client_id:client_secret`) or with
/// `client_id` and `client_secret` in the form. A `scope` beyond the client's grant is refused
/// with `invalid_scope`. Errors use RFC 6749's `{error, error_description}` body.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = OAuthError),
        (status = 401, description = "Unknown client or wrong secret", body = OAuthError),
    )
)]
async fn token(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let is_form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        ct.split(';').next().is_some_and(|e| e.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if !is_form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the request as application/x-www-form-urlencoded",
            false,
        );
    }
    let text = String::from_utf8_lossy(&body);
    if let Some(problem) = super::query::form_text_problems(&text).first() {
        let detail = format!("the form field {} {}", problem.field, problem.message);
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &detail, false);
    }
    let form: TokenRequest = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the form is malformed: {e}"),
                false,
            );
        }
    };
    match issue(&state, &headers, form).await {
        Ok(token) => {
            ([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], ApiJson(token)).into_response()
        }
        Err(error) => error,
    }
}

async fn issue(state: &AppState, headers: &HeaderMap, form: TokenRequest) -> Result<TokenResponse, Response> {
    let basic = basic_credentials(headers).map_err(|()| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the Authorization header is not valid HTTP Basic",
            false,
        )
    })?;
    let used_basic = basic.is_some();
    let (client_id, secret) = match (basic, form.client_id, form.client_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "authenticate the client one way only: HTTP Basic or form fields",
                false,
            ));
        }
        (Some(pair), None, None) => pair,
        (None, Some(id), Some(secret)) => (id, secret),
        _ => {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required",
                used_basic,
            ));
        }
    };
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        None => return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required", false)),
        Some(_) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported",
                false,
            ));
        }
    }
    let unknown =
        || oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret", used_basic);
    let client = OAuthClientId::parse(&client_id).ok_or_else(unknown)?;
    let internal = |e: sqlx::Error| ApiError::from(e).into_response();
    let mut tx = begin_platform(&state.db).await.map_err(internal)?;
    type ClientRow = (String, Vec<u8>, Vec<String>, Option<DateTime<Utc>>);
    let row: Option<ClientRow> =
        sqlx::query_as("select tenant_id, secret_hash, scopes, revoked_at from oauth_clients where id = $1")
            .bind(client.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(internal)?;
    let (tenant, hash, granted, revoked_at) = row.ok_or_else(unknown)?;
    if revoked_at.is_some() || !bool::from(subtle::ConstantTimeEq::ct_eq(hash.as_slice(), sha256(&secret).as_slice())) {
        return Err(unknown());
    }
    let granted = Scopes::parse_all(granted.iter().map(String::as_str)).map_err(|_| unknown())?;
    let scopes = match form.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => granted,
        Some(requested) => {
            let requested = Scopes::parse_all(requested.split_whitespace())
                .map_err(|e| oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &e, false))?;
            if let Some(extra) = requested.0.iter().find(|s| !granted.grants(**s)) {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("the client is not granted {extra}"),
                    false,
                ));
            }
            requested
        }
    };
    sqlx::query("update oauth_clients set last_used_at = now() where id = $1")
        .bind(client.as_str())
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    let scope = scopes.to_strings().join(" ");
    let jwt = state.auth.jwt().await.map_err(internal)?;
    let access_token = jwt
        .issue("client", client.as_str(), &tenant, &scope, None)
        .map_err(|e| ApiError::Internal(e).into_response())?;
    Ok(TokenResponse { access_token, token_type: "Bearer", expires_in: jwt.ttl.as_secs(), scope })
}

/// `Some((id, secret))` from HTTP Basic; `Err` when the header is Basic but malformed.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ())?;
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else { return Err(()) };
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).map_err(|_| ())?).map_err(|_| ())?;
    let (id, secret) = decoded.split_once(':').ok_or(())?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before joining.
    let unescape = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Ok(Some((unescape(id).ok_or(())?, unescape(secret).ok_or(())?)))
}

fn oauth_error(status: StatusCode, error: &'static str, description: &str, basic_challenge: bool) -> Response {
    let mut response = (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Extension(KeepErrorBody),
        ApiJson(OAuthError { error, error_description: description.to_owned() }),
    )
        .into_response();
    if basic_challenge && let Ok(value) = "Basic realm=\"payymo\"".parse() {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// A registered OAuth2 client.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
pub struct OAuthClient {
    /// The `client_id`.
    #[schema(example = "cli_0192f3c4d5e6478fa1b2c3d4e5f60718")]
    pub id: String,
    pub name: String,
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const CLIENT_COLUMNS: &str = "id, name, scopes, revoked_at, last_used_at, created_at";

/// OAuth clients as [`revocation`] revokes them.
const OAUTH_CLIENTS: Revocable =
    Revocable { table: "oauth_clients", columns: CLIENT_COLUMNS, event: "oauth_client.revoked" };

#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthClientWithSecret {
    #[serde(flatten)]
    pub client: OAuthClient,
    /// Shown this once: store it now.
    pub client_secret: ShownOnce,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOAuthClient {
    pub name: String,
    /// The most the client's tokens may carry; each must be held by the caller.
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
}

/// Register an OAuth2 client
///
/// Returns the `client_id` (the `id`) and the `client_secret`, shown this once.
#[utoipa::path(
    post,
    path = "/oauth_clients",
    tag = "auth",
    request_body = CreateOAuthClient,
    responses((status = 201, body = OAuthClientWithSecret), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["api_keys:write"]), ("bearer" = ["api_keys:write"]))
)]
async fn create_client(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ApiKeysWrite>,
    ApiJson(body): ApiJson<CreateOAuthClient>,
) -> Result<impl IntoResponse, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_field("name", "must be 1 to 100 characters"));
    }
    let scopes =
        Scopes::parse_all(body.scopes.iter().map(String::as_str)).map_err(|e| ApiError::invalid_field("scopes", e))?;
    if scopes.0.is_empty() {
        return Err(ApiError::invalid_field("scopes", "must name at least one scope"));
    }
    if let Some(missing) = scopes.0.iter().find(|s| !principal.scopes.grants(**s)) {
        return Err(ApiError::insufficient_scope(missing));
    }
    let secret = format!("cs_{}", random_base62(48));
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let client: OAuthClient = sqlx::query_as(&format!(
        "insert into oauth_clients (tenant_id, id, name, secret_hash, scopes) values ($1, $2, $3, $4, $5) returning {CLIENT_COLUMNS}"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(OAuthClientId::generate().as_str())
    .bind(name)
    .bind(sha256(&secret))
    .bind(scopes.to_strings())
    .fetch_one(&mut *tx)
    .await?;
    events::record(&mut tx, &principal.tenant.id, "oauth_client.created", &client).await?;
    tx.commit().await?;
    let audit = AuditResource::new("oauth_client", &client.id);
    Ok((
        StatusCode::CREATED,
        Extension(audit),
        ApiJson(OAuthClientWithSecret { client, client_secret: ShownOnce(secret) }),
    ))
}

/// List OAuth2 clients
#[utoipa::path(
    get,
    path = "/oauth_clients",
    tag = "auth",
    params(PageParams),
    responses((status = 200, body = Page<OAuthClient>)),
    security(("api_key" = ["api_keys:read"]), ("bearer" = ["api_keys:read"]))
)]
async fn list_clients(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ApiKeysRead>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<OAuthClient>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let after = cursors.after(params.cursor.as_deref(), OAuthClientId::parse)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows: Vec<OAuthClient> = sqlx::query_as(&format!(
        "select {CLIENT_COLUMNS} from oauth_clients where tenant_id = $1 and ($2::text is null or id < $2) order by id desc limit $3"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(after.as_ref().map(OAuthClientId::as_str))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ApiJson(cursors.page(rows, limit, |c| c.id.clone())))
}

/// Get an OAuth2 client
#[utoipa::path(
    get,
    path = "/oauth_clients/{id}",
    tag = "auth",
    params(("id" = String, Path, description = "The client's id (`cli_…`)")),
    responses((status = 200, body = OAuthClient), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["api_keys:read"]), ("bearer" = ["api_keys:read"]))
)]
async fn get_client(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ApiKeysRead>,
    PathId(id): PathId<OAuthClientId>,
) -> Result<ApiJson<OAuthClient>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let client = fetch_client(&mut tx, &principal.tenant.id, &id).await?;
    tx.commit().await?;
    match client {
        Some(client) => Ok(ApiJson(client)),
        None => Err(ApiError::not_found_in(Probe::OAuthClients, id.as_str())),
    }
}

/// Revoke an OAuth2 client
///
/// The client can get no new tokens, and its existing tokens stop working within
/// `PAYYMO_CREDENTIAL_CACHE_TTL` (5 s by default).
#[utoipa::path(
    post,
    path = "/oauth_clients/{id}/revoke",
    tag = "auth",
    params(("id" = String, Path, description = "The client's id (`cli_…`)")),
    responses((status = 200, body = OAuthClient), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["api_keys:write"]), ("bearer" = ["api_keys:write"]))
)]
async fn revoke_client(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ApiKeysWrite>,
    PathId(id): PathId<OAuthClientId>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let client: Option<OAuthClient> =
        revocation::revoke(&mut tx, &principal.tenant.id, id.as_str(), &OAUTH_CLIENTS).await?;
    tx.commit().await?;
    let Some(client) = client else {
        return Err(ApiError::not_found_in(Probe::OAuthClients, id.as_str()));
    };
    state.auth.forget_cached_credentials();
    Ok((Extension(AuditResource::new("oauth_client", &client.id)), ApiJson(client)))
}

async fn fetch_client(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &OAuthClientId,
) -> Result<Option<OAuthClient>, sqlx::Error> {
    sqlx::query_as(&format!("select {CLIENT_COLUMNS} from oauth_clients where tenant_id = $1 and id = $2"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}
