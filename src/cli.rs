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
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document (the one committed at openapi/openapi.json).
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
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
            Command::Migrate => migrate(config).await,
            Command::Openapi { .. } => Ok(()),
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
        let app = Application::build(config, pool.clone())
            .await
            .map_err(|e| anyhow::anyhow!("PAYYMO_LISTEN: cannot bind: {e}"))?;
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
