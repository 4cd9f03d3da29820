//! Reads that may lag a little, served by a streaming replica (`DATABASE_READ_URL`).
//!
//! Without a replica every read goes to the primary and nothing here costs anything. With one,
//! an endpoint that opted in (list, get, stats and export; `src/http/reads.rs`) reads from the
//! replica only when all of these hold, and otherwise from the primary:
//!
//! - the last probe reached the replica, found it a standby, and found it at most
//!   `PAYYMO_REPLICA_MAX_LAG` behind (the probe runs every [`PROBE_EVERY`], and the time since it
//!   counts as lag too);
//! - the caller has no write the replica has not replayed yet ([`marks`]): every write request
//!   leaves the primary's WAL position as the caller's mark;
//! - beginning the transaction there works; if it fails the read goes to the primary at once and
//!   the replica is set aside until the next probe reaches it.
//!
//! Everything that writes, authentication, idempotency keys and the background workers use the
//! primary pool directly and never come here.

pub mod lag;
pub mod marks;
pub mod probe;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::domain::ids::TenantId;
use marks::{Mark, Marks};
use probe::{PROBE_EVERY, Probe, Prober};

/// The WAL position a caller's write has reached: insert, not flush, so that it is never behind
/// the write's commit record whatever `synchronous_commit` says.
const WRITE_POSITION_SQL: &str = "select (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8";

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("REDIS_URL (for the replica's write marks): {0}")]
    Redis(#[source] redis::RedisError),
    #[error("cannot read the primary's WAL position: {0}")]
    Primary(#[source] sqlx::Error),
    #[error("cannot reach the replica: {0}")]
    Unreachable(#[source] sqlx::Error),
    #[error("the replica did not answer within {0:?}")]
    Timeout(Duration),
    #[error("DATABASE_READ_URL is not a standby (pg_is_in_recovery() is false); not reading from it")]
    NotAStandby,
}

/// Which database served a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Primary,
    Replica,
}

/// Why a read went where it went, as counted in `payymo_db_reads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Because {
    /// The replica was fresh enough and had the caller's writes.
    Fresh,
    /// The last probe did not reach the replica, or found no standby.
    Unavailable,
    /// The replica was further behind than the bound.
    Lagging,
    /// The caller wrote something the replica has not replayed yet (or Redis could not say).
    OwnWrite,
    /// Beginning on the replica failed, or a read there did; the primary answered instead.
    Fallback,
    /// The replica's pool had no free connection in time.
    Busy,
}

impl Because {
    fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Unavailable => "unavailable",
            Self::Lagging => "lagging",
            Self::OwnWrite => "own_write",
            Self::Fallback => "fallback",
            Self::Busy => "busy",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadLabels {
    served_by: &'static str,
    because: &'static str,
}

/// The replica's metrics, registered with the process's others.
#[derive(Debug, Clone, Default)]
pub struct ReadMetrics {
    reads: Family<ReadLabels, Counter>,
    lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    available: Gauge,
}

impl ReadMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "payymo_db_reads",
            "Reads of the endpoints that may use the replica, by the database that served them and why (only with DATABASE_READ_URL)",
            metrics.reads.clone(),
        );
        registry.register(
            "payymo_db_replica_lag_seconds",
            "How far the replica is behind the primary, as of the last probe (only with DATABASE_READ_URL)",
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "payymo_db_replica_available",
            "1 while reads may go to the replica (reached, a standby, within PAYYMO_REPLICA_MAX_LAG), else 0",
            metrics.available.clone(),
        );
        metrics
    }

    fn count(&self, source: Source, because: Because) {
        let served_by = match source {
            Source::Primary => "primary",
            Source::Replica => "replica",
        };
        self.reads.get_or_create(&ReadLabels { served_by, because: because.as_str() }).inc();
    }
}

/// The pools reads may use: always the primary, and the replica when configured.
pub struct Reads {
    primary: PgPool,
    replica: Option<Replica>,
    metrics: ReadMetrics,
}

struct Replica {
    pool: PgPool,
    max_lag: Duration,
    /// The last probe that reached both databases and found a standby; `None` after one that
    /// did not (or before the first), or after a read failed there.
    last: Mutex<Option<Probe>>,
    marks: Marks,
    /// Marks that could not be recorded where they belong (Redis did not answer, or the primary's
    /// position could not be read): "this caller reads the primary" for a mark's lifetime.
    unrecorded: Marks,
}

/// Where a read goes.
pub struct ReadRoute<'a> {
    reads: &'a Reads,
    replica: Option<&'a Replica>,
    /// Why, as counted in `payymo_db_reads`; `None`: not counted (a request's later reads).
    because: Option<Because>,
}

impl Reads {
    /// Every read on the primary.
    pub fn primary_only(primary: PgPool, metrics: ReadMetrics) -> Self {
        Self { primary, replica: None, metrics }
    }

