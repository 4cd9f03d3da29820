//! Webhook drain by three dispatchers against one: the same backlog drained by three `payymo
//! serve` processes (workers on, so each runs the real `webhooks::dispatcher::Dispatcher` as
//! deployed) and by one, to the same loopback receiver, with where the machine's CPU went.
//!
//! `bench-webhooks-three PAYYMO_BIN [EVENTS [ROUNDS [ENDPOINTS]]]` (defaults 100000, 3 and 4).
//! Uses `DATABASE_URL` as it is when set (its rows stay there), otherwise an embedded cluster in
//! `PAYYMO_DATA_DIR` when set, else in a throwaway directory. `PAYYMO_WEBHOOK_CONCURRENCY`,
//! `PAYYMO_WEBHOOK_TIMEOUT` and `PAYYMO_DB_MAX_CONNECTIONS` are read from the environment as
//! `payymo serve` reads them (defaults 8, 15 s and 10) and given to every process explicitly;
//! `PAYYMO_ENCRYPTION_KEYS` too (default: the key kept in the database), which the processes
//! inherit, so that they open the endpoints' secrets sealed here. The other variables of the
//! environment reach the processes as they reach `payymo serve` under `bench/run`.
//!
//! `PAYYMO_WEBHOOK_CONCURRENCY` is per instance: each dispatcher sends at most that many attempts
//! at once to any one endpoint, so three instances send up to three times as many. Three setups
//! therefore, each drained by one process and by three:
//!
//! - `1 endpoint, C/process`: one endpoint, every process at C (the default deployment: three
//!   instances hold 3 × C attempts to the endpoint, one holds C);
//! - `1 endpoint, 3C at once`: the same endpoint, the single process at 3 × C and each of the
//!   three at C, so both hold as many attempts at once and only the number of processes differs;
//! - `ENDPOINTS endpoints, C/process`: one tenant with ENDPOINTS endpoints (EVENTS / ENDPOINTS
//!   events, each fanned out to every endpoint: the same number of deliveries), every process at C.
//!
//! Each backlog is recorded once (`events::record_many`, one statement, as a bank sync writes
//! events; the fan-out trigger makes the deliveries) and set aside (marked failed). A drain puts
//! its setup's deliveries back as they were before any attempt (pending, due, no attempts),
//! vacuums and analyses the tables the dispatcher uses, starts the processes at once, and times
//! from the first delivery's arrival at the receiver (so no process start-up is timed; the
//! start-up, from spawning to that arrival, goes to stderr) until the receiver has every delivery
//! and no delivery row is pending; then stops the processes with SIGTERM and checks that every
//! delivery succeeded. deliveries/s = deliveries ÷ that time. Each round drains every setup with
//! one process and with three, one first in odd rounds and three first in even ones; the figures
//! are the medians over the rounds.
//!
//! Where the time goes: over each timed window, the CPU time (`/proc/PID/stat` utime + stime) of
//! the `payymo serve` processes, of the database server (the postmaster, with its children
//! reaped, and its live children: every backend, autovacuum, the checkpointer; found from this
//! process's backend when the server runs on this machine), of this process (the receiver, and the
//! polling), and the machine's interrupt and softirq time (`irq`: the kernel's network processing,
//! loopback's included, charged to no process), as shares of the machine's total (`/proc/stat`,
//! all CPUs); `rest` is the other busy time (other programs), then idle; and CPU µs per delivery.
//!
//! Prints one row per figure on stdout, in `bench/run`'s target-table columns (case, what was
//! measured, figures | target); progress and each drain's figures on stderr. The tenants,
//! endpoints, backlogs, receiver and delivery statements are [`fixtures`]
//! (`bench/webhooks_fixtures.rs`), shared with `bench-webhooks`.

#[path = "webhooks_fixtures.rs"]
mod fixtures;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use fixtures::{
    DataDir, Drained, Mode, Receiver, count_arg, create_endpoint, create_tenant, median, outcome, record_events,
    requeue, set_aside, settle, wait_drained,
};
use payymo::{
    config::Config,
    crypto::KeyRing,
    db::{self, Database},
    domain::ids::{TenantId, WebhookEndpointId},
};
use sqlx::PgPool;
use tokio::process::{Child, Command};

