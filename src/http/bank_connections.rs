//! Institutions and bank connections: connect a bank account through the GoCardless consent
//! flow, see its accounts and sync budget, refresh it, delete it.

use super::path_id::PathId;
use axum::{
    Extension,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{BankConnectionsRead, BankConnectionsWrite},
    },
    error::{ApiError, FieldError, Problem},
    json::ApiJson,
    pagination::{self, Page},
    query::ApiQuery,
};
use crate::{
    auth::Principal,
    bank::{
        connections::{self, NewConnection},
        model::BankConnection,
    },
    db::tenant::{begin_tenant, end_read},
    domain::{ids::BankConnectionId, states::ConnectionStatus},
    state::AppState,
};

/// Routes that act for a tenant.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(institutions))
        .routes(routes!(create, list))
        .routes(routes!(get, delete))
        .routes(routes!(refresh))
}

/// The consent callback: reached by the account holder's browser, so not authenticated.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback))
}

/// A bank that accounts can be connected at.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "SANDBOXFINANCE_SFIN0000", "name": "Sandbox Finance", "bic": "SFIN0000",
    "countries": ["XX", "GB"], "logo": "https://cdn-logos.gocardless.com/ais/SANDBOXFINANCE_SFIN0000.png",
    "max_historical_days": 730, "max_access_valid_for_days": 180}))]
pub struct InstitutionView {
    /// Pass as `institution_id` when creating a bank connection.
    pub id: String,
    pub name: String,
    pub bic: Option<String>,
    pub countries: Vec<String>,
    pub logo: Option<String>,
    /// The most history the bank gives, in days.
    pub max_historical_days: i32,
    /// The longest consent the bank grants, in days.
    pub max_access_valid_for_days: i32,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InstitutionFilters {
    /// ISO 3166-1 alpha-2 country code, e.g. `GB` (required).
    pub country: Option<String>,
}

/// List institutions
///
/// The banks available in a country, from the bank data provider (cached for an hour).
/// Test-mode tenants see the sandbox's banks, including `SANDBOXFINANCE_SFIN0000`.
#[utoipa::path(
    get,
    path = "/institutions",
    tag = "bank_connections",
    params(InstitutionFilters),
    responses(
        (status = 200, body = Vec<InstitutionView>),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["bank_connections:read"]), ("bearer" = ["bank_connections:read"]))
)]
async fn institutions(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<BankConnectionsRead>,
    ApiQuery(filters): ApiQuery<InstitutionFilters>,
) -> Result<ApiJson<Vec<InstitutionView>>, ApiError> {
    let country = filters.country.unwrap_or_default().to_ascii_uppercase();
    let client = state.gocardless.for_tenant(&principal.tenant).await?;
    let list = state.gocardless.institutions(&client, &country).await?;
    Ok(ApiJson(
        list.iter()
            .map(|i| InstitutionView {
                id: i.id.clone(),
                name: i.name.clone(),
                bic: i.bic.clone(),
                countries: i.countries.clone(),
                logo: i.logo.clone(),
                max_historical_days: i.history_days(),
                max_access_valid_for_days: i.max_access_days(),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"institution_id": "SANDBOXFINANCE_SFIN0000", "redirect_url": "https://portal.example.com/banks/done"}))]
pub struct CreateBankConnection {
    /// From `GET /institutions`.
    pub institution_id: String,
    /// Where the account holder's browser goes after the consent step (http or https), with
    /// `bank_connection_id`, `status` and, on failure, `error` added to its query.
    pub redirect_url: String,
    /// Days of history to read (default 90, at most what the bank offers).
    pub max_historical_days: Option<i32>,
    /// Days the consent lasts (default 90, at most what the bank grants).
    pub access_valid_for_days: Option<i32>,
}

impl CreateBankConnection {
    fn validate(self) -> Result<NewConnection, ApiError> {
        let mut errors = Vec::new();
        let institution_id = self.institution_id.trim().to_owned();
        if institution_id.is_empty()
            || institution_id.len() > 100
            || !institution_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            errors.push(FieldError {
                field: "institution_id".into(),
                message: "must be an institution id such as SANDBOXFINANCE_SFIN0000".into(),
            });
        }
        let url_ok = self.redirect_url.len() <= 2000
            && reqwest::Url::parse(&self.redirect_url).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
                    && u.username().is_empty()
                    && u.password().is_none()
            });
        if !url_ok {
            errors.push(FieldError {
                field: "redirect_url".into(),
                message: "must be an absolute http or https URL without credentials, at most 2000 characters".into(),
            });
        }
        for (field, value) in
            [("max_historical_days", self.max_historical_days), ("access_valid_for_days", self.access_valid_for_days)]
        {
            if value.is_some_and(|v| !(1..=730).contains(&v)) {
                errors.push(FieldError { field: field.into(), message: "must be between 1 and 730".into() });
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(NewConnection {
            institution_id,
            redirect_url: self.redirect_url,
            max_historical_days: self.max_historical_days,
            access_valid_for_days: self.access_valid_for_days,
        })
    }
}

