//! kill -9 of `payymo serve` while Stripe's webhooks arrive: every event answered 2xx must be
//! applied exactly once after the restart, and none answered 2xx may be lost.
//!
//! 1. The Stripe simulator runs as its own process (`payymo sandbox --only stripe`), so it
//!    survives; `payymo serve` runs against it (`PAYYMO_STRIPE_SANDBOX_URL`) with its data in
//!    DATA_DIR (an embedded cluster, or `DATABASE_URL`).
//! 2. EVENTS real payments are made in the simulator (so the apply worker can fetch each
//!    charge), and their `charge.succeeded` events read back from its `GET /v1/events`, as
//!    Stripe would send them. Only then is a tenant connected (payymo's CLI and API), so the
//!    connection's first poll, which reads from its creation, finds none of them: every event
//!    reaches the inbox by the generator's deliveries or not at all.
//! 3. The generator ([`deliver`]) sends them signed, concurrently, at a fixed rate; when half
//!    have been answered, `payymo serve` is killed with SIGKILL and started again at once.
//!    Deliveries not answered 2xx are sent again after the restart, until they are.
//! 4. The checks ([`check`]) wait for the inbox to drain, then count.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::Value;

use crate::{
    check, deliver,
    events::Delivery,
    processes::{self, Processes},
    setup::{self, SIM_KEY},
};

/// Payments made in the simulator at once.
const PAYMENT_CONCURRENCY: usize = 16;

/// Runs the whole scenario; `Ok(false)` when an event was lost or applied twice.
pub async fn run(bin: &str, data: &str, events: usize) -> anyhow::Result<bool> {
    let data = PathBuf::from(data);
    std::fs::create_dir_all(&data)?;
    let procs = Processes { bin: std::fs::canonicalize(bin).context("PAYYMO_BIN")?, data: data.canonicalize()? };
    let sim_port = processes::free_port()?;
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let mut sim = procs.simulator(sim_port).await?;
    eprintln!("stripe simulator on {sim_url} (its own process, pid {:?})", sim.id());
    let port = processes::free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut serve = procs.serve(port, &sim_url).await?;
    eprintln!("payymo serve on {url} (pid {:?})", serve.id());
    let result = scenario(&procs, &mut serve, port, &sim_url, events).await;
    processes::stop(&mut serve).await;
    procs.stop_cluster().await;
    let _ = sim.kill().await;
    result
}

async fn scenario(
    procs: &Processes,
    serve: &mut tokio::process::Child,
    port: u16,
    sim: &str,
    events: usize,
) -> anyhow::Result<bool> {
    let url = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let charges = make_payments(sim, events).await?;
    eprintln!("{} payments made in the simulator in {:.1}s", charges.len(), started.elapsed().as_secs_f64());
    let deliveries = charge_events(sim, &charges).await?;
    eprintln!("{} charge.succeeded events read back from GET /v1/events", deliveries.len());
    // The connection's first poll reads events from the second it was made, on: none of these.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let tenant = procs.cli(&["tenant", "create", "--name", "stripe-crash", "--environment", "test"]).await?;
    let tenant = tenant["id"].as_str().context("tenant create printed no id")?.to_owned();
    let key =
        procs.cli(&["api-key", "create", "--tenant", &tenant, "--label", "stripe-crash", "--scopes", "*"]).await?;
    let key = key["secret"].as_str().context("api-key create printed no secret")?.to_owned();
    let (connection, secret) = setup::connect(&url, &key, sim).await?;
    eprintln!("tenant {tenant} connected as {connection}");
    let target = format!("{url}/api/v1/stripe/webhooks/{connection}");
    let restart = deliver::Restart { procs, serve, port, sim };
    let outcome = deliver::deliver(&target, &secret, &deliveries, restart).await?;
    let db = check::connect(procs).await?;
    let figures = check::drain_and_count(db, &tenant, &connection, &deliveries, &outcome).await?;
    Ok(figures.passed())
}

/// Makes `count` successful card payments on the simulator's default account; their charge ids.
async fn make_payments(sim: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut made = Vec::with_capacity(count);
    let mut pending = futures_util::stream::iter((0..count).map(|i| {
        let http = http.clone();
        async move {
            let amount = (500 + (i * 37) % 99_500).to_string();
            let form = [
                ("amount", amount.as_str()),
                ("currency", "gbp"),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
                ("description", "bench stripe-webhooks-crash"),
            ];
            let intent: Value = http
                .post(format!("{sim}/v1/payment_intents"))
                .bearer_auth(SIM_KEY)
                .form(&form)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            intent["latest_charge"].as_str().map(str::to_owned).context("a payment intent without latest_charge")
        }
    }))
    .buffer_unordered(PAYMENT_CONCURRENCY);
    while let Some(charge) = pending.next().await {
        made.push(charge?);
    }
    Ok(made)
}

/// The simulator's `charge.succeeded` events of `charges`, oldest first, as raw bodies.
async fn charge_events(sim: &str, charges: &[String]) -> anyhow::Result<Vec<Delivery>> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let wanted: std::collections::HashSet<&str> = charges.iter().map(String::as_str).collect();
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("type", "charge.succeeded".to_owned()), ("limit", "100".to_owned())];
        if let Some(after) = &after {
            query.push(("starting_after", after.clone()));
        }
        let page: Value = http
            .get(format!("{sim}/v1/events"))
            .bearer_auth(SIM_KEY)
            .query(&query)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        for event in &data {
            if event["data"]["object"]["id"].as_str().is_some_and(|c| wanted.contains(c)) {
                let id = event["id"].as_str().unwrap_or_default().to_owned();
                found.push(Delivery { id, body: event.to_string().into() });
            }
        }
        match (page["has_more"].as_bool(), data.last().and_then(|e| e["id"].as_str())) {
            (Some(true), Some(last)) => after = Some(last.to_owned()),
            _ => break,
        }
    }
    found.reverse();
    if found.len() != charges.len() {
        bail!("{} payments but {} charge.succeeded events", charges.len(), found.len());
    }
    Ok(found)
}
