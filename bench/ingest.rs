//! Ingest benchmark: 100,000 sandbox transactions for one tenant through the real sync path
//! (GoCardless client → sandbox over HTTP → normalise → batched upsert with pending linking and
//! one `transaction.created` event per row, in one tenant-bound transaction), against a baseline of
//! the same rows written by one `COPY` into a table of the same shape, in the same run.
//!
//! `cargo run --release --example bench-ingest [ROWS] [RULES]` (default 100000 rows, 0 rules).
//! With RULES, the tenant first gets that many categorisation rules (RULES - 1 that match nothing,
//! a mix of regex, text and amount conditions, then one matching every credit), so the sync also
//! categorises what it inserts. Uses `DATABASE_URL` when set, otherwise a throwaway embedded
//! cluster. Prints rows/s for both and the ratio (target ≥ 0.3).

use std::time::Instant;

use futures_util::StreamExt;
use payymo::{
    app::Application,
    auth::{Environment, Plan},
    bank::{connections, sync},
    config::Config,
    db::{self, Database, tenant::begin_platform},
    domain::ids::TenantId,
    sandbox::gocardless::{Clock, SandboxConfig, SandboxState},
    tenancy,
};
use serde_json::{Value, json};

const TARGET: f64 = 0.3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: u64 = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(100_000);
    let rules: u32 = std::env::args().nth(2).map(|n| n.parse()).transpose()?.unwrap_or(0);
    let work = tempfile_dir()?;
    let mut config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => std::env::var(name).ok(),
        "PAYYMO_DATA_DIR" => Some(work.clone()),
        "PAYYMO_LISTEN" => Some("127.0.0.1:0".into()),
        "PAYYMO_WORKERS" => Some("false".into()),
        "PAYYMO_LOG" => Some("warn".into()),
        _ => None,
    })?;
    config.db_max_connections = 4;

    // The sandbox, in process, with room for one big account.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox = format!("http://{}", listener.local_addr()?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let state = SandboxState::with_config(7, Clock::system(), SandboxConfig::default());
    tokio::spawn(payymo::sandbox::gocardless::serve(listener, state, shutdown.clone()));
    config.sandbox_url = Some(format!("{sandbox}/api/v2"));

    let database = Database::locate(&config).await?;
    let pool = db::pool(database.options.clone(), &config);
    let result = run(config, &pool, &sandbox, rows, rules).await;
    shutdown.cancel();
    pool.close().await;
    database.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run(config: Config, pool: &sqlx::PgPool, sandbox: &str, rows: u64, rules: u32) -> anyhow::Result<()> {
    db::MIGRATOR.run(pool).await?;
    let app = Application::build(config, pool.clone()).await?;
    let state = app.state().clone();

    let mut tx = begin_platform(pool).await?;
    let tenant = tenancy::create_tenant(
        &mut tx,
        tenancy::NewTenant {
            name: "ingest bench".into(),
            environment: Environment::Test,
            plan: Some(Plan::Premium),
            time_zone: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    let tenant = TenantId::from_db(tenant.id);
    let context = connections::tenant_context(&state, &tenant).await?.ok_or_else(|| anyhow::anyhow!("tenant"))?;

    // A linked connection with a 730-day window, through the same calls the API makes.
    let connection = connections::create(
        &state,
        &context,
        connections::NewConnection {
            institution_id: "SANDBOXFINANCE_SFIN0000".into(),
            redirect_url: "https://bench.example/done".into(),
            max_historical_days: Some(730),
            access_valid_for_days: Some(90),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let link = connection.consent_link.unwrap_or_default();
    http.post(format!("{}/approve", link.trim_end_matches('/'))).send().await?.error_for_status()?;
    let reference = format!("{tenant}.{}", connection.id);
    connections::callback(&state, &reference, None, None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let (account, provider_account): (String, String) =
        sqlx::query_as("select id, provider_account_id from bank_accounts where tenant_id = $1 order by id limit 1")
            .bind(tenant.as_str())
            .fetch_one(&mut *begin_platform(pool).await?)
            .await?;
    let added: Value = http
        .post(format!("{sandbox}/_sandbox/accounts/{provider_account}/transactions"))
        .json(&json!({ "generate": rows }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    eprintln!("bench-ingest: sandbox account holds {} generated transactions", added["added"]);
    add_rules(pool, &tenant, rules).await?;

    // The real sync path.
    let started = Instant::now();
    let report = sync::run(&state, &tenant, &account).await?;
    let sync_seconds = started.elapsed().as_secs_f64();
    let synced = report.created as f64;

    // Baseline: the same rows, one COPY into a table of the same shape (indexes included).
    // Its own connection, never returned to the pool: it sees every tenant.
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("set payymo.platform = 'on'").execute(&mut conn).await?;
    sqlx::query("create table ingest_copy (like transactions including defaults including indexes)")
        .execute(&mut conn)
        .await?;
    let mut out = conn
        .copy_out_raw(&format!(
            "copy (select * from transactions where tenant_id = '{}' and account_id = '{account}') to stdout",
            tenant.as_str()
        ))
        .await?;
    let mut data = Vec::new();
    while let Some(chunk) = out.next().await {
        data.extend_from_slice(&chunk?);
    }
    drop(out);
    let started = Instant::now();
    let mut copy = conn.copy_in_raw("copy ingest_copy from stdin").await?;
    copy.send(data).await?;
    let copied = copy.finish().await? as f64;
    let copy_seconds = started.elapsed().as_secs_f64();
    sqlx::query("drop table ingest_copy").execute(&mut conn).await?;

    let events: i64 =
        sqlx::query_scalar("select count(*) from events where tenant_id = $1 and event_type = 'transaction.created'")
            .bind(tenant.as_str())
            .fetch_one(&mut conn)
            .await?;
    let categorised: i64 =
        sqlx::query_scalar("select count(*) from transactions where tenant_id = $1 and category_source = 'rule'")
            .bind(tenant.as_str())
            .fetch_one(&mut conn)
            .await?;
    println!("bench-ingest: {rules} categorisation rules; {categorised} rows categorised on arrival");
    let sync_rate = synced / sync_seconds;
    let copy_rate = copied / copy_seconds;
    let ratio = sync_rate / copy_rate;
    println!("bench-ingest: {rows} generated + history; sync report: {report:?}");
    println!(
        "  sync path : {synced:>9.0} rows in {sync_seconds:>6.2} s = {sync_rate:>9.0} rows/s ({events} events written too)"
    );
    println!("  COPY      : {copied:>9.0} rows in {copy_seconds:>6.2} s = {copy_rate:>9.0} rows/s");
    println!("  ratio     : {ratio:.2} (target >= {TARGET}: {})", if ratio >= TARGET { "met" } else { "NOT met" });
    if rules > 0 {
        apply_rules(pool, &tenant).await?;
    }
    Ok(())
}

/// Times the on-demand apply job over the whole tenant after turning the matching rule from
/// credits to debits, so every row changes (credits cleared, debits set, one event each).
async fn apply_rules(pool: &sqlx::PgPool, tenant: &TenantId) -> anyhow::Result<()> {
    use payymo::transactions::rule_runs;
    let mut tx = payymo::db::tenant::begin_tenant(pool, tenant).await?;
    sqlx::query("update categorization_rules set direction = 'debit' where tenant_id = $1 and category = 'income'")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    let run = rule_runs::create(&mut tx, tenant, None).await?;
    tx.commit().await?;
    let id = payymo::domain::ids::CategorizationRuleRunId::from_db(run.id);
    let started = Instant::now();
    rule_runs::run(pool, tenant, &id).await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut tx = payymo::db::tenant::begin_tenant(pool, tenant).await?;
    let run = rule_runs::load(&mut tx, tenant, &id).await?.ok_or_else(|| anyhow::anyhow!("the run"))?;
    tx.commit().await?;
    println!(
        "  apply job : {} rows walked, {} changed (one event each) in {seconds:>6.2} s = {:>9.0} rows/s ({})",
        run.processed,
        run.changed,
        run.processed as f64 / seconds,
        run.status
    );
    Ok(())
}

/// `count` categorisation rules: all but the last match nothing (so every row is tested against
/// each), the last matches every credit.
async fn add_rules(pool: &sqlx::PgPool, tenant: &TenantId, count: u32) -> anyhow::Result<()> {
    let mut tx = payymo::db::tenant::begin_tenant(pool, tenant).await?;
    for i in 0..count {
        let id = payymo::domain::ids::CategorizationRuleId::generate();
        let last = i + 1 == count;
        let (regex, contains, min, direction) = match i % 3 {
            _ if last => (None, None, None, Some("credit")),
            0 => (Some(format!(r"^(?:refund|chargeback)-{i}\b")), None, None, None),
            1 => (None, Some(format!("nobody {i}")), None, None),
            _ => (None, Some(format!("rent {i}")), Some(1_000_000_000_i64), None),
        };
        sqlx::query(
            "insert into categorization_rules (tenant_id, id, name, priority, description_regex,
                 counterparty_contains, amount_min, direction, category)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(format!("rule {i}"))
        .bind(i as i32)
        .bind(regex)
        .bind(contains)
        .bind(min)
        .bind(direction)
        .bind(if last { "income".to_owned() } else { format!("category {i}") })
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A fresh directory for the embedded cluster (removed afterwards).
fn tempfile_dir() -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!("payymo-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.to_string_lossy().into_owned())
}
