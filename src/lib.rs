//! Payymo core: a multi-tenant payment-reconciliation API server.

/// The composition root: state, router, workers and dispatcher wired and run until shutdown.
pub mod app;
/// The hash-chained, append-only audit log.
pub mod audit;
/// Credentials verified into a principal: API keys, OAuth2 client tokens, user sessions.
pub mod auth;
/// The application's background work: every job kind's handler and the periodic tasks.
pub mod background;
/// Bank feeds: connections, accounts, background sync of transactions.
pub mod bank;
/// The command line: `serve`, `migrate`, `openapi`, `sandbox`, and the admin commands.
pub mod cli;
/// Configuration from the environment, validated at start-up.
pub mod config;
/// Encryption at rest for provider secrets: AES-256-GCM under a rotating key ring.
pub mod crypto;
/// Pool, embedded default cluster, migrations, readiness, tenant-bound transactions.
pub mod db;
/// `payymo demo`: the whole product on one machine with nothing configured.
pub mod demo;
/// Pure domain types: ids, money, scopes, secrets.
pub mod domain;
/// The events outbox: what happened, recorded with the change that caused it.
pub mod events;
/// Router, middleware, error shape, one module per resource.
pub mod http;
/// Transaction imports into manual accounts: JSON batches and CSV files processed as jobs.
pub mod imports;
/// Customers and invoices: what the money in the bank should pay, and their changes feed.
pub mod invoices;
/// Background work: the durable Postgres job queue and its runner.
pub mod jobs;
/// The process's Prometheus metrics: HTTP requests and webhook delivery.
pub mod metrics;
/// Typed clients of outside providers (GoCardless), with retries and circuit breakers.
pub mod providers;
/// Per-credential rate limiting (GCRA), in process or shared through Redis.
pub mod ratelimit;
/// Matching bank credits to the invoices and Stripe payouts they pay.
pub mod reconciliation;
/// Local simulators of third-party APIs (GoCardless Bank Account Data, Stripe).
pub mod sandbox;
/// What handlers and workers share: configuration, the pool, long-lived services.
pub mod state;
/// Stripe as a source of payments and payouts: the tenant's connection.
pub mod stripe;
/// Log subscriber set-up.
pub mod telemetry;
/// Tenants, users, memberships and API keys: operations shared by the API, admin API and CLI.
pub mod tenancy;
/// Transactions as an API: filters and cursors, statistics, export, import, categorisation.
pub mod transactions;
/// Outbound webhooks: delivery to tenant endpoints, guarded against server-side request forgery.
pub mod webhooks;
