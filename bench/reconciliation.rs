//! Reconciliation engine benchmark: how well and how fast `reconcile_pending` ties a tenant's bank
//! credits to what they pay.
//!
//! A seeded generator ([`generate`]) makes a realistic tenant in memory, with the ground truth of
//! every credit (the target key it really pays, or none), and writes it straight into Postgres
//! ([`load`]: one `COPY` per table). Then the engine runs once, end to end, and [`truth`] compares
//! what it matched and suggested with the truth.
//!
//! - `quality [--seed S] [--size M]` (the default; M = 3000 credits, about 1.3 × M open invoices):
//!   automatic-match precision (target ≥ 99.5%) and recall (≥ 85%), and for the credits with a
//!   target left to a person, the share whose target is among their top 3 suggestions (≥ 97%);
//!   how each scenario fared, the wrong automatic matches and some misses (on stderr).
//! - `scale [N] [--seed S]` (N = 1000000): N open invoices and N credits of the same mix; the
//!   engine's full pass timed (target ≤ 30 s, stretch 10 s) with this process's peak resident
//!   memory (VmHWM, reset after seeding) and the largest of the database backends' (local
//!   clusters only); then 1,000 new credits against the same invoices and the pass timed again,
//!   three times over new credits each (target: the median ≤ 1 s). `--incremental-only` marks
//!   the N seeded credits as looked at and times only the incremental runs, when the full pass
//!   would take too long.
//!
//! `BENCH_LOG=payymo::reconciliation=debug` logs each batch's time spent gathering, scoring and
//! writing.
//!
//! `cargo run --release --example bench-reconciliation -- quality|scale …`. Uses `DATABASE_URL`
//! when set, otherwise an embedded cluster in `PAYYMO_DATA_DIR` (a throwaway directory when
//! unset). Progress and details on stderr; on stdout the rows of `bench/run`'s target table.

#[path = "reconciliation/baseline.rs"]
mod baseline;
#[path = "reconciliation/generate.rs"]
mod generate;
#[path = "reconciliation/load.rs"]
mod load;
#[path = "reconciliation/truth.rs"]
mod truth;

use std::time::Instant;

use anyhow::{Context as _, bail};
use payymo::{
    config::Config,
    db::{self, Database},
    domain::ids::TenantId,
    reconciliation::engine::{self, Counts},
};

/// Seconds the full pass over N credits may take, and the stretch goal.
const FULL_TARGET: f64 = 30.0;
const FULL_STRETCH: f64 = 10.0;
/// Seconds the pass over 1,000 new credits may take.
const INCREMENTAL_TARGET: f64 = 1.0;
const INCREMENTAL_CREDITS: usize = 1_000;
/// Incremental runs, each over its own 1,000 new credits; the median is judged.
const INCREMENTAL_RUNS: usize = 3;

enum Mode {
    Quality {
        size: usize,
    },
    /// `incremental_only`: skip the full pass (its credits are marked as already looked at), to
    /// time the incremental run against N invoices when the full pass would take too long.
    Scale {
        n: usize,
        incremental_only: bool,
    },
}

