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

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use sqlx::{FromRow, PgPool};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{endpoints, signing, ssrf::Guard};
use crate::{
    config::Config,
    crypto::KeyRing,
    db::tenant::begin_platform,
    domain::ids::TenantId,
    events::{self, Event},
};

/// The notification channel that wakes dispatchers.
pub const CHANNEL: &str = "payymo_webhooks";
/// How much of a receiver's answer an attempt keeps.
const RESPONSE_BODY_LIMIT: usize = 1024;
/// How often a dispatcher looks for due deliveries without being woken.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Most outcomes written in one transaction.
const RECORD_BATCH: usize = 512;
/// Claimed attempts a lane may hold, as a multiple of the requests it may send at once.
pub const CLAIM_AHEAD: usize = 16;
/// The same for an endpoint that answers within [`FAST_ANSWER`]: enough held to keep sending
/// while a claim and the outcomes' write are on their way (at [`CLAIM_AHEAD`] a fast receiver's
/// lane runs empty between claims), and still sent in seconds, well inside the lease.
pub const CLAIM_AHEAD_FAST: usize = 64;
/// The average answer time under which an endpoint's lane holds [`CLAIM_AHEAD_FAST`].
pub const FAST_ANSWER: Duration = Duration::from_millis(100);
/// The same for an endpoint not heard from yet, or whose last attempt failed: enough to find out.
/// At [`CLAIM_AHEAD`] a receiver that hangs would hold a quarter of the dispatcher's
/// [`Settings::max_in_flight`] waiting behind requests that take the whole timeout, and the
/// healthy lanes beside it would claim in smaller batches and slow down. A healthy endpoint's lane
/// grows to its full size after its first answers.
pub const CLAIM_AHEAD_PROBE: usize = 2;
/// Failed attempts in a row after which an endpoint backs off: no attempt starts for 1 s, then
/// 2 s, 4 s, … up to [`MAX_BACKOFF`] after each further failure, until one succeeds. Its deliveries
/// wait rather than use up their attempts on a receiver that is down, and the dispatcher's time
/// goes to endpoints that answer.
pub const BACKOFF_AFTER: i32 = 10;
/// The longest pause of a failing endpoint between probes.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

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

/// A claimed delivery, with what sending it needs.
#[derive(Debug, FromRow)]
struct Claimed {
    tenant_id: String,
    id: String,
    endpoint_id: String,
    attempts: i32,
    /// Its place in the endpoint's queue before the claim moved it: `next_attempt_at` then.
    due_at: DateTime<Utc>,
    event_id: String,
    event_type: String,
    occurred_at: DateTime<Utc>,
    data: serde_json::Value,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// What an attempt's answer means.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Succeeded,
    /// 410 Gone: the receiver unsubscribed; the endpoint is disabled.
    Gone,
    /// 429 or 503 with `Retry-After`: the whole endpoint waits that long.
    Throttled(Duration),
    Failed,
}

/// One attempt, as recorded.
#[derive(Debug)]
struct Outcome {
    tenant_id: String,
    delivery_id: String,
    endpoint_id: String,
    attempt: i32,
    started_at: DateTime<Utc>,
    latency_ms: i32,
    status_code: Option<i32>,
    verdict: Verdict,
    error: Option<String>,
    response_body: Option<String>,
}

/// One endpoint's lane in this dispatcher.
#[derive(Debug)]
struct Lane {
    tenant_id: String,
    /// Claimed attempts whose outcomes are not written yet.
    held: usize,
    /// Turns to send: `per_endpoint` requests at once.
    sending: Arc<Semaphore>,
    /// Where the lane's last claim ended in the endpoint's queue, and when.
    resume: Option<Resume>,
    /// Moving average of the endpoint's answer times, in milliseconds (None before the first).
    answer_ms: Option<f64>,
    /// Whether the latest outcome written was a failure.
    failing: bool,
}

impl Lane {
    /// Whether the lane's next claim may start from its resume position.
    fn resumable(&self) -> bool {
        self.resume.as_ref().is_some_and(|resume| resume.at.elapsed() < RESUME_FOR)
    }

    /// Whether the lane can go: it holds nothing, and a top-up could no longer resume it.
    fn spent(&self) -> bool {
        self.held == 0 && !self.resumable()
    }

