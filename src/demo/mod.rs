//! `payymo demo`: everything on this machine with nothing configured. The embedded database, the
//! GoCardless sandbox, the API with its workers, a test-mode demo tenant with a fresh API key, and
//! a linked sandbox bank connection whose transactions sync, with new ones arriving every few
//! seconds, and customers and open invoices those payments refer to ([`invoices`]).

pub mod invoices;
mod stripe;

use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    app::{Application, shutdown_on_signals},
    auth::{Environment, Plan},
    bank::connections::{self, NewConnection},
    config::Config,
    db::{
        self, Database,
        tenant::{begin_platform, begin_tenant},
    },
    domain::{ids::TenantId, scope::Role},
    sandbox::gocardless::{Clock, SandboxConfig, SandboxState},
    state::AppState,
    tenancy,
};

/// The demo tenant's name; re-runs reuse it.
const TENANT_NAME: &str = "Payymo demo";
/// The demo's portal user (an owner of the demo tenant); a local demo, so a fixed password.
pub const DEMO_EMAIL: &str = "demo@payymo.test";
pub const DEMO_PASSWORD: &str = "payymo-demo-password";
/// How often new sandbox transactions appear, and how often accounts sync.
const ARRIVALS: Duration = Duration::from_secs(20);

pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signals();
    // The demo's own sandbox, generous with daily calls so syncs can run every half minute.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_origin = format!("http://{}", listener.local_addr()?);
    let sandbox = SandboxState::with_config(
        42,
        Clock::system(),
        SandboxConfig { daily_account_limit: 100_000, ..SandboxConfig::default() },
    );
    let stripe_origin = stripe::start(sandbox.clone(), shutdown.clone()).await?;
    tokio::spawn(crate::sandbox::gocardless::serve(listener, sandbox, shutdown.clone()));
    config.sandbox_url = Some(format!("{sandbox_origin}/api/v2"));
    config.stripe_sandbox_url = Some(stripe_origin.clone());
    config.workers = true;
    config.sync_interval = ARRIVALS;

    let database = Database::locate(&config).await?;
    let pool = db::pool(database.options.clone(), &config);
    let result = async {
        db::MIGRATOR.run(&pool).await.map_err(|e| anyhow::anyhow!("cannot apply migrations: {e}"))?;
        let app = Application::build(config, pool.clone()).await?;
        let addr = app.local_addr()?;
        let state = app.state().clone();
        let server = tokio::spawn(app.run_until(shutdown.clone()));
        let (tenant, key) = demo_tenant(&pool).await?;
        let bank_account = link_bank(&state, &tenant, &sandbox_origin).await?;
        let stripe = stripe::connect(&state, &tenant, &stripe_origin, &bank_account).await?;
        let invoices = seed_invoices(&state, &tenant).await?;
        let base = format!("http://{addr}");
        println!(
            "\nPayymo demo is running (Ctrl-C to stop).\n\n  Portal   {base}/app (sign in as {DEMO_EMAIL}, password {DEMO_PASSWORD})\n  API      {base}/api/v1\n  Docs     {base}/docs\n  Sandbox  {sandbox_origin} (GoCardless simulator), {stripe_origin} (Stripe simulator)\n  Tenant   {tenant} (test mode)\n  API key  {key}\n\nA sandbox bank is linked; its transactions sync now and new ones arrive every {}s. Try:\n\n  curl -s -H 'Authorization: Bearer {key}' {base}/api/v1/bank_connections\n  curl -s -H 'Authorization: Bearer {key}' '{base}/api/v1/transactions?limit=5'\n  curl -s -H 'Authorization: Bearer {key}' '{base}/api/v1/events?type=transaction.created&limit=3'\n  curl -s -H 'Authorization: Bearer {key}' '{base}/api/v1/invoices?status=open&limit=5'\n  curl -s -H 'Authorization: Bearer {key}' '{base}/api/v1/stripe/payouts'\n  curl -s -H 'Authorization: Bearer {key}' '{base}/api/v1/reconciliation/matches?limit=5'\n  curl -s -H 'Authorization: Bearer {key}' '{base}/api/v1/reconciliation/suggestions?limit=5'\n  curl -s -H 'Authorization: Bearer {key}' '{base}/api/v1/reconciliation/report?date={today}'\n\n{invoices}\n{stripe}\nReconciliation matches the payments to their invoices (and the Stripe payout to its card payments) by itself when it is certain, suggests the rest, and leaves a few for a person.\n",
            ARRIVALS.as_secs(),
            today = chrono::Utc::now().date_naive(),
        );
        tokio::spawn(stripe::keep_payments_arriving(base.clone(), key.clone(), shutdown.clone(), ARRIVALS));
        tokio::spawn(keep_transactions_arriving(state, tenant, sandbox_origin, shutdown.clone()));
        server.await??;
        anyhow::Ok(())
    }
    .await;
    pool.close().await;
    database.shutdown().await;
    result
}