/// The premium plan's limit out of reach, as in `bench/run` (no API traffic here anyway).
const RATE_LIMITS: &str = "free=60/1m,standard=600/1m,premium=1000000000/1m";
/// Longest a drain may take before the run gives up on it (what arrived is counted).
const DRAIN_LIMIT: Duration = Duration::from_secs(180);
/// Longest from starting the processes to the first delivery's arrival.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How many processes the comparison is about.
const THREE: usize = 3;
/// The last error of the deliveries set aside.
const SET_ASIDE: &str = "set aside by bench-webhooks-three";

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let usage = "usage: bench-webhooks-three PAYYMO_BIN [EVENTS [ROUNDS [ENDPOINTS]]] (counts above 0)";
    let bin = PathBuf::from(std::env::args().nth(1).context(usage)?);
    let (events, rounds, endpoints) = (count_arg(2, 100_000)?, count_arg(3, 3)?, count_arg(4, 4)?);
    if events == 0 || rounds == 0 || endpoints == 0 || events < endpoints {
        bail!("{usage}; EVENTS at least ENDPOINTS");
    }
    if !bin.is_file() {
        bail!("{}: no such program (the payymo binary, release build)", bin.display());
    }
    fixtures::init_tracing();

    let data_dir = DataDir::new("bench-webhooks-three")?;
    let config = fixtures::config(
        &data_dir.path,
        &[
            "DATABASE_URL",
            "PAYYMO_WEBHOOK_CONCURRENCY",
            "PAYYMO_WEBHOOK_TIMEOUT",
            "PAYYMO_DB_MAX_CONNECTIONS",
            "PAYYMO_ENCRYPTION_KEYS",
        ],
    )?;
    let database = Database::locate(&config).await?;
    // Where the processes connect: DATABASE_URL, or the embedded cluster's socket as `payymo`.
    let url = match &config.database_url {
        Some(url) => secrecy::ExposeSecret::expose_secret(url).to_owned(),
        None => {
            let options = &database.options;
            let socket = options.get_socket().context("the embedded cluster has no socket directory")?;
            format!(
                "postgres://{}@localhost/{}?host={}",
                options.get_username(),
                options.get_database().unwrap_or("payymo"),
                percent_encoding::utf8_percent_encode(&socket.to_string_lossy(), percent_encoding::NON_ALPHANUMERIC)
            )
        }
    };
    let pool = db::pool(database.options.clone(), &config);
    let result = run(&config, &pool, &Launch { bin, url, dir: data_dir.path.clone() }, events, rounds, endpoints).await;
    pool.close().await;
    database.shutdown().await;
    data_dir.remove();
    result
}

/// How to start a `payymo serve`.
struct Launch {
    bin: PathBuf,
    url: String,
    dir: PathBuf,
}

/// One comparison: which endpoints' backlog, and each process's per-endpoint concurrency when
/// one process drains it and when three do.
struct Setup {
    label: String,
    tenant: TenantId,
    endpoints: Vec<WebhookEndpointId>,
    deliveries: usize,
    one: usize,
    each: usize,
}

