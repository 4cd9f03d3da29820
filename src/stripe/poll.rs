//! Polling as the safety net for webhooks: every minute each connected account's events are
//! read from where the last poll stopped (`GET /v1/events` with `ending_before`, newest first,
//! the types Payymo subscribes to) into the same inbox, so a missed webhook is caught within
//! minutes and an event that also arrived by webhook is not kept twice. A key Stripe refuses
//! marks the connection `failed` (`stripe_connection.failed`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{
    account::WEBHOOK_EVENTS,
    apply, backfill,
    connection::{self, StripeConnectionStatus},
    inbox::{self, Source},
};
use crate::{
    db::tenant::{begin_platform, begin_tenant},
    domain::ids::TenantId,
    jobs::{Job, NewJob, queue},
    providers::stripe::{Stripe, StripeCallError},
    state::AppState,
};

/// The periodic task that queues a poll of every connected account.
pub const SCHEDULE_JOB: &str = "stripe.poll_schedule";
/// How often every account is polled.
pub const SCHEDULE_PERIOD: Duration = Duration::from_secs(60);
/// The job that polls one connection (payload `{"connection_id": "sc_…"}`).
pub const POLL_JOB: &str = "stripe.poll";

/// Queues a poll of every connected account.
pub async fn schedule(state: &AppState) -> anyhow::Result<()> {
    let mut tx = begin_platform(&state.db).await?;
    let connected: Vec<(String, String)> =
        sqlx::query_as("select tenant_id, id from stripe_connections where status = 'connected'")
            .fetch_all(&mut *tx)
            .await?;
    for (tenant, id) in connected {
        let job = NewJob::new(POLL_JOB, json!({ "connection_id": id }))
            .tenant(TenantId::from_db(tenant))
            .dedup_key(id.clone())
            .max_attempts(1);
        queue::enqueue(&mut *tx, &job).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The poll job's handler.
pub async fn handle(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("a Stripe poll job needs a tenant"))?;
    let id = job.payload["connection_id"].as_str().ok_or_else(|| anyhow::anyhow!("needs payload.connection_id"))?;
    run(state, &tenant, id).await.map(drop)
}

/// Reads the connection's new events into its inbox; returns how many were new to it.
pub async fn run(state: &AppState, tenant: &TenantId, connection_id: &str) -> anyhow::Result<usize> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let found = connection::sealed_of(&mut tx, tenant).await?;
    tx.commit().await?;
    let Some(found) = found.filter(|c| c.id == connection_id && c.status == StripeConnectionStatus::Connected) else {
        return Ok(0);
    };
    let key = connection::key_of(&found.key_sealed, super::key_ring(state).await?, tenant)?;
    let stripe = state.stripe.client(found.livemode, key, &found.account_id);
    let new = match read_new(state, &stripe, tenant, connection_id, found.events_polled_to, found.created_at).await {
        Ok(new) => new,
        Err(StripeCallError::Unauthorized(message)) => {
            let mut tx = begin_tenant(&state.db, tenant).await?;
            let reason = format!("Stripe refused the key: {message}; PUT a working key to reconnect");
            connection::fail(&mut tx, tenant, connection_id, &reason).await?;
            tx.commit().await?;
            return Ok(0);
        }
        Err(error) => return Err(error.into()),
    };
    // Events left unapplied (a job that gave up while Stripe was down) get another chance.
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let waiting: bool = sqlx::query_scalar(
        "select exists (select 1 from stripe_events
                        where tenant_id = $1 and connection_id = $2 and applied_at is null)",
    )
    .bind(tenant.as_str())
    .bind(connection_id)
    .fetch_one(&mut *tx)
    .await?;
    if waiting {
        apply::enqueue(&mut tx, tenant, connection_id, "poll").await?;
    }
    // A backfill whose job gave up (Stripe down for long) carries on from where it stopped.
    if backfill::is_running(&mut tx, tenant, connection_id).await? {
        backfill::enqueue(&mut tx, tenant, connection_id).await?;
    }
    tx.commit().await?;
    Ok(new)
}

/// Reads the events newer than `polled_to` (or, the first time, all since the connection was
/// made) into the inbox.
async fn read_new(
    state: &AppState,
    stripe: &Stripe,
    tenant: &TenantId,
    connection_id: &str,
    polled_to: Option<String>,
    connected_at: DateTime<Utc>,
) -> Result<usize, StripeCallError> {
    let mut new = 0;
    let store = |events: Value, mark: String| async move {
        keep(state, tenant, connection_id, &events, &mark)
            .await
            .map_err(|e| StripeCallError::Unavailable(format!("keeping polled events: {e}")))
    };
    match polled_to {
        // Later polls: the pages just newer than where the last one stopped, oldest page first.
        Some(mut cursor) => loop {
            let page = list(stripe, &[("ending_before", cursor.as_str())]).await?;
            let Some(newest) = page["data"][0]["id"].as_str().map(str::to_owned) else { return Ok(new) };
            new += store(page["data"].clone(), newest.clone()).await?;
            cursor = newest;
            if page["has_more"] != true {
                return Ok(new);
            }
        },
        // The first poll: everything since the account was connected, newest first.
        None => {
            let since = connected_at.timestamp().to_string();
            let mut after: Option<String> = None;
            let mut newest: Option<String> = None;
            loop {
                let mut params = vec![("created[gte]", since.as_str())];
                if let Some(after) = &after {
                    params.push(("starting_after", after.as_str()));
                }
                let page = list(stripe, &params).await?;
                let data = page["data"].as_array().cloned().unwrap_or_default();
                let Some(last) = data.last().and_then(|e| e["id"].as_str()).map(str::to_owned) else { break };
                newest.get_or_insert_with(|| data[0]["id"].as_str().unwrap_or_default().to_owned());
                new += store(page["data"].clone(), newest.clone().unwrap_or_default()).await?;
                if page["has_more"] != true {
                    break;
                }
                after = Some(last);
            }
            Ok(new)
        }
    }
}

async fn list(stripe: &Stripe, extra: &[(&str, &str)]) -> Result<Value, StripeCallError> {
    let mut params: Vec<(&str, &str)> = vec![("limit", "100")];
    params.extend(WEBHOOK_EVENTS.iter().map(|t| ("types[]", *t)));
    params.extend_from_slice(extra);
    stripe.get("events", &params).await
}

/// Keeps a page of events, queues their application, and moves the poll's mark, in one
/// transaction.
async fn keep(
    state: &AppState,
    tenant: &TenantId,
    connection_id: &str,
    events: &Value,
    mark: &str,
) -> anyhow::Result<usize> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let mut new = 0;
    for event in events.as_array().into_iter().flatten() {
        if inbox::keep(&mut tx, tenant, connection_id, event, Source::Poll).await? {
            apply::enqueue(&mut tx, tenant, connection_id, event["id"].as_str().unwrap_or_default()).await?;
            new += 1;
        }
    }
    sqlx::query("update stripe_connections set events_polled_to = $3 where tenant_id = $1 and id = $2")
        .bind(tenant.as_str())
        .bind(connection_id)
        .bind(mark)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(new)
}
