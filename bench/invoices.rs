//! Invoice sync benchmark, through the real HTTP API:
//!
//! 1. `POST /api/v1/invoices/batch` with 1,000 new invoices (each run its own external ids),
//!    against a baseline of the same 1,000 rows written by one plain `COPY` into a table of the
//!    same shape as `invoices`. Target: the batch at ≥ 0.3 of COPY's rows/s. A second baseline
//!    COPYs everything the batch must write, in one transaction: the invoices, their 1,000
//!    changes-feed rows and their 1,000 `invoice.created` events, each with the invoice's JSON,
//!    into tables of the same shapes.
//! 2. The same batch again, every row unchanged (nothing written, nothing emitted). Target: ≥ 3×
//!    faster than the new batch.
//! 3. The invoices' changes feed read end to end (100 a page) on a tenant with FEED invoices, each
//!    with its change, seeded by SQL: rows/s, and this process's resident memory (the server runs
//!    in it) before and after.
//!
//! `cargo run --release --example bench-invoices [RUNS [FEED]]` (defaults 5 and 1000000). Uses
//! `DATABASE_URL` when set, otherwise a throwaway embedded cluster. Figures are medians of RUNS.

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use payymo::{
    app::Application,
    auth::{Environment, Plan},
    config::Config,
    db::{self, Database, tenant::begin_platform},
    domain::ids::{InvoiceId, TenantId},
    tenancy::{self, KeySpec},
};
use serde_json::{Value, json};

const ROWS: usize = 1000;
const COPY_TARGET: f64 = 0.3;
const UNCHANGED_TARGET: f64 = 3.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(5);
    let feed: i64 = std::env::args().nth(2).map(|n| n.parse()).transpose()?.unwrap_or(1_000_000);
    let work = std::env::temp_dir().join(format!("payymo-bench-invoices-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let work = work.to_string_lossy().into_owned();
    let mut config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => std::env::var(name).ok(),
        "PAYYMO_DATA_DIR" => Some(work.clone()),
        "PAYYMO_LISTEN" => Some("127.0.0.1:0".into()),
        "PAYYMO_LOG" => Some("warn".into()),
        // The bench tenants are on the premium plan, whose limit is then out of reach.
        "PAYYMO_RATE_LIMITS" => Some("free=60/1m,standard=600/1m,premium=1000000000/1m".into()),
        _ => None,
    })?;
    config.db_max_connections = 8;
    let database = Database::locate(&config).await?;
    let pool = db::pool(database.options.clone(), &config);
    let result = run(config, &pool, runs.max(1), feed).await;
    pool.close().await;
    database.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Run `run`'s 1,000 invoices, as the batch sends them.
fn batch(run: usize) -> Value {
    let invoices: Vec<Value> = (0..ROWS)
        .map(|i| {
            let total = 10_000 + (i as i64 * 37) % 90_000;
            json!({
                "number": format!("B{run}-{i:05}"), "source": "erp", "external_id": format!("erp-{run}-{i:05}"),
                "currency": "GBP", "amount_total": total, "amount_tax": total / 6,
                "issue_date": "2026-11-20", "due_date": "2026-12-20",
                "payment_reference": format!("B{run}-{i:05}"), "metadata": {"batch": run.to_string()},
            })
        })
        .collect();
    json!({ "invoices": invoices })
}

/// The changes-feed rows and events of the same invoices as `COPY` text: (changes, events).
fn copy_writes_text(tenant: &TenantId, run: usize) -> anyhow::Result<(String, String)> {
    let (mut changes, mut events) = (String::with_capacity(ROWS * 700), String::with_capacity(ROWS * 700));
    for i in 0..ROWS {
        let total = 10_000 + (i as i64 * 37) % 90_000;
        let id = InvoiceId::generate();
        let data = json!({
            "id": id.as_str(), "number": format!("B{run}-{i:05}"), "source": "erp", "external_id": format!("erp-{run}-{i:05}"),
            "customer_id": null, "currency": "GBP", "amount_total": total, "amount_tax": total / 6, "amount_paid": 0,
            "amount_due": total, "issue_date": "2026-11-20", "due_date": "2026-12-20", "status": "open",
            "payment_reference": format!("B{run}-{i:05}"), "rf_reference": null, "lines": [],
            "metadata": {"batch": run.to_string()}, "voided_at": null,
            "created_at": "2026-12-04T09:30:00.000000Z", "updated_at": "2026-12-04T09:30:00.000000Z",
        })
        .to_string();
        writeln!(changes, "{tenant}\tinvoice\t{id}\terp-{run}-{i:05}\tcreated\t{data}")?;
        writeln!(events, "{tenant}\tevt_{}\tinvoice.created\t{data}", uuid::Uuid::now_v7().simple())?;
    }
    Ok((changes, events))
}

