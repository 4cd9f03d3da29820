//! The application: shared state, the HTTP server, and graceful shutdown.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{auth::authenticator::Authenticator, config::Config, http, ratelimit::RateLimiter};

/// What handlers share: one reference-counted pointer, so every middleware layer's clone is a
/// single atomic increment. Holds nothing another instance would need.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct Shared {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub metrics: Arc<http::metrics::HttpMetrics>,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi_json: Arc<str>,
    /// Set when shutdown begins, so `/readyz` turns away new traffic while requests drain.
    pub draining: Arc<AtomicBool>,
    pub auth: Arc<Authenticator>,
    pub limiter: Arc<RateLimiter>,
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
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
        let config = Arc::new(config);
        let state = AppState(Arc::new(Shared {
            auth: Arc::new(Authenticator::new(db.clone(), config.clone())),
            limiter: Arc::new(limiter),
            config,
            db,
            metrics: Arc::default(),
            openapi_json: http::openapi::spec_json().into(),
            draining: Arc::default(),
        }));
        let router = http::router(state.clone());
        Ok(Self { listener, router, state })
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
        let result = serve(self.listener, self.router, shutdown, self.state.config.shutdown_grace).await;
        let _ = usage.await;
        result
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }
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
