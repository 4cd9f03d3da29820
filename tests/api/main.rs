//! Integration tests: the real server on a real port, over a real Postgres.

// This crate is test code throughout; the project denies unwrap only outside tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access;
mod architecture;
mod audit_log;
mod bank_feeds;
mod categorization_rules;
mod cli;
mod credentials;
mod db_outage;
mod deployment;
mod docs;
mod errors;
mod events;
mod exports;
mod health;
mod hostile_input;
mod idempotency;
mod imports;
mod invoice_imports;
mod invoices;
mod jobs;
mod make_app;
mod many_instances;
mod many_instances_sync;
mod members_admin;
mod metrics;
mod middleware;
mod openapi;
mod portal;
mod provider_credentials;
mod rate_limits;
mod read_replica;
mod reconciliation_engine;
mod reconciliation_matches;
mod reconciliation_payers;
mod reconciliation_report;
mod reconciliation_settings;
mod reconciliation_typos;
mod rls;
mod schema_citus;
mod sessions;
mod states;
mod stripe;
mod stripe_backfill;
mod stripe_charges;
mod stripe_connect;
mod stripe_payouts;
mod transactions;
mod webhook_guarantees;
mod webhooks;
mod zapier_app;
