//! Webhook delivery metrics: attempts by outcome and their latency (counted by this instance), and
//! the queue's depth and oldest pending age (read from the database when scraped, so every
//! instance reports the whole fleet's queue).

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use sqlx::PgPool;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug)]
pub struct WebhookMetrics {
    attempts: Family<OutcomeLabels, Counter>,
    latency: Histogram,
    pending: Gauge,
    due: Gauge,
    oldest_pending_age: Gauge<f64, AtomicU64>,
}

impl WebhookMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            attempts: Family::default(),
            // 1 ms to ~32 s, doubling.
            latency: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16)),
            pending: Gauge::default(),
            due: Gauge::default(),
            oldest_pending_age: Gauge::default(),
        };
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome: succeeded, retrying, failed (last attempt), gone (410, endpoint disabled)",
            metrics.attempts.clone(),
        );
        registry.register(
            "webhook_attempt_duration_seconds",
            "Time from sending a webhook to its answer (or error)",
            metrics.latency.clone(),
        );
        registry.register(
            "webhook_deliveries_pending",
            "Deliveries not yet succeeded or failed, fleet-wide",
            metrics.pending.clone(),
        );
        registry.register(
            "webhook_deliveries_due",
            "Pending deliveries whose next attempt is due now (the queue depth), fleet-wide",
            metrics.due.clone(),
        );
        registry.register(
            "webhook_oldest_pending_age_seconds",
            "Age of the oldest pending delivery, fleet-wide",
            metrics.oldest_pending_age.clone(),
        );
        metrics
    }

    pub fn attempt(&self, outcome: &'static str, seconds: f64) {
        self.attempts.get_or_create(&OutcomeLabels { outcome }).inc();
        self.latency.observe(seconds);
    }

    /// Reads the queue's gauges from the database (all tenants).
    pub async fn refresh(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let mut tx = crate::db::tenant::begin_platform(db).await?;
        #[derive(sqlx::FromRow)]
        struct Queue {
            pending: i64,
            due: i64,
            oldest_age: Option<f64>,
        }
        let queue: Queue = sqlx::query_as(
            "select count(*) as pending, count(*) filter (where next_attempt_at <= now()) as due,
                    extract(epoch from now() - min(created_at))::float8 as oldest_age
             from webhook_deliveries where status = 'pending'",
        )
        .fetch_one(&mut *tx)
        .await?;
        crate::db::tenant::end_read(tx);
        self.pending.set(queue.pending);
        self.due.set(queue.due);
        self.oldest_pending_age.set(queue.oldest_age.unwrap_or(0.0).max(0.0));
        Ok(())
    }
}
