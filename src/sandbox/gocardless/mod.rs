//! A simulator of the GoCardless Bank Account Data (formerly Nordigen) API v2, faithful enough for
//! the official `nordigen` Python client to run against it unchanged.
//!
//! The real API lives under `/api/v2/…` (trailing slashes as in production); a hosted consent page
//! lives at `/_sandbox/consent/{requisition_id}`; and a control API under `/_sandbox/` advances the
//! clock, adds transactions, expires or suspends requisitions and injects faults. All state is in
//! memory and every generated value is a function of the seed, so two simulators with the same seed
//! answer the same calls the same way.

mod accounts;
mod added;
mod control;
mod data;
mod error;
mod ledger;
mod limits;
mod routes;
mod state;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use added::BankCredit;
pub use limits::CompanyLimits;
pub use state::{Clock, SandboxConfig, SandboxState};

/// The simulator's routes: the real API, the consent page and the control API.
pub fn router(state: SandboxState) -> Router {
    routes::api_router(state.clone())
        .merge(control::router())
        .merge(added::router())
        .fallback(error::not_found)
        .with_state(state)
}

/// Serves the simulator on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: SandboxState, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}
