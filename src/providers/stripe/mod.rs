//! The Stripe API client: one [`StripeClients`] per process hands out a [`Stripe`] per key, over
//! one pooled HTTP client, with a circuit breaker per Stripe account; and the Connect platform
//! ([`ConnectPlatform`]) that connects accounts with OAuth.

mod client;
mod oauth;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

pub use client::{Stripe, StripeCallError};
pub use oauth::{ConnectPlatform, OAuthCallError, Token};

use secrecy::SecretString;

use crate::{config::StripePlatform, providers::breaker::Breaker};

/// Consecutive failures that open an account's circuit.
const BREAKER_THRESHOLD: u32 = 5;

/// Where Stripe is: the live API, and the base test-mode tenants use (the simulator).
pub struct StripeClients {
    http: reqwest::Client,
    live_base: String,
    test_base: String,
    cooldown: Duration,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    /// Where live Connect OAuth is served, and the live platform when one is configured.
    connect_base: String,
    live_platform: Option<StripePlatform>,
}

impl StripeClients {
    pub fn new(live_base: &str, test_base: &str, cooldown: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            live_base: live_base.trim_end_matches('/').to_owned(),
            test_base: test_base.trim_end_matches('/').to_owned(),
            cooldown,
            breakers: Mutex::new(HashMap::new()),
            connect_base: "https://connect.stripe.com".to_owned(),
            live_platform: None,
        }
    }

    /// Sets where live tenants' Connect OAuth goes (`STRIPE_CONNECT_URL`) and the live platform
    /// (`STRIPE_CONNECT_CLIENT_ID` and `STRIPE_PLATFORM_SECRET_KEY`), when there is one.
    pub fn with_connect(mut self, connect_base: &str, live_platform: Option<StripePlatform>) -> Self {
        self.connect_base = connect_base.trim_end_matches('/').to_owned();
        self.live_platform = live_platform;
        self
    }

    /// The Connect platform tenants of a mode connect through: for test mode the simulator's
    /// seeded platform, served beside its API; for live mode the configured one (`None` when
    /// the deployment has none).
    pub fn platform(&self, live: bool) -> Option<ConnectPlatform> {
        let (base, client_id, secret) = if live {
            let platform = self.live_platform.as_ref()?;
            (self.connect_base.clone(), platform.client_id.clone(), platform.secret_key.clone())
        } else {
            let secret = SecretString::from(crate::sandbox::stripe::DEFAULT_SECRET_KEY.to_owned());
            (self.test_base.clone(), crate::sandbox::stripe::DEFAULT_CLIENT_ID.to_owned(), secret)
        };
        let breaker = self.breaker(&format!("connect:{client_id}"));
        Some(ConnectPlatform { http: self.http.clone(), base, client_id, secret, breaker })
    }

    fn breaker(&self, key: &str) -> Arc<Breaker> {
        self.breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Breaker::new(BREAKER_THRESHOLD, self.cooldown)))
            .clone()
    }

    /// The base a tenant's calls go to: the simulator for test mode, Stripe for live.
    pub fn base(&self, live: bool) -> &str {
        if live { &self.live_base } else { &self.test_base }
    }

    /// A client for `key` (test or live, by the tenant's environment), whose breaker is that
    /// of `breaker_key` (the Stripe account, or the key's prefix before the account is known).
    pub fn client(&self, live: bool, key: secrecy::SecretString, breaker_key: &str) -> Stripe {
        Stripe::new(self.http.clone(), self.base(live), key, self.breaker(breaker_key))
    }
}