/// Create a bank connection
///
/// Creates the end-user agreement and requisition at the bank data provider and returns the
/// connection, `pending`, with its `consent_link`. Send the account holder there; after they
/// approve, the provider sends them to our callback, which links the connection (fetching its
/// accounts, details and balances, and queueing the first sync) and forwards them to your
/// `redirect_url`. Emits `bank_connection.created`, then `bank_connection.updated`.
#[utoipa::path(
    post,
    path = "/bank_connections",
    tag = "bank_connections",
    request_body = CreateBankConnection,
    responses(
        (status = 201, body = BankConnection),
        (status = 409, description = "No provider credentials configured", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown institution, bad redirect URL or periods", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["bank_connections:write"]), ("bearer" = ["bank_connections:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<BankConnectionsWrite>,
    ApiJson(body): ApiJson<CreateBankConnection>,
) -> Result<impl IntoResponse, ApiError> {
    let new = body.validate()?;
    let connection = connections::create(&state, &principal.tenant, new).await?;
    let audit = AuditResource::new("bank_connection", &connection.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(connection)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectionFilters {
    /// Only connections in this status.
    pub status: Option<ConnectionStatus>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<super::pagination::Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl super::query::QueryParams for ConnectionFilters {}

impl super::query::QueryParams for InstitutionFilters {
    fn problems(&self) -> Vec<FieldError> {
        match &self.country {
            Some(country) if country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic()) => Vec::new(),
            _ => vec![FieldError {
                field: "country".into(),
                message: "is required: an ISO 3166-1 alpha-2 code such as GB".into(),
            }],
        }
    }
}

/// List bank connections
///
/// Newest first, each with its accounts, balances and today's sync budget.
#[utoipa::path(
    get,
    path = "/bank_connections",
    tag = "bank_connections",
    params(ConnectionFilters),
    responses((status = 200, body = Page<BankConnection>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["bank_connections:read"]), ("bearer" = ["bank_connections:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<BankConnectionsRead>,
    ApiQuery(f): ApiQuery<ConnectionFilters>,
) -> Result<ApiJson<Page<BankConnection>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(f.limit);
    let after = cursors.after(f.cursor.as_deref(), BankConnectionId::parse)?;
    let rows = connections::list(&state, &principal.tenant.id, f.status, after.as_ref(), limit).await?;
    Ok(ApiJson(cursors.page(rows, limit, |c| c.id.clone())))
}

/// Get a bank connection
///
/// With its accounts (balances in minor units), `last_synced_at`, `expires_at`,
/// `expiring_in_days` when the consent ends within a week, and the calls the bank still allows
/// today (`sync_budget`).
#[utoipa::path(
    get,
    path = "/bank_connections/{id}",
    tag = "bank_connections",
    params(("id" = String, Path, description = "The connection's id (`bc_…`)")),
    responses((status = 200, body = BankConnection), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["bank_connections:read"]), ("bearer" = ["bank_connections:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<BankConnectionsRead>,
    PathId(parsed): PathId<BankConnectionId>,
) -> Result<ApiJson<BankConnection>, ApiError> {
    let id = parsed.as_str();
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let connection = connections::load(&mut tx, &principal.tenant.id, &parsed).await?;
    end_read(tx);
    match connection {
        Some(connection) => Ok(ApiJson(connection)),
        None => Err(ApiError::not_found_in(Probe::BankConnections, id)),
    }
}

/// Delete a bank connection
///
/// Deletes the requisition (and so the consent) at the provider and marks the connection
/// `deleted`. Its accounts and transactions are kept. Emits `bank_connection.updated`.
#[utoipa::path(
    delete,
    path = "/bank_connections/{id}",
    tag = "bank_connections",
    params(("id" = String, Path, description = "The connection's id (`bc_…`)")),
    responses(
        (status = 200, body = BankConnection),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unavailable; nothing changed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["bank_connections:write"]), ("bearer" = ["bank_connections:write"]))
)]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<BankConnectionsWrite>,
    PathId(parsed): PathId<BankConnectionId>,
) -> Result<Response, ApiError> {
    let id = parsed.as_str();
    match connections::delete(&state, &principal.tenant, &parsed).await? {
        Some(connection) => {
            Ok((Extension(AuditResource::new("bank_connection", &connection.id)), ApiJson(connection)).into_response())
        }
        None => Err(ApiError::not_found_in(Probe::BankConnections, id)),
    }
}

/// Refresh a bank connection
///
/// Queues a sync of every account now and answers 202 with the connection. Refused with
/// `sync_budget_exhausted` (429, `Retry-After` until the budget renews) when the bank's daily
/// budget for the accounts is spent, and with `bank_connection_expired` or
/// `bank_connection_not_linked` (409) when there is nothing to sync.
#[utoipa::path(
    post,
    path = "/bank_connections/{id}/refresh",
    tag = "bank_connections",
    params(("id" = String, Path, description = "The connection's id (`bc_…`)")),
    responses(
        (status = 202, body = BankConnection),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The bank's daily budget is spent", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["bank_connections:write"]), ("bearer" = ["bank_connections:write"]))
)]
async fn refresh(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<BankConnectionsWrite>,
    PathId(parsed): PathId<BankConnectionId>,
) -> Result<Response, ApiError> {
    let id = parsed.as_str();
    match connections::refresh(&state, &principal.tenant, &parsed).await? {
        Some(connection) => Ok((
            StatusCode::ACCEPTED,
            Extension(AuditResource::new("bank_connection", &connection.id)),
            ApiJson(connection),
        )
            .into_response()),
        None => Err(ApiError::not_found_in(Probe::BankConnections, id)),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The requisition's reference, as the provider echoes it.
    #[serde(rename = "ref")]
    #[param(rename = "ref")]
    pub reference: Option<String>,
    /// Set by the provider when consent failed, e.g. `UserCancelledSession`.
    pub error: Option<String>,
    /// The provider's description of the failure.
    pub details: Option<String>,
}

/// Unknown parameters are let through: the provider may add some.
impl super::query::QueryParams for CallbackParams {}

/// Consent callback
///
/// Where the bank data provider sends the account holder's browser after the consent step.
/// Links the connection (or records the rejection) and redirects (303) to the connection's
/// `redirect_url` with `bank_connection_id`, `status` and, on failure, `error`. Reloading it is
/// harmless. Not called by API clients.
#[utoipa::path(
    get,
    path = "/bank_connections/callback",
    tag = "bank_connections",
    params(CallbackParams),
    responses(
        (status = 303, description = "On to the tenant's redirect_url"),
        (status = 404, description = "Unknown reference", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unavailable; reload to retry", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn callback(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<CallbackParams>,
) -> Result<Response, ApiError> {
    let reference = params.reference.ok_or_else(ApiError::not_found)?;
    let outcome = connections::callback(&state, &reference, params.error.as_deref(), params.details.as_deref()).await?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, outcome.redirect_to)]).into_response())
}