fn arguments() -> anyhow::Result<(Mode, u64)> {
    let mut args = std::env::args().skip(1).peekable();
    let scale = match args.peek().map(String::as_str) {
        Some("scale") => true,
        Some("quality") => false,
        Some(other) if !other.starts_with("--") => bail!("unknown mode {other:?}: quality or scale"),
        _ => false,
    };
    if matches!(args.peek().map(String::as_str), Some("scale" | "quality")) {
        args.next();
    }
    let (mut seed, mut size, mut n, mut incremental_only) = (1_u64, 3_000_usize, 1_000_000_usize, false);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--seed" => seed = value("--seed")?.parse().context("--seed")?,
            "--size" => size = value("--size")?.parse().context("--size")?,
            "--incremental-only" if scale => incremental_only = true,
            number if scale => n = number.parse().with_context(|| format!("not a count: {number:?}"))?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok((if scale { Mode::Scale { n: n.max(1), incremental_only } } else { Mode::Quality { size: size.max(1) } }, seed))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (mode, seed) = arguments()?;
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let scratch = std::env::var("PAYYMO_DATA_DIR").is_err();
    let work = match std::env::var("PAYYMO_DATA_DIR") {
        Ok(dir) => dir,
        Err(_) => std::env::temp_dir().join(format!("payymo-bench-recon-{}", std::process::id())).display().to_string(),
    };
    std::fs::create_dir_all(&work)?;
    let mut config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => std::env::var(name).ok(),
        "PAYYMO_DATA_DIR" => Some(work.clone()),
        "PAYYMO_LOG" => Some("warn".into()),
        _ => None,
    })?;
    config.db_max_connections = 4;
    let database = Database::locate(&config).await?;
    let pool = db::pool(database.options.clone(), &config);
    let result = match db::MIGRATOR.run(&pool).await {
        Ok(()) => match mode {
            Mode::Quality { size } => quality(&pool, seed, size).await,
            Mode::Scale { n, incremental_only } => scale(&pool, seed, n, incremental_only).await,
        },
        Err(e) => Err(e.into()),
    };
    pool.close().await;
    database.shutdown().await;
    if scratch {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

async fn quality(pool: &sqlx::PgPool, seed: u64, size: usize) -> anyhow::Result<()> {
    let data = generate::dataset(seed, size, size * 13 / 10, 0);
    eprintln!(
        "bench-reconciliation: seed {seed}: {} credits, {} open invoices, {} customers, {} payouts of {} charges",
        data.credits.len(),
        data.invoices.len(),
        data.customers.len(),
        data.payouts.len(),
        data.charges.len()
    );
    let mut seeded = load::seed(pool, &data, &format!("reconciliation bench quality {seed}")).await?;
    let credits = data.credits.len();
    drop(data);
    let (counts, seconds) = pass(pool, &seeded.tenant).await?;
    let quality = truth::read(&mut seeded.session, &seeded.tenant, 0).await?;
    truth::print_details(&quality);
    row(
        &format!("quality, seed {seed}"),
        &format!("{credits} credits in {seconds:.2} s: {}", describe(&counts)),
        "information",
    );
    truth::rows(&quality, "quality", &row);
    Ok(())
}

async fn scale(pool: &sqlx::PgPool, seed: u64, n: usize, incremental_only: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let spare = INCREMENTAL_CREDITS * INCREMENTAL_RUNS;
    let data = generate::dataset(seed, n, n, spare);
    let more = generate::more_credits(&data, seed, spare, 0);
    eprintln!(
        "bench-reconciliation: generated {} credits, {} invoices, {} customers, {} payouts in {:.1} s",
        data.credits.len(),
        data.invoices.len(),
        data.customers.len(),
        data.payouts.len(),
        started.elapsed().as_secs_f64()
    );
    let mut seeded = load::seed(pool, &data, &format!("reconciliation bench scale {n}")).await?;
    let (credits, invoices) = (data.credits.len(), data.invoices.len());
    drop(data);
    if incremental_only {
        sqlx::query("update transactions set reconcile_pending = false where tenant_id = $1")
            .bind(seeded.tenant.as_str())
            .execute(&mut seeded.session)
            .await?;
        // The update left a dead version of every credit behind; a tenant's table would have been
        // vacuumed long since.
        sqlx::query("vacuum (analyze) transactions").execute(&mut seeded.session).await?;
        eprintln!(
            "bench-reconciliation: the {credits} seeded credits marked as looked at; {invoices} invoices stay open"
        );
        return incremental(pool, &mut seeded, &more, credits).await;
    }

    baseline::prepare(&mut seeded.session, &seeded.tenant).await?;
    reset_peak_memory();
    let before = memory_kb("VmHWM");
    let (counts, seconds) = pass(pool, &seeded.tenant).await?;
    let peak = memory_kb("VmHWM");
    let backends = backend_peak_kb(&mut seeded.session).await;
    let verdict = if seconds <= FULL_STRETCH {
        "PASS (stretch met too)"
    } else if seconds <= FULL_TARGET {
        "PASS"
    } else {
        "FAIL"
    };
    row(
        &format!("full pass, {credits}"),
        &format!(
            "{seconds:.2} s = {:.0} credits/s, ratio {:.2} of target ({invoices} open invoices; {})",
            credits as f64 / seconds,
            seconds / FULL_TARGET,
            describe(&counts)
        ),
        &format!("<= {FULL_TARGET} s (stretch {FULL_STRETCH} s) {verdict}"),
    );
    row(
        "full pass, memory",
        &format!(
            "peak RSS of this process {} (was {} before the pass); largest backend peak {}",
            mb(peak),
            mb(before),
            backends
                .map_or("unavailable".into(), |kb| format!("{} (shared buffers it touched included)", mb(Some(kb))))
        ),
        "information",
    );
    let base = baseline::run(&mut seeded.session, &seeded.tenant).await?;
    row(
        "full pass, baseline",
        &format!(
            "{:.2} s to write what the pass wrote ({} rows by COPY, {} rows updated) with no matching; the pass \
             took {:.2} × that",
            base.seconds,
            base.rows,
            base.updated,
            seconds / base.seconds
        ),
        &format!(
            "<= {FULL_TARGET} s {}",
            if base.seconds <= FULL_TARGET {
                "PASS: the target is within this machine's reach"
            } else {
                "FAIL: the target is beyond this machine"
            }
        ),
    );
    let quality = truth::read(&mut seeded.session, &seeded.tenant, 0).await?;
    truth::print_details(&quality);
    truth::rows(&quality, "scale", &row);

    incremental(pool, &mut seeded, &more, credits).await
}

/// [`INCREMENTAL_RUNS`] times: 1,000 new credits written as an import writes them, and the pass
/// over them, timed. The first run meets a cold cache (the seeding and the full pass filled it
/// with other pages), the later ones one warmed by the runs before, as a tenant whose credits
/// arrive all day would; the median is judged.
async fn incremental(
    pool: &sqlx::PgPool,
    seeded: &mut load::Seeded,
    more: &[generate::Credit],
    credits: usize,
) -> anyhow::Result<()> {
    let mut times = Vec::new();
    for (run, batch) in more.chunks(INCREMENTAL_CREDITS).enumerate() {
        load::add_credits(pool, seeded, batch, credits + run * INCREMENTAL_CREDITS).await?;
        let (counts, seconds) = pass(pool, &seeded.tenant).await?;
        row(
            &format!("incremental {}, {}", run + 1, batch.len()),
            &format!("{seconds:.3} s ({})", describe(&counts)),
            "information",
        );
        times.push(seconds);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    row(
        &format!("incremental, {INCREMENTAL_CREDITS}"),
        &format!("median of {} runs {median:.3} s, ratio {:.2} of target", times.len(), median / INCREMENTAL_TARGET),
        &format!("<= {INCREMENTAL_TARGET} s {}", if median <= INCREMENTAL_TARGET { "PASS" } else { "FAIL" }),
    );
    let quality = truth::read(&mut seeded.session, &seeded.tenant, 1).await?;
    row(
        "incremental, quality",
        &format!(
            "precision {:.2}%, recall {:.2}%, top-3 {:.2}%",
            100.0 * quality.precision(),
            100.0 * quality.recall(),
            100.0 * quality.top3().0
        ),
        "information",
    );
    Ok(())
}

/// One `reconcile_pending`, timed.
async fn pass(pool: &sqlx::PgPool, tenant: &TenantId) -> anyhow::Result<(Counts, f64)> {
    let started = Instant::now();
    let counts =
        engine::reconcile_pending(pool, tenant).await.map_err(|e| anyhow::anyhow!("reconcile_pending: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("bench-reconciliation: reconcile_pending in {seconds:.2} s: {}", describe(&counts));
    Ok((counts, seconds))
}

fn describe(c: &Counts) -> String {
    format!(
        "examined {}, auto-matched {}, suggested {}, unmatched {}, excluded {}",
        c.examined, c.auto_matched, c.suggested, c.unmatched, c.excluded
    )
}

fn row(measured: &str, figures: &str, target: &str) {
    println!("{:<20} {measured:<22} {figures} | {target}", "reconciliation");
}

/// Resets this process's peak resident memory (VmHWM) to its current size (Linux ≥ 4.0).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `/proc/self/status` figure, in kB.
fn memory_kb(field: &str) -> Option<u64> {
    status_kb("/proc/self/status", field)
}

fn status_kb(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// The largest peak resident memory among the database's other client backends (the pool's),
/// when the server runs on this machine and lets us read its processes' status.
async fn backend_peak_kb(session: &mut sqlx::PgConnection) -> Option<u64> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "select pid from pg_stat_activity
         where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid()",
    )
    .fetch_all(session)
    .await
    .ok()?;
    pids.iter().filter_map(|pid| status_kb(&format!("/proc/{pid}/status"), "VmHWM")).max()
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("unavailable".into(), |kb| format!("{:.1} MB", kb as f64 / 1024.0))
}