async fn run(
    config: &Config,
    pool: &PgPool,
    launch: &Launch,
    events: usize,
    rounds: usize,
    endpoint_count: usize,
) -> anyhow::Result<()> {
    db::MIGRATOR.run(pool).await?;
    let keys = KeyRing::load(config.encryption_keys.as_ref(), pool).await?;
    let concurrency = config.webhook_concurrency;
    let postmaster = postmaster_pid(pool).await;
    let receiver = Receiver::start(Mode::Healthy).await?;
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    eprintln!(
        "bench-webhooks-three: receiver {}, PAYYMO_WEBHOOK_CONCURRENCY {concurrency} (per process and endpoint), \
         timeout {:?}, pool {} connections per process, database server {}",
        receiver.base,
        config.webhook_timeout,
        config.db_max_connections,
        postmaster.map_or("not on this machine (its CPU counts as rest)".to_owned(), |pid| format!("pid {pid}"))
    );

    // The backlogs, each recorded once and set aside.
    let single = create_tenant(pool, "webhooks-three one endpoint").await?;
    let (endpoint, _) = create_endpoint(pool, &keys, &single, &format!("{}/hooks/single", receiver.base)).await?;
    record_events(pool, &single, events).await?;
    set_aside(pool, &single, std::slice::from_ref(&endpoint), SET_ASIDE).await?;
    let several = create_tenant(pool, "webhooks-three several endpoints").await?;
    let mut several_endpoints = Vec::with_capacity(endpoint_count);
    for n in 0..endpoint_count {
        several_endpoints
            .push(create_endpoint(pool, &keys, &several, &format!("{}/hooks/{n}", receiver.base)).await?.0);
    }
    let per_endpoint = events / endpoint_count;
    record_events(pool, &several, per_endpoint).await?;
    set_aside(pool, &several, &several_endpoints, SET_ASIDE).await?;
    eprintln!(
        "bench-webhooks-three: backlogs recorded: {events} events to 1 endpoint, {per_endpoint} events to {endpoint_count} endpoints"
    );

    let setups = [
        Setup {
            label: format!("1 endpoint, {concurrency}/process"),
            tenant: single.clone(),
            endpoints: vec![endpoint.clone()],
            deliveries: events,
            one: concurrency,
            each: concurrency,
        },
        Setup {
            label: format!("1 endpoint, {} at once", THREE * concurrency),
            tenant: single.clone(),
            endpoints: vec![endpoint.clone()],
            deliveries: events,
            one: (THREE * concurrency).min(256),
            each: concurrency,
        },
        Setup {
            label: format!("{endpoint_count} endpoints, {concurrency}/process"),
            tenant: several.clone(),
            endpoints: several_endpoints.clone(),
            deliveries: per_endpoint * endpoint_count,
            one: concurrency,
            each: concurrency,
        },
    ];
    let bench = Bench { pool, launch, receiver: &receiver, config, postmaster };
    // drains[setup][0] one process, [1] three, one entry per round.
    let mut drains: Vec<[Vec<Drain>; 2]> = setups.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 1..=rounds {
        for (setup, seen) in setups.iter().zip(drains.iter_mut()) {
            let order: [usize; 2] = if round % 2 == 1 { [0, 1] } else { [1, 0] };
            for which in order {
                let (processes, each) = if which == 0 { (1, setup.one) } else { (THREE, setup.each) };
                let drained = drain(&bench, setup, processes, each, round).await?;
                seen[which].push(drained);
            }
        }
    }

    let of_rounds = if rounds == 1 { String::new() } else { format!(", medians of {rounds} rounds") };
    for (setup, seen) in setups.iter().zip(&drains) {
        let [one, three] = seen;
        let rate = |drains: &[Drain]| median(drains.iter().map(|d| d.drained.rate()));
        let (one_rate, three_rate) = (rate(one), rate(three));
        let cut: usize = seen.iter().flatten().filter(|d| !d.drained.finished).count();
        let cut =
            if cut == 0 { String::new() } else { format!(" ({cut} drains cut off after {}s)", DRAIN_LIMIT.as_secs()) };
        row(
            &setup.label,
            &format!(
                "3 processes {three_rate:.0}/s vs 1 process {one_rate:.0}/s, ratio {:.2}; {} deliveries, at most {} vs {} in flight{cut}{of_rounds}",
                three_rate / one_rate,
                setup.deliveries,
                THREE * setup.each * setup.endpoints.len(),
                setup.one * setup.endpoints.len(),
            ),
        );
        for (name, drained) in [("1 process", one), ("3 processes", three)] {
            row(&format!("  CPU, {name}"), &cpu_figures(drained, cpus, postmaster.is_some()));
        }
    }
    Ok(())
}

/// What every drain works with.
#[derive(Clone, Copy)]
struct Bench<'a> {
    pool: &'a PgPool,
    launch: &'a Launch,
    receiver: &'a Receiver,
    config: &'a Config,
    postmaster: Option<u32>,
}

/// How one drain went, and where the machine's CPU went meanwhile.
struct Drain {
    drained: Drained,
    cpu: CpuShares,
}