    /// Reads that may use `replica` while it is at most `max_lag` behind; write marks in Redis when
    /// `redis_url` is given, else in this process.
    pub async fn with_replica(
        primary: PgPool,
        replica: PgPool,
        max_lag: Duration,
        redis_url: Option<&str>,
        metrics: ReadMetrics,
    ) -> Result<Self, ReplicaError> {
        let marks = match redis_url {
            Some(url) => Marks::redis(url).await?,
            None => Marks::local(),
        };
        let replica = Replica { pool: replica, max_lag, last: Mutex::default(), marks, unrecorded: Marks::local() };
        Ok(Self { primary, replica: Some(replica), metrics })
    }

    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Where `caller`'s reads go now (`caller`: tenant and credential, as rate limits count).
    pub async fn route(&self, caller: &str) -> ReadRoute<'_> {
        let Some(replica) = &self.replica else {
            return ReadRoute { reads: self, replica: None, because: Some(Because::Unavailable) };
        };
        let Some(probe) = replica.last() else {
            return ReadRoute { reads: self, replica: None, because: Some(Because::Unavailable) };
        };
        if probe.staleness_now() > replica.max_lag {
            return ReadRoute { reads: self, replica: None, because: Some(Because::Lagging) };
        }
        for marks in [&replica.unrecorded, &replica.marks] {
            match marks.get(caller).await {
                Mark::None => {}
                Mark::At(lsn) if lsn <= probe.replayed => {}
                Mark::At(_) | Mark::Unknown => {
                    return ReadRoute { reads: self, replica: None, because: Some(Because::OwnWrite) };
                }
            }
        }
        ReadRoute { reads: self, replica: Some(replica), because: Some(Because::Fresh) }
    }

    /// A route to the primary whatever the replica's state: a read answered again there after it
    /// failed or found nothing on the replica (counted as a fallback).
    pub fn primary_route(&self) -> ReadRoute<'_> {
        ReadRoute { reads: self, replica: None, because: Some(Because::Fallback) }
    }

    /// A route to the replica (when there is one) without asking again whether it is fresh: for
    /// the later reads of a request whose first read went there, so that one answer (an export's
    /// pages) never steps back in time from the primary to the replica. The replica only moves
    /// forward, so staying on it is consistent.
    pub fn replica_route(&self) -> ReadRoute<'_> {
        ReadRoute { reads: self, replica: self.replica.as_ref(), because: None }
    }

    /// Sets the replica aside until the next probe reaches it: a read failed there.
    pub fn replica_failed(&self) {
        if let Some(replica) = &self.replica {
            replica.set_last(None);
            self.metrics.available.set(0);
        }
    }

    /// Records that `caller` has just written: its reads stay on the primary until the replica
    /// has replayed the primary's current WAL position. Without a replica, does nothing.
    pub async fn wrote(&self, caller: &str) {
        let Some(replica) = &self.replica else { return };
        // A mark outlives any write the replica could still lack while it is within bounds.
        let ttl = replica.max_lag + Duration::from_secs(10);
        let recorded = match sqlx::query_scalar::<_, i64>(WRITE_POSITION_SQL).fetch_one(&self.primary).await {
            Ok(lsn) => replica.marks.record(caller, lsn, ttl).await,
            Err(error) => {
                tracing::warn!(%error, "read replica: cannot read the primary's WAL position after a write");
                false
            }
        };
        if !recorded {
            // No position, or nowhere shared to keep it: this caller reads the primary here.
            replica.unrecorded.record(caller, i64::MAX, ttl).await;
        }
    }

    /// Measures the replica every [`PROBE_EVERY`] until `shutdown`. Without a replica, returns.
    pub async fn probe_until(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(replica) = &self.replica else { return };
        let window = (replica.max_lag * 4).max(Duration::from_secs(10));
        let mut prober =
            Prober::new((*self.primary.connect_options()).clone(), (*replica.pool.connect_options()).clone(), window);
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_usable = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let outcome = prober.probe().await;
            replica.set_last(outcome.as_ref().ok().copied());
            let usable = match &outcome {
                Ok(probe) => {
                    self.metrics.lag_seconds.set(probe.staleness.as_secs_f64());
                    probe.staleness <= replica.max_lag
                }
                Err(_) => false,
            };
            self.metrics.available.set(i64::from(usable));
            if was_usable != Some(usable) {
                match &outcome {
                    Ok(probe) if usable => tracing::info!(lag_ms = probe.staleness.as_millis(), "read replica in use"),
                    Ok(probe) => tracing::warn!(
                        lag_ms = probe.staleness.as_millis(),
                        max_lag_ms = replica.max_lag.as_millis(),
                        "read replica too far behind; reading from the primary"
                    ),
                    Err(error) => tracing::warn!(%error, "read replica unavailable; reading from the primary"),
                }
                was_usable = Some(usable);
            }
        }
    }
}

impl Replica {
    fn last(&self) -> Option<Probe> {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_last(&self, last: Option<Probe>) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = last;
    }
}

impl ReadRoute<'_> {
    /// Not counted in `payymo_db_reads`: a request's later reads, which follow its first.
    pub fn uncounted(mut self) -> Self {
        self.because = None;
        self
    }

    fn count(&self, source: Source, because: Because) {
        if self.because.is_some() && self.reads.replica.is_some() {
            self.reads.metrics.count(source, because);
        }
    }

    /// Begins a read-only transaction bound to `tenant` where this route says, falling back to
    /// the primary if the replica cannot begin one; returns it with the database that served it.
    pub async fn begin(&self, tenant: &TenantId) -> Result<(Transaction<'static, Postgres>, Source), sqlx::Error> {
        if let Some(replica) = self.replica {
            match super::tenant::begin_tenant(&replica.pool, tenant).await {
                Ok(tx) => {
                    self.count(Source::Replica, Because::Fresh);
                    return Ok((tx, Source::Replica));
                }
                // Busy, not broken: this read goes to the primary, the next ones may not.
                Err(sqlx::Error::PoolTimedOut) => self.count(Source::Primary, Because::Busy),
                Err(error) => {
                    tracing::warn!(%error, "read replica failed; reading from the primary");
                    self.reads.replica_failed();
                    self.count(Source::Primary, Because::Fallback);
                }
            }
        } else if let Some(because) = self.because {
            self.count(Source::Primary, because);
        }
        Ok((super::tenant::begin_tenant(&self.reads.primary, tenant).await?, Source::Primary))
    }
}
