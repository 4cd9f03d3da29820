//! What `bench-webhooks` (`bench/webhooks.rs`) and `bench-webhooks-three`
//! (`bench/webhooks_three.rs`) both set up and use, included by each as `mod fixtures`: the count
//! arguments, the logging, the data directory and the configuration; a premium tenant, its
//! endpoints and a backlog of `transaction.created` events; the statements that count, check, set
//! aside and put back endpoints' deliveries; the wait for a drain's end; the vacuum before a
//! drain; the loopback receiver; the figures' median and percentile. Each example uses part of
//! it, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
};
use chrono::{DateTime, Utc};
use payymo::{
    auth::{Environment, Plan},
    config::Config,
    crypto::KeyRing,
    db::{
        self,
        tenant::{begin_platform, begin_tenant},
    },
    domain::ids::{TenantId, WebhookEndpointId},
    events, tenancy,
    webhooks::{endpoints, signing::SigningSecret},
};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Command-line argument `i` as a count, `default` when it is not given.
pub fn count_arg(i: usize, default: usize) -> anyhow::Result<usize> {
    std::env::args().nth(i).map_or(Ok(default), |n| n.parse().with_context(|| format!("not a count: {n:?}")))
}

/// Warnings and errors on stderr.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // The key ring's development-fallback warning and sqlx's slow-statement notices (the
        // seeding statements are slow by design) are not news here.
        .with_env_filter("warn,payymo::crypto=error,sqlx=error")
        .init();
}

/// The embedded cluster's directory: `PAYYMO_DATA_DIR` when set, else a fresh one in the temporary
/// directory, removed by [`DataDir::remove`].
pub struct DataDir {
    pub path: PathBuf,
    given: bool,
}