/// One drain of `setup`'s backlog by `processes` `payymo serve` processes at `each` attempts per
/// endpoint.
async fn drain(bench: &Bench<'_>, setup: &Setup, processes: usize, each: usize, round: usize) -> anyhow::Result<Drain> {
    let Bench { pool, launch, receiver, config, postmaster } = *bench;
    let (tenant, endpoints, count) = (&setup.tenant, setup.endpoints.as_slice(), setup.deliveries);
    requeue(pool, tenant, endpoints, None).await?;
    settle(pool).await?;
    receiver.reset();

    let spawned = Instant::now();
    let mut children = Vec::with_capacity(processes);
    for n in 1..=processes {
        children.push(serve(launch, config, each, n).await?);
    }
    let pids: Vec<u32> = children.iter().filter_map(|(child, _)| child.id()).collect();
    // Until the first delivery arrives: only start-up, not timed.
    let first = loop {
        if let Some(first) = receiver.first() {
            break first;
        }
        let mut exited = None;
        for (child, log) in &mut children {
            if let Some(status) = child.try_wait()? {
                exited = Some((status, log.clone()));
                break;
            }
        }
        if let Some((status, log)) = exited {
            stop_all(&mut children).await;
            bail!("payymo serve exited ({status}) before delivering anything; its log:\n{}", tail(&log));
        }
        if spawned.elapsed() > START_LIMIT {
            stop_all(&mut children).await;
            bail!("nothing delivered within {}s of starting {processes} payymo serve", START_LIMIT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let before = Cpu::now(&pids, postmaster);
    let mut drained = wait_drained(pool, receiver, tenant, endpoints, count, first, DRAIN_LIMIT).await?;
    let after = Cpu::now(&pids, postmaster);
    drained.delivered = drained.delivered.min(count);
    let Drained { delivered, seconds, finished, .. } = drained;
    stop_all(&mut children).await;

    let cpu = after.since(&before, delivered);
    let label = format!(
        "round {round}: {}, {processes} process{} at {each}/endpoint",
        setup.label,
        if processes == 1 { "" } else { "es" }
    );
    let requests = receiver.requests();
    if finished {
        let (succeeded, attempts) = outcome(pool, tenant, endpoints, None).await?;
        if succeeded != count {
            bail!("{label}: {succeeded} of {count} deliveries succeeded");
        }
        eprintln!(
            "bench-webhooks-three: {label}: {count} delivered in {seconds:.2} s = {:.0}/s \
             (start-up {:.2} s before the first arrival; {requests} requests, {attempts} attempts); CPU {}",
            count as f64 / seconds,
            first.duration_since(spawned).as_secs_f64(),
            cpu.describe()
        );
    } else {
        let left = set_aside(pool, tenant, endpoints, SET_ASIDE).await?;
        eprintln!(
            "bench-webhooks-three: {label}: cut off: {delivered} of {count} at the receiver after {seconds:.0} s = {:.0}/s; \
             {left} left pending were marked failed",
            delivered as f64 / seconds
        );
    }
    Ok(Drain { drained, cpu })
}

/// Starts `payymo serve` number `n` (workers on, so its dispatcher runs) on a free loopback port.
async fn serve(launch: &Launch, config: &Config, concurrency: usize, n: usize) -> anyhow::Result<(Child, PathBuf)> {
    let dir = launch.dir.join(format!("serve-{n}"));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("serve.log");
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut command = Command::new(&launch.bin);
    command
        .arg("serve")
        .env("DATABASE_URL", &launch.url)
        .env("PAYYMO_LISTEN", format!("127.0.0.1:{port}"))
        .env("PAYYMO_DATA_DIR", &dir)
        .env("PAYYMO_LOG", "warn")
        .env("PAYYMO_LOG_FORMAT", "text")
        .env("PAYYMO_SHUTDOWN_GRACE", "5s")
        .env("PAYYMO_RATE_LIMITS", RATE_LIMITS)
        .env("PAYYMO_WORKERS", "true")
        .env("PAYYMO_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("PAYYMO_WEBHOOK_CONCURRENCY", concurrency.to_string())
        .env("PAYYMO_WEBHOOK_TIMEOUT", humantime::format_duration(config.webhook_timeout).to_string())
        .env("PAYYMO_DB_MAX_CONNECTIONS", config.db_max_connections.to_string())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .kill_on_drop(true);
    let child = command.spawn().with_context(|| format!("cannot start {} serve", launch.bin.display()))?;
    Ok((child, log))
}

/// SIGTERM to every process, then waits for each (SIGKILL after 30 s).
async fn stop_all(children: &mut [(Child, PathBuf)]) {
    for (child, _) in children.iter() {
        if let Some(pid) = child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
    }
    for (child, _) in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// CPU time in clock ticks at one moment.
struct Cpu {
    /// The machine: every CPU's time, its idle part (idle + iowait) and its irq + softirq part.
    total: u64,
    idle: u64,
    irq: u64,
    payymo: u64,
    postgres: Option<u64>,
    own: u64,
}

impl Cpu {
    fn now(payymo: &[u32], postmaster: Option<u32>) -> Self {
        let (total, idle, irq) = machine_ticks();
        Self {
            total,
            idle,
            irq,
            payymo: payymo.iter().map(|pid| process_ticks(*pid).map_or(0, |t| t.own)).sum(),
            postgres: postmaster.map(server_ticks),
            own: process_ticks(std::process::id()).map_or(0, |t| t.own),
        }
    }

    fn since(&self, before: &Self, deliveries: usize) -> CpuShares {
        let total = self.total.saturating_sub(before.total).max(1) as f64;
        let payymo = self.payymo.saturating_sub(before.payymo) as f64;
        let postgres = match (self.postgres, before.postgres) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b) as f64),
            _ => None,
        };
        let own = self.own.saturating_sub(before.own) as f64;
        let idle = self.idle.saturating_sub(before.idle) as f64;
        let irq = self.irq.saturating_sub(before.irq) as f64;
        let busy = total - idle;
        let tick_us = 1e6 / clock_ticks_per_second();
        let per = |ticks: f64| ticks * tick_us / deliveries.max(1) as f64;
        CpuShares {
            payymo: payymo / total,
            postgres: postgres.map(|p| p / total),
            own: own / total,
            irq: irq / total,
            rest: (busy - payymo - postgres.unwrap_or(0.0) - own - irq).max(0.0) / total,
            idle: idle / total,
            payymo_us: per(payymo),
            postgres_us: postgres.map(per),
            busy_us: per(busy),
        }
    }
}

/// Shares of the machine's CPU time over a drain, and CPU µs per delivery.
#[derive(Clone, Copy)]
struct CpuShares {
    payymo: f64,
    postgres: Option<f64>,
    own: f64,
    irq: f64,
    rest: f64,
    idle: f64,
    payymo_us: f64,
    postgres_us: Option<f64>,
    busy_us: f64,
}

impl CpuShares {
    fn describe(&self) -> String {
        format!(
            "payymo {:.0}%, postgres {}, bench {:.0}%, irq {:.0}%, rest {:.0}%, idle {:.0}%; per delivery payymo {:.0} µs, postgres {}, all busy {:.0} µs",
            self.payymo * 100.0,
            self.postgres.map_or("-".to_owned(), |p| format!("{:.0}%", p * 100.0)),
            self.own * 100.0,
            self.irq * 100.0,
            self.rest * 100.0,
            self.idle * 100.0,
            self.payymo_us,
            self.postgres_us.map_or("-".to_owned(), |p| format!("{p:.0} µs")),
            self.busy_us
        )
    }
}

/// The medians over the rounds of each CPU figure.
fn cpu_figures(drains: &[Drain], cpus: usize, local_server: bool) -> String {
    let m = |f: &dyn Fn(&CpuShares) -> f64| median(drains.iter().map(|d| f(&d.cpu)));
    let shares = CpuShares {
        payymo: m(&|c| c.payymo),
        postgres: local_server.then(|| m(&|c| c.postgres.unwrap_or(0.0))),
        own: m(&|c| c.own),
        irq: m(&|c| c.irq),
        rest: m(&|c| c.rest),
        idle: m(&|c| c.idle),
        payymo_us: m(&|c| c.payymo_us),
        postgres_us: local_server.then(|| m(&|c| c.postgres_us.unwrap_or(0.0))),
        busy_us: m(&|c| c.busy_us),
    };
    format!("{} (shares of {cpus} CPUs)", shares.describe())
}

/// `/proc/stat`'s first line: all CPUs' ticks (user to steal), the idle ones (idle + iowait) and
/// the interrupt ones (irq + softirq).
fn machine_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| fields.get(n).copied().unwrap_or(0);
    (fields.iter().sum(), field(3) + field(4), field(5) + field(6))
}

/// A process's CPU ticks: its own (utime + stime) and its reaped children's (cutime + cstime).
struct Ticks {
    parent: u32,
    own: u64,
    children: u64,
}

fn process_ticks(pid: u32) -> Option<Ticks> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state (field 3), ppid (4), … utime (14) to cstime (17).
    let rest: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Ticks {
        parent: u32::try_from(field(4)?).ok()?,
        own: field(14)? + field(15)?,
        children: field(16)? + field(17)?,
    })
}

/// The database server's CPU ticks: the postmaster's own and its reaped children's, and its live
/// children's (backends, autovacuum, checkpointer, ...).
fn server_ticks(postmaster: u32) -> u64 {
    let mut total = process_ticks(postmaster).map_or(0, |t| t.own + t.children);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some(ticks) = process_ticks(pid).filter(|t| t.parent == postmaster) {
                total += ticks.own + ticks.children;
            }
        }
    }
    total
}

fn clock_ticks_per_second() -> f64 {
    // USER_HZ: 100 on every Linux architecture this runs on (getconf CLK_TCK).
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The postmaster of the server this pool reaches, when it runs on this machine: the parent of
/// one of its backends.
async fn postmaster_pid(pool: &PgPool) -> Option<u32> {
    let backend: i32 = sqlx::query_scalar("select pg_backend_pid()").fetch_one(pool).await.ok()?;
    let parent = process_ticks(u32::try_from(backend).ok()?)?.parent;
    let name = std::fs::read_to_string(format!("/proc/{parent}/comm")).ok()?;
    matches!(name.trim(), "postgres" | "postmaster").then_some(parent)
}

fn row(measured: &str, figures: &str) {
    println!("{:<20} {measured:<22} {figures} | information", "webhooks-three");
}
