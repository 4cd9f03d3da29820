//! Stripe Connect OAuth: the authorize URL a tenant sends its Stripe account holder to, and the
//! callback Stripe sends their browser back to. The rules live in `stripe::oauth`; this module
//! extracts, calls and shapes (a redirect to the tenant's `return_url`, or JSON).

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Needs, scopes::StripeWrite},
    error::{ApiError, Problem},
    json::ApiJson,
    query::{ApiQuery, QueryParams},
};
use crate::{
    auth::Principal,
    state::AppState,
    stripe::{connection::StripeConnection, oauth},
};

/// The authorize URL: for a tenant.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(authorize))
}

/// The callback: reached by the account holder's browser, so not authenticated (the signed
/// `state` says whose it is).
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectParams {
    /// `read_only` (the default) or `read_write`. Payymo only reads, but registering its webhook
    /// endpoint at the account needs `read_write`; with `read_only`, changes arrive by polling.
    pub scope: Option<String>,
    /// Where the browser goes when it is done (absolute http or https), with `stripe=connected`
    /// and `stripe_connection_id`, or `stripe=error`, `error` and `detail`, added to its query.
    /// Without it the callback answers JSON.
    pub return_url: Option<String>,
    /// Read the account's history from this day on (default: 90 days back).
    pub backfill_from: Option<chrono::NaiveDate>,
}

impl QueryParams for ConnectParams {}

/// Where to send the Stripe account holder.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "url": "https://connect.stripe.com/oauth/authorize?response_type=code&client_id=ca_32D88BD1qLklliziD7gYQvctJIhWBSQ7&scope=read_only&state=eyJ0Ijoi…&redirect_uri=https%3A%2F%2Fapi.payymo.example%2Fapi%2Fv1%2Fstripe%2Fconnect%2Fcallback",
    "state": "eyJ0IjoidGVuXzAxOTJmM2M0…", "expires_at": "2026-12-04T09:40:00Z"
}))]
pub struct ConnectAuthorization {
    /// Stripe's authorize page, with Payymo's platform `client_id`, the scope and the state.
    pub url: String,
    /// The signed state in `url`: it names the tenant and expires; nothing is kept server-side.
    pub state: String,
    /// After this the callback refuses the state; get a new URL.
    pub expires_at: DateTime<Utc>,
}

/// Start connecting a Stripe account with Connect OAuth
///
/// For deployments that are a Stripe Connect platform: answers the URL of Stripe's authorize
/// page, to send the tenant's Stripe account holder to (a redirect or a link). They sign in to
/// Stripe and approve Payymo's platform; Stripe sends their browser to the callback, which
/// connects the account as `PUT /stripe/connection` does (the access token sealed as its key,
/// Payymo's webhook endpoint registered) and goes on to `return_url`. The `state` in the URL is
/// signed, names this tenant and lasts 10 minutes. Test-mode tenants connect through the Stripe
/// simulator's platform, which approves at once. 409 when the deployment has no live platform.
#[utoipa::path(
    get,
    path = "/stripe/connect",
    tag = "stripe",
    params(ConnectParams),
    responses(
        (status = 200, body = ConnectAuthorization),
        (status = 409, description = "No Connect platform is configured for live tenants", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad scope or return_url", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["stripe:write"]), ("bearer" = ["stripe:write"]))
)]
async fn authorize(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<StripeWrite>,
    ApiQuery(params): ApiQuery<ConnectParams>,
) -> Result<ApiJson<ConnectAuthorization>, ApiError> {
    let tenant = &principal.tenant;
    let found = oauth::authorize(
        &state,
        &tenant.id,
        tenant.environment,
        params.scope.as_deref(),
        params.return_url,
        params.backfill_from,
    )
    .await?;
    Ok(ApiJson(ConnectAuthorization { url: found.url, state: found.state, expires_at: found.expires_at }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The authorization code (`ac_…`), single use.
    pub code: Option<String>,
    /// The signed state from `GET /stripe/connect`, as Stripe echoes it.
    pub state: Option<String>,
    /// The scope granted.
    pub scope: Option<String>,
    /// Set by Stripe when the authorization failed, e.g. `access_denied`.
    pub error: Option<String>,
    /// Stripe's description of the failure.
    pub error_description: Option<String>,
}

/// Unknown parameters are let through: Stripe may add some.
impl QueryParams for CallbackParams {}

/// Connect OAuth callback
///
/// Where Stripe sends the account holder's browser after the authorize page. Checks the state
/// (signed by Payymo, unexpired, used once), exchanges the code for the account's access token
/// and connects the account as `PUT /stripe/connection` does: `method: "oauth"`, Payymo's webhook
/// endpoint registered, `stripe_connection.connected` recorded. With a `return_url` it redirects
/// (303) there with `stripe=connected&stripe_connection_id=sc_…`, or `stripe=error`, `error`
/// (`access_denied`, `expired_state`, `invalid_grant`, `already_used`, `unavailable`, `failed`)
/// and `detail`; without one it answers the connection as JSON (201 new, 200 replaced) or a
/// problem. A state that was altered is always a 400 problem: where it says to go is not
/// trusted. Reloading the page after success answers the same connection again. Not called by
/// API clients.
#[utoipa::path(
    get,
    path = "/stripe/connect/callback",
    tag = "stripe",
    params(CallbackParams),
    responses(
        (status = 200, description = "Connected, replacing the key of the tenant's connection", body = StripeConnection),
        (status = 201, description = "Connected", body = StripeConnection),
        (status = 303, description = "On to the return_url, with the outcome in its query"),
        (status = 400, description = "The state is missing, altered or expired; consent was refused; Stripe refused the code", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No Connect platform is configured for live tenants", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A malformed parameter, or a token Stripe gave that Payymo cannot use", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe refused the request otherwise", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe is unavailable; start again later", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn callback(State(state): State<AppState>, ApiQuery(params): ApiQuery<CallbackParams>) -> Response {
    let input = oauth::Callback {
        state: params.state.as_deref(),
        code: params.code.as_deref(),
        error: params.error.as_deref(),
        error_description: params.error_description.as_deref(),
    };
    match oauth::callback(&state, input).await {
        Ok(done) => match &done.return_url {
            Some(url) => see_other(url, &[("stripe", "connected"), ("stripe_connection_id", &done.connection.id)]),
            None => {
                let status = if done.new { StatusCode::CREATED } else { StatusCode::OK };
                (status, ApiJson::<StripeConnection>(done.connection)).into_response()
            }
        },
        Err(failed) => {
            let error = ApiError::from(failed.error);
            match &failed.return_url {
                Some(url) => {
                    let detail = match &error {
                        ApiError::Problem { detail, .. } => detail.clone(),
                        ApiError::Internal(cause) => {
                            // Logged here, as the problem renderer would; never shown.
                            tracing::error!(error = ?cause, "internal error");
                            "an error on our side; start again later".to_owned()
                        }
                    };
                    see_other(url, &[("stripe", "error"), ("error", failed.reason), ("detail", &detail)])
                }
                None => error.into_response(),
            }
        }
    }
}

/// 303 to `url` with `pairs` added to its query (the URL was checked when the state was made).
fn see_other(url: &str, pairs: &[(&str, &str)]) -> Response {
    let mut to = match reqwest::Url::parse(url) {
        Ok(to) => to,
        Err(_) => return ApiError::invalid_field("return_url", "is not a URL").into_response(),
    };
    to.query_pairs_mut().extend_pairs(pairs);
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}
