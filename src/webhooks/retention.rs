//! Retention: events older than the configured period (30 days by default) are deleted with their
//! deliveries and attempts, by a periodic job, in batches so no statement holds many locks long.
//! An event with a delivery still pending is kept until that delivery ends.

use std::time::Duration;

use sqlx::PgPool;

use crate::db::tenant::begin_platform;

/// The job kind that prunes old events.
pub const PRUNE_JOB: &str = "webhooks.prune";
/// How often pruning runs (fleet-wide).
pub const PRUNE_PERIOD: Duration = Duration::from_secs(3600);
/// Events deleted per statement.
const BATCH: i64 = 5_000;

/// Deletes every event older than `retention` that has no pending delivery, with its deliveries
/// and their attempts. Returns how many events were deleted.
pub async fn prune(db: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let mut tx = begin_platform(db).await?;
        let batch = sqlx::query(
            "delete from events where (tenant_id, id) in (
                 select e.tenant_id, e.id from events e
                 where e.occurred_at < now() - make_interval(secs => $1)
                   and not exists (select 1 from webhook_deliveries d
                                   where d.tenant_id = e.tenant_id and d.event_id = e.id and d.status = 'pending')
                 limit $2)",
        )
        .bind(retention.as_secs_f64())
        .bind(BATCH)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        deleted += batch;
        if batch < BATCH as u64 {
            return Ok(deleted);
        }
    }
}
