//! `GET /metrics`: the server's metrics ([`crate::metrics`]) for Prometheus to scrape.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use super::error::ApiError;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus metrics
///
/// Request counts and a latency histogram per route template, method and status; webhook
/// attempts by outcome with their latency, and the delivery queue's depth and oldest pending age.
/// In the OpenMetrics text format that Prometheus scrapes.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Metrics in OpenMetrics text format", body = String, content_type = "application/openmetrics-text"))
)]
pub async fn metrics(State(state): State<crate::state::AppState>) -> Result<Response, ApiError> {
    if let Err(error) = state.metrics.webhooks.refresh(&state.db).await {
        tracing::warn!(%error, "cannot read the webhook queue's gauges");
    }
    let text = state.metrics.render().map_err(|e| ApiError::Internal(e.into()))?;
    Ok(([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response())
}
