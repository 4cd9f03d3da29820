//! Background work: a durable job queue in Postgres that any number of instances drain together.
//!
//! Enqueue inside the transaction that makes the state change ([`queue::enqueue`]), so both
//! commit or neither does. A [`runner::Runner`] claims due jobs under a lease with
//! `FOR UPDATE SKIP LOCKED`, commits, runs each handler in its own task (a panic is a failure,
//! not a dead worker), then records the outcome. Delivery is at least once: handlers must be
//! idempotent.

pub mod backoff;
pub mod job;
pub mod queue;
pub mod runner;

pub use backoff::Backoff;
pub use job::{Job, JobId, NewJob};
pub use runner::Runner;

/// The channel `pg_notify` announces new jobs on (the payload is the job's kind).
pub const CHANNEL: &str = "payymo_jobs";
