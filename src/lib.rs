//! Payymo core: a multi-tenant payment-reconciliation API server.

/// Shared state, the HTTP server and graceful shutdown.
pub mod app;
/// The command line: `serve`, `migrate`, `openapi`.
pub mod cli;
/// Configuration from the environment, validated at start-up.
pub mod config;
/// Pool, embedded default cluster, migrations, readiness.
pub mod db;
/// Router, middleware, error shape, one module per resource.
pub mod http;
/// Log subscriber set-up.
pub mod telemetry;