    /// Claimed attempts the lane may hold: a probe's worth until its endpoint answers with a
    /// success, more once it has shown it answers fast.
    fn capacity(&self, per_endpoint: usize) -> usize {
        per_endpoint
            * match self.answer_ms {
                None => CLAIM_AHEAD_PROBE,
                Some(_) if self.failing => CLAIM_AHEAD_PROBE,
                Some(ms) if ms < FAST_ANSWER.as_secs_f64() * 1000.0 => CLAIM_AHEAD_FAST,
                Some(_) => CLAIM_AHEAD,
            }
    }
}

/// A position in an endpoint's queue, in the claim's order `(next_attempt_at, id)`.
///
/// The due index keeps an entry for every row a claim moved (its lease) or an outcome took out of
/// the queue until vacuum removes it, and those entries sit at the front of the endpoint's range,
/// where each claim used to start: draining a backlog, every claim stepped over every entry the
/// drain had left so far, so a claim's cost grew with the drain. A lane's top-ups ([`REFILL_CLAIM`]) start after the
/// rows its last claim took instead, for [`RESUME_FOR`] after it. Rows that fall due before that
/// position (an insert that committed late, a claim another dispatcher rolled back, a lease run
/// out) are found by the search ([`SEARCH_CLAIM`]), which starts from the front of every queue
/// and runs at least every [`POLL_INTERVAL`].
#[derive(Debug, Clone)]
struct Resume {
    due_at: DateTime<Utc>,
    id: String,
    at: Instant,
}

/// How long after a lane's last claim its top-ups may start where that claim ended.
const RESUME_FOR: Duration = POLL_INTERVAL;

/// The lanes' state as one claim binds it, column by column.
#[derive(Debug, Default)]
struct Held {
    tenants: Vec<String>,
    endpoints: Vec<String>,
    attempts: Vec<i32>,
    capacities: Vec<i32>,
    resume_due_at: Vec<Option<DateTime<Utc>>>,
    resume_id: Vec<Option<String>>,
}

/// The lanes of the endpoints this dispatcher holds attempts for.
#[derive(Debug, Default)]
struct Lanes {
    lanes: Mutex<HashMap<String, Lane>>,
    /// Set when a lane emptied since the last [`Lanes::emptied`]: its endpoint may have more.
    emptied: std::sync::atomic::AtomicBool,
}

impl Lanes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lane>> {
        self.lanes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn total(&self) -> usize {
        self.lock().values().map(|lane| lane.held).sum()
    }

