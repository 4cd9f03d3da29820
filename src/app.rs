//! The composition root: builds the shared state, wires the router, the job runner and the
//! webhook dispatcher, and runs them until shutdown. Imported by nothing but the command line.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::authenticator::Authenticator,
    config::Config,
    crypto::LazyKeyRing,
    http,
    providers::gocardless::{Credentials, GoCardlessClients, RetryPolicy},
    ratelimit::RateLimiter,
    state::{AppState, Shared},
};

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// Stops the in-process sandbox (if this instance started one) once the server is done.
    sandbox_shutdown: CancellationToken,
}

impl Application {
    /// Binds `config.listen` (port 0 picks a free port), loads the token signing key, connects
    /// the rate limiter's store, and assembles the router.
    pub async fn build(config: Config, db: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("PAYYMO_LISTEN: cannot bind {}: {e}", config.listen))?;

        let limiter = match &config.redis_url {
            Some(url) => RateLimiter::redis(secrecy::ExposeSecret::expose_secret(url))
                .await
                .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?,
            None => RateLimiter::local(),
        };
        let sandbox_shutdown = CancellationToken::new();
        let sandbox = match &config.sandbox_url {
            Some(_) => None,
            None => Some(start_sandbox(sandbox_shutdown.clone()).await?),
        };
        let sandbox_url = match (&config.sandbox_url, &sandbox) {
            (Some(url), _) => url.clone(),
            (None, Some((url, _))) => url.clone(),
            (None, None) => unreachable!("a sandbox is started when none is configured"),
        };
        let stripe_sandbox_url = match &config.stripe_sandbox_url {
            Some(url) => url.clone(),
            None => start_stripe_sandbox(sandbox.map(|(_, bank)| bank), sandbox_shutdown.clone()).await?,
        };
        let stripe = Arc::new(
            crate::providers::stripe::StripeClients::new(
                &config.stripe_url,
                &stripe_sandbox_url,
                config.provider_cooldown,
            )
            .with_connect(&config.stripe_connect_url, config.stripe_platform.clone()),
        );
        let deployment = config
            .gocardless_credentials
            .as_ref()
            .map(|(id, key)| Credentials { secret_id: id.clone(), secret_key: key.clone() });
        let keys = Arc::new(LazyKeyRing::new(config.encryption_keys.clone(), db.clone()));
        let gocardless = Arc::new(GoCardlessClients::new(
            db.clone(),
            keys.clone(),
            &config.gocardless_url,
            &sandbox_url,
            deployment,
            RetryPolicy::default(),
            config.provider_cooldown,
        ));
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", listener.local_addr()?),
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let reads = Arc::new(read_routing(&config, &db, metrics.reads.clone()).await?);
        let config = Arc::new(config);
        let state = AppState::new(Shared {
            public_url,
            webhook_guard: crate::webhooks::ssrf::Guard::new(config.webhook_allowed_networks.clone()),
            gocardless,
            stripe,
            keys,
            sandbox_url,
            auth: Arc::new(Authenticator::new(db.clone(), config.clone())),
            limiter: Arc::new(limiter),
            config,
            db,
            reads,
            metrics,
            openapi_json: http::openapi::spec_json().into(),
            draining: Arc::default(),
        });
        let router = http::router(state.clone());
        Ok(Self { listener, router, state, sandbox_shutdown })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish for up to the
    /// configured grace period.
    pub async fn run_until(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let draining = self.state.draining.clone();
        let drain_started = shutdown.clone();
        tokio::spawn(async move {
            drain_started.cancelled().await;
            draining.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let usage = tokio::spawn(flush_usage_until(self.state.auth.clone(), shutdown.clone()));
        let replica_probe = tokio::spawn(self.state.reads.clone().probe_until(shutdown.clone()));
        let workers = self.state.config.workers.then(|| {
            let worker_id = format!("{}-{}", hostname(), std::process::id());
            let jobs =
                tokio::spawn(crate::background::run_until(self.state.clone(), worker_id.clone(), shutdown.clone()));
            let webhooks = tokio::spawn(run_dispatcher(self.state.clone(), worker_id, shutdown.clone()));
            (jobs, webhooks)
        });
        let result = serve(self.listener, self.router, shutdown, self.state.config.shutdown_grace).await;
        if let Some((jobs, webhooks)) = workers {
            let _ = jobs.await;
            let _ = webhooks.await;
        }
        let _ = usage.await;
        let _ = replica_probe.await;
        self.sandbox_shutdown.cancel();
        result
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }
}

/// The read routing: a replica pool ([`crate::db::replica_pool`]) when `DATABASE_READ_URL` is
/// set, with write marks in Redis when it is configured.
async fn read_routing(
    config: &Config,
    primary: &PgPool,
    metrics: crate::db::replica::ReadMetrics,
) -> anyhow::Result<crate::db::replica::Reads> {
    use crate::db::replica::Reads;
    use secrecy::ExposeSecret;
    let Some(url) = &config.database_read_url else {
        return Ok(Reads::primary_only(primary.clone(), metrics));
    };
    let options: sqlx::postgres::PgConnectOptions =
        url.expose_secret().parse().map_err(|e| anyhow::anyhow!("DATABASE_READ_URL: {e}"))?;
    let replica = crate::db::replica_pool(options, config);
    let redis = config.redis_url.as_ref().map(|url| url.expose_secret().to_owned());
    Ok(Reads::with_replica(primary.clone(), replica, config.replica_max_lag, redis.as_deref(), metrics).await?)
}

/// Starts the GoCardless simulator on a free loopback port, for test-mode tenants; returns its
/// API base URL and its state.
async fn start_sandbox(
    shutdown: CancellationToken,
) -> anyhow::Result<(String, crate::sandbox::gocardless::SandboxState)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/v2", listener.local_addr()?);
    let state = crate::sandbox::gocardless::SandboxState::new(42, crate::sandbox::gocardless::Clock::system());
    let bank = state.clone();
    tokio::spawn(async move {
        if let Err(error) = crate::sandbox::gocardless::serve(listener, state, shutdown).await {
            tracing::warn!(%error, "the in-process GoCardless sandbox stopped");
        }
    });
    tracing::info!(%url, "GoCardless sandbox for test-mode tenants started in process");
    Ok((url, bank))
}

/// Starts the Stripe simulator on a free loopback port, for test-mode tenants (its payouts
/// arrive in `bank`, the in-process GoCardless simulator, when an account is linked); returns
/// its base URL.
async fn start_stripe_sandbox(
    bank: Option<crate::sandbox::gocardless::SandboxState>,
    shutdown: CancellationToken,
) -> anyhow::Result<String> {
    use crate::sandbox::stripe::StripeSim;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut sim = StripeSim::new(42, crate::sandbox::gocardless::Clock::system());
    if let Some(bank) = bank {
        sim = sim.with_bank(bank);
    }
    tokio::spawn(async move {
        if let Err(error) = crate::sandbox::stripe::serve(listener, sim, shutdown).await {
            tracing::warn!(%error, "the in-process Stripe sandbox stopped");
        }
    });
    tracing::info!(%url, "Stripe sandbox for test-mode tenants started in process");
    Ok(url)
}

/// Delivers webhooks until `shutdown`. Waits for the key ring (it opens the signing secrets),
/// retrying while the database is unreachable.
pub async fn run_dispatcher(state: AppState, worker_id: String, shutdown: CancellationToken) {
    let keys = loop {
        match state.keys.get().await {
            Ok(keys) => break keys.clone(),
            Err(error) => tracing::warn!(%error, "webhook delivery waits for the key ring"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    };
    let settings = crate::webhooks::dispatcher::Settings::from_config(&state.config);
    match crate::webhooks::dispatcher::Dispatcher::new(
        state.db.clone(),
        keys,
        settings,
        worker_id,
        state.metrics.clone(),
    ) {
        Ok(dispatcher) => dispatcher.run_until(shutdown).await,
        Err(error) => tracing::error!(%error, "cannot start webhook delivery"),
    }
}

/// This machine's name, for naming job workers.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "payymo".to_owned())
}

/// Writes counted API key usage every two seconds, and once more at shutdown.
async fn flush_usage_until(auth: Arc<Authenticator>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => break,
        }
        if let Err(error) = auth.flush_usage().await {
            tracing::warn!(%error, "could not record API key usage; will retry");
        }
    }
    if let Err(error) = auth.flush_usage().await {
        tracing::warn!(%error, "could not record API key usage at shutdown");
    }
}

/// Serves `router` on `listener` until `shutdown`, then drains for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let deadline = async {
        shutdown.cancelled().await;
        tracing::info!(grace = ?grace, "shutting down: draining in-flight requests");
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("grace period over: exiting with requests still in flight");
            Ok(())
        }
    }
}

/// Cancels the returned token on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT received"),
            () = terminate => tracing::info!("SIGTERM received"),
        }
        cancel.cancel();
    });
    token
}
