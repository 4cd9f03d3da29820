//! Webhook delivery benchmark: the real dispatcher draining a backlog of events to a receiver on a
//! loopback port, against a bare HTTP client loop POSTing the same signed bodies to the same
//! receiver, in one process; then the latency from an event's commit to its delivery on an idle
//! system, and a healthy endpoint's throughput beside a failing and a hanging one.
//!
//! `cargo run --release --example bench-webhooks [EVENTS [SAMPLES [ROUNDS]]]` (defaults 100000,
//! 200 and 3). Uses `DATABASE_URL` when set (creating a scratch database next to it, dropped at the
//! end; the role needs CREATEDB), otherwise an embedded cluster in `PAYYMO_DATA_DIR` when set, else
//! in a throwaway directory. `PAYYMO_WEBHOOK_CONCURRENCY` and `PAYYMO_WEBHOOK_TIMEOUT` are read
//! from the environment as `payymo serve` reads them (defaults 8 and 15 s); nothing else is.
//!
//! One tenant with one endpoint (`*`) at the healthy receiver, then ROUNDS rounds of phases 1, 2,
//! 3 and 5, then phase 4 once; each figure is the median over the rounds (this machine stalls now
//! and then, and one drain's figure moved by ±8% between runs of unchanged code):
//!
//! 1. Backlog: EVENTS `transaction.created` events in one statement (`events::record_many`, as a
//!    bank sync writes them), so the fan-out trigger creates EVENTS deliveries.
//! 2. Client loop: those events' envelopes, serialized and signed with the endpoint's secret
//!    before the clock starts (`webhooks::signing::sign`, both headers), POSTed by as many tasks
//!    as the dispatcher's per-endpoint concurrency, each sending its next body when its answer
//!    arrives.
//!    Then the durable loop ([`durable`], `bench/webhooks_durable.rs`): the plainest at-least-once
//!    loop on the same tables (claim a batch with `FOR UPDATE SKIP LOCKED`, POST each, record the
//!    batch's attempts and outcomes in one statement) with as many tasks, drains the backlog,
//!    timed until every delivery is recorded `succeeded`; the deliveries are then put back as
//!    they were (pending, no attempts) for the dispatcher.
//! 3. Dispatcher: after `vacuum (analyze)` of the tables it uses (as before phase 5), a fresh
//!    `webhooks::dispatcher::Dispatcher` with `Settings::from_config`, timed from its start until
//!    the receiver has every event and every delivery row is `succeeded`, for at most
//!    [`DRAIN_LIMIT`]; a drain cut off counts what arrived by then, and marks what is left
//!    pending as failed (saying so), so that the next phase starts idle.
//! 5. Isolation (reference B6): a new neighbour tenant whose two endpoints answer 500 and hang
//!    (past the timeout) gets EVENTS / 10 events first, then the healthy tenant EVENTS more; after
//!    the same vacuum, a fresh dispatcher is timed until the healthy endpoint's deliveries have
//!    all succeeded (at most [`ISOLATION_LIMIT`]), against phase 3's rate. The neighbour's
//!    deliveries still pending are then marked failed, so the next round's phase 3 is alone.
//! 4. Latency: on an idle dispatcher, SAMPLES events recorded one at a time, each in its own
//!    committed transaction, 20 ms apart; commit to arrival at the receiver.
//!
//! Prints one row per figure on stdout, in `bench/run`'s target-table columns (case, what was
//! measured, figures | target and verdict); progress and details on stderr. The tenant, endpoints,
//! backlog, receiver and delivery statements are [`fixtures`] (`bench/webhooks_fixtures.rs`),
//! shared with `bench-webhooks-three`.