impl DataDir {
    /// `program` names the fresh directory: `payymo-{program}-{pid}`.
    pub fn new(program: &str) -> anyhow::Result<Self> {
        if let Ok(dir) = std::env::var("PAYYMO_DATA_DIR") {
            return Ok(Self { path: PathBuf::from(dir), given: true });
        }
        let path = std::env::temp_dir().join(format!("payymo-{program}-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self { path, given: false })
    }

    /// Removes the directory unless it was given.
    pub fn remove(&self) {
        if !self.given {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The configuration as `payymo serve` reads it, from the variables `from_env` as the environment
/// has them and `data_dir` as `PAYYMO_DATA_DIR`; nothing else.
pub fn config(data_dir: &Path, from_env: &[&str]) -> anyhow::Result<Config> {
    Ok(Config::from_lookup(|name| match name {
        "PAYYMO_DATA_DIR" => Some(data_dir.to_string_lossy().into_owned()),
        _ if from_env.contains(&name) => std::env::var(name).ok(),
        _ => None,
    })?)
}

/// A premium tenant in the test environment.
pub async fn create_tenant(pool: &PgPool, name: &str) -> anyhow::Result<TenantId> {
    let mut tx = begin_platform(pool).await?;
    let tenant = tenancy::create_tenant(
        &mut tx,
        tenancy::NewTenant {
            name: name.into(),
            environment: Environment::Test,
            plan: Some(Plan::Premium),
            time_zone: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    Ok(TenantId::from_db(tenant.id))
}

/// An endpoint for every event type at `url`, with a fresh secret sealed as the API seals it;
/// returns the endpoint and its secret.
pub async fn create_endpoint(
    pool: &PgPool,
    keys: &KeyRing,
    tenant: &TenantId,
    url: &str,
) -> anyhow::Result<(WebhookEndpointId, SigningSecret)> {
    let id = WebhookEndpointId::generate();
    let secret = SigningSecret::generate();
    let sealed = endpoints::seal_secret(keys, tenant, &id, &secret)?;
    let mut tx = begin_tenant(pool, tenant).await?;
    sqlx::query("insert into webhook_endpoints (tenant_id, id, url, event_types, secret) values ($1, $2, $3, $4, $5)")
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(url)
        .bind(vec![endpoints::ALL_EVENTS.to_owned()])
        .bind(&sealed)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((id, secret))
}

/// Records `count` `transaction.created` events in one statement, in one transaction
/// (`events::record_many`, as a bank sync writes them); the fan-out trigger makes a delivery per
/// event and endpoint.
pub async fn record_events(pool: &PgPool, tenant: &TenantId, count: usize) -> anyhow::Result<()> {
    let mut tx = begin_tenant(pool, tenant).await?;
    let payloads = (0..count).map(transaction_payload).collect();
    events::record_many(&mut tx, tenant, "transaction.created", payloads).await?;
    tx.commit().await?;
    Ok(())
}

/// A `transaction.created` payload of the usual size (about 500 bytes of envelope).
pub fn transaction_payload(n: usize) -> serde_json::Value {
    json!({
        "id": format!("txn_{:032x}", n),
        "account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718",
        "amount": format!("-{}.{:02}", 1 + n % 500, n % 100),
        "currency": "GBP",
        "booking_date": "2026-11-20",
        "value_date": "2026-11-20",
        "status": "booked",
        "description": format!("CARD PAYMENT TO MERCHANT {} LONDON", n % 977),
        "counterparty": format!("Merchant {}", n % 311),
        "reference": format!("REF{:08}", n * 7),
        "category": null,
    })
}

fn endpoint_ids(endpoints: &[WebhookEndpointId]) -> Vec<String> {
    endpoints.iter().map(|e| e.as_str().to_owned()).collect()
}

/// How many deliveries of the endpoints are pending.
pub async fn pending(pool: &PgPool, tenant: &TenantId, endpoints: &[WebhookEndpointId]) -> anyhow::Result<i64> {
    let mut tx = begin_platform(pool).await?;
    let pending: i64 = sqlx::query_scalar(
        "select count(*) from webhook_deliveries where tenant_id = $1 and endpoint_id = any($2) and status = 'pending'",
    )
    .bind(tenant.as_str())
    .bind(endpoint_ids(endpoints))
    .fetch_one(&mut *tx)
    .await?;
    db::tenant::end_read(tx);
    Ok(pending)
}

/// Deliveries succeeded and attempts made, over the endpoints' deliveries (those created since
/// `since` when given).
pub async fn outcome(
    pool: &PgPool,
    tenant: &TenantId,
    endpoints: &[WebhookEndpointId],
    since: Option<&DateTime<Utc>>,
) -> anyhow::Result<(usize, i64)> {
    let mut tx = begin_platform(pool).await?;
    let (succeeded, attempts): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where status = 'succeeded'), coalesce(sum(attempts), 0)::int8
         from webhook_deliveries where tenant_id = $1 and endpoint_id = any($2)
           and ($3::timestamptz is null or created_at >= $3)",
    )
    .bind(tenant.as_str())
    .bind(endpoint_ids(endpoints))
    .bind(since)
    .fetch_one(&mut *tx)
    .await?;
    db::tenant::end_read(tx);
    Ok((usize::try_from(succeeded)?, attempts))
}

/// Marks the endpoints' pending deliveries failed, with `why` as their last error (a backlog
/// waiting for its drain, or what a drain cut off left); returns how many.
pub async fn set_aside(
    pool: &PgPool,
    tenant: &TenantId,
    endpoints: &[WebhookEndpointId],
    why: &str,
) -> anyhow::Result<u64> {
    let mut tx = begin_platform(pool).await?;
    let left = sqlx::query(
        "update webhook_deliveries set status = 'failed', completed_at = now(), locked_by = null, last_error = $3
         where tenant_id = $1 and endpoint_id = any($2) and status = 'pending'",
    )
    .bind(tenant.as_str())
    .bind(endpoint_ids(endpoints))
    .bind(why)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(left)
}

/// Puts the endpoints' deliveries (those created since `since` when given) back as they were
/// before any attempt: pending, due (at their creation), their attempts deleted.
pub async fn requeue(
    pool: &PgPool,
    tenant: &TenantId,
    endpoints: &[WebhookEndpointId],
    since: Option<&DateTime<Utc>>,
) -> anyhow::Result<()> {
    let ids = endpoint_ids(endpoints);
    let mut tx = begin_platform(pool).await?;
    sqlx::query(
        "delete from webhook_attempts a using webhook_deliveries d
         where a.tenant_id = d.tenant_id and a.delivery_id = d.id
           and d.tenant_id = $1 and d.endpoint_id = any($2) and ($3::timestamptz is null or d.created_at >= $3)",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(since)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update webhook_deliveries set status = 'pending', attempts = 0, next_attempt_at = created_at,
             locked_by = null, last_attempt_at = null, completed_at = null, last_status_code = null,
             last_error = null
         where tenant_id = $1 and endpoint_id = any($2) and ($3::timestamptz is null or created_at >= $3)",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(since)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// How a drain went: all delivered and recorded, or how many had arrived when time ran out.
pub struct Drained {
    /// Distinct events at the receiver when the drain ended.
    pub delivered: usize,
    /// Seconds from the drain's start until every delivery was recorded `succeeded`, or until
    /// time ran out.
    pub seconds: f64,
    /// Seconds until the last event arrived, when it did.
    pub received_after: Option<f64>,
    pub finished: bool,
}

impl Drained {
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.seconds
    }

    pub fn describe(&self, count: usize) -> String {
        match (self.finished, self.received_after) {
            (true, Some(received)) => format!(
                "all {count} at the receiver after {received:.2} s, all recorded succeeded after {:.2} s = {:.0} deliveries/s",
                self.seconds,
                self.rate()
            ),
            _ => format!(
                "{} of {count} at the receiver when time ran out after {:.0} s = {:.0} deliveries/s",
                self.delivered,
                self.seconds,
                self.rate()
            ),
        }
    }
}

/// Waits, up to `limit` after `start` (when the drain started), until `receiver` has `count`
/// distinct events and no delivery of the endpoints is pending.
pub async fn wait_drained(
    pool: &PgPool,
    receiver: &Receiver,
    tenant: &TenantId,
    endpoints: &[WebhookEndpointId],
    count: usize,
    start: Instant,
    limit: Duration,
) -> anyhow::Result<Drained> {
    let mut received_after = None;
    while start.elapsed() < limit {
        if received_after.is_none() && receiver.unique() >= count {
            received_after = Some(start.elapsed().as_secs_f64());
        }
        // Only once everything arrived: counting pending rows meanwhile would take CPU from
        // the senders.
        if received_after.is_some() && pending(pool, tenant, endpoints).await? == 0 {
            let seconds = start.elapsed().as_secs_f64();
            return Ok(Drained { delivered: receiver.unique(), seconds, received_after, finished: true });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Drained { delivered: receiver.unique(), seconds, received_after, finished: false })
}

/// Vacuums and analyses the tables a drain reads and writes, so that every timed drain starts from
/// tables at rest: otherwise an autovacuum of an earlier drain's 100,000 updates could fall in any
/// of them (in `bench-webhooks` the isolation figure measured it: 0.86-1.05 of alone over six runs
/// of unchanged code).
pub async fn settle(pool: &PgPool) -> anyhow::Result<()> {
    for table in ["events", "webhook_deliveries", "webhook_attempts"] {
        sqlx::query(&format!("vacuum (analyze) {table}")).execute(pool).await?;
    }
    Ok(())
}

/// The median of `values`: the middle one, or the mean of the middle two.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The nearest-rank percentile `q` (0..=1) of `values` (sorted).
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// How a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 200 with a two-byte body.
    Healthy,
    /// 500.
    Failing,
    /// Nothing until released (past any sender's timeout), then 503.
    Hanging,
}

/// The path of [`Receiver::url`].
const HOOKS: &str = "/hooks";

/// A bare axum server on a loopback port that counts requests and keeps the first arrival time of
/// each `webhook-id` at each path, and of the first request with one.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`: an endpoint's URL is this and any path.
    pub base: String,
    /// `base` and `/hooks`.
    pub url: String,
    sink: Arc<Sink>,
}

struct Sink {
    mode: Mode,
    requests: AtomicU64,
    seen: Mutex<Seen>,
    released: CancellationToken,
}

#[derive(Default)]
struct Seen {
    first: Option<Instant>,
    /// Path, then `webhook-id`, then its first arrival.
    paths: HashMap<String, HashMap<String, Instant>>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let sink = Arc::new(Sink {
            mode,
            requests: AtomicU64::new(0),
            seen: Mutex::new(Seen::default()),
            released: CancellationToken::new(),
        });
        let router = Router::new().fallback(receive).with_state(sink.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Self { url: format!("{base}{HOOKS}"), base, sink })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.sink.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the first request with a `webhook-id` arrived.
    pub fn first(&self) -> Option<Instant> {
        self.seen().first
    }

    pub fn requests(&self) -> u64 {
        self.sink.requests.load(Ordering::Relaxed)
    }

    /// Distinct (path, event) pairs received.
    pub fn unique(&self) -> usize {
        self.seen().paths.values().map(HashMap::len).sum()
    }

    /// The first arrival of each event at [`Receiver::url`].
    pub fn arrivals(&self) -> HashMap<String, Instant> {
        self.seen().paths.get(HOOKS).cloned().unwrap_or_default()
    }

    pub fn reset(&self) {
        *self.seen() = Seen::default();
        self.sink.requests.store(0, Ordering::Relaxed);
    }

    /// Answers every hanging request now, and later ones at once.
    pub fn release(&self) {
        self.sink.released.cancel();
    }
}

async fn receive(
    State(sink): State<Arc<Sink>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let arrived = Instant::now();
    sink.requests.fetch_add(1, Ordering::Relaxed);
    drop(body);
    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
        let mut seen = sink.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.first.get_or_insert(arrived);
        let path = uri.path();
        if !seen.paths.contains_key(path) {
            seen.paths.insert(path.to_owned(), HashMap::new());
        }
        if let Some(ids) = seen.paths.get_mut(path)
            && !ids.contains_key(id)
        {
            ids.insert(id.to_owned(), arrived);
        }
    }
    match sink.mode {
        Mode::Healthy => (StatusCode::OK, "ok"),
        Mode::Failing => (StatusCode::INTERNAL_SERVER_ERROR, "failing"),
        Mode::Hanging => {
            sink.released.cancelled().await;
            (StatusCode::SERVICE_UNAVAILABLE, "hung")
        }
    }
}
