//! Import benchmark: a 100,000-row CSV through the real HTTP API into a manual account (multipart
//! upload, then the background import job: parsing, per-row checks, batched upsert by external id
//! with one `transaction.created` event and one row result per row, progress committed per batch),
//! polled until the import succeeds; against a baseline of the same rows written by one plain
//! `COPY` (for a fresh manual account) into a table of the same shape as `transactions`, in the
//! same run.
//!
//! `cargo run --release --example bench-import [ROWS]` (default 100000). Uses `DATABASE_URL` when
//! set, otherwise a throwaway embedded cluster. Prints rows/s for both and the ratio (target ≥ 0.3).

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use payymo::{
    app::Application,
    auth::{Environment, Plan},
    config::Config,
    db::{self, Database, tenant::begin_platform},
    domain::{
        ids::{TenantId, TransactionId},
        money::{Currency, parse_minor_units},
    },
    tenancy::{self, KeySpec},
};
use serde_json::{Value, json};

const TARGET: f64 = 0.3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(100_000);
    let work = tempfile_dir()?;
    let mut config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => std::env::var(name).ok(),
        "PAYYMO_DATA_DIR" => Some(work.clone()),
        "PAYYMO_LISTEN" => Some("127.0.0.1:0".into()),
        // The job runs in the server's own worker, as in production.
        "PAYYMO_WORKERS" => Some("true".into()),
        "PAYYMO_LOG" => Some("warn".into()),
        _ => None,
    })?;
    config.db_max_connections = 8;
    let database = Database::locate(&config).await?;
    let pool = db::pool(database.options.clone(), &config);
    let result = run(config, &pool, rows).await;
    pool.close().await;
    database.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// One generated row: (external id, booking date, amount, description, counterparty, reference).
struct Row {
    external_id: String,
    date: String,
    amount: String,
    description: String,
    counterparty: String,
    reference: String,
}

fn generate(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            external_id: format!("stmt-2026-{i:07}"),
            date: format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
            amount: format!("{}{}.{:02}", if i % 3 == 0 { "" } else { "-" }, (i * 37) % 5_000, i % 100),
            description: format!("Card payment {i} at store {}", i % 977),
            counterparty: format!("Merchant {}", i % 311),
            reference: format!("REF{:08}", i * 7),
        })
        .collect()
}