#[path = "webhooks_durable.rs"]
mod durable;
#[path = "webhooks_fixtures.rs"]
mod fixtures;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use fixtures::{
    DataDir, Drained, Mode, Receiver, count_arg, create_endpoint, create_tenant, percentile, record_events, requeue,
    set_aside, settle, transaction_payload, wait_drained,
};
use payymo::{
    config::Config,
    crypto::KeyRing,
    db::{self, Database, tenant::begin_tenant},
    domain::ids::{TenantId, WebhookEndpointId},
    events::{self, EVENT_COLUMNS, Event},
    metrics::Metrics,
    webhooks::{
        dispatcher::{Dispatcher, Settings},
        signing::{self, SigningSecret},
    },
};
use sqlx::{PgPool, postgres::PgConnectOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Lowest acceptable ratio of the dispatcher's deliveries/s to the durable loop's (the issue).
const RATIO_TARGET: f64 = 0.5;
/// Highest acceptable median from commit to delivery, in ms (the issue).
const P50_TARGET_MS: f64 = 50.0;
/// Lowest acceptable deliveries/s to a healthy receiver (reference B6).
const RATE_TARGET: f64 = 3000.0;
/// Lowest acceptable share of the healthy endpoint's rate kept beside failing ones (reference B6).
const ISOLATION_TARGET: f64 = 0.9;
/// Longest the dispatcher may take to drain the backlog before the run gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);
/// Longest the isolation phase is given; what was delivered by then is counted.
const ISOLATION_LIMIT: Duration = Duration::from_secs(60);
/// Gap between the latency phase's events.
const LATENCY_GAP: Duration = Duration::from_millis(20);
/// The last error of the deliveries a drain cut off, marked failed.
const ABANDONED: &str = "left pending when bench-webhooks stopped waiting";

/// The allocator `payymo serve` runs with (src/main.rs), so the dispatcher is measured as deployed;
/// the client loop and the receiver in this process get it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (events, samples, rounds) = (count_arg(1, 100_000)?, count_arg(2, 200)?, count_arg(3, 3)?);
    if events == 0 || samples == 0 || rounds == 0 {
        bail!("usage: bench-webhooks [EVENTS [SAMPLES [ROUNDS]]] (all above 0)");
    }
    fixtures::init_tracing();

    let data_dir = DataDir::new("bench-webhooks")?;
    let mut config =
        fixtures::config(&data_dir.path, &["DATABASE_URL", "PAYYMO_WEBHOOK_CONCURRENCY", "PAYYMO_WEBHOOK_TIMEOUT"])?;
    config.webhook_allowed_networks = vec!["127.0.0.0/8".parse()?];

    let database = Database::locate(&config).await?;
    let scratch = match &config.database_url {
        Some(_) => Some(ScratchDatabase::create(&database.options).await?),
        None => None,
    };
    let options = scratch.as_ref().map_or_else(|| database.options.clone(), ScratchDatabase::options);
    let pool = db::pool(options, &config);
    let result = run(&config, &pool, events, samples, rounds).await;
    pool.close().await;
    if let Some(scratch) = scratch {
        scratch.drop_it().await;
    }
    database.shutdown().await;
    data_dir.remove();
    result
}

async fn run(config: &Config, pool: &PgPool, events: usize, samples: usize, rounds: usize) -> anyhow::Result<()> {
    db::MIGRATOR.run(pool).await?;
    let keys = KeyRing::load(None, pool).await?;
    let settings = Settings::from_config(config);
    let concurrency = settings.per_endpoint;
    let metrics = Arc::new(Metrics::default());
    let start_dispatcher = |worker: &str| {
        let dispatcher =
            Dispatcher::new(pool.clone(), keys.clone(), settings.clone(), worker.to_owned(), metrics.clone())?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(dispatcher.run_until(stop.clone()));
        Ok::<_, anyhow::Error>(Running { stop, task })
    };

    let healthy = Receiver::start(Mode::Healthy).await?;
    let tenant = create_tenant(pool, "webhooks bench").await?;
    let (endpoint, secret) = create_endpoint(pool, &keys, &tenant, &healthy.url).await?;
    eprintln!(
        "bench-webhooks: receiver {}, {concurrency} attempts at once per endpoint, timeout {:?}",
        healthy.url, settings.timeout
    );

    let setup = Setup {
        pool,
        healthy: &healthy,
        keys: &keys,
        tenant: &tenant,
        endpoint: &endpoint,
        secret: &secret,
        events,
        concurrency,
        timeout: settings.timeout,
    };
    let mut rounds_seen = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        rounds_seen.push(measure_round(&setup, &start_dispatcher, round).await?);
    }

    // 4. Latency on an idle dispatcher.
    healthy.reset();
    let dispatcher = start_dispatcher("bench-webhooks-latency")?;
    let latencies = latency(pool, &healthy, &tenant, samples).await?;
    dispatcher.stop().await;

    // The rows, in bench/run's target-table columns: medians over the rounds.
    let median_of = |figure: &dyn Fn(&Round) -> f64| {
        let mut values: Vec<f64> = rounds_seen.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        percentile(&values, 0.5)
    };
    let loop_rate = median_of(&|round| round.loop_rate);
    let durable_rate = median_of(&|round| round.durable_rate);
    let rate = median_of(&|round| round.alone.rate());
    let beside = median_of(&|round| round.beside.rate());
    let cut_off = |drained: &dyn Fn(&Round) -> &Drained| {
        let cut = rounds_seen.iter().filter(|round| !drained(round).finished).count();
        if cut == 0 { String::new() } else { format!(" ({cut} of {rounds} drains cut off)") }
    };
    let of_rounds = if rounds == 1 { String::new() } else { format!(", medians of {rounds} rounds") };
    let ratio = rate / durable_rate;
    row(
        "dispatcher vs durable",
        &format!(
            "{rate:.0} vs {durable_rate:.0} deliveries/s at {concurrency} per endpoint{}{of_rounds}, ratio {ratio:.2}",
            cut_off(&|round| &round.alone)
        ),
        &format!("ratio >= {RATIO_TARGET:.2} {}", verdict(ratio >= RATIO_TARGET)),
    );
    row(
        "dispatcher vs loop",
        &format!(
            "{rate:.0} vs {loop_rate:.0} deliveries/s, ratio {:.2} (a client loop that records nothing)",
            rate / loop_rate
        ),
        "information",
    );
    let (p50, p99, max) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99), percentile(&latencies, 1.0));
    row(
        "commit to delivery",
        &format!("p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} events, idle)", latencies.len()),
        &format!("p50 <= {P50_TARGET_MS:.0} ms {}", verdict(p50 <= P50_TARGET_MS)),
    );
    row(
        "healthy sink (B6)",
        &format!("{rate:.0} deliveries/s{of_rounds}"),
        &format!(">= {RATE_TARGET:.0}/s {}", verdict(rate >= RATE_TARGET)),
    );
    let kept = beside / rate;
    row(
        "beside 500+hang (B6)",
        &format!("{beside:.0} deliveries/s{}{of_rounds} = {kept:.2} of alone", cut_off(&|round| &round.beside)),
        &format!(">= {ISOLATION_TARGET:.2} {}", verdict(kept >= ISOLATION_TARGET)),
    );
    Ok(())
}

