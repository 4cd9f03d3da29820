//! Liveness and readiness, for load balancers and orchestrators.

use std::{sync::atomic::Ordering, time::Duration};

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorCode};
use crate::{db::NotReady, state::AppState};

/// How long readiness waits for the database before calling it unreachable.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` while the process is serving.
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when this instance can serve requests that need the database.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// The database answered.
    #[schema(example = "ok")]
    pub database: &'static str,
    /// Every migration this build knows is applied.
    #[schema(example = "ok")]
    pub migrations: &'static str,
}

/// Liveness
///
/// Answers 200 while the process can serve HTTP. It does not touch the database, so a database
/// outage never makes an orchestrator restart healthy instances.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness
///
/// Answers 200 when the database is reachable and its schema is up to date, 503 in the error
/// shape otherwise (`database_unavailable`, `migrations_pending`, or `shutting_down` once the
/// instance has begun to drain). Send traffic only to ready instances.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "Not ready", body = super::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    if state.draining.load(Ordering::Relaxed) {
        return Err(ApiError::new(ErrorCode::ShuttingDown, "this instance is shutting down"));
    }
    match crate::db::check_ready(&state.db, READY_CHECK_TIMEOUT).await {
        Ok(()) => Ok(Json(Readiness { status: "ready", database: "ok", migrations: "ok" })),
        Err(NotReady::Unreachable(reason)) => {
            tracing::warn!(%reason, "not ready: database unreachable");
            Err(ApiError::new(ErrorCode::DatabaseUnavailable, "the database is unreachable"))
        }
        Err(pending @ NotReady::MigrationsPending { .. }) => {
            Err(ApiError::new(ErrorCode::MigrationsPending, pending.to_string()))
        }
    }
}
