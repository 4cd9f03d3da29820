//! Outbound webhooks: endpoints a tenant registers, one durable delivery per (event, endpoint)
//! created with the event, signed attempts with retries, and the guard that keeps tenant-supplied
//! URLs away from internal networks.

pub mod deliveries;
pub mod dispatcher;
pub mod endpoints;
pub mod health;
pub mod metrics;
pub mod retention;
pub mod signing;
pub mod ssrf;
