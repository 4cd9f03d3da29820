//! Outbound webhooks: delivery of events to the endpoints tenants register.

pub mod ssrf;
