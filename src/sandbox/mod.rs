//! Local simulators of third-party APIs, for development and tests without the real services.

/// The GoCardless Bank Account Data (formerly Nordigen) API v2 simulator.
pub mod gocardless;

/// The Stripe API (v1) simulator.
pub mod stripe;
