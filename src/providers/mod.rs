//! Typed clients of the outside services Payymo reads from, each defended the same way:
//! timeouts, retries with full jitter for transient failures only, `Retry-After` and rate-limit
//! headers honoured, and a circuit breaker per provider.

pub mod breaker;
pub mod gocardless;
pub mod headers;
pub mod stripe;

pub use breaker::Breaker;
