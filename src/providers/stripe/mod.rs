//! The Stripe API client: one [`StripeClients`] per process hands out a [`Stripe`] per key, over
//! one pooled HTTP client, with a circuit breaker per Stripe account.

mod client;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

pub use client::{Stripe, StripeCallError};

use crate::providers::breaker::Breaker;

/// Consecutive failures that open an account's circuit.
const BREAKER_THRESHOLD: u32 = 5;

/// Where Stripe is: the live API, and the base test-mode tenants use (the simulator).
pub struct StripeClients {
    http: reqwest::Client,
    live_base: String,
    test_base: String,
    cooldown: Duration,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
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
        }
    }

    /// The base a tenant's calls go to: the simulator for test mode, Stripe for live.
    pub fn base(&self, live: bool) -> &str {
        if live { &self.live_base } else { &self.test_base }
    }

    /// A client for `key` (test or live, by the tenant's environment), whose breaker is that
    /// of `breaker_key` (the Stripe account, or the key's prefix before the account is known).
    pub fn client(&self, live: bool, key: secrecy::SecretString, breaker_key: &str) -> Stripe {
        let breaker = self
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(breaker_key.to_owned())
            .or_insert_with(|| Arc::new(Breaker::new(BREAKER_THRESHOLD, self.cooldown)))
            .clone();
        Stripe::new(self.http.clone(), self.base(live), key, breaker)
    }
}
