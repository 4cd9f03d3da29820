//! Write marks: the primary's WAL position after a caller's last write, so that the caller's next
//! reads go to the replica only once it has replayed that far (read-your-writes).
//!
//! With Redis (`REDIS_URL`) the marks are shared by every instance, so a `GET` answered by another
//! instance than the `POST` before it still sees the write. Without Redis each instance keeps its
//! own, and a caller spread over several instances can read its own write up to the replica's
//! lag bound late; `docs/scaling.md` says to run Redis beside a replica.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::ReplicaError;

/// The longest a Redis call may take before the mark is treated as unknown.
const REDIS_BUDGET: Duration = Duration::from_millis(200);
const REDIS_PREFIX: &str = "payymo:rw:";
/// Keeps the larger of the stored and the new position, so a slower instance recording an older
/// write cannot move a caller's mark back, and renews the expiry.
const KEEP_MAX_LUA: &str = r"
local current = redis.call('GET', KEYS[1])
if not current or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1";
/// Local marks are swept of expired entries once the map passes this size.
const LOCAL_SWEEP_AT: usize = 10_000;

/// Where the marks are kept.
pub enum Marks {
    Local(Mutex<HashMap<String, (i64, Instant)>>),
    Redis { connection: ConnectionManager, script: Script },
}

/// A caller's mark: none, a position, or unknown (Redis did not answer), which reads as "use the
/// primary".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    None,
    At(i64),
    Unknown,
}

impl Marks {
    pub fn local() -> Self {
        Self::Local(Mutex::default())
    }

    pub async fn redis(url: &str) -> Result<Self, ReplicaError> {
        let client = redis::Client::open(url).map_err(ReplicaError::Redis)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_BUDGET))
            .set_response_timeout(Some(REDIS_BUDGET))
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client, config).await.map_err(ReplicaError::Redis)?;
        Ok(Self::Redis { connection, script: Script::new(KEEP_MAX_LUA) })
    }

    /// Records that `caller` wrote up to `lsn`; the mark lasts `ttl`. False when it could not be
    /// recorded (Redis failed or did not answer in time).
    pub async fn record(&self, caller: &str, lsn: i64, ttl: Duration) -> bool {
        match self {
            Self::Local(marks) => {
                let mut marks = marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                if marks.len() >= LOCAL_SWEEP_AT {
                    marks.retain(|_, (_, until)| *until > now);
                }
                let entry = marks.entry(caller.to_owned()).or_insert((lsn, now + ttl));
                *entry = (entry.0.max(lsn), now + ttl);
                true
            }
            Self::Redis { connection, script } => {
                let mut connection = connection.clone();
                let mut invocation = script.key(format!("{REDIS_PREFIX}{caller}"));
                invocation.arg(lsn).arg(ttl.as_millis() as u64);
                match tokio::time::timeout(REDIS_BUDGET, invocation.invoke_async::<i64>(&mut connection)).await {
                    Ok(Ok(_)) => true,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "read replica: cannot record a write mark in Redis");
                        false
                    }
                    Err(_) => {
                        tracing::warn!("read replica: Redis did not record a write mark in time");
                        false
                    }
                }
            }
        }
    }

    /// `caller`'s mark, if it has one that has not expired.
    pub async fn get(&self, caller: &str) -> Mark {
        match self {
            Self::Local(marks) => {
                let marks = marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match marks.get(caller) {
                    Some((lsn, until)) if *until > Instant::now() => Mark::At(*lsn),
                    _ => Mark::None,
                }
            }
            Self::Redis { connection, .. } => {
                let mut connection = connection.clone();
                let get = redis::cmd("GET").arg(format!("{REDIS_PREFIX}{caller}")).to_owned();
                match tokio::time::timeout(REDIS_BUDGET, get.query_async::<Option<i64>>(&mut connection)).await {
                    Ok(Ok(Some(lsn))) => Mark::At(lsn),
                    Ok(Ok(None)) => Mark::None,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "read replica: cannot read a write mark from Redis; reading from the primary");
                        Mark::Unknown
                    }
                    Err(_) => Mark::Unknown,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_mark_keeps_the_furthest_write_until_it_expires() {
        let marks = Marks::local();
        assert_eq!(marks.get("a").await, Mark::None);
        marks.record("a", 200, Duration::from_secs(60)).await;
        marks.record("a", 100, Duration::from_secs(60)).await;
        assert_eq!(marks.get("a").await, Mark::At(200));
        assert_eq!(marks.get("b").await, Mark::None);
        marks.record("c", 300, Duration::from_millis(1)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(marks.get("c").await, Mark::None);
    }
}
