//! The probe: every [`PROBE_EVERY`], the primary's flushed WAL position and the replica's replayed
//! one, each read on a connection of the probe's own (never one a request is waiting for, so a
//! busy pool is not read as lag and a full replica pool does not look like an outage).

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};

use super::{ReplicaError, lag::LagTracker};

/// How often the replica's lag is measured.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The longest a probe query (with its connect) may take before the replica counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The primary's flushed WAL position as a number of bytes.
const PRIMARY_POSITION_SQL: &str = "select (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8";
const REPLICA_POSITION_SQL: &str = "select pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8";

/// What the last probe that reached both databases found.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// The replica's replayed WAL position.
    pub replayed: i64,
    /// How far behind the primary it was.
    pub staleness: Duration,
    pub at: Instant,
}

impl Probe {
    /// The staleness now: as measured, plus the time since.
    pub fn staleness_now(&self) -> Duration {
        self.staleness.saturating_add(self.at.elapsed())
    }
}

/// The probe's connections and the primary's recent positions.
pub struct Prober {
    primary_options: PgConnectOptions,
    replica_options: PgConnectOptions,
    primary: Option<PgConnection>,
    replica: Option<PgConnection>,
    lag: LagTracker,
}

impl Prober {
    pub fn new(primary_options: PgConnectOptions, replica_options: PgConnectOptions, window: Duration) -> Self {
        let name = "payymo-replica-probe";
        Self {
            primary_options: primary_options.application_name(name),
            replica_options: replica_options.application_name(name),
            primary: None,
            replica: None,
            lag: LagTracker::new(window),
        }
    }

    /// Reads the primary's position, then the replica's, and works out the replica's staleness.
    /// A connection that failed is dropped and opened again next time.
    pub async fn probe(&mut self) -> Result<Probe, ReplicaError> {
        let (sampled_at, position) = {
            let primary = connection(&mut self.primary, &self.primary_options).await.map_err(ReplicaError::Primary)?;
            // Timed once the connection is in hand: only the query's own time is uncertain.
            let sampled_at = Instant::now();
            (sampled_at, timed(sqlx::query_scalar::<_, i64>(PRIMARY_POSITION_SQL).fetch_one(primary)).await)
        };
        let position = position.inspect_err(|_| self.primary = None).map_err(|e| e.or_else(ReplicaError::Primary))?;
        self.lag.primary(sampled_at, position);

        let answer = {
            let replica =
                connection(&mut self.replica, &self.replica_options).await.map_err(ReplicaError::Unreachable)?;
            timed(sqlx::query_as::<_, (bool, Option<i64>)>(REPLICA_POSITION_SQL).fetch_one(replica)).await
        };
        match answer.inspect_err(|_| self.replica = None).map_err(|e| e.or_else(ReplicaError::Unreachable))? {
            (true, Some(replayed)) => {
                let at = Instant::now();
                let staleness = self.lag.staleness(replayed, at).unwrap_or(Duration::MAX);
                Ok(Probe { replayed, staleness, at })
            }
            _ => Err(ReplicaError::NotAStandby),
        }
    }
}

/// A query's failure: it timed out, or the database said no.
enum Failed {
    Timeout,
    Query(sqlx::Error),
}

impl Failed {
    fn or_else(self, wrap: fn(sqlx::Error) -> ReplicaError) -> ReplicaError {
        match self {
            Self::Timeout => ReplicaError::Timeout(PROBE_TIMEOUT),
            Self::Query(error) => wrap(error),
        }
    }
}

async fn timed<T>(run: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, Failed> {
    match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Failed::Query(error)),
        Err(_) => Err(Failed::Timeout),
    }
}

/// The open connection in `slot`, opening one if there is none.
async fn connection<'a>(
    slot: &'a mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> Result<&'a mut PgConnection, sqlx::Error> {
    if slot.is_none() {
        let connect = tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(options));
        *slot = Some(connect.await.map_err(|_| sqlx::Error::PoolTimedOut)??);
    }
    slot.as_mut().ok_or(sqlx::Error::PoolClosed)
}
