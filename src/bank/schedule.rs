//! The bank feeds' periodic scheduling: queue syncs for accounts that are due and sweep consents
//! that expire. It runs once per `PAYYMO_BANK_SCHEDULE_PERIOD` fleet-wide (see
//! [`crate::background`]); syncs are queued with a dedup key per account, so even two schedulers
//! could not queue the same account twice.

use super::{connections, sync};
use crate::{domain::ids::TenantId, state::AppState};

/// The job kind that queues due syncs and sweeps expiry.
pub const SCHEDULE_JOB: &str = "bank.schedule";

/// Queues a sync for each linked account not synced within the sync interval, then sweeps
/// expiring and expired consents.
pub async fn schedule(state: &AppState) -> anyhow::Result<()> {
    let mut platform = crate::db::tenant::begin_platform(&state.db).await?;
    #[derive(sqlx::FromRow)]
    struct Due {
        tenant_id: String,
        id: String,
    }
    let due: Vec<Due> = sqlx::query_as(
        "select a.tenant_id, a.id from bank_accounts a
         join bank_connections c on c.tenant_id = a.tenant_id and c.id = a.connection_id
         where c.status = 'linked'
           and (a.last_synced_at is null or a.last_synced_at < now() - make_interval(secs => $1))
         order by a.last_synced_at nulls first limit 5000",
    )
    .bind(state.config.sync_interval.as_secs_f64())
    .fetch_all(&mut *platform)
    .await?;
    crate::db::tenant::end_read(platform);
    for account in &due {
        let mut conn = state.db.acquire().await?;
        sync::enqueue(&mut conn, &TenantId::from_db(account.tenant_id.clone()), &account.id).await?;
    }
    let swept = connections::sweep_expiry(state).await?;
    tracing::debug!(queued = due.len(), swept, "bank feeds scheduled");
    Ok(())
}
