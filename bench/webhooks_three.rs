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
//! measured, figures | target); progress and each drain's figures on stderr.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
};
use payymo::{
    auth::{Environment, Plan},
    config::Config,
    crypto::KeyRing,
    db::{
        self, Database,
        tenant::{begin_platform, begin_tenant},
    },
    domain::ids::{TenantId, WebhookEndpointId},
    events, tenancy,
    webhooks::{endpoints, signing::SigningSecret},
};
use serde_json::json;
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

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let usage = "usage: bench-webhooks-three PAYYMO_BIN [EVENTS [ROUNDS [ENDPOINTS]]] (counts above 0)";
    let bin = PathBuf::from(std::env::args().nth(1).context(usage)?);
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        std::env::args().nth(i).map_or(Ok(default), |n| n.parse().with_context(|| format!("not a count: {n:?}")))
    };
    let (events, rounds, endpoints) = (number(2, 100_000)?, number(3, 3)?, number(4, 4)?);
    if events == 0 || rounds == 0 || endpoints == 0 || events < endpoints {
        bail!("{usage}; EVENTS at least ENDPOINTS");
    }
    if !bin.is_file() {
        bail!("{}: no such program (the payymo binary, release build)", bin.display());
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("warn,payymo::crypto=error,sqlx=error")
        .init();

    let given_dir = std::env::var("PAYYMO_DATA_DIR").ok();
    let data_dir = match &given_dir {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = std::env::temp_dir().join(format!("payymo-bench-webhooks-three-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            dir
        }
    };
    let config = Config::from_lookup(|name| match name {
        "DATABASE_URL"
        | "PAYYMO_WEBHOOK_CONCURRENCY"
        | "PAYYMO_WEBHOOK_TIMEOUT"
        | "PAYYMO_DB_MAX_CONNECTIONS"
        | "PAYYMO_ENCRYPTION_KEYS" => std::env::var(name).ok(),
        "PAYYMO_DATA_DIR" => Some(data_dir.to_string_lossy().into_owned()),
        _ => None,
    })?;
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
    let result = run(&config, &pool, &Launch { bin, url, dir: data_dir.clone() }, events, rounds, endpoints).await;
    pool.close().await;
    database.shutdown().await;
    if given_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
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
    let receiver = Receiver::start().await?;
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
    let endpoint = create_endpoint(pool, &keys, &single, &format!("{}/hooks/single", receiver.base)).await?;
    record_backlog(pool, &single, events).await?;
    set_aside(pool, &single, std::slice::from_ref(&endpoint)).await?;
    let several = create_tenant(pool, "webhooks-three several endpoints").await?;
    let mut several_endpoints = Vec::with_capacity(endpoint_count);
    for n in 0..endpoint_count {
        several_endpoints.push(create_endpoint(pool, &keys, &several, &format!("{}/hooks/{n}", receiver.base)).await?);
    }
    let per_endpoint = events / endpoint_count;
    record_backlog(pool, &several, per_endpoint).await?;
    set_aside(pool, &several, &several_endpoints).await?;
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
    let mut drains: Vec<[Vec<Drained>; 2]> = setups.iter().map(|_| [Vec::new(), Vec::new()]).collect();
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
        let (one_rate, three_rate) = (median(one.iter().map(Drained::rate)), median(three.iter().map(Drained::rate)));
        let cut: usize = seen.iter().flatten().filter(|d| !d.finished).count();
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

/// How one drain went.
struct Drained {
    delivered: usize,
    seconds: f64,
    finished: bool,
    cpu: CpuShares,
}

impl Drained {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.seconds
    }
}

/// One drain of `setup`'s backlog by `processes` `payymo serve` processes at `each` attempts per
/// endpoint.
async fn drain(
    bench: &Bench<'_>,
    setup: &Setup,
    processes: usize,
    each: usize,
    round: usize,
) -> anyhow::Result<Drained> {
    let Bench { pool, launch, receiver, config, postmaster } = *bench;
    let (tenant, endpoints, count) = (&setup.tenant, setup.endpoints.as_slice(), setup.deliveries);
    requeue(pool, tenant, endpoints).await?;
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
    let mut finished = false;
    while first.elapsed() < DRAIN_LIMIT {
        // Counting pending rows only once everything arrived, so as not to take CPU meanwhile.
        if receiver.unique() >= count && pending(pool, tenant, endpoints).await? == 0 {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = first.elapsed().as_secs_f64();
    let after = Cpu::now(&pids, postmaster);
    let delivered = receiver.unique().min(count);
    stop_all(&mut children).await;

    let cpu = after.since(&before, delivered);
    let label = format!(
        "round {round}: {}, {processes} process{} at {each}/endpoint",
        setup.label,
        if processes == 1 { "" } else { "es" }
    );
    let requests = receiver.requests();
    if finished {
        let (succeeded, attempts) = outcome(pool, tenant, endpoints).await?;
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
        let left = set_aside(pool, tenant, endpoints).await?;
        eprintln!(
            "bench-webhooks-three: {label}: cut off: {delivered} of {count} at the receiver after {seconds:.0} s = {:.0}/s; \
             {left} left pending were marked failed",
            delivered as f64 / seconds
        );
    }
    Ok(Drained { delivered, seconds, finished, cpu })
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
fn cpu_figures(drains: &[Drained], cpus: usize, local_server: bool) -> String {
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

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

async fn create_tenant(pool: &PgPool, name: &str) -> anyhow::Result<TenantId> {
    let mut tx = begin_platform(pool).await?;
    let tenant = tenancy::create_tenant(
        &mut tx,
        tenancy::NewTenant {
            name: name.into(),
            environment: Environment::Test,
            plan: Some(Plan::Premium),
            time_zone: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    Ok(TenantId::from_db(tenant.id))
}

/// An endpoint for every event type at `url`, with a fresh secret sealed as the API seals it.
async fn create_endpoint(
    pool: &PgPool,
    keys: &KeyRing,
    tenant: &TenantId,
    url: &str,
) -> anyhow::Result<WebhookEndpointId> {
    let id = WebhookEndpointId::generate();
    let sealed = endpoints::seal_secret(keys, tenant, &id, &SigningSecret::generate())?;
    let mut tx = begin_tenant(pool, tenant).await?;
    sqlx::query("insert into webhook_endpoints (tenant_id, id, url, event_types, secret) values ($1, $2, $3, $4, $5)")
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(url)
        .bind(vec![endpoints::ALL_EVENTS.to_owned()])
        .bind(&sealed)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Records `count` `transaction.created` events in one statement, in one transaction; the fan-out
/// trigger makes a delivery per event and endpoint.
async fn record_backlog(pool: &PgPool, tenant: &TenantId, count: usize) -> anyhow::Result<()> {
    let mut tx = begin_tenant(pool, tenant).await?;
    let payloads = (0..count)
        .map(|n| {
            json!({
                "id": format!("txn_{:032x}", n),
                "account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718",
                "amount": format!("-{}.{:02}", 1 + n % 500, n % 100),
                "currency": "GBP",
                "booking_date": "2026-11-20",
                "value_date": "2026-11-20",
                "status": "booked",
                "description": format!("CARD PAYMENT TO MERCHANT {} LONDON", n % 977),
                "counterparty": format!("Merchant {}", n % 311),
                "reference": format!("REF{:08}", n * 7),
                "category": null,
            })
        })
        .collect();
    events::record_many(&mut tx, tenant, "transaction.created", payloads).await?;
    tx.commit().await?;
    Ok(())
}

fn endpoint_ids(endpoints: &[WebhookEndpointId]) -> Vec<String> {
    endpoints.iter().map(|e| e.as_str().to_owned()).collect()
}

/// Marks the endpoints' pending deliveries failed (a backlog waiting for its drain, or what a drain
/// cut off left); returns how many.
async fn set_aside(pool: &PgPool, tenant: &TenantId, endpoints: &[WebhookEndpointId]) -> anyhow::Result<u64> {
    let mut tx = begin_platform(pool).await?;
    let left = sqlx::query(
        "update webhook_deliveries set status = 'failed', completed_at = now(), locked_by = null,
             last_error = 'set aside by bench-webhooks-three'
         where tenant_id = $1 and endpoint_id = any($2) and status = 'pending'",
    )
    .bind(tenant.as_str())
    .bind(endpoint_ids(endpoints))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(left)
}

/// Puts every delivery of the endpoints back as it was before any attempt: pending, due (at its
/// creation), no attempts.
async fn requeue(pool: &PgPool, tenant: &TenantId, endpoints: &[WebhookEndpointId]) -> anyhow::Result<()> {
    let ids = endpoint_ids(endpoints);
    let mut tx = begin_platform(pool).await?;
    sqlx::query(
        "delete from webhook_attempts a using webhook_deliveries d
         where a.tenant_id = d.tenant_id and a.delivery_id = d.id and d.tenant_id = $1 and d.endpoint_id = any($2)",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update webhook_deliveries set status = 'pending', attempts = 0, next_attempt_at = created_at,
             locked_by = null, last_attempt_at = null, completed_at = null, last_status_code = null,
             last_error = null
         where tenant_id = $1 and endpoint_id = any($2)",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The tables a drain reads and writes, vacuumed and analysed, so every drain starts from tables
/// at rest (as in bench-webhooks).
async fn settle(pool: &PgPool) -> anyhow::Result<()> {
    for table in ["events", "webhook_deliveries", "webhook_attempts"] {
        sqlx::query(&format!("vacuum (analyze) {table}")).execute(pool).await?;
    }
    Ok(())
}

async fn pending(pool: &PgPool, tenant: &TenantId, endpoints: &[WebhookEndpointId]) -> anyhow::Result<i64> {
    let mut tx = begin_platform(pool).await?;
    let pending: i64 = sqlx::query_scalar(
        "select count(*) from webhook_deliveries where tenant_id = $1 and endpoint_id = any($2) and status = 'pending'",
    )
    .bind(tenant.as_str())
    .bind(endpoint_ids(endpoints))
    .fetch_one(&mut *tx)
    .await?;
    db::tenant::end_read(tx);
    Ok(pending)
}

/// Deliveries succeeded and attempts made, over the endpoints' deliveries.
async fn outcome(pool: &PgPool, tenant: &TenantId, endpoints: &[WebhookEndpointId]) -> anyhow::Result<(usize, i64)> {
    let mut tx = begin_platform(pool).await?;
    let (succeeded, attempts): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where status = 'succeeded'), coalesce(sum(attempts), 0)::int8
         from webhook_deliveries where tenant_id = $1 and endpoint_id = any($2)",
    )
    .bind(tenant.as_str())
    .bind(endpoint_ids(endpoints))
    .fetch_one(&mut *tx)
    .await?;
    db::tenant::end_read(tx);
    Ok((usize::try_from(succeeded)?, attempts))
}

/// A bare axum server on a loopback port answering 200 to everything; counts requests and
/// distinct (path, `webhook-id`) pairs, and keeps the first arrival's time.
struct Receiver {
    base: String,
    sink: Arc<Sink>,
}

#[derive(Default)]
struct Sink {
    requests: AtomicU64,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    first: Option<Instant>,
    pairs: HashSet<String>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let sink = Arc::new(Sink::default());
        let router = Router::new().fallback(receive).with_state(sink.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Self { base, sink })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.sink.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn first(&self) -> Option<Instant> {
        self.seen().first
    }

    fn unique(&self) -> usize {
        self.seen().pairs.len()
    }

    fn requests(&self) -> u64 {
        self.sink.requests.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        *self.seen() = Seen::default();
        self.sink.requests.store(0, Ordering::Relaxed);
    }
}

async fn receive(
    State(sink): State<Arc<Sink>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let arrived = Instant::now();
    sink.requests.fetch_add(1, Ordering::Relaxed);
    drop(body);
    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
        let mut seen = sink.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.first.get_or_insert(arrived);
        seen.pairs.insert(format!("{} {id}", uri.path()));
    }
    (StatusCode::OK, "ok")
}