async fn run(config: Config, pool: &sqlx::PgPool, rows: usize) -> anyhow::Result<()> {
    db::MIGRATOR.run(pool).await?;
    let app = Application::build(config, pool.clone()).await?;
    let base = format!("http://{}", app.local_addr()?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));

    let mut tx = begin_platform(pool).await?;
    let tenant = tenancy::create_tenant(
        &mut tx,
        tenancy::NewTenant {
            name: "import bench".into(),
            environment: Environment::Test,
            plan: Some(Plan::Premium),
            time_zone: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tenant = TenantId::from_db(tenant.id);
    let spec = KeySpec::parse("bench", &["*".to_owned()], None, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, key) = tenancy::create_api_key(&mut tx, &tenant, Environment::Test, &spec, None).await?;
    tx.commit().await?;

    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(120)).build()?;
    let account = |name: &'static str| {
        let (http, base, key) = (http.clone(), base.clone(), key.clone());
        async move {
            let created: Value = http
                .post(format!("{base}/api/v1/accounts"))
                .bearer_auth(&key)
                .json(&json!({"name": name, "currency": "EUR"}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok(created["id"].as_str().unwrap_or_default().to_owned())
        }
    };
    let imported_account = account("bench import").await?;
    let copied_account = account("bench copy").await?;

    let data = generate(rows);
    let mut csv = String::from("Id,Date,Amount,Description,Counterparty,Reference\n");
    for r in &data {
        writeln!(
            csv,
            "{},{},{},{},{},{}",
            r.external_id, r.date, r.amount, r.description, r.counterparty, r.reference
        )?;
    }
    let csv_bytes = csv.len();
    let options = json!({"account_id": imported_account, "columns": {"external_id": "Id", "amount": "Amount",
        "booking_date": "Date", "description": "Description", "counterparty_name": "Counterparty",
        "reference": "Reference"}});

    // The real path: upload, then poll the import until it is done.
    let started = Instant::now();
    let form = reqwest::multipart::Form::new()
        .text("options", options.to_string())
        .part("file", reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("statement.csv"));
    let accepted: Value = http
        .post(format!("{base}/api/v1/transactions/import"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let upload_seconds = started.elapsed().as_secs_f64();
    let id = accepted["id"].as_str().unwrap_or_default().to_owned();
    let import = loop {
        let import: Value = http
            .get(format!("{base}/api/v1/transactions/imports/{id}"))
            .bearer_auth(&key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if matches!(import["status"].as_str(), Some("succeeded" | "failed")) {
            break import;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "the import did not finish in 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let import_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        import["status"] == "succeeded" && import["created"] == rows,
        "the import did not succeed: {import}"
    );

    // Baseline: the same rows, one plain COPY into transactions for the other manual account.
    let eur = Currency::parse("EUR").ok_or_else(|| anyhow::anyhow!("EUR"))?;
    let mut text = String::with_capacity(rows * 300);
    for r in &data {
        let amount = parse_minor_units(&r.amount, eur)?;
        let raw = json!({"Id": r.external_id, "Date": r.date, "Amount": r.amount, "Description": r.description,
            "Counterparty": r.counterparty, "Reference": r.reference});
        writeln!(
            text,
            "{tenant}\t{}\t{copied_account}\timport:{}\tbooked\t{amount}\tEUR\t{}\t\\N\t{}\t{}\t{}\t{raw}\timport\t{}",
            TransactionId::generate(),
            r.external_id,
            r.date,
            r.description,
            r.counterparty,
            r.reference,
            r.external_id
        )?;
    }
    // Postgres refuses COPY FROM into a table under row-level security, so the baseline writes
    // into a table of the same shape (columns, defaults, generated search text, checks, indexes;
    // no RLS, foreign keys or triggers), as bench-ingest does. Its own connection, never returned
    // to the pool: it sees every tenant.
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("set payymo.platform = 'on'").execute(&mut conn).await?;
    sqlx::query("create table import_copy (like transactions including all)").execute(&mut conn).await?;
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw(
            "copy import_copy (tenant_id, id, account_id, provider_transaction_id, status, amount, currency,
                 booking_date, value_date, description, counterparty_name, reference, raw, source, external_id)
             from stdin",
        )
        .await?;
    copy.send(text.into_bytes()).await?;
    let copied = copy.finish().await? as f64;
    let copy_seconds = started.elapsed().as_secs_f64();
    sqlx::query("drop table import_copy").execute(&mut conn).await?;

    let events: i64 =
        sqlx::query_scalar("select count(*) from events where tenant_id = $1 and event_type = 'transaction.created'")
            .bind(tenant.as_str())
            .fetch_one(&mut conn)
            .await?;
    drop(conn);
    shutdown.cancel();
    let _ = server.await;

    let import_rate = rows as f64 / import_seconds;
    let copy_rate = copied / copy_seconds;
    let ratio = import_rate / copy_rate;
    println!("bench-import: {rows} rows, {:.1} MiB CSV; import: {import}", csv_bytes as f64 / 1_048_576.0);
    println!(
        "  import API : {rows:>9} rows in {import_seconds:>6.2} s = {import_rate:>9.0} rows/s \
         (upload answered in {upload_seconds:.2} s; {events} events written too)"
    );
    println!("  COPY       : {copied:>9.0} rows in {copy_seconds:>6.2} s = {copy_rate:>9.0} rows/s");
    println!("  ratio      : {ratio:.2} (target >= {TARGET}: {})", if ratio >= TARGET { "met" } else { "NOT met" });
    Ok(())
}

/// A fresh directory for the embedded cluster (removed afterwards).
fn tempfile_dir() -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!("payymo-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.to_string_lossy().into_owned())
}
