//! Claiming due deliveries: the two claim statements and giving back an attempt never started.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{CLAIM_AHEAD_PROBE, Dispatcher};
use crate::db::tenant::begin_platform;

/// A claimed delivery, with what sending it needs.
#[derive(Debug, FromRow)]
pub(super) struct Claimed {
    pub tenant_id: String,
    pub id: String,
    pub endpoint_id: String,
    pub attempts: i32,
    /// Its place in the endpoint's queue before the claim moved it: `next_attempt_at` then.
    pub due_at: DateTime<Utc>,
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// Which claim to make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Claim {
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

impl Dispatcher {
    /// Claims up to `limit` due deliveries, at most as many per endpoint as its lane has room for,
    /// none for disabled or paused endpoints.
    pub(super) async fn claim(&self, claim: Claim, limit: usize) -> Result<Vec<Claimed>, sqlx::Error> {
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
    pub(super) async fn unclaim(&self, delivery: &Claimed) {
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
}