/// The same rows as `COPY` text for the baseline table.
fn copy_text(tenant: &TenantId, run: usize) -> anyhow::Result<String> {
    let mut text = String::with_capacity(ROWS * 200);
    for i in 0..ROWS {
        let total = 10_000 + (i as i64 * 37) % 90_000;
        writeln!(
            text,
            "{tenant}\t{}\tB{run}-{i:05}\terp\terp-{run}-{i:05}\tGBP\t{total}\t{}\t2026-11-20\t2026-12-20\topen\tB{run}-{i:05}\t[]\t{{\"batch\": \"{run}\"}}",
            InvoiceId::generate(),
            total / 6
        )?;
    }
    Ok(text)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// This process's resident memory, in MB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .map_or(0.0, |kb: f64| kb / 1024.0)
}

async fn run(config: Config, pool: &sqlx::PgPool, runs: usize, feed: i64) -> anyhow::Result<()> {
    db::MIGRATOR.run(pool).await?;
    let app = Application::build(config, pool.clone()).await?;
    let base = format!("http://{}", app.local_addr()?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));

    let mut tx = begin_platform(pool).await?;
    let tenant = |name: &'static str| tenancy::NewTenant {
        name: name.into(),
        environment: Environment::Test,
        plan: Some(Plan::Premium),
        time_zone: None,
    };
    let batch_tenant = TenantId::from_db(
        tenancy::create_tenant(&mut tx, tenant("invoice bench")).await.map_err(|e| anyhow::anyhow!("{e}"))?.id,
    );
    let feed_tenant = TenantId::from_db(
        tenancy::create_tenant(&mut tx, tenant("invoice feed bench")).await.map_err(|e| anyhow::anyhow!("{e}"))?.id,
    );
    let spec = KeySpec::parse("bench", &["*".to_owned()], None, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, key) = tenancy::create_api_key(&mut tx, &batch_tenant, Environment::Test, &spec, None).await?;
    let (_, feed_key) = tenancy::create_api_key(&mut tx, &feed_tenant, Environment::Test, &spec, None).await?;
    tx.commit().await?;
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(300)).build()?;
    let post = |body: Value| {
        let (http, base, key) = (http.clone(), base.clone(), key.clone());
        async move {
            let started = Instant::now();
            let result: Value = http
                .post(format!("{base}/api/v1/invoices/batch"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok((started.elapsed().as_secs_f64(), result))
        }
    };

    // The baseline's table: the shape of invoices (columns, defaults, generated search text,
    // checks, indexes), without RLS, foreign keys or triggers, which COPY cannot write through.
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("set payymo.platform = 'on'").execute(&mut conn).await?;
    sqlx::query("create table invoices_copy (like invoices including all)").execute(&mut conn).await?;
    sqlx::query("create table invoices_all_copy (like invoices including all)").execute(&mut conn).await?;
    sqlx::query("create table resource_changes_copy (like resource_changes including all)").execute(&mut conn).await?;
    sqlx::query("create table events_copy (like events including all)").execute(&mut conn).await?;

    let (mut new, mut unchanged, mut copy, mut copy_all) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let body = batch(run);
        let (seconds, result) = post(body.clone()).await?;
        anyhow::ensure!(result["created"] == ROWS, "the new batch did not create every row: {}", result["failed"]);
        new.push(seconds);
        let (seconds, result) = post(body).await?;
        anyhow::ensure!(result["unchanged"] == ROWS, "the second batch changed rows: {}", result["updated"]);
        unchanged.push(seconds);

        let text = copy_text(&batch_tenant, run)?;
        let started = Instant::now();
        let mut copying = conn
            .copy_in_raw(
                "copy invoices_copy (tenant_id, id, number, source, external_id, currency, amount_total, amount_tax,
                     issue_date, due_date, status, payment_reference, lines, metadata) from stdin",
            )
            .await?;
        copying.send(text.into_bytes()).await?;
        anyhow::ensure!(copying.finish().await? == ROWS as u64, "COPY wrote a different number of rows");
        copy.push(started.elapsed().as_secs_f64());

        let text = copy_text(&batch_tenant, run)?;
        let (changes, events) = copy_writes_text(&batch_tenant, run)?;
        let started = Instant::now();
        sqlx::query("begin").execute(&mut conn).await?;
        for (statement, text) in [
            (
                "copy invoices_all_copy (tenant_id, id, number, source, external_id, currency, amount_total, amount_tax,
                     issue_date, due_date, status, payment_reference, lines, metadata) from stdin",
                text,
            ),
            ("copy resource_changes_copy (tenant_id, resource, object_id, external_id, change, data) from stdin", changes),
            ("copy events_copy (tenant_id, id, event_type, data) from stdin", events),
        ] {
            let mut copying = conn.copy_in_raw(statement).await?;
            copying.send(text.into_bytes()).await?;
            anyhow::ensure!(copying.finish().await? == ROWS as u64, "COPY wrote a different number of rows");
        }
        sqlx::query("commit").execute(&mut conn).await?;
        copy_all.push(started.elapsed().as_secs_f64());
        eprintln!(
            "bench-invoices: run {}: new batch {:.1} ms, unchanged {:.1} ms, COPY {:.1} ms, COPY of every write {:.1} ms",
            run + 1,
            new[run] * 1000.0,
            unchanged[run] * 1000.0,
            copy[run] * 1000.0,
            copy_all[run] * 1000.0
        );
    }
    for table in ["invoices_copy", "invoices_all_copy", "resource_changes_copy", "events_copy"] {
        sqlx::query(&format!("drop table {table}")).execute(&mut conn).await?;
    }
    let (new, unchanged, copy, copy_all) =
        (median(&mut new), median(&mut unchanged), median(&mut copy), median(&mut copy_all));

    // The changes feed of a large tenant: invoices and their changes written by SQL (the batch
    // path is measured above), then read end to end through the API.
    eprintln!("bench-invoices: seeding {feed} invoices with their changes for the feed");
    let started = Instant::now();
    sqlx::query(
        "with made as (
             insert into invoices (tenant_id, id, number, currency, amount_total, status)
             select $1, 'inv_' || lpad(to_hex(n), 32, '0'), 'F-' || n, 'GBP', 1000 + n % 5000, 'open'
             from generate_series(1, $2::int8) as n
             returning id, number, amount_total
         )
         insert into resource_changes (tenant_id, resource, object_id, change, data)
         select $1, 'invoice', id, 'created', jsonb_build_object('id', id, 'number', number, 'amount_total', amount_total)
         from made",
    )
    .bind(feed_tenant.as_str())
    .bind(feed)
    .execute(&mut conn)
    .await?;
    eprintln!("bench-invoices: seeded in {:.1} s", started.elapsed().as_secs_f64());
    drop(conn);
    let rss_before = rss_mb();
    let mut rss_peak = rss_before;
    let started = Instant::now();
    let (mut read, mut cursor) = (0usize, None::<String>);
    loop {
        let mut url = format!("{base}/api/v1/invoices/changes?limit=100");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = http.get(url).bearer_auth(&feed_key).send().await?.error_for_status()?.json().await?;
        read += page["data"].as_array().map_or(0, Vec::len);
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if read % 100_000 == 0 {
            rss_peak = rss_peak.max(rss_mb());
        }
        if page["has_more"] != true {
            break;
        }
    }
    let feed_seconds = started.elapsed().as_secs_f64();
    rss_peak = rss_peak.max(rss_mb());
    anyhow::ensure!(read as i64 == feed, "the feed returned {read} of {feed} changes");

    shutdown.cancel();
    let _ = server.await;
    let verdict = |met: bool| if met { "PASS" } else { "FAIL" };
    let copy_ratio = copy / new;
    let copy_all_ratio = copy_all / new;
    let unchanged_ratio = new / unchanged;
    println!("bench-invoices: {ROWS} invoices a batch, medians of {runs} runs, through the HTTP API");
    println!("  new batch       : p50 {:>8.1} ms = {:>7.0} rows/s", new * 1000.0, ROWS as f64 / new);
    println!("  COPY (baseline) : p50 {:>8.1} ms = {:>7.0} rows/s", copy * 1000.0, ROWS as f64 / copy);
    println!(
        "  COPY of every write (invoices, changes, events): p50 {:>8.1} ms = {:>7.0} invoices/s",
        copy_all * 1000.0,
        ROWS as f64 / copy_all
    );
    println!("  unchanged batch : p50 {:>8.1} ms", unchanged * 1000.0);
    println!("  new vs COPY     : {copy_ratio:.3} (target >= {COPY_TARGET}: {})", verdict(copy_ratio >= COPY_TARGET));
    println!(
        "  new vs COPY of every write: {copy_all_ratio:.3} (>= {COPY_TARGET}: {})",
        verdict(copy_all_ratio >= COPY_TARGET)
    );
    println!(
        "  unchanged speed-up: {unchanged_ratio:.2}x (target >= {UNCHANGED_TARGET}x: {})",
        verdict(unchanged_ratio >= UNCHANGED_TARGET)
    );
    println!(
        "  changes feed    : {read} changes in {feed_seconds:.1} s = {:.0} rows/s; RSS {rss_before:.1} MB before, {rss_peak:.1} MB peak",
        read as f64 / feed_seconds
    );
    Ok(())
}
