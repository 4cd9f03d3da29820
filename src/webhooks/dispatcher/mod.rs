//! The dispatcher: claims due deliveries, signs and sends them, and records every attempt.
//!
//! Any number of dispatchers (one per instance) drain the same table. A claim takes due rows with
//! `FOR UPDATE SKIP LOCKED`, counts the attempt and moves the row's `next_attempt_at` one lease
//! ahead, in one statement; so no two dispatchers send the same attempt, and a dispatcher that dies
//! mid-attempt leaves rows that fall due again when the lease runs out (at-least-once).
//!
//! Each endpoint is a lane: a dispatcher sends at most `per_endpoint` requests to it at once, and
//! holds at most [`CLAIM_AHEAD`] times that many claimed attempts ([`CLAIM_AHEAD_FAST`] times for
//! an endpoint that answers fast, [`CLAIM_AHEAD_PROBE`] times for one not heard from yet or whose
//! last attempt failed), so the next ones are ready while outcomes are written. It claims nothing
//! for an endpoint whose lane is full or that is paused (`Retry-After`), so a slow or failing
//! endpoint holds up only its own deliveries. An attempt stays counted against its lane until its
//! outcome is written, so a crash resends at most what each lane held. An attempt that waited so
//! long for its turn that its lease could run out mid-request is given back unsent and uncounted,
//! due again at once.
//!
//! New deliveries wake dispatchers through `LISTEN payymo_webhooks`; polling every second is the
//! safety net, and also what picks up retries as they fall due.

mod claim;
mod lanes;
mod record;
mod send;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use self::lanes::{CLAIM_AHEAD, CLAIM_AHEAD_FAST, CLAIM_AHEAD_PROBE, FAST_ANSWER};
use self::{
    claim::Claim,
    lanes::{Lanes, Position},
};
use super::ssrf::Guard;
use crate::{config::Config, crypto::KeyRing};

/// The notification channel that wakes dispatchers.
pub const CHANNEL: &str = "payymo_webhooks";
/// How often a dispatcher looks for due deliveries without being woken.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How deliveries are made, from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest wait for a receiver's answer.
    pub timeout: Duration,
    /// The delay before each retry; the attempts are one more than its length.
    pub schedule: Vec<Duration>,
    /// How long an endpoint may fail without a break before it is disabled.
    pub disable_after: Duration,
    /// Attempts one dispatcher holds at once per endpoint.
    pub per_endpoint: usize,
    /// Attempts one dispatcher holds at once in all.
    pub max_in_flight: usize,
    /// Networks deliveries may reach although the guard refuses them (development, tests).
    pub allowed_networks: Vec<ipnet::IpNet>,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            timeout: config.webhook_timeout,
            schedule: config.webhook_retry_schedule.clone(),
            disable_after: config.webhook_disable_after,
            per_endpoint: config.webhook_concurrency,
            max_in_flight: 512,
            allowed_networks: config.webhook_allowed_networks.clone(),
        }
    }

    /// How long a claimed attempt is held before another dispatcher may take it over: long enough
    /// to wait a turn behind one round of requests to a hanging endpoint, then make its own.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(10)
    }

    pub fn max_attempts(&self) -> i32 {
        i32::try_from(self.schedule.len() + 1).unwrap_or(i32::MAX)
    }

    /// The delay after failed attempt `attempt` (1-based), with ±10 % jitter; None after the last.
    fn retry_delay(&self, attempt: i32) -> Option<Duration> {
        let base = self.schedule.get(usize::try_from(attempt - 1).ok()?)?;
        Some(base.mul_f64(0.9 + 0.2 * crate::jobs::backoff::random_unit()))
    }
}

