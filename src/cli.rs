//! The command line. Each subcommand reads the configuration, does one thing, and exits non-zero
//! with one clear line when it cannot.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    app::{Application, shutdown_on_signals},
    config::Config,
    db::{self, Database},
    telemetry,
};

#[derive(Debug, Parser)]
#[command(name = "payymo", version, about = "Payymo core: payment reconciliation API server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API. Applies pending migrations first unless told not to.
    Serve {
        /// Do not apply migrations at start-up (same as PAYYMO_MIGRATE_ON_START=false).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Run everything locally with nothing configured: the embedded database, the GoCardless
    /// sandbox, the API and its workers, a demo tenant with a printed API key, and a linked
    /// sandbox bank whose transactions keep arriving.
    Demo,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document (the one committed at openapi/openapi.json).
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Platform administration: tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Platform administration: users and their memberships.
    #[command(subcommand)]
    User(UserCommand),
    /// Platform administration: API keys.
    #[command(name = "api-key", subcommand)]
    ApiKey(ApiKeyCommand),
    /// Serve the simulators of outside services alone, until SIGINT or SIGTERM: GoCardless Bank
    /// Account Data on `--listen`, Stripe on `--stripe-listen`.
    Sandbox {
        /// Address the GoCardless simulator listens on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// Address the Stripe simulator listens on (its test key: `sk_test_sandbox_payymo`).
        #[arg(long, default_value = "127.0.0.1:12111")]
        stripe_listen: std::net::SocketAddr,
        /// Which simulators to run: `all`, `gocardless` or `stripe`.
        #[arg(long, default_value = "all", value_parser = ["all", "gocardless", "stripe"])]
        only: String,
        /// Seed for the simulator's generated ids and data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also send the rate-limit headers as `X-RateLimit-*`, besides the documented
        /// `HTTP_X_RATELIMIT_*` spelling.
        #[arg(long)]
        x_ratelimit_headers: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant and print it as JSON.
    Create {
        #[arg(long)]
        name: String,
        /// live or test.
        #[arg(long, default_value = "test")]
        environment: String,
        /// free, standard or premium.
        #[arg(long, default_value = "free")]
        plan: String,
        /// IANA time zone, e.g. Europe/London.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user to a tenant (creating the user if new; the password is read from the first
    /// line of standard input) and print the membership as JSON.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// owner, admin, member or viewer.
        #[arg(long, default_value = "owner")]
        role: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create an API key and print it, with its secret, as JSON.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "cli")]
        label: String,
        /// Comma-separated scopes, e.g. `*` or transactions:read,invoices:write.
        #[arg(long, default_value = "*")]
        scopes: String,
    },
}

/// Runs the command line and turns any failure into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi { output } = &cli.command {
        return report(write_openapi(output.as_deref()));
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = telemetry::init(&config) {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return report(Err(error.into())),
    };
    report(runtime.block_on(async move {
        match cli.command {
            Command::Serve { no_migrate } => serve(config, !no_migrate).await,
            Command::Demo => crate::demo::run(config).await,
            Command::Migrate => migrate(config).await,
            Command::Openapi { .. } => Ok(()),
            Command::Tenant(command) => admin(config, AdminCommand::Tenant(command)).await,
            Command::User(command) => admin(config, AdminCommand::User(command)).await,
            Command::ApiKey(command) => admin(config, AdminCommand::ApiKey(command)).await,
            Command::Sandbox { listen, stripe_listen, only, seed, x_ratelimit_headers } => {
                sandbox(SandboxArgs { listen, stripe_listen, only, seed, x_ratelimit_headers }).await
            }
        }
    }))
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, migrate_flag: bool) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signals();
    let database = Database::locate(&config).await?;
    let pool = db::pool(database.options.clone(), &config);
    let result = async {
        if migrate_flag && config.migrate_on_start {
            apply_migrations(&pool).await?;
        }
        match db::tenant::role_bypasses_rls(&pool).await {
            Ok(true) => tracing::warn!(
                "the database role is a superuser or has BYPASSRLS: row-level security, the second wall between tenants, is not enforced; connect as an ordinary role"
            ),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "could not check the database role"),
        }
        if let Ok(false) = db::search_is_indexed(&pool).await {
            tracing::warn!(
                "free-text transaction search (q) cannot use its index under row-level security here: run once, as a superuser, in this database: {}",
                db::INDEXED_SEARCH_SQL
            );
        }
        let app = Application::build(config, pool.clone()).await?;
        let addr = app.local_addr()?;
        tracing::info!("listening on http://{addr} (docs: http://{addr}/docs)");
        app.run_until(shutdown).await?;
        anyhow::Ok(())
    }
    .await;
    pool.close().await;
    database.shutdown().await;
    tracing::info!("stopped");
    result
}

struct SandboxArgs {
    listen: std::net::SocketAddr,
    stripe_listen: std::net::SocketAddr,
    only: String,
    seed: u64,
    x_ratelimit_headers: bool,
}