    /// The lanes as the claim reads them: endpoint, attempts held, and where to resume.
    fn snapshot(&self, per_endpoint: usize) -> Held {
        let mut lanes = self.lock();
        let before = lanes.len();
        lanes.retain(|_, lane| !lane.spent());
        if lanes.len() < before {
            self.emptied.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let mut held = Held::default();
        for (endpoint, lane) in lanes.iter() {
            let resume = lane.resume.as_ref().filter(|_| lane.resumable());
            held.tenants.push(lane.tenant_id.clone());
            held.endpoints.push(endpoint.clone());
            held.attempts.push(i32::try_from(lane.held).unwrap_or(i32::MAX));
            held.capacities.push(i32::try_from(lane.capacity(per_endpoint)).unwrap_or(i32::MAX));
            held.resume_due_at.push(resume.map(|resume| resume.due_at));
            held.resume_id.push(resume.map(|resume| resume.id.clone()));
        }
        held
    }

    /// Whether a lane emptied since last asked (its endpoint may have more: time for a search).
    fn emptied(&self) -> bool {
        self.emptied.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a lane with a resume position has room for a batch (see [`refill_room`]).
    fn refillable(&self, per_endpoint: usize) -> bool {
        self.lock().values().any(|lane| {
            let capacity = lane.capacity(per_endpoint);
            capacity.saturating_sub(lane.held) >= refill_room(capacity) && lane.resumable()
        })
    }

    /// Counts a claimed attempt against its endpoint's lane, moving the lane's resume position
    /// past it; returns the lane's turns to send.
    fn take(&self, delivery: &Claimed, per_endpoint: usize) -> Arc<Semaphore> {
        let mut lanes = self.lock();
        let lane = lanes.entry(delivery.endpoint_id.clone()).or_insert_with(|| Lane {
            tenant_id: delivery.tenant_id.clone(),
            held: 0,
            sending: Arc::new(Semaphore::new(per_endpoint)),
            resume: None,
            answer_ms: None,
            failing: false,
        });
        lane.held += 1;
        let later = lane.resume.as_ref().is_none_or(|resume| {
            resume.at.elapsed() >= RESUME_FOR || (delivery.due_at, &delivery.id) > (resume.due_at, &resume.id)
        });
        if later {
            lane.resume = Some(Resume { due_at: delivery.due_at, id: delivery.id.clone(), at: Instant::now() });
        }
        lane.sending.clone()
    }

    /// Frees an attempt's place in its endpoint's lane; `outcome` is its outcome, if it was sent.
    fn release(&self, endpoint: &str, outcome: Option<&Outcome>) {
        let mut lanes = self.lock();
        if let Some(lane) = lanes.get_mut(endpoint) {
            lane.held = lane.held.saturating_sub(1);
            if let Some(outcome) = outcome {
                let ms = f64::from(outcome.latency_ms);
                lane.answer_ms = Some(lane.answer_ms.map_or(ms, |average| average * 0.9 + ms * 0.1));
                lane.failing = outcome.verdict != Verdict::Succeeded;
            }
            // An empty lane is kept while it can resume, so that a top-up continues its queue.
            if lane.spent() {
                lanes.remove(endpoint);
                self.emptied.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// The free places a lane of `capacity` needs before it claims again: half, so that a busy lane
/// claims in large batches rather than a few rows after every outcome written (each claim has a
/// fixed cost). A lane holding nothing may always claim.
fn refill_room(capacity: usize) -> usize {
    (capacity / 2).max(1)
}

/// Which claim to make.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Claim {
    /// Look for every endpoint with due deliveries ([`SEARCH_CLAIM`]).
    Search,
    /// Only the lanes held, from where each last claim ended ([`REFILL_CLAIM`]).
    Refill,
}

/// The end shared by both claim statements. From `lanes` (tenant_id, id, room, oldest,
/// resume_due_at, resume_id): each lane's due rows in queue order from its resume position, as
/// many as it has room for, skipping rows another dispatcher is claiming; each counted as an
/// attempt and leased; returned with the event and the endpoint's URL and secrets.
///
/// The parameters of both statements: $1 endpoints held, $2 attempts held, $3 the capacity of a
/// lane not held yet, $4 the most to claim, $5 the lease in seconds, $6 this dispatcher, $7 and
/// $8 the lanes' resume positions, $9 the lanes' capacities, $10 the tenants of $1. A top-up
/// claims for a lane only with half its capacity free (see [`refill_room`]), a search with any.
macro_rules! claim_from_lanes {
    () => {
        "picked as (
             -- The longest-waiting endpoints first.
             select d.tenant_id, d.id, d.next_attempt_at as due_at from (select * from lanes order by oldest) l
             cross join lateral (
                 select d.tenant_id, d.id, d.next_attempt_at from webhook_deliveries d
                 where d.tenant_id = l.tenant_id and d.endpoint_id = l.id
                   and d.status = 'pending' and d.next_attempt_at <= now()
                   and (d.next_attempt_at, d.id) > (l.resume_due_at, l.resume_id)
                 order by d.next_attempt_at, d.id
                 limit l.room
                 for update skip locked
             ) d
             limit $4
         )
         update webhook_deliveries d set
             attempts = d.attempts + 1,
             next_attempt_at = now() + make_interval(secs => $5),
             locked_by = $6,
             last_attempt_at = now()
         from picked, events e, webhook_endpoints w
         where d.tenant_id = picked.tenant_id and d.id = picked.id
           and e.tenant_id = d.tenant_id and e.id = d.event_id
           and w.tenant_id = d.tenant_id and w.id = d.endpoint_id
         returning d.tenant_id, d.id, d.endpoint_id, d.attempts, picked.due_at, e.id as event_id, e.event_type,
                   e.occurred_at, e.data, w.url, w.secret, w.previous_secret, w.previous_secret_expires_at"
    };
}

/// The claim that looks for every endpoint with due deliveries: at start, on a notification, after
/// a lane emptied, and at least every [`POLL_INTERVAL`].
const SEARCH_CLAIM: &str = concat!(
    "with recursive held as (
         select * from unnest($10::text[], $1::text[], $2::int[], $7::timestamptz[], $8::text[], $9::int[])
             as h(tenant_id, endpoint_id, attempts, resume_due_at, resume_id, capacity)
     ), pending as (
         -- Each endpoint with pending deliveries, with its earliest next_attempt_at: one probe of
         -- webhook_deliveries_endpoint_due_idx per endpoint (a skip scan), however long its
         -- queue, so no endpoint's backlog can hide another's.
         (select tenant_id, endpoint_id, next_attempt_at from webhook_deliveries
          where status = 'pending'
          order by tenant_id, endpoint_id, next_attempt_at limit 1)
         union all
         select n.tenant_id, n.endpoint_id, n.next_attempt_at from pending p
         cross join lateral (
             select tenant_id, endpoint_id, next_attempt_at from webhook_deliveries
             where status = 'pending' and (tenant_id, endpoint_id) > (p.tenant_id, p.endpoint_id)
             order by tenant_id, endpoint_id, next_attempt_at limit 1
         ) n
     ), lanes as (
         -- From the front of each queue, whatever the lanes' resume positions: this is what finds
         -- rows due behind them.
         select w.tenant_id, w.id, coalesce(h.capacity, $3) - coalesce(h.attempts, 0) as room,
                p.next_attempt_at as oldest, '-infinity'::timestamptz as resume_due_at, '' as resume_id
         from pending p
         join webhook_endpoints w on w.tenant_id = p.tenant_id and w.id = p.endpoint_id
         left join held h on h.tenant_id = w.tenant_id and h.endpoint_id = w.id
         where p.next_attempt_at <= now()
           and w.enabled and (w.paused_until is null or w.paused_until <= now())
           -- Any room will do: a busy lane's top-ups keep it over half full.
           and coalesce(h.capacity, $3) - coalesce(h.attempts, 0) > 0
     ), ",
    claim_from_lanes!()
);

/// The claim that tops up the lanes held, each from where its last claim ended, without the
/// search for due endpoints: what a busy dispatcher does between searches. The search's probe
/// of each endpoint starts at the front of its queue, where the entries of the rows claimed and
/// delivered since the last vacuum lie, so it is the part of a claim whose cost grows as a
/// backlog drains.
const REFILL_CLAIM: &str = concat!(
    "with lanes as (
         select w.tenant_id, w.id, h.capacity - h.attempts as room, h.resume_due_at as oldest,
                h.resume_due_at, h.resume_id
         from unnest($10::text[], $1::text[], $2::int[], $7::timestamptz[], $8::text[], $9::int[])
             as h(tenant_id, endpoint_id, attempts, resume_due_at, resume_id, capacity)
         join webhook_endpoints w on w.tenant_id = h.tenant_id and w.id = h.endpoint_id
         where h.resume_due_at is not null
           and w.enabled and (w.paused_until is null or w.paused_until <= now())
           -- Every held lane has its capacity in $9; $3 is for lanes not held yet (the search's).
           and h.capacity - h.attempts >= greatest(h.capacity / 2, 1)
     ), ",
    claim_from_lanes!()
);

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
                            let sending = this.lanes.take(&delivery, this.settings.per_endpoint);
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

    /// Claims up to `limit` due deliveries, at most as many per endpoint as its lane has room for,
    /// none for disabled or paused endpoints.
    async fn claim(&self, claim: Claim, limit: usize) -> Result<Vec<Claimed>, sqlx::Error> {
        let held = self.lanes.snapshot(self.settings.per_endpoint);
        let statement = match claim {
            Claim::Search => SEARCH_CLAIM,
            Claim::Refill => REFILL_CLAIM,
        };
        let mut tx = begin_platform(&self.db).await?;
        let claimed = sqlx::query_as(statement)
            .bind(&held.endpoints)
            .bind(&held.attempts)
            .bind(i32::try_from(self.settings.per_endpoint * CLAIM_AHEAD_PROBE).unwrap_or(i32::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(self.settings.lease().as_secs_f64())
            .bind(&self.worker_id)
            .bind(&held.resume_due_at)
            .bind(&held.resume_id)
            .bind(&held.capacities)
            .bind(&held.tenants)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Gives back a claimed attempt that never started: it does not count, and the delivery is
    /// due again now. If this fails, the lease runs out instead (and the attempt counts).
    async fn unclaim(&self, delivery: &Claimed) {
        let unclaimed = async {
            let mut tx = begin_platform(&self.db).await?;
            sqlx::query(
                "update webhook_deliveries set attempts = attempts - 1, next_attempt_at = now()
                 where tenant_id = $1 and id = $2 and attempts = $3 and locked_by = $4 and status = 'pending'",
            )
            .bind(&delivery.tenant_id)
            .bind(&delivery.id)
            .bind(delivery.attempts)
            .bind(&self.worker_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        if let Err(error) = unclaimed.await {
            tracing::warn!(%error, delivery = %delivery.id, "cannot give back an attempt that never started");
        }
    }

    /// Signs and sends one delivery; never fails: every problem is an outcome.
    async fn attempt(&self, delivery: &Claimed) -> Outcome {
        let started_at = Utc::now();
        let started = Instant::now();
        let mut outcome = Outcome {
            tenant_id: delivery.tenant_id.clone(),
            delivery_id: delivery.id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            attempt: delivery.attempts,
            started_at,
            latency_ms: 0,
            status_code: None,
            verdict: Verdict::Failed,
            error: None,
            response_body: None,
        };
        match self.send(delivery, started_at).await {
            Ok((status, headers, body)) => {
                outcome.status_code = Some(i32::from(status));
                outcome.response_body = Some(body);
                outcome.verdict = match status {
                    200..=299 => Verdict::Succeeded,
                    410 => Verdict::Gone,
                    429 | 503 => retry_after(&headers).map_or(Verdict::Failed, Verdict::Throttled),
                    _ => Verdict::Failed,
                };
                if outcome.verdict != Verdict::Succeeded {
                    outcome.error = Some(match status {
                        300..=399 => format!("answered {status}: redirects are not followed"),
                        _ => format!("answered {status}"),
                    });
                }
            }
            Err(error) => outcome.error = Some(error),
        }
        outcome.latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        outcome
    }

    async fn send(&self, delivery: &Claimed, now: DateTime<Utc>) -> Result<(u16, HeaderMap, String), String> {
        // reqwest resolves no name for an address literal, so the guard checks those here; names
        // are checked by its resolver at connect time.
        let url = self.guard.check_url(&delivery.url, false).map_err(|refusal| refusal.to_string())?;
        let secrets = self.secrets(delivery, now).map_err(|e| format!("cannot open the signing secret: {e}"))?;
        let event = Event {
            id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            timestamp: delivery.occurred_at,
            tenant_id: delivery.tenant_id.clone(),
            data: delivery.data.clone(),
        };
        let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        let timestamp = now.timestamp();
        let signatures = signing::sign(&secrets, &event.id, timestamp, &body);
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.standard)
            .header("x-webhook-signature", signatures.payymo)
            .body(body);
        let mut response = request.send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let mut kept = Vec::new();
        while kept.len() < RESPONSE_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_BODY_LIMIT - kept.len())]),
                Ok(None) => break,
                // The status is the answer; a body cut short does not change it.
                Err(_) => break,
            }
        }
        Ok((status, headers, String::from_utf8_lossy(&kept).into_owned()))
    }

    /// The endpoint's live secrets: the current one, and the one it replaced while that is live.
    fn secrets(
        &self,
        delivery: &Claimed,
        now: DateTime<Utc>,
    ) -> Result<Vec<signing::SigningSecret>, crate::crypto::CryptoError> {
        let open =
            |sealed: &str| endpoints::open_secret(&self.keys, &delivery.tenant_id, &delivery.endpoint_id, sealed);
        let mut secrets = vec![open(&delivery.secret)?];
        if let (Some(previous), Some(until)) = (&delivery.previous_secret, delivery.previous_secret_expires_at)
            && until > now
        {
            secrets.push(open(previous)?);
        }
        Ok(secrets)
    }

    /// Writes outcomes as they arrive, many per transaction, until every sender is gone.
    async fn record_until_closed(self: Arc<Self>, mut received: mpsc::UnboundedReceiver<Outcome>) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while received.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            let mut delay = Duration::from_millis(100);
            let started = Instant::now();
            loop {
                match self.record(&batch).await {
                    Ok(()) => break,
                    // Past the lease the rows are due again elsewhere; these outcomes no longer count.
                    Err(error) if started.elapsed() > self.settings.lease() => {
                        tracing::warn!(%error, count = batch.len(), "cannot record webhook attempts; they will be sent again");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot record webhook attempts yet; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            for outcome in batch.drain(..) {
                self.lanes.release(&outcome.endpoint_id, Some(&outcome));
            }
            self.wake.notify_one();
        }
    }

    /// Records a batch of attempts and their consequences in one transaction.
    async fn record(&self, batch: &[Outcome]) -> Result<(), sqlx::Error> {
        let max_attempts = self.settings.max_attempts();
        let mut next: Vec<(&'static str, Option<DateTime<Utc>>)> = Vec::with_capacity(batch.len());
        for outcome in batch {
            let retry = || {
                let after = self.settings.retry_delay(outcome.attempt)?;
                let after = match outcome.verdict {
                    Verdict::Throttled(wait) => after.max(wait),
                    _ => after,
                };
                Some(Utc::now() + chrono::Duration::from_std(after).ok()?)
            };
            next.push(match outcome.verdict {
                Verdict::Succeeded => ("succeeded", None),
                Verdict::Gone => ("failed", None),
                Verdict::Failed | Verdict::Throttled(_) if outcome.attempt >= max_attempts => ("failed", None),
                Verdict::Failed | Verdict::Throttled(_) => match retry() {
                    Some(at) => ("pending", Some(at)),
                    None => ("failed", None),
                },
            });
        }
        let column = |f: &dyn Fn(&Outcome) -> String| batch.iter().map(f).collect::<Vec<_>>();
        let tenants = column(&|o| o.tenant_id.clone());
        let deliveries = column(&|o| o.delivery_id.clone());
        let attempt: Vec<i32> = batch.iter().map(|o| o.attempt).collect();
        let started: Vec<DateTime<Utc>> = batch.iter().map(|o| o.started_at).collect();
        let latency: Vec<i32> = batch.iter().map(|o| o.latency_ms).collect();
        let status_code: Vec<Option<i32>> = batch.iter().map(|o| o.status_code).collect();
        let succeeded: Vec<bool> = batch.iter().map(|o| o.verdict == Verdict::Succeeded).collect();
        let error: Vec<Option<String>> = batch.iter().map(|o| o.error.clone()).collect();
        let body: Vec<Option<String>> = batch.iter().map(|o| o.response_body.clone()).collect();
        let new_status: Vec<&str> = next.iter().map(|(s, _)| *s).collect();
        let next_at: Vec<Option<DateTime<Utc>>> = next.iter().map(|(_, at)| *at).collect();

        let mut tx = begin_platform(&self.db).await?;
        sqlx::query(
            "insert into webhook_attempts (tenant_id, delivery_id, attempt, started_at, latency_ms, status_code,
                 succeeded, error, response_body)
             select * from unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::int[],
                 $7::bool[], $8::text[], $9::text[]) as u(tenant_id, delivery_id)
             -- An endpoint deleted mid-attempt took its deliveries with it: nothing to record.
             where exists (select 1 from webhook_deliveries d where d.tenant_id = u.tenant_id and d.id = u.delivery_id)
             on conflict do nothing",
        )
        .bind(&tenants)
        .bind(&deliveries)
        .bind(&attempt)
        .bind(&started)
        .bind(&latency)
        .bind(&status_code)
        .bind(&succeeded)
        .bind(&error)
        .bind(&body)
        .execute(&mut *tx)
        .await?;
        // Only while this dispatcher still holds the attempt: after its lease ran out another may
        // have claimed the row, and that attempt's outcome is the one that counts. The claim
        // (locked_by, attempts) names one attempt, whose outcome is written once, so the row is
        // still pending; saying `status = 'pending'` as well lets the planner pick the partial due
        // index on tenant_id alone (the tenant's whole queue per outcome) while statistics still
        // show few pending rows, as they do after every burst. (Bench finding.)
        sqlx::query(
            "update webhook_deliveries d set
                 status = u.status,
                 next_attempt_at = coalesce(u.next_at, d.next_attempt_at),
                 completed_at = case when u.status = 'pending' then null else now() end,
                 last_status_code = u.status_code,
                 last_error = u.error
             from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::timestamptz[], $6::int[], $7::text[])
                  as u(tenant_id, id, attempt, status, next_at, status_code, error)
             where d.tenant_id = u.tenant_id and d.id = u.id
               and d.attempts = u.attempt and d.locked_by = $8",
        )
        .bind(&tenants)
        .bind(&deliveries)
        .bind(&attempt)
        .bind(&new_status)
        .bind(&next_at)
        .bind(&status_code)
        .bind(&error)
        .bind(&self.worker_id)
        .execute(&mut *tx)
        .await?;
        self.record_endpoint_health(&mut tx, batch).await?;
        tx.commit().await?;

        for (outcome, (status, _)) in batch.iter().zip(&next) {
            let label = match (outcome.verdict, *status) {
                (Verdict::Succeeded, _) => "succeeded",
                (Verdict::Gone, _) => "gone",
                (_, "pending") => "retrying",
                _ => "failed",
            };
            self.metrics.webhooks.attempt(label, f64::from(outcome.latency_ms) / 1000.0);
        }
        Ok(())
    }

