//! The endpoint Stripe delivers a connected account's events to. Not authenticated by a
//! credential: the `Stripe-Signature` is checked against the connection's secret before anything
//! else, then the event is kept in the durable inbox and answered 2xx at once.

use axum::{Json, body::Bytes, extract::State, http::HeaderMap};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiError, ErrorCode, Problem},
    path_id::PathId,
};
use crate::{
    domain::ids::StripeConnectionId,
    state::AppState,
    stripe::inbox::{self, Refused},
};

pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive))
}

/// What Payymo answers Stripe.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    pub received: bool,
    /// The event was in the inbox already (a duplicate delivery): nothing changed.
    pub duplicate: bool,
}

/// Receive a Stripe event
///
/// Called by Stripe, not by clients: Payymo registers this URL at the account when it is
/// connected. The `Stripe-Signature` header must verify against the connection's endpoint
/// secret (any `v1` signature, `t` within 300 s of now) before anything is read; a delivery that
/// does not is a 400 and is counted (`payymo_stripe_webhook_signature_failures`), never kept.
/// A verified event is kept in the connection's inbox, unique by its id (a duplicate is a
/// no-op), and answered 200 at once.
#[utoipa::path(
    post,
    path = "/stripe/webhooks/{connection_id}",
    tag = "stripe",
    params(("connection_id" = String, Path, description = "The connection (`sc_…`)"),
           ("Stripe-Signature" = String, Header, description = "`t=…,v1=…`")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event"),
    responses(
        (status = 200, body = Received),
        (status = 400, description = "The signature does not verify, or the body is not an event", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connected account, or no endpoint registered for it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn receive(
    State(state): State<AppState>,
    PathId(connection_id): PathId<StripeConnectionId>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Received>, ApiError> {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    match inbox::receive(&state, connection_id.as_str(), signature, &body).await {
        Ok(kept) => Ok(Json(Received { received: true, duplicate: !kept })),
        Err(Refused::Signature(error)) => {
            state.metrics.stripe_signature_failures.inc();
            tracing::warn!(%error, connection = %connection_id, "refused a Stripe delivery");
            Err(ApiError::new(ErrorCode::InvalidRequest, format!("Stripe-Signature: {error}")))
        }
        Err(refused @ Refused::UnknownConnection(_)) => Err(ApiError::new(ErrorCode::NotFound, refused.to_string())),
        Err(Refused::NotAnEvent(reason)) => Err(ApiError::new(ErrorCode::InvalidRequest, reason)),
        Err(Refused::Database(error)) => Err(error.into()),
        Err(Refused::Stripe(error)) => Err(error.into()),
    }
}