async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    use crate::sandbox::{gocardless, stripe};
    let shutdown = shutdown_on_signals();
    let bind = |addr: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
    };
    let mut servers = tokio::task::JoinSet::new();
    let config = gocardless::SandboxConfig { x_ratelimit_headers: args.x_ratelimit_headers, ..Default::default() };
    let bank = gocardless::SandboxState::with_config(args.seed, gocardless::Clock::system(), config);
    if args.only != "stripe" {
        let listener = bind(args.listen).await?;
        tracing::info!("GoCardless sandbox listening on http://{}", listener.local_addr()?);
        servers.spawn(gocardless::serve(listener, bank.clone(), shutdown.clone()));
    }
    if args.only != "gocardless" {
        let listener = bind(args.stripe_listen).await?;
        tracing::info!(
            "Stripe sandbox listening on http://{} (key {})",
            listener.local_addr()?,
            stripe::DEFAULT_SECRET_KEY
        );
        let mut sim = stripe::StripeSim::new(args.seed, gocardless::Clock::system());
        if args.only == "all" {
            // Payouts of linked accounts arrive in the bank simulator served beside it.
            sim = sim.with_bank(bank);
        }
        servers.spawn(stripe::serve(listener, sim, shutdown.clone()));
    }
    while let Some(served) = servers.join_next().await {
        served??;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let database = Database::locate(&config).await?;
    let pool = db::pool(database.options.clone(), &config);
    let result = apply_migrations(&pool).await;
    pool.close().await;
    database.shutdown().await;
    result
}

async fn apply_migrations(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    db::MIGRATOR.run(pool).await.map_err(|e| anyhow::anyhow!("cannot apply migrations: {e}"))?;
    tracing::info!(latest = db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0), "migrations applied");
    Ok(())
}

enum AdminCommand {
    Tenant(TenantCommand),
    User(UserCommand),
    ApiKey(ApiKeyCommand),
}

/// Runs an admin command against the configured (or embedded) database, printing JSON.
async fn admin(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    let database = Database::locate(&config).await?;
    let pool = db::pool(database.options.clone(), &config);
    let result = async {
        apply_migrations(&pool).await?;
        let output = run_admin(&pool, command).await?;
        println!("{}", serde_json::to_string_pretty(&output)?);
        anyhow::Ok(())
    }
    .await;
    pool.close().await;
    database.shutdown().await;
    result
}

async fn run_admin(pool: &sqlx::PgPool, command: AdminCommand) -> anyhow::Result<serde_json::Value> {
    use crate::{
        auth::{Environment, Plan},
        db::tenant::{begin_platform, begin_tenant},
        domain::{ids::TenantId, scope::Role},
        tenancy::{self, Via},
    };
    let problem = |e: tenancy::TenancyError| match e {
        tenancy::TenancyError::Invalid(errors) => {
            let fields: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            anyhow::anyhow!("{}", fields.join("; "))
        }
        other => anyhow::anyhow!("{other}"),
    };
    let load_tenant = |id: String| async move {
        let id = TenantId::parse(&id).ok_or_else(|| anyhow::anyhow!("--tenant: {id:?} is not a tenant id (ten_…)"))?;
        let mut tx = begin_platform(pool).await?;
        let tenant =
            tenancy::find_tenant(&mut tx, &id).await?.ok_or_else(|| anyhow::anyhow!("--tenant: no tenant {id}"))?;
        tx.commit().await?;
        anyhow::Ok(tenant)
    };
    match command {
        AdminCommand::Tenant(TenantCommand::Create { name, environment, plan, time_zone }) => {
            let environment = Environment::parse(&environment)
                .ok_or_else(|| anyhow::anyhow!("--environment: expected live or test"))?;
            let plan =
                Plan::parse(&plan).ok_or_else(|| anyhow::anyhow!("--plan: expected free, standard or premium"))?;
            let mut tx = begin_platform(pool).await?;
            let tenant = tenancy::create_tenant_as_platform(
                &mut tx,
                tenancy::NewTenant { name, environment, plan: Some(plan), time_zone: Some(time_zone) },
                Via::Cli,
            )
            .await
            .map_err(problem)?;
            tx.commit().await?;
            Ok(serde_json::to_value(tenant)?)
        }
        AdminCommand::User(UserCommand::Create { tenant, email, role, name }) => {
            let tenant = load_tenant(tenant).await?;
            let role =
                Role::parse(&role).ok_or_else(|| anyhow::anyhow!("--role: expected owner, admin, member or viewer"))?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let tenant_id = TenantId::from_db(tenant.id);
            let mut tx = begin_tenant(pool, &tenant_id).await?;
            let new =
                tenancy::AdminNewMember { email, password: (!password.is_empty()).then_some(password), name, role };
            let member = tenancy::add_member_as_platform(&mut tx, &tenant_id, new, Via::Cli).await.map_err(problem)?;
            tx.commit().await?;
            Ok(serde_json::json!({ "tenant_id": tenant_id, "member": member }))
        }
        AdminCommand::ApiKey(ApiKeyCommand::Create { tenant, label, scopes }) => {
            let tenant = load_tenant(tenant).await?;
            let environment = tenant.environment;
            let scopes: Vec<String> =
                scopes.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            let spec = tenancy::KeySpec::parse(&label, &scopes, None, &[]).map_err(problem)?;
            let tenant_id = TenantId::from_db(tenant.id);
            let mut tx = begin_tenant(pool, &tenant_id).await?;
            let (key, secret) = tenancy::create_api_key_as_platform(&mut tx, &tenant_id, environment, &spec, Via::Cli)
                .await
                .map_err(problem)?;
            tx.commit().await?;
            let mut value = serde_json::to_value(key)?;
            value["secret"] = serde_json::Value::from(secret);
            Ok(value)
        }
    }
}

fn write_openapi(output: Option<&std::path::Path>) -> anyhow::Result<()> {
    let json = crate::http::openapi::spec_json();
    match output {
        Some(path) => std::fs::write(path, json).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display())),
        None => {
            print!("{json}");
            Ok(())
        }
    }
}
