//! The durable baseline of `bench-webhooks`: the plainest at-least-once delivery loop one could
//! write on the same tables, to measure the dispatcher against work of the same kind rather than
//! against a client loop that keeps nothing.
//!
//! As many tasks as the dispatcher's per-endpoint concurrency, each in a loop: claim a batch of the
//! endpoint's due deliveries with `FOR UPDATE SKIP LOCKED` (counting the attempt and leasing the
//! rows, as the dispatcher's claim does, with the event and the endpoint's URL and sealed secret
//! joined in), then for each row open the secret, serialize and sign the envelope and POST it,
//! one at a time, then record the batch's attempts and the deliveries' new state in one
//! statement. No lanes, no notifications, no back-off, no health: a task whose claim comes back
//! empty stops.

use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use payymo::{
    crypto::KeyRing,
    db::tenant::begin_platform,
    domain::ids::{TenantId, WebhookEndpointId},
    events::Event,
    webhooks::{endpoints, signing},
};
use sqlx::PgPool;

/// Rows one task claims at a time: 8 tasks hold 512 at most, the dispatcher's `max_in_flight`.
const BATCH: i64 = 64;

#[derive(sqlx::FromRow)]
struct Claimed {
    id: String,
    attempts: i32,
    event_id: String,
    event_type: String,
    occurred_at: DateTime<Utc>,
    data: serde_json::Value,
    url: String,
    secret: String,
}

/// Drains `endpoint`'s pending deliveries with `concurrency` tasks; returns the seconds from the
/// start until the last batch was recorded.
pub async fn drain(
    pool: &PgPool,
    keys: &KeyRing,
    tenant: &TenantId,
    endpoint: &WebhookEndpointId,
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let started = Instant::now();
    let tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = (0..concurrency)
        .map(|task| {
            let (pool, keys, client) = (pool.clone(), keys.clone(), client.clone());
            let (tenant, endpoint) = (tenant.clone(), endpoint.clone());
            tokio::spawn(async move {
                let worker = format!("bench-durable-loop-{task}");
                while deliver_batch(&pool, &keys, &client, &tenant, &endpoint, &worker).await? > 0 {}
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Claims, sends and records one batch; returns how many rows it claimed.
async fn deliver_batch(
    pool: &PgPool,
    keys: &KeyRing,
    client: &reqwest::Client,
    tenant: &TenantId,
    endpoint: &WebhookEndpointId,
    worker: &str,
) -> anyhow::Result<usize> {
    let mut tx = begin_platform(pool).await?;
    let claimed: Vec<Claimed> = sqlx::query_as(
        "with picked as (
             select tenant_id, id from webhook_deliveries
             where tenant_id = $1 and endpoint_id = $2 and status = 'pending' and next_attempt_at <= now()
             order by next_attempt_at, id
             limit $3
             for update skip locked
         )
         update webhook_deliveries d set attempts = d.attempts + 1, locked_by = $4, last_attempt_at = now(),
             next_attempt_at = now() + interval '60 seconds'
         from picked, events e, webhook_endpoints w
         where d.tenant_id = picked.tenant_id and d.id = picked.id
           and e.tenant_id = d.tenant_id and e.id = d.event_id
           and w.tenant_id = d.tenant_id and w.id = d.endpoint_id
         returning d.id, d.attempts, e.id as event_id, e.event_type, e.occurred_at, e.data, w.url, w.secret",
    )
    .bind(tenant.as_str())
    .bind(endpoint.as_str())
    .bind(BATCH)
    .bind(worker)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if claimed.is_empty() {
        return Ok(0);
    }

    let mut ids = Vec::with_capacity(claimed.len());
    let mut attempts = Vec::with_capacity(claimed.len());
    let mut started_at = Vec::with_capacity(claimed.len());
    let mut latency_ms = Vec::with_capacity(claimed.len());
    let mut status_codes = Vec::with_capacity(claimed.len());
    let mut succeeded = Vec::with_capacity(claimed.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(claimed.len());
    let mut bodies: Vec<Option<String>> = Vec::with_capacity(claimed.len());
    for row in &claimed {
        let secret = endpoints::open_secret(keys, tenant.as_str(), endpoint.as_str(), &row.secret)?;
        let event = Event {
            id: row.event_id.clone(),
            event_type: row.event_type.clone(),
            timestamp: row.occurred_at,
            tenant_id: tenant.as_str().to_owned(),
            data: row.data.clone(),
        };
        let body = serde_json::to_vec(&event)?;
        let now = Utc::now();
        let signatures = signing::sign(std::slice::from_ref(&secret), &event.id, now.timestamp(), &body);
        let sent = Instant::now();
        let answer = client
            .post(&row.url)
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", now.timestamp().to_string())
            .header("webhook-signature", signatures.standard)
            .header("x-webhook-signature", signatures.payymo)
            .body(body)
            .send()
            .await;
        let (code, ok, error, text) = match answer {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                (Some(i32::from(status.as_u16())), status.is_success(), None, Some(text))
            }
            Err(error) => (None, false, Some(error.to_string()), None),
        };
        ids.push(row.id.clone());
        attempts.push(row.attempts);
        started_at.push(now);
        latency_ms.push(i32::try_from(sent.elapsed().as_millis()).unwrap_or(i32::MAX));
        status_codes.push(code);
        succeeded.push(ok);
        errors.push(error);
        bodies.push(text);
    }

    let mut tx = begin_platform(pool).await?;
    let recorded = sqlx::query(
        "with outcome as (
             select * from unnest($2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::int[], $7::bool[],
                 $8::text[], $9::text[]) as u(id, attempt, started_at, latency_ms, status_code, succeeded, error, body)
         ), attempts as (
             insert into webhook_attempts (tenant_id, delivery_id, attempt, started_at, latency_ms, status_code,
                 succeeded, error, response_body)
             select $1, id, attempt, started_at, latency_ms, status_code, succeeded, error, body from outcome
         )
         update webhook_deliveries d set
             status = case when o.succeeded then 'succeeded' else 'pending' end,
             completed_at = case when o.succeeded then now() end,
             next_attempt_at = case when o.succeeded then d.next_attempt_at else now() + interval '5 seconds' end,
             last_status_code = o.status_code, last_error = o.error
         from outcome o
         where d.tenant_id = $1 and d.id = o.id and d.attempts = o.attempt and d.locked_by = $10",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&attempts)
    .bind(&started_at)
    .bind(&latency_ms)
    .bind(&status_codes)
    .bind(&succeeded)
    .bind(&errors)
    .bind(&bodies)
    .bind(worker)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if recorded != claimed.len() as u64 {
        bail!("recorded {recorded} of {} claimed deliveries", claimed.len());
    }
    Ok(claimed.len())
}
