//! Stripe: connect a tenant's Stripe account with a key, see the connection, disconnect it. The
//! rules live in `stripe::connection`; this module extracts, calls and shapes.

use axum::{
    Extension,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::AuditResource,
    auth::{
        Needs,
        scopes::{StripeRead, StripeWrite},
    },
    error::{ApiError, ErrorCode, Problem},
    json::ApiJson,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    state::AppState,
    stripe::{
        StripeError, connect,
        connection::{self, StripeConnection},
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_connection, get_connection, delete_connection))
}

impl From<StripeError> for ApiError {
    fn from(error: StripeError) -> Self {
        match error {
            StripeError::Invalid(errors) => ApiError::validation(errors),
            StripeError::NotConnected => ApiError::new(
                ErrorCode::NotFound,
                "no Stripe account is connected; connect one with PUT /api/v1/stripe/connection",
            ),
            StripeError::Unavailable(detail) => {
                ApiError::new(ErrorCode::ProviderUnavailable, format!("{detail}; retry later"))
                    .with_header(axum::http::header::RETRY_AFTER, "30")
            }
            StripeError::Refused(detail) => ApiError::new(ErrorCode::ProviderError, detail),
            StripeError::Declined { code, message } => {
                ApiError::new(ErrorCode::PaymentDeclined, format!("{message} (decline code: {code})"))
            }
            StripeError::IdempotencyReused(detail) => {
                ApiError::new(ErrorCode::IdempotencyKeyReused, format!("Stripe: {detail}"))
            }
            StripeError::Authorization(detail) => ApiError::new(ErrorCode::InvalidRequest, detail),
            StripeError::NotConfigured(detail) => ApiError::new(ErrorCode::ProviderNotConfigured, detail),
            StripeError::Conflict(detail) => ApiError::new(ErrorCode::Conflict, detail),
            StripeError::Database(error) => error.into(),
            StripeError::Keys(detail) => {
                tracing::error!(%detail, "the key ring failed");
                ApiError::new(ErrorCode::InternalError, "the key ring is unavailable")
            }
        }
    }
}

/// The key to connect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"api_key": "rk_test_51AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"}))]
pub struct ConnectStripe {
    /// A restricted key (`rk_…`, recommended) with read access to charges, refunds, payment
    /// intents, balance, payouts and events; or a secret key (`sk_…`). Test-mode tenants take test
    /// keys, live tenants live keys. Never shown again.
    pub api_key: String,
    /// Read the account's history (charges, refunds, payouts and their balance transactions)
    /// from this day on. Default: 90 days ago when the connection is new; given again on a key
    /// replacement, the history is read again from there.
    pub backfill_from: Option<chrono::NaiveDate>,
}

/// Connect the tenant's Stripe account
///
/// Checks the key with Stripe before keeping it: `GET /v1/account` must answer (a key Stripe
/// refuses is a 422 naming `api_key`), and for a restricted key each read Payymo needs is tried;
/// the ones it lacks are listed in `missing_permissions` (grant them in the Dashboard and `PUT`
/// the key again). Registers Payymo's webhook endpoint at the account (`webhook_status`; a key
/// that may not create endpoints leaves it `not_registered`, with the reason). The key and the
/// endpoint's signing secret are sealed with the deployment's key ring and never shown again.
/// Replaces the key of an existing connection (same id). Records `stripe_connection.connected`.
/// A new connection starts reading the account's history (`backfill_from`, default 90 days
/// back) on the job queue; `backfill` on the connection shows how far it has come.
/// 201 when the connection is new, 200 when it replaced a key.
#[utoipa::path(
    put,
    path = "/stripe/connection",
    tag = "stripe",
    request_body = ConnectStripe,
    responses(
        (status = 200, description = "The key was replaced", body = StripeConnection),
        (status = 201, description = "Connected", body = StripeConnection),
        (status = 422, description = "Not a usable key for this tenant, or Stripe refused it", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe refused the request otherwise", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe is unavailable; retry later", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["stripe:write"]), ("bearer" = ["stripe:write"]))
)]
async fn put_connection(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<StripeWrite>,
    ApiJson(body): ApiJson<ConnectStripe>,
) -> Result<Response, ApiError> {
    let key = body.api_key.trim();
    let (saved, new) =
        connect::connect(&state, &principal.tenant.id, principal.tenant.environment, key, body.backfill_from).await?;
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Extension(AuditResource::new("stripe_connection", &saved.id)), ApiJson(saved)).into_response())
}

/// Get the Stripe connection
///
/// The tenant's connection (never its key): the account, its name, the mode, a hint of the key,
/// and the permissions a restricted key lacks. 404 when no account is connected.
#[utoipa::path(
    get,
    path = "/stripe/connection",
    tag = "stripe",
    responses(
        (status = 200, body = StripeConnection),
        (status = 404, description = "No Stripe account is connected", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["stripe:read"]), ("bearer" = ["stripe:read"]))
)]
async fn get_connection(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<StripeRead>,
) -> Result<ApiJson<StripeConnection>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let found = connection::current(&mut tx, &principal.tenant.id).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| StripeError::NotConnected.into())
}

/// Disconnect the Stripe account
///
/// Removes Payymo's webhook endpoint at Stripe, forgets the key and records
/// `stripe_connection.disconnected`; answers with the connection, now `disconnected`. 404 when
/// no account is connected.
#[utoipa::path(
    delete,
    path = "/stripe/connection",
    tag = "stripe",
    responses(
        (status = 200, body = StripeConnection),
        (status = 404, description = "No Stripe account is connected", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["stripe:write"]), ("bearer" = ["stripe:write"]))
)]
async fn delete_connection(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<StripeWrite>,
) -> Result<Response, ApiError> {
    let gone = connect::disconnect(&state, &principal.tenant.id).await?;
    Ok((Extension(AuditResource::new("stripe_connection", &gone.id)), ApiJson(gone)).into_response())
}
