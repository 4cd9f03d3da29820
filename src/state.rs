//! The state every request handler and background worker shares, built once by the composition
//! root (`app`): configuration, the pool, and the long-lived services.

use std::sync::{Arc, atomic::AtomicBool};

use sqlx::PgPool;

use crate::{
    auth::authenticator::Authenticator, config::Config, crypto::LazyKeyRing, metrics::Metrics,
    providers::gocardless::GoCardlessClients, ratelimit::RateLimiter,
};

/// What handlers share: one reference-counted pointer, so every middleware layer's clone is a
/// single atomic increment. Holds nothing another instance would need.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct Shared {
    pub config: Arc<Config>,
    pub db: PgPool,
    /// Where reads that may lag go: the replica when configured and fresh, else `db`.
    pub reads: Arc<crate::db::replica::Reads>,
    pub metrics: Arc<Metrics>,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi_json: Arc<str>,
    /// Set when shutdown begins, so `/readyz` turns away new traffic while requests drain.
    pub draining: Arc<AtomicBool>,
    pub auth: Arc<Authenticator>,
    pub limiter: Arc<RateLimiter>,
    /// GoCardless clients per tenant (live API or sandbox).
    pub gocardless: Arc<GoCardlessClients>,
    /// Stripe clients (live API, or the simulator for test-mode tenants).
    pub stripe: Arc<crate::providers::stripe::StripeClients>,
    /// Seals what must be read back: provider credentials and tokens, webhook signing secrets.
    pub keys: Arc<LazyKeyRing>,
    /// The GoCardless API base test-mode tenants use: `PAYYMO_SANDBOX_URL`, or the in-process
    /// simulator's.
    pub sandbox_url: String,
    /// Where browsers reach this API (`PAYYMO_PUBLIC_URL`, or the bound address).
    pub public_url: String,
    /// Refuses webhook URLs that point at internal networks.
    pub webhook_guard: crate::webhooks::ssrf::Guard,
}
