//! Stripe backfill benchmark, through the real path: a tenant connects (`PUT
//! /api/v1/stripe/connection`) a simulated Stripe account seeded with CHARGES succeeded card
//! payments, and the server's own job reads the history (pages of 100 charges with
//! `expand[]=data.balance_transaction`, over HTTP through the defended client, each page written
//! by the batched upserts in the transaction that moves the position) until the connection's
//! `backfill.status` reads `completed`. Rows/s = (payments + balance transactions written) ÷
//! seconds from the `PUT`.
//!
//! Baseline: the very rows that backfill wrote, read back with the tenant and connection of
//! another tenant's connection, written by one `COPY` per table into the same tables (same
//! indexes, foreign keys and triggers), in one transaction. Target: the backfill at ≥ 0.3 of
//! COPY's rows/s.
//!
//! Where the time goes: the same pages read again through the same client, one after the other,
//! each written as the job writes it (for a third tenant), with the read and the write timed
//! apart.
//!
//! `cargo run --release --example bench-stripe-backfill [CHARGES [RUNS]]` (defaults 100000 and
//! 3). Uses `DATABASE_URL` when set, otherwise an embedded cluster in `PAYYMO_DATA_DIR` (a
//! throwaway directory when unset). Progress on stderr; on stdout the rows of `bench/run`'s
//! target table. Figures are medians of RUNS.

#[path = "stripe_backfill/copy.rs"]
mod copy;
#[path = "stripe_backfill/replay.rs"]
mod replay;

use std::time::{Duration, Instant};

use payymo::{
    app::Application,
    auth::{Environment, Plan},
    config::Config,
    db::{self, Database, tenant::begin_platform},
    domain::ids::TenantId,
    sandbox::{gocardless::Clock, stripe::StripeSim},
    tenancy::{self, KeySpec},
};
use serde_json::{Value, json};

const TARGET: f64 = 0.3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let charges: u64 = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(100_000);
    let runs: usize = std::env::args().nth(2).map(|n| n.parse()).transpose()?.unwrap_or(3).max(1);
    let scratch = std::env::var("PAYYMO_DATA_DIR").is_err();
    let work = match std::env::var("PAYYMO_DATA_DIR") {
        Ok(dir) => dir,
        Err(_) => {
            std::env::temp_dir().join(format!("payymo-bench-backfill-{}", std::process::id())).display().to_string()
        }
    };
    std::fs::create_dir_all(&work)?;

    // The simulator, served on loopback as `payymo serve` serves its own for test-mode tenants.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let simulator = format!("http://{}", listener.local_addr()?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(payymo::sandbox::stripe::serve(listener, StripeSim::new(42, Clock::system()), shutdown.clone()));

    let mut config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => std::env::var(name).ok(),
        "PAYYMO_DATA_DIR" => Some(work.clone()),
        "PAYYMO_LISTEN" => Some("127.0.0.1:0".into()),
        "PAYYMO_LOG" => Some("warn".into()),
        "PAYYMO_STRIPE_SANDBOX_URL" => Some(simulator.clone()),
        // The bench tenants are on the premium plan, whose limit is then out of reach.
        "PAYYMO_RATE_LIMITS" => Some("free=60/1m,standard=600/1m,premium=1000000000/1m".into()),
        _ => None,
    })?;
    config.db_max_connections = 8;
    let database = Database::locate(&config).await?;
    let pool = db::pool(database.options.clone(), &config);
    // COPY FROM refuses tables under row-level security unless the role bypasses it: the
    // embedded cluster's superuser does.
    let admin = match &database.embedded {
        Some(cluster) => cluster.connect_options(db::EMBEDDED_DATABASE),
        None => database.options.clone(),
    };
    let result = run(config, &pool, &admin, &simulator, charges, runs).await;
    shutdown.cancel();
    pool.close().await;
    database.shutdown().await;
    if scratch {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

/// One round's figures, in seconds.
struct Round {
    backfill: f64,
    rows: u64,
    copy: f64,
    fetch: f64,
    write: f64,
}

async fn run(
    config: Config,
    pool: &sqlx::PgPool,
    admin: &sqlx::postgres::PgConnectOptions,
    simulator: &str,
    charges: u64,
    runs: usize,
) -> anyhow::Result<()> {
    db::MIGRATOR.run(pool).await?;
    let app = Application::build(config, pool.clone()).await?;
    let api = Api {
        base: format!("http://{}", app.local_addr()?),
        http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(600)).build()?,
    };
    let clients = app.state().stripe.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run_until(stop.clone()));

    let seeded = api.control(&format!("{simulator}/_stripe/accounts"), json!({"name": "Backfill Bench Ltd"})).await?;
    let empty = api.control(&format!("{simulator}/_stripe/accounts"), json!({"name": "COPY Bench Ltd"})).await?;
    let account = seeded["id"].as_str().unwrap_or_default().to_owned();
    eprintln!("bench-stripe-backfill: seeding {charges} card payments on {account}");
    let started = Instant::now();
    let seed = api
        .control(
            &format!("{simulator}/_stripe/accounts/{account}/seed"),
            json!({"charges": charges, "currency": "eur"}),
        )
        .await?;
    eprintln!("bench-stripe-backfill: seeded in {:.1} s: {seed}", started.elapsed().as_secs_f64());
    // Connections made later than the seeded events' second: the first poll of events starts at
    // the connection, so it reads none of them.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut copier = copy::Copier::connect(admin).await?;
    let mut rounds = Vec::new();
    for round in 1..=runs {
        let say = |what: String| eprintln!("bench-stripe-backfill: round {round}: {what}");
        let tenant = api.tenant(pool, &format!("backfill bench {round}")).await?;
        say(format!("backfill of {account} for {}", tenant.id));
        let started = Instant::now();
        api.connect(&tenant, &seeded).await?;
        let progress = api.completed(&tenant).await?;
        let backfill = started.elapsed().as_secs_f64();
        let rows = copier.check(&tenant.id, &seed).await?;
        say(format!("{rows} rows in {backfill:.2} s; progress {progress}"));

        let other = api.tenant(pool, &format!("copy bench {round}")).await?;
        let other_connection = api.connect(&other, &empty).await?;
        api.completed(&other).await?;
        let copy = copier.copy(&tenant.id, &other.id, &other_connection).await?;
        say(format!("COPY of the same {rows} rows in {copy:.2} s"));

        let third = api.tenant(pool, &format!("replay bench {round}")).await?;
        let third_connection = api.connect(&third, &empty).await?;
        api.completed(&third).await?;
        let key = secrecy::SecretString::from(seeded["restricted_key"].as_str().unwrap_or_default().to_owned());
        let stripe = clients.client(false, key, &account);
        let (fetch, write) = replay::replay(pool, &stripe, &third.id, &third_connection, &progress).await?;
        say(format!("the same pages read alone in {fetch:.2} s, written alone in {write:.2} s"));
        for done in [&tenant, &other, &third] {
            api.disconnect(done).await?;
        }
        row(
            &format!("run {round}, {rows} rows"),
            &format!(
                "backfill {backfill:.2} s = {:.0} rows/s | COPY {copy:.2} s = {:.0} rows/s | ratio {:.3}",
                rows as f64 / backfill,
                rows as f64 / copy,
                copy / backfill
            ),
            "",
        );
        rounds.push(Round { backfill, rows, copy, fetch, write });
    }
    stop.cancel();
    let _ = server.await;

    let median_of = |pick: fn(&Round) -> f64| median(&mut rounds.iter().map(pick).collect::<Vec<_>>());
    let (backfill, copy) = (median_of(|r| r.rows as f64 / r.backfill), median_of(|r| r.rows as f64 / r.copy));
    let ratio = backfill / copy;
    row(
        &format!("median of {runs}"),
        &format!("backfill {backfill:.0} rows/s, COPY {copy:.0} rows/s, ratio {ratio:.3}"),
        &format!("ratio >= {TARGET} {}", if ratio >= TARGET { "PASS" } else { "FAIL" }),
    );
    let (total, fetch, write) = (median_of(|r| r.backfill), median_of(|r| r.fetch), median_of(|r| r.write));
    row(
        "where the time goes",
        &format!(
            "the same pages read alone {fetch:.2} s (simulator, HTTP, client JSON) + written alone {write:.2} s = {:.2} s \
             one after the other; the backfill (reading the next page while writing one) {total:.2} s",
            fetch + write
        ),
        "information",
    );
    Ok(())
}