/// The demo tenant (created on the first run), a new API key for it, and its portal user.
async fn demo_tenant(pool: &sqlx::PgPool) -> anyhow::Result<(TenantId, String)> {
    let mut tx = begin_platform(pool).await?;
    let existing: Option<String> = sqlx::query_scalar(
        "select id from tenants where name = $1 and environment = 'test' order by created_at limit 1",
    )
    .bind(TENANT_NAME)
    .fetch_optional(&mut *tx)
    .await?;
    let tenant = match existing {
        Some(id) => TenantId::from_db(id),
        None => {
            let created = tenancy::create_tenant(
                &mut tx,
                tenancy::NewTenant {
                    name: TENANT_NAME.into(),
                    environment: Environment::Test,
                    plan: Some(Plan::Premium),
                    time_zone: Some("Europe/London".into()),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            TenantId::from_db(created.id)
        }
    };
    // Connections from earlier runs belonged to that run's in-memory sandbox.
    sqlx::query(
        "update bank_connections set status = 'deleted', deleted_at = now()
         where tenant_id = $1 and status in ('pending', 'linked')",
    )
    .bind(tenant.as_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let spec = tenancy::KeySpec::parse("demo", &["*".to_owned()], None, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = begin_tenant(pool, &tenant).await?;
    let (_, secret) = tenancy::create_api_key(&mut tx, &tenant, Environment::Test, &spec, Some("demo")).await?;
    let user = tenancy::ensure_user(&mut tx, DEMO_EMAIL, Some("Demo user"), Some(DEMO_PASSWORD.into()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match tenancy::add_member(&mut tx, &tenant, &user.id, Role::Owner).await {
        Ok(()) | Err(tenancy::TenancyError::Conflict(_)) => {} // a member since an earlier run
        Err(error) => anyhow::bail!("{error}"),
    }
    tx.commit().await?;
    Ok((tenant, secret))
}

/// Creates a sandbox bank connection and walks its consent like a browser would; returns the
/// sandbox's id of its first account.
async fn link_bank(state: &AppState, tenant: &TenantId, sandbox_origin: &str) -> anyhow::Result<String> {
    let context = connections::tenant_context(state, tenant).await?.ok_or_else(|| anyhow::anyhow!("no demo tenant"))?;
    let new = NewConnection {
        institution_id: "SANDBOXFINANCE_SFIN0000".into(),
        redirect_url: format!("{}/docs", state.public_url),
        max_historical_days: Some(90),
        access_valid_for_days: Some(90),
    };
    let connection = connections::create(state, &context, new).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let link = connection.consent_link.ok_or_else(|| anyhow::anyhow!("the sandbox gave no consent link"))?;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let approved = browser.post(format!("{}/approve", link.trim_end_matches('/'))).send().await?;
    let callback = approved
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("the sandbox consent page did not redirect (is {sandbox_origin} up?)"))?
        .to_owned();
    let linked = browser.get(&callback).send().await?;
    anyhow::ensure!(linked.status().is_redirection(), "the consent callback answered {}", linked.status());
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let account: String = sqlx::query_scalar(
        "select a.provider_account_id from bank_accounts a
         where a.tenant_id = $1 and a.connection_id = $2 order by a.id limit 1",
    )
    .bind(tenant.as_str())
    .bind(&connection.id)
    .fetch_one(&mut *tx)
    .await?;
    db::tenant::end_read(tx);
    Ok(account)
}

/// Invoices planned for the payments the running demo adds (see [`invoices::arrival`]).
const PLANNED_ARRIVALS: u64 = 300;

/// Waits (up to a minute) for the first sync to bring the sandbox's payments in, then creates the
/// customers and invoices they refer to; returns a line saying what it made.
async fn seed_invoices(state: &AppState, tenant: &TenantId) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut tx = begin_tenant(&state.db, tenant).await?;
        let synced: bool = sqlx::query_scalar("select exists(select 1 from transactions where tenant_id = $1)")
            .bind(tenant.as_str())
            .fetch_one(&mut *tx)
            .await?;
        db::tenant::end_read(tx);
        if synced || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let result = invoices::seed(&state.db, tenant, PLANNED_ARRIVALS).await?;
    Ok(format!(
        "Invoices: {} created, {} updated, {} unchanged, for the payments the sandbox bank receives (exact, with a \
         typo, two at once, in part) and those still to come.",
        result.created, result.updated, result.unchanged
    ))
}

/// Adds a transaction or two to every linked demo account now and then, as a real bank would.
async fn keep_transactions_arriving(
    state: AppState,
    tenant: TenantId,
    sandbox_origin: String,
    shutdown: CancellationToken,
) {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(ARRIVALS);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let accounts: Result<Vec<String>, sqlx::Error> = async {
            let mut tx = begin_tenant(&state.db, &tenant).await?;
            let ids = sqlx::query_scalar(
                "select a.provider_account_id from bank_accounts a join bank_connections c
                   on c.tenant_id = a.tenant_id and c.id = a.connection_id
                 where a.tenant_id = $1 and c.status = 'linked'",
            )
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(ids)
        }
        .await;
        for account in accounts.unwrap_or_default() {
            n += 1;
            let today = chrono::Utc::now().date_naive().to_string();
            let (amount, counterparty, remittance) = match invoices::arrival(n) {
                None => ("-42.10".to_owned(), "Office Supplies Ltd", "Card payment Office Supplies".to_owned()),
                Some((cents, remittance)) => {
                    (format!("{}.{:02}", cents / 100, cents % 100), "Acme Widgets Ltd", remittance)
                }
            };
            let body = json!({"transactions": [{"booking_date": today, "amount": amount,
                "counterparty": counterparty, "remittance": remittance}]});
            let added = http
                .post(format!("{sandbox_origin}/_sandbox/accounts/{account}/transactions"))
                .json(&body)
                .send()
                .await;
            if let Err(error) = added {
                tracing::warn!(%error, "demo: could not add a sandbox transaction");
            }
        }
    }
}