/// What every round works with.
#[derive(Clone, Copy)]
struct Setup<'a> {
    pool: &'a PgPool,
    healthy: &'a Receiver,
    keys: &'a KeyRing,
    tenant: &'a TenantId,
    endpoint: &'a WebhookEndpointId,
    secret: &'a SigningSecret,
    events: usize,
    concurrency: usize,
    timeout: Duration,
}

/// What one round measured.
struct Round {
    /// The client loop's POSTs per second.
    loop_rate: f64,
    /// The durable loop's deliveries per second.
    durable_rate: f64,
    /// The dispatcher draining the healthy endpoint's backlog on its own.
    alone: Drained,
    /// The same beside another tenant's failing and hanging endpoints.
    beside: Drained,
}

/// One round of phases 1 to 3 and 5 (see the module documentation): the healthy tenant's backlog
/// sent by the client loop, then drained by the dispatcher alone; then a new neighbour tenant with
/// a failing and a hanging endpoint, its backlog, another backlog for the healthy tenant, and the
/// drain timed again. What the neighbour still has pending afterwards is set aside (marked
/// failed), so that the next round's first drain is alone again.
async fn measure_round(
    setup: &Setup<'_>,
    start_dispatcher: &impl Fn(&str) -> anyhow::Result<Running>,
    round: usize,
) -> anyhow::Result<Round> {
    let Setup { pool, healthy, keys, tenant, endpoint, secret, events, concurrency, timeout } = *setup;
    let endpoints = std::slice::from_ref(endpoint);
    let say = |what: String| eprintln!("bench-webhooks: round {round}: {what}");

    // 1. The backlog.
    let started = Instant::now();
    let since = db_now(pool).await?;
    record_events(pool, tenant, events).await?;
    say(format!("{events} events and their deliveries committed in {:.1} s", started.elapsed().as_secs_f64()));

    // 2. The client loop, on the same envelopes, signed before the clock starts.
    let signed = sign_envelopes(pool, tenant, secret).await?;
    let loop_seconds = client_loop(healthy, &signed, concurrency, timeout).await?;
    let loop_rate = events as f64 / loop_seconds;
    say(format!("client loop: {events} POSTs in {loop_seconds:.2} s = {loop_rate:.0}/s"));
    healthy.reset();
    drop(signed);

    // 2b. The durable loop, on the same backlog; then the deliveries are put back for phase 3.
    settle(pool).await?;
    let durable_seconds = durable::drain(pool, keys, tenant, endpoint, concurrency, timeout).await?;
    if healthy.unique() != events {
        bail!("the durable loop delivered {} of {events} events", healthy.unique());
    }
    check_delivered(pool, tenant, endpoint, &since, events).await?;
    let durable_rate = events as f64 / durable_seconds;
    say(format!("durable loop: {events} delivered and recorded in {durable_seconds:.2} s = {durable_rate:.0}/s"));
    healthy.reset();
    requeue(pool, tenant, endpoints, Some(&since)).await?;

    // 3. The dispatcher, from the same backlog.
    settle(pool).await?;
    let dispatcher = start_dispatcher(&format!("bench-webhooks-{round}a"))?;
    let alone = wait_drained(pool, healthy, tenant, endpoints, events, Instant::now(), DRAIN_LIMIT).await?;
    dispatcher.stop().await;
    say(format!(
        "dispatcher: {}; {} requests for {} events",
        alone.describe(events),
        healthy.requests(),
        healthy.unique()
    ));
    if alone.finished {
        check_delivered(pool, tenant, endpoint, &since, events).await?;
    } else {
        let left = set_aside(pool, tenant, endpoints, ABANDONED).await?;
        say(format!("the backlog did not drain; {left} deliveries left pending were marked failed"));
    }

    // 5. Isolation: a failing and a hanging endpoint with an older backlog, in another tenant.
    healthy.reset();
    let failing = Receiver::start(Mode::Failing).await?;
    let hanging = Receiver::start(Mode::Hanging).await?;
    let neighbour = create_tenant(pool, &format!("webhooks bench neighbour {round}")).await?;
    let (failing_endpoint, _) = create_endpoint(pool, keys, &neighbour, &failing.url).await?;
    let (hanging_endpoint, _) = create_endpoint(pool, keys, &neighbour, &hanging.url).await?;
    let neighbour_events = (events / 10).max(1);
    record_events(pool, &neighbour, neighbour_events).await?;
    record_events(pool, tenant, events).await?;
    say(format!(
        "isolation: {neighbour_events} events for a tenant whose endpoints answer 500 and hang, then {events} for the healthy one"
    ));
    settle(pool).await?;
    let dispatcher = start_dispatcher(&format!("bench-webhooks-{round}b"))?;
    let beside = wait_drained(pool, healthy, tenant, endpoints, events, Instant::now(), ISOLATION_LIMIT).await?;
    // Let the hanging receiver's requests end, so the dispatcher stops without waiting them out.
    hanging.release();
    dispatcher.stop().await;
    say(format!(
        "isolation: healthy endpoint: {}; the failing receiver got {} requests, the hanging one {}",
        beside.describe(events),
        failing.requests(),
        hanging.requests()
    ));
    set_aside(pool, &neighbour, &[failing_endpoint, hanging_endpoint], ABANDONED).await?;
    if !beside.finished {
        set_aside(pool, tenant, endpoints, ABANDONED).await?;
    }
    healthy.reset();
    Ok(Round { loop_rate, durable_rate, alone, beside })
}