fn row(measured: &str, figures: &str, target: &str) {
    if target.is_empty() {
        println!("{:<20} {measured:<22} {figures}", "stripe-backfill");
    } else {
        println!("{:<20} {measured:<22} {figures} | {target}", "stripe-backfill");
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// A bench tenant and its API key.
struct Tenant {
    id: TenantId,
    key: String,
}

/// Payymo's API and the simulator's control API, over HTTP.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn control(&self, url: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self.http.post(url).json(&body).send().await?.error_for_status()?.json().await?)
    }

    /// A premium test-mode tenant with an API key of every scope.
    async fn tenant(&self, pool: &sqlx::PgPool, name: &str) -> anyhow::Result<Tenant> {
        let mut tx = begin_platform(pool).await?;
        let new = tenancy::NewTenant {
            name: name.into(),
            environment: Environment::Test,
            plan: Some(Plan::Premium),
            time_zone: None,
        };
        let id = TenantId::from_db(tenancy::create_tenant(&mut tx, new).await.map_err(|e| anyhow::anyhow!("{e}"))?.id);
        let spec = KeySpec::parse("bench", &["*".to_owned()], None, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (_, key) = tenancy::create_api_key(&mut tx, &id, Environment::Test, &spec, None).await?;
        tx.commit().await?;
        Ok(Tenant { id, key })
    }

    /// Connects the simulated `account` with its restricted key (as the docs recommend);
    /// returns the connection's id.
    async fn connect(&self, tenant: &Tenant, account: &Value) -> anyhow::Result<String> {
        let connection: Value = self
            .http
            .put(format!("{}/api/v1/stripe/connection", self.base))
            .bearer_auth(&tenant.key)
            .json(&json!({"api_key": account["restricted_key"]}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        connection["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no connection id: {connection}"))
    }

    /// Polls the connection every 20 ms until its backfill has completed; returns its progress.
    async fn completed(&self, tenant: &Tenant) -> anyhow::Result<Value> {
        loop {
            let connection: Value = self
                .http
                .get(format!("{}/api/v1/stripe/connection", self.base))
                .bearer_auth(&tenant.key)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            match connection["backfill"]["status"].as_str() {
                Some("completed") => return Ok(connection["backfill"].clone()),
                Some("running") => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => anyhow::bail!("the backfill did not complete: {connection}"),
            }
        }
    }

    /// Disconnects, so that the minute poll of events leaves the finished rounds alone.
    async fn disconnect(&self, tenant: &Tenant) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/api/v1/stripe/connection", self.base))
            .bearer_auth(&tenant.key)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}