    /// Per endpoint in the batch: its last outcome decides whether it is healthy or failing; an
    /// endpoint failing without a break for `disable_after`, or answering 410, is disabled and
    /// `webhook_endpoint.disabled` announced; `Retry-After` pauses it.
    async fn record_endpoint_health(&self, tx: &mut sqlx::PgConnection, batch: &[Outcome]) -> Result<(), sqlx::Error> {
        let mut last: HashMap<(&str, &str), &Outcome> = HashMap::new();
        // Per endpoint: failures after its last success in the batch, and whether it had one.
        let mut streak: HashMap<(&str, &str), (i32, bool)> = HashMap::new();
        for outcome in batch {
            let key = (outcome.tenant_id.as_str(), outcome.endpoint_id.as_str());
            last.insert(key, outcome);
            let entry = streak.entry(key).or_default();
            *entry = if outcome.verdict == Verdict::Succeeded { (0, true) } else { (entry.0 + 1, entry.1) };
        }
        let (mut healthy_t, mut healthy_e, mut failing_t, mut failing_e) = (vec![], vec![], vec![], vec![]);
        let (mut failures, mut reset) = (vec![], vec![]);
        for ((tenant, endpoint), outcome) in &last {
            if outcome.verdict == Verdict::Succeeded {
                healthy_t.push(*tenant);
                healthy_e.push(*endpoint);
            } else {
                failing_t.push(*tenant);
                failing_e.push(*endpoint);
                let (count, had_success) = streak[&(*tenant, *endpoint)];
                failures.push(count);
                reset.push(had_success);
            }
        }
        if !healthy_t.is_empty() {
            sqlx::query(
                "update webhook_endpoints w set failing_since = null, consecutive_failures = 0
                 from unnest($1::text[], $2::text[]) as u(tenant_id, id)
                 where w.tenant_id = u.tenant_id and w.id = u.id
                   and (w.failing_since is not null or w.consecutive_failures > 0)",
            )
            .bind(&healthy_t)
            .bind(&healthy_e)
            .execute(&mut *tx)
            .await?;
        }
        if failing_t.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "update webhook_endpoints w set
                 failing_since = coalesce(w.failing_since, now()),
                 consecutive_failures = s.failures,
                 paused_until = case when s.failures < $5 then w.paused_until
                                     else greatest(w.paused_until, now() + make_interval(
                                         secs => least(power(2, least(s.failures - $5, 30)), $6))) end
             from (select u.tenant_id, u.id,
                          case when u.reset then 0 else e.consecutive_failures end + u.failures as failures
                   from unnest($1::text[], $2::text[], $3::int[], $4::bool[]) as u(tenant_id, id, failures, reset)
                   join webhook_endpoints e on e.tenant_id = u.tenant_id and e.id = u.id) s
             where w.tenant_id = s.tenant_id and w.id = s.id",
        )
        .bind(&failing_t)
        .bind(&failing_e)
        .bind(&failures)
        .bind(&reset)
        .bind(BACKOFF_AFTER)
        .bind(MAX_BACKOFF.as_secs_f64())
        .execute(&mut *tx)
        .await?;
        let mut disable: Vec<(&str, &str, String)> = Vec::new();
        for ((tenant, endpoint), outcome) in &last {
            match outcome.verdict {
                Verdict::Gone => disable.push((tenant, endpoint, "the receiver answered 410 Gone".to_owned())),
                Verdict::Throttled(wait) => {
                    sqlx::query(
                        "update webhook_endpoints set paused_until = greatest(paused_until, now() + make_interval(secs => $3))
                         where tenant_id = $1 and id = $2",
                    )
                    .bind(tenant)
                    .bind(endpoint)
                    .bind(wait.as_secs_f64())
                    .execute(&mut *tx)
                    .await?;
                }
                _ => {}
            }
        }
        let overdue: Vec<(String, String)> = sqlx::query_as(
            "select w.tenant_id, w.id from webhook_endpoints w
             join unnest($1::text[], $2::text[]) as u(tenant_id, id) on w.tenant_id = u.tenant_id and w.id = u.id
             where w.enabled and w.failing_since < now() - make_interval(secs => $3)",
        )
        .bind(&failing_t)
        .bind(&failing_e)
        .bind(self.settings.disable_after.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        let reason = format!("every attempt failed for {} without a break", spoken(self.settings.disable_after));
        for (tenant, endpoint) in &overdue {
            if !disable.iter().any(|(t, e, _)| t == tenant && e == endpoint) {
                disable.push((tenant, endpoint, reason.clone()));
            }
        }
        for (tenant, endpoint, reason) in disable {
            disable_endpoint(tx, tenant, endpoint, &reason).await?;
        }
        Ok(())
    }
}

