//! The endpoint Stripe delivers a connected account's events to. Not authenticated by a
//! credential: the `Stripe-Signature` is checked against the connection's secret before anything
//! else, then the event is kept in the durable inbox and answered 2xx at once.

use axum::{Json, body::Bytes, extract::State, http::HeaderMap};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiError, ErrorCode, Problem},
    path_id::PathId,
};
use crate::{
    db::tenant::{begin_platform, begin_tenant, end_read},
    domain::ids::{StripeConnectionId, TenantId},
    state::AppState,
    stripe::{
        self, apply, connection,
        inbox::{self, Source},
    },
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
    let unknown =
        || ApiError::new(ErrorCode::NotFound, format!("no connected Stripe account {connection_id} takes webhooks"));
    let mut tx = begin_platform(&state.db).await?;
    let found = connection::sealed_by_id(&mut tx, connection_id.as_str()).await?;
    end_read(tx);
    let found = found.ok_or_else(unknown)?;
    let sealed_secret = found.webhook_secret_sealed.as_deref().ok_or_else(unknown)?;
    let tenant = TenantId::from_db(found.tenant_id.clone());
    let keys = stripe::key_ring(&state).await?;
    let secret = connection::webhook_secret_of(sealed_secret, keys, &tenant, &found.id)?;
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Err(error) =
        inbox::verify(signature, &body, &[secret.expose_secret().to_owned()], chrono::Utc::now().timestamp())
    {
        state.metrics.stripe_signature_failures.inc();
        tracing::warn!(%error, connection = %found.id, "refused a Stripe delivery");
        return Err(ApiError::new(ErrorCode::InvalidRequest, format!("Stripe-Signature: {error}")));
    }
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("the body is not a Stripe event: {e}")))?;
    let is_event = event["object"] == "event"
        && event["id"].as_str().is_some_and(|id| id.starts_with("evt_"))
        && event["type"].is_string();
    if !is_event {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "the body is not a Stripe event (object, id, type)"));
    }
    let mut tx = begin_tenant(&state.db, &tenant).await?;
    let kept = inbox::keep(&mut tx, &tenant, &found.id, &event, Source::Webhook).await?;
    if kept {
        apply::enqueue(&mut tx, &tenant, &found.id, event["id"].as_str().unwrap_or_default()).await?;
    }
    tx.commit().await?;
    Ok(Json(Received { received: true, duplicate: !kept }))
}