/// A dispatcher running in the background.
struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn row(measured: &str, figures: &str, target: &str) {
    println!("{:<20} {measured:<22} {figures} | {target}", "webhooks");
}

fn verdict(met: bool) -> &'static str {
    if met { "PASS" } else { "FAIL" }
}

/// One pre-signed request of the client loop.
struct Signed {
    id: String,
    timestamp: String,
    standard: String,
    payymo: String,
    body: Bytes,
}

/// The tenant's events in the envelope the dispatcher sends, serialized as it serializes them and
/// signed with `secret`.
async fn sign_envelopes(pool: &PgPool, tenant: &TenantId, secret: &SigningSecret) -> anyhow::Result<Arc<[Signed]>> {
    let mut tx = begin_tenant(pool, tenant).await?;
    let envelopes: Vec<Event> =
        // This round's: the events whose deliveries are still pending.
        sqlx::query_as(&format!(
            "select {EVENT_COLUMNS} from events where tenant_id = $1
             and id in (select event_id from webhook_deliveries where tenant_id = $1 and status = 'pending')
             order by id"
        ))
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await?;
    db::tenant::end_read(tx);
    let timestamp = Utc::now().timestamp();
    let secrets = std::slice::from_ref(secret);
    envelopes
        .into_iter()
        .map(|event| {
            let body = serde_json::to_vec(&event)?;
            let signatures = signing::sign(secrets, &event.id, timestamp, &body);
            Ok(Signed {
                id: event.id,
                timestamp: timestamp.to_string(),
                standard: signatures.standard,
                payymo: signatures.payymo,
                body: Bytes::from(body),
            })
        })
        .collect()
}