/// A dispatcher for one instance.
pub struct Dispatcher {
    db: PgPool,
    keys: KeyRing,
    guard: Guard,
    client: reqwest::Client,
    settings: Settings,
    worker_id: String,
    metrics: Arc<crate::metrics::Metrics>,
    lanes: Arc<Lanes>,
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        db: PgPool,
        keys: KeyRing,
        settings: Settings,
        worker_id: String,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Self> {
        let guard = Guard::new(settings.allowed_networks.clone());
        // Resolves through the guard, follows no redirect, ignores proxies (see `ssrf`).
        let client = guard
            .client_builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("Payymo-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { db, keys, guard, client, settings, worker_id, metrics, lanes: Arc::default(), wake: Arc::default() })
    }

    /// Delivers until `shutdown`; then stops claiming, lets the attempts in flight finish (each is
    /// bounded by the timeout) and writes their outcomes.
    pub async fn run_until(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let (outcomes, received) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(this.clone().record_until_closed(received));
        let mut listener = crate::db::notify::listen(&this.db, CHANNEL).await;
        let mut attempts = tokio::task::JoinSet::new();
        // Search for due endpoints at start, on a notification, when a lane empties and at least
        // every POLL_INTERVAL (which also finds retries falling due). Woken by an outcome written,
        // top up the lanes that have room for a batch, leaving a quarter of what the dispatcher
        // may hold for the next search, so that endpoints not held yet still get their turn.
        let mut search = true;
        let mut searched = Instant::now();
        let reserve = this.settings.max_in_flight / 4;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let free = this.settings.max_in_flight.saturating_sub(this.lanes.total());
            let mut claimed_all = false;
            let searching = std::mem::take(&mut search) || this.lanes.emptied() || searched.elapsed() >= POLL_INTERVAL;
            let (claim, limit) = if searching {
                (Claim::Search, free)
            } else if this.lanes.refillable(this.settings.per_endpoint) {
                (Claim::Refill, free.saturating_sub(reserve))
            } else {
                (Claim::Refill, 0)
            };
            if limit > 0 {
                if claim == Claim::Search {
                    searched = Instant::now();
                }
                match this.claim(claim, limit).await {
                    Ok(claimed) => {
                        claimed_all = claimed.len() == limit;
                        let claimed_at = tokio::time::Instant::now();
                        for delivery in claimed {
                            let place = Position {
                                tenant_id: &delivery.tenant_id,
                                endpoint_id: &delivery.endpoint_id,
                                due_at: delivery.due_at,
                                id: &delivery.id,
                            };
                            let sending = this.lanes.take(&place, this.settings.per_endpoint);
                            let (this, outcomes) = (this.clone(), outcomes.clone());
                            attempts.spawn(async move {
                                // Start only while the whole request still fits in the lease.
                                let latest = claimed_at + this.settings.lease().saturating_sub(this.settings.timeout);
                                let Ok(Ok(_turn)) = tokio::time::timeout_at(latest, sending.acquire_owned()).await
                                else {
                                    this.unclaim(&delivery).await;
                                    this.lanes.release(&delivery.endpoint_id, None);
                                    this.wake.notify_one();
                                    return;
                                };
                                let outcome = this.attempt(&delivery).await;
                                // The recorder outlives every sender; a closed channel means shutdown.
                                let _ = outcomes.send(outcome);
                            });
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot claim webhook deliveries"),
                }
            } else if searching {
                // No room now: search once there is.
                search = true;
            }
            while attempts.try_join_next().is_some() {}
            if claimed_all || free == 0 {
                // Full: wait for a lane to free up rather than polling.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = this.wake.notified() => {}
                }
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(POLL_INTERVAL.saturating_sub(searched.elapsed())) => search = true,
                () = this.wake.notified() => {}
                woken = crate::db::notify::notification(&mut listener) => {
                    search = true;
                    if let Err(error) = woken {
                        tracing::warn!(%error, "lost the webhook notification listener; polling meanwhile");
                        listener = None;
                    }
                }
            }
            if listener.is_none() {
                listener = crate::db::notify::listen(&this.db, CHANNEL).await;
            }
        }
        while attempts.join_next().await.is_some() {}
        drop(outcomes);
        let _ = recorder.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_jittered_and_ends_after_its_last_step() {
        let settings = Settings::from_config(&Config::defaults());
        assert_eq!(settings.max_attempts(), 8);
        let first = settings.retry_delay(1).unwrap();
        assert!(first >= Duration::from_millis(4500) && first <= Duration::from_millis(5500), "{first:?}");
        let last = settings.retry_delay(7).unwrap();
        assert!(last >= Duration::from_secs(32_400) && last <= Duration::from_secs(39_600), "{last:?}");
        assert_eq!(settings.retry_delay(8), None);
    }
}
