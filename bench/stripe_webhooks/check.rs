//! The crash run's verdict, read from payymo's database: every event answered 2xx is in the
//! inbox and applied; each charge has exactly one payment and exactly one
//! `stripe_payment.succeeded` in the outbox (`events`); nothing is lost or doubled.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::Value;
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};

use crate::{deliver::Outcome, events::Delivery, processes::Processes};

/// How long the inbox may take to drain after the last delivery.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// A connection to payymo's database that sees every tenant (`payymo.platform`), as the role
/// payymo uses: `DATABASE_URL`, or the embedded cluster in the data dir.
pub async fn connect(procs: &Processes) -> anyhow::Result<PgConnection> {
    let options = match std::env::var("DATABASE_URL") {
        Ok(url) => url.parse::<PgConnectOptions>()?,
        Err(_) => PgConnectOptions::new().socket(procs.socket_dir()).username("payymo").database("payymo"),
    };
    let mut db = PgConnection::connect_with(&options).await.context("cannot connect to payymo's database")?;
    sqlx::query("set payymo.platform = 'on'").execute(&mut db).await?;
    Ok(db)
}

/// The figures of a crash run.
pub struct Figures {
    pub lost: usize,
    pub unapplied: i64,
    pub missing_payments: usize,
    pub missing_outbox: usize,
    pub duplicates: i64,
}

impl Figures {
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.unapplied == 0
            && self.missing_payments == 0
            && self.missing_outbox == 0
            && self.duplicates == 0
    }
}

/// Waits until the connection's inbox has nothing unapplied (at most [`DRAIN_LIMIT`]), then
/// counts, prints the figures (stdout: `bench/run` target rows) and returns them.
pub async fn drain_and_count(
    mut db: PgConnection,
    tenant: &str,
    connection: &str,
    deliveries: &[Delivery],
    outcome: &Outcome,
) -> anyhow::Result<Figures> {
    let charge_of: HashMap<String, String> = deliveries
        .iter()
        .map(|d| {
            let event: Value = serde_json::from_slice(&d.body).unwrap_or_default();
            (d.id.clone(), event["data"]["object"]["id"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let unapplied_sql =
        "select count(*) from stripe_events where tenant_id = $1 and connection_id = $2 and applied_at is null";
    let mut unapplied: i64;
    loop {
        unapplied = sqlx::query_scalar(unapplied_sql).bind(tenant).bind(connection).fetch_one(&mut db).await?;
        if unapplied == 0 || outcome.delivered.elapsed() > DRAIN_LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = Instant::now();
    let inbox: Vec<(String, String)> =
        sqlx::query_as("select id, source from stripe_events where tenant_id = $1 and connection_id = $2")
            .bind(tenant)
            .bind(connection)
            .fetch_all(&mut db)
            .await?;
    let kept: HashMap<String, String> = inbox.into_iter().collect();
    let lost = outcome.acked.iter().filter(|id| !kept.contains_key(*id)).count();
    let polled = kept.values().filter(|s| *s == "poll").count();
    let payments: Vec<(String, i64)> = sqlx::query_as(
        "select id, count(*) from stripe_payments where tenant_id = $1 and connection_id = $2 group by id",
    )
    .bind(tenant)
    .bind(connection)
    .fetch_all(&mut db)
    .await?;
    let payments: HashMap<String, i64> = payments.into_iter().collect();
    let outbox: Vec<(String, i64)> = sqlx::query_as(
        "select data->>'id', count(*) from events where tenant_id = $1 and event_type = 'stripe_payment.succeeded'
         group by 1",
    )
    .bind(tenant)
    .fetch_all(&mut db)
    .await?;
    let outbox: HashMap<String, i64> = outbox.into_iter().collect();
    let acked_charges: Vec<&String> = outcome.acked.iter().filter_map(|id| charge_of.get(id)).collect();
    let missing_payments = acked_charges.iter().filter(|c| !payments.contains_key(c.as_str())).count();
    let missing_outbox = acked_charges.iter().filter(|c| !outbox.contains_key(c.as_str())).count();
    let duplicates = payments.values().chain(outbox.values()).map(|n| n - 1).sum::<i64>();
    let figures = Figures { lost, unapplied, missing_payments, missing_outbox, duplicates };
    let verdict = if figures.passed() { "PASS" } else { "FAIL" };
    let since_restart = drained.duration_since(outcome.restarted).as_secs_f64();
    let since_delivered = drained.duration_since(outcome.delivered).as_secs_f64();
    eprintln!(
        "inbox {} events ({polled} by polling), {} payments, {} stripe_payment.succeeded; drained {since_restart:.1}s \
         after the restart, {since_delivered:.1}s after the last delivery",
        kept.len(),
        payments.len(),
        outbox.values().sum::<i64>()
    );
    let row = |measured: &str, figures: String| println!("{:<20} {measured:<22} {figures}", "stripe-webhooks-crash");
    row(
        "deliveries",
        format!(
            "sent {}, 2xx before kill {}, not 2xx in the first pass {} (sent again: {}, answered duplicate: {}); \
             payymo answered again {:.2}s after the kill",
            outcome.sent,
            outcome.acked_before_kill,
            outcome.failed_first_pass,
            outcome.retried,
            outcome.duplicate_answers,
            outcome.restart_took.as_secs_f64()
        ),
    );
    row(
        "applied exactly once",
        format!(
            "2xx {}, in the inbox {} ({polled} polled), unapplied {}, payments {} (missing {}), \
             stripe_payment.succeeded {} (missing {}), duplicates {}, lost {} | all applied once, 0 lost {verdict}",
            outcome.acked.len(),
            kept.len(),
            figures.unapplied,
            payments.len(),
            figures.missing_payments,
            outbox.values().sum::<i64>(),
            figures.missing_outbox,
            figures.duplicates,
            figures.lost
        ),
    );
    row(
        "drain",
        format!("{since_restart:.1} s after the restart, {since_delivered:.1} s after the last 2xx | informational"),
    );
    Ok(figures)
}