/// Disables an enabled endpoint with `reason` and announces it with `webhook_endpoint.disabled`.
pub async fn disable_endpoint(
    tx: &mut sqlx::PgConnection,
    tenant: &str,
    endpoint: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let disabled: Option<endpoints::WebhookEndpoint> = sqlx::query_as(&format!(
        "update webhook_endpoints set enabled = false, disabled_reason = $3, disabled_at = now()
         where tenant_id = $1 and id = $2 and enabled
         returning {}",
        endpoints::ENDPOINT_COLUMNS
    ))
    .bind(tenant)
    .bind(endpoint)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(disabled) = disabled else { return Ok(false) };
    tracing::warn!(tenant, endpoint, reason, "webhook endpoint disabled");
    events::record(tx, &TenantId::from_db(tenant.to_owned()), "webhook_endpoint.disabled", &disabled).await?;
    Ok(true)
}

/// A duration as a person says it, in its largest whole unit: `5 days`, `36 hours`, `1 second`.
fn spoken(duration: Duration) -> String {
    let seconds = duration.as_secs().max(1);
    let (count, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")]
        .into_iter()
        .find(|(size, _)| seconds.is_multiple_of(*size))
        .map_or((seconds, "second"), |(size, unit)| (seconds / size, unit));
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// The wait a 429 or 503 asks for: `Retry-After` in seconds or as an HTTP date, bounded.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
            (at - Utc::now()).to_std().unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An error as one line that says what went wrong (timeout, refused address, connection).
fn describe(error: reqwest::Error) -> String {
    use std::error::Error;
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut message = kind.to_owned();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        headers.insert(RETRY_AFTER, "99999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        let soon = (Utc::now() + chrono::Duration::seconds(60)).to_rfc2822().replace("+0000", "GMT");
        headers.insert(RETRY_AFTER, soon.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60), "{wait:?}");
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn durations_are_spoken_in_their_largest_whole_unit() {
        assert_eq!(spoken(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(spoken(Duration::from_secs(86_400)), "1 day");
        assert_eq!(spoken(Duration::from_secs(36 * 3_600)), "36 hours");
        assert_eq!(spoken(Duration::from_secs(90)), "90 seconds");
        assert_eq!(spoken(Duration::from_secs(1)), "1 second");
    }

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
