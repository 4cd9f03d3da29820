//! A simulator of the Stripe API (v1), faithful enough for the official `stripe` Python client
//! to run against it unchanged: form-encoded requests with bracketed nesting, Stripe's objects,
//! lists, expansion, errors and idempotency, its test cards, balance transactions with fees,
//! daily automatic payouts, and webhooks signed as Stripe signs them.
//!
//! The API lives under `/v1/…`, Connect OAuth under `/oauth/…` ([`oauth`]); a control API
//! under `/_stripe/…` ([`control`]) moves the clock and injects faults. All state is in memory
//! (it simulates an outside service) and every generated value is a function of the seed.

mod api;
mod balance;
pub mod control;
mod endpoints;
mod error;
pub mod form;
mod list;
mod oauth;
mod objects;
mod payments;
mod seed;
mod state;

use axum::{Router, routing::any};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use endpoints::signature;
pub use oauth::{CODE_LIFETIME, DEFAULT_CLIENT_ID};
pub use state::{API_VERSION, DEFAULT_RESTRICTED_KEY, DEFAULT_SECRET_KEY, DeliveryMode, StripeSim};

/// The simulator's routes: the API and the control API.
pub fn router(sim: StripeSim) -> Router {
    Router::new().route("/v1/{*path}", any(api::handle)).merge(oauth::router()).merge(control::router()).with_state(sim)
}

/// Serves the simulator on `listener`, and delivers its webhooks, until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, sim: StripeSim, shutdown: CancellationToken) -> std::io::Result<()> {
    let worker = tokio::spawn(endpoints::deliver(sim.clone(), shutdown.clone()));
    let served =
        axum::serve(listener, router(sim)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
    worker.abort();
    served
}