/// POSTs every signed body to the receiver from `concurrency` tasks; returns the seconds taken.
async fn client_loop(
    receiver: &Receiver,
    signed: &Arc<[Signed]>,
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<JoinHandle<anyhow::Result<()>>> = (0..concurrency)
        .map(|_| {
            let (client, signed, next, url) = (client.clone(), signed.clone(), next.clone(), receiver.url.clone());
            tokio::spawn(async move {
                loop {
                    let Some(request) = signed.get(next.fetch_add(1, Ordering::Relaxed)) else { return Ok(()) };
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("user-agent", "bench-webhooks")
                        .header("webhook-id", &request.id)
                        .header("webhook-timestamp", &request.timestamp)
                        .header("webhook-signature", &request.standard)
                        .header("x-webhook-signature", &request.payymo)
                        .body(request.body.clone())
                        .send()
                        .await?;
                    let status = response.status();
                    response.bytes().await?;
                    if !status.is_success() {
                        bail!("the receiver answered {status}");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    if receiver.unique() != signed.len() {
        bail!("the receiver got {} of the client loop's {} bodies", receiver.unique(), signed.len());
    }
    Ok(seconds)
}

/// Checks that every delivery of `endpoint` created since `since` succeeded, and that there are
/// `count` of them.
async fn check_delivered(
    pool: &PgPool,
    tenant: &TenantId,
    endpoint: &WebhookEndpointId,
    since: &DateTime<Utc>,
    count: usize,
) -> anyhow::Result<()> {
    let (succeeded, attempts) = fixtures::outcome(pool, tenant, std::slice::from_ref(endpoint), Some(since)).await?;
    if succeeded != count {
        bail!("{succeeded} of {count} deliveries succeeded");
    }
    eprintln!("bench-webhooks: {succeeded} deliveries succeeded in {attempts} attempts");
    Ok(())
}

/// The database's clock, which stamps the rows.
async fn db_now(pool: &PgPool) -> anyhow::Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("select now()").fetch_one(pool).await?)
}

/// Records `samples` events one at a time, each committed on its own, and returns the time from
/// each commit to its arrival at the receiver, in ms, sorted.
async fn latency(pool: &PgPool, receiver: &Receiver, tenant: &TenantId, samples: usize) -> anyhow::Result<Vec<f64>> {
    // Let the drain's last writes and any autovacuum they set off settle first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut committed = Vec::with_capacity(samples);
    for n in 0..samples {
        let mut tx = begin_tenant(pool, tenant).await?;
        let event = events::record(&mut tx, tenant, "transaction.created", transaction_payload(n)).await?;
        tx.commit().await?;
        committed.push((event.id, Instant::now()));
        tokio::time::sleep(LATENCY_GAP).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.unique() < samples && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let arrivals = receiver.arrivals();
    let mut latencies: Vec<f64> = Vec::with_capacity(samples);
    for (id, at) in &committed {
        let Some(arrived) = arrivals.get(id) else {
            bail!("event {id} did not reach the receiver within 10 s of the last commit");
        };
        // Signed: an arrival before the commit's acknowledgement reached us would show as negative.
        latencies.push(if *arrived >= *at {
            arrived.duration_since(*at).as_secs_f64() * 1000.0
        } else {
            -(at.duration_since(*arrived).as_secs_f64() * 1000.0)
        });
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

/// A database of its own on the `DATABASE_URL` server, so the run neither reads nor leaves rows
/// in the one given.
struct ScratchDatabase {
    server: PgConnectOptions,
    name: String,
}

impl ScratchDatabase {
    async fn create(server: &PgConnectOptions) -> anyhow::Result<Self> {
        let name = format!("payymo_bench_webhooks_{}_{}", Utc::now().timestamp(), std::process::id());
        db::create_database_if_missing(server, &name, None)
            .await
            .with_context(|| format!("cannot create the scratch database {name} (the role needs CREATEDB)"))?;
        eprintln!("bench-webhooks: scratch database {name} on the DATABASE_URL server");
        Ok(Self { server: server.clone(), name })
    }

    fn options(&self) -> PgConnectOptions {
        self.server.clone().database(&self.name)
    }

    async fn drop_it(self) {
        use sqlx::Connection;
        let dropped = async {
            let mut conn = sqlx::PgConnection::connect_with(&self.server).await?;
            sqlx::query(&format!("drop database {} with (force)", db::quote_ident(&self.name)))
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        if let Err(error) = dropped.await {
            eprintln!("bench-webhooks: could not drop the scratch database {}: {error}", self.name);
        }
    }
}
