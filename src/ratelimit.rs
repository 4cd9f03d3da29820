//! Per-credential rate limiting with GCRA, in process or shared through Redis.
//!
//! # The algorithm
//!
//! GCRA (the generic cell rate algorithm) is a leaky bucket that stores a single number per key:
//! the *theoretical arrival time* (TAT), the moment at which the bucket would be empty again if no
//! further request came. A [`Quota`] of `limit` requests per `period` gives
//!
//! - the *emission interval* `T = period / limit`: the steady spacing between requests, and
//! - the *tolerance* `limit × T` (≈ `period`): how far the TAT may run ahead of now, so that a
//!   client that has been idle can send `limit` requests at once.
//!
//! For a request arriving at `now`, the candidate `new_tat = max(tat, now) + T`. If
//! `new_tat - now <= limit × T` the request is allowed and `new_tat` is stored; otherwise it is
//! refused and nothing changes. Everything a response header needs falls out of the same numbers:
//! `new_tat - now` is the time until the bucket is full again ([`Decision::reset_after`]), the
//! spare tolerance divided by `T` is how many requests could still go now
//! ([`Decision::remaining`]), and on refusal the excess over the tolerance is how long to wait
//! ([`Decision::retry_after`]). A TAT in the past means the same as no entry at all, which is what
//! lets both backends forget keys once they have gone quiet.
//!
//! The arithmetic lives in one pure function on integer microseconds, shared by both backends.
//! `T` is rounded *up* to a whole microsecond (at least 1), and the tolerance is `limit × T`
//! rather than `period`, so that a burst is exactly `limit` no matter how the division rounds;
//! the price is a rate at most 1 µs per request slower than asked (and no more than one million
//! requests per second per key). Periods longer than [`MAX_PERIOD`] are clamped to it.
//!
//! # Backends
//!
//! [`RateLimiter::local`] keeps the TATs in memory, behind sharded mutexes, on a monotonic clock.
//! Each server instance then enforces its own limit.
//!
//! [`RateLimiter::redis`] keeps them in Redis so that every instance pointed at the same Redis
//! shares *one* limit. A Lua script reads the clock, compares and stores atomically, so concurrent
//! requests from many instances cannot both take the last slot. The script reads the clock with
//! `redis.call('TIME')`, the Redis server's clock, instead of taking `now` from the caller: every
//! instance then measures against the same clock, so instances need no clock synchronisation and
//! a skewed host cannot hand out extra requests or lock a client out. (This needs Redis ≥ 5, where
//! scripts replicate their effects rather than their source, which is what allows `TIME` before a
//! write.) Keys are stored as `payymo:rl:{key}` with an expiry equal to the time until the entry
//! stops mattering, so Redis forgets idle keys by itself.
//!
//! If Redis fails while serving a request, the limiter **fails open**: see [`RateLimiter::check`].

use std::{
    collections::HashMap,
    hash::BuildHasher,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

/// `limit` requests per `period`, with bursts up to `limit`.
///
/// A `limit` of 0 refuses every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period: std::time::Duration,
}

impl Quota {
    /// `limit` requests per `period`.
    pub const fn new(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// `limit` requests per second.
    pub const fn per_second(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` requests per minute.
    pub const fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` requests per hour.
    pub const fn per_hour(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(3600))
    }
}

/// The outcome of [`RateLimiter::check`], with what the rate-limit response headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Requests that could still be made right now.
    pub remaining: u32,
    /// Time until the bucket is full again (all `limit` available) — used for X-Rate-Limit-Reset / RateLimit `t`.
    pub reset_after: std::time::Duration,
    /// When refused: how long until one request would be allowed (Retry-After). None when allowed.
    pub retry_after: Option<std::time::Duration>,
}

impl Decision {
    /// What a limiter that cannot reach its store answers: allowed, with the full quota left.
    fn fail_open(quota: Quota) -> Self {
        Self {
            allowed: true,
            limit: quota.limit,
            remaining: quota.limit,
            reset_after: Duration::ZERO,
            retry_after: None,
        }
    }
}

/// Periods are clamped to this (2⁵⁰ µs, about 35 years), which keeps every TAT exactly
/// representable in the double-precision numbers of Redis's Lua.
pub const MAX_PERIOD: Duration = Duration::from_micros(1 << 50);

/// Namespace of the Redis keys: `payymo:rl:{key}`.
const REDIS_KEY_PREFIX: &str = "payymo:rl:";

/// How long one check may wait on Redis before failing open. Generous for a round trip to a
/// nearby Redis; it bounds the latency an outage adds to each request.
const REDIS_REQUEST_BUDGET: Duration = Duration::from_millis(500);

/// GCRA, atomically, on the Redis server's clock.
///
/// KEYS[1]: the namespaced key. ARGV[1]: the emission interval T in µs. ARGV[2]: the tolerance
/// (limit × T) in µs. Returns `{now, tat}` in µs (the TAT before this request, 0 when absent) so
/// that the caller derives the full [`Decision`] with the same pure function as the local
/// backend; the allow condition here must stay identical to the one in [`gcra`].
///
/// Numbers are written with `%d` because Lua 5.1 would print a 16-digit TAT in exponent form.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local new_tat = math.max(tat, now) + emission
if new_tat - now <= tolerance then
  local ttl_ms = math.ceil((new_tat - now) / 1000)
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', ttl_ms))
end
return {now, tat}
";

/// The GCRA parameters of a quota, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    /// T: the spacing between requests at the sustained rate, ≥ 1.
    emission: u64,
    /// limit × T: how far the TAT may run ahead of now.
    tolerance: u64,
}

impl Params {
    /// `None` for a limit of 0, which refuses everything.
    fn new(quota: Quota) -> Option<Self> {
        let limit = u64::from(quota.limit);
        if limit == 0 {
            return None;
        }
        let period = quota.period.min(MAX_PERIOD).as_micros();
        let period = u64::try_from(period).unwrap_or(u64::MAX);
        let emission = period.div_ceil(limit).max(1);
        Some(Self { emission, tolerance: emission.saturating_mul(limit) })
    }
}

/// One GCRA step: the decision for a request arriving at `now` on a key whose stored TAT is `tat`
/// (0 when absent), and the TAT to store afterwards (unchanged when refused). Microseconds.
fn gcra(now: u64, tat: u64, quota: Quota) -> (Decision, u64) {
    let Some(Params { emission, tolerance }) = Params::new(quota) else {
        // Nothing will ever be allowed; point clients at the period rather than at "never".
        let refused = Decision {
            allowed: false,
            limit: 0,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: Some(quota.period),
        };
        return (refused, tat);
    };
    let start = tat.max(now);
    let new_tat = start.saturating_add(emission);
    // How far the TAT would run ahead of now: at least `emission`.
    let ahead = new_tat - now;
    if ahead <= tolerance {
        let remaining = u32::try_from((tolerance - ahead) / emission).unwrap_or(quota.limit);
        let decision = Decision {
            allowed: true,
            limit: quota.limit,
            remaining,
            reset_after: Duration::from_micros(ahead),
            retry_after: None,
        };
        (decision, new_tat)
    } else {
        let decision = Decision {
            allowed: false,
            limit: quota.limit,
            remaining: 0,
            reset_after: Duration::from_micros(start - now),
            retry_after: Some(Duration::from_micros(ahead - tolerance)),
        };
        (decision, tat)
    }
}

/// A rate limiter: [`Quota`]s enforced per key (one key per credential), in process or in Redis.
///
/// Share one instance across the server (for example in an `Arc`): the local backend's state is
/// the instance itself, and the Redis backend holds one multiplexed connection.
#[derive(Debug)]
pub enum RateLimiter {
    /// Limits within this process only.
    Local(LocalLimiter),
    /// One limit shared by every instance that uses the same Redis.
    Redis(RedisLimiter),
}

/// Why [`RateLimiter::redis`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[source] redis::RedisError),
    #[error("cannot connect to Redis: {0}")]
    Connect(#[source] redis::RedisError),
    #[error("cannot load the rate-limit script into Redis: {0}")]
    LoadScript(#[source] redis::RedisError),
}

impl RateLimiter {
    /// An in-process limiter: each server instance enforces its own limits.
    pub fn local() -> Self {
        Self::Local(LocalLimiter::new())
    }

    /// Connects (redis::aio::ConnectionManager) and loads the Lua script; errors if Redis is unreachable at start.
    ///
    /// The connection reconnects by itself after a failure; until it has, [`check`](Self::check)
    /// fails open.
    pub async fn redis(url: &str) -> Result<Self, RateLimitError> {
        RedisLimiter::connect(url).await.map(Self::Redis)
    }

    /// Counts one request against `key` under `quota` and says whether it may proceed.
    ///
    /// A refused request is not counted, so a client that keeps retrying while refused gets in as
    /// soon as the rate allows rather than being locked out.
    ///
    /// With Redis, a failure at request time (Redis down, a timeout after 500 ms, an unexpected
    /// reply) **fails open**: the request is allowed with `remaining == limit`, and a warning is
    /// logged. The limiter protects capacity and fairness; refusing all traffic because its store
    /// is unavailable would turn a Redis outage into an API outage, and a short period without
    /// limits is the lesser harm. The connection is re-established in the background, so limits
    /// resume when Redis is back (the keys it lost start over with full buckets).
    pub async fn check(&self, key: &str, quota: Quota) -> Decision {
        match self {
            Self::Local(local) => local.check(key, quota),
            Self::Redis(redis) => redis.check(key, quota).await,
        }
    }

    /// `"local"` or `"redis"`, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::Redis(_) => "redis",
        }
    }
}

/// Number of independently locked parts of the local table, to spread contention.
const LOCAL_SHARDS: usize = 16;

/// A shard is never pruned below this many entries, so small tables are not swept constantly.
const MIN_PRUNE_AT: usize = 1024;

/// The in-process backend: TATs in sharded maps, against a monotonic clock.
///
/// Memory stays bounded by the number of *active* keys: when a shard is about to grow past twice
/// the size it had after its last sweep, it first drops entries whose TAT has passed (they mean
/// the same as absent ones). That keeps the sweeping cost amortised O(1) per new key.
pub struct LocalLimiter {
    /// The clock's origin; TATs are microseconds since it.
    start: Instant,
    hasher: std::hash::RandomState,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<String, u64>,
    /// Sweep before inserting once `tats` holds this many entries.
    prune_at: usize,
}

impl Shard {
    fn check(&mut self, key: &str, quota: Quota, now: u64) -> Decision {
        if let Some(tat) = self.tats.get_mut(key) {
            let (decision, new_tat) = gcra(now, *tat, quota);
            *tat = new_tat;
            return decision;
        }
        let (decision, new_tat) = gcra(now, 0, quota);
        if decision.allowed {
            if self.tats.len() >= self.prune_at {
                self.tats.retain(|_, tat| *tat > now);
                self.prune_at = self.tats.len().saturating_mul(2).max(MIN_PRUNE_AT);
            }
            self.tats.insert(key.to_owned(), new_tat);
        }
        decision
    }
}

impl LocalLimiter {
    fn new() -> Self {
        let shards = (0..LOCAL_SHARDS).map(|_| Mutex::new(Shard { tats: HashMap::new(), prune_at: MIN_PRUNE_AT }));
        Self { start: Instant::now(), hasher: std::hash::RandomState::new(), shards: shards.collect() }
    }

    fn check(&self, key: &str, quota: Quota) -> Decision {
        let now = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.check_at(key, quota, now)
    }

    fn check_at(&self, key: &str, quota: Quota, now: u64) -> Decision {
        // The modulo keeps the index below LOCAL_SHARDS, so the cast cannot truncate.
        let index = (self.hasher.hash_one(key) % LOCAL_SHARDS as u64) as usize;
        let Some(shard) = self.shards.get(index) else {
            return Decision::fail_open(quota);
        };
        // A panic while holding the lock cannot leave a shard inconsistent (each update is a
        // single store), so a poisoned lock is safe to keep using.
        shard.lock().unwrap_or_else(PoisonError::into_inner).check(key, quota, now)
    }

    /// Keys currently held, for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).tats.len()).sum()
    }
}

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter").field("shards", &self.shards.len()).finish_non_exhaustive()
    }
}

/// The Redis backend: one multiplexed, self-reconnecting connection and the GCRA script.
#[derive(Debug)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
}

impl RedisLimiter {
    async fn connect(url: &str) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url).map_err(RateLimitError::InvalidUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_REQUEST_BUDGET))
            .set_response_timeout(Some(REDIS_REQUEST_BUDGET))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mut connection =
            ConnectionManager::new_with_config(client, config).await.map_err(RateLimitError::Connect)?;
        let script = Script::new(GCRA_LUA);
        script.prepare_invoke().load_async(&mut connection).await.map_err(RateLimitError::LoadScript)?;
        Ok(Self { connection, script })
    }

    async fn check(&self, key: &str, quota: Quota) -> Decision {
        let Some(params) = Params::new(quota) else {
            return gcra(0, 0, quota).0;
        };
        // EVALSHA, falling back to loading the script again if Redis has lost it (a restart).
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(format!("{REDIS_KEY_PREFIX}{key}"));
        invocation.arg(params.emission).arg(params.tolerance);
        let reply = tokio::time::timeout(REDIS_REQUEST_BUDGET, invocation.invoke_async::<(u64, u64)>(&mut connection));
        match reply.await {
            Ok(Ok((now, tat))) => gcra(now, tat, quota).0,
            Ok(Err(error)) => {
                tracing::warn!(%error, "rate limiter: Redis failed; allowing the request (fail open)");
                Decision::fail_open(quota)
            }
            Err(_elapsed) => {
                tracing::warn!(
                    budget_ms = REDIS_REQUEST_BUDGET.as_millis(),
                    "rate limiter: Redis did not answer in time; allowing the request (fail open)"
                );
                Decision::fail_open(quota)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const SECOND: u64 = 1_000_000;

    fn quota(limit: u32, period_secs: u64) -> Quota {
        Quota::new(limit, Duration::from_secs(period_secs))
    }

    /// Runs `n` requests at `now`, threading the TAT; returns the decisions and the final TAT.
    fn burst(now: u64, mut tat: u64, quota: Quota, n: usize) -> (Vec<Decision>, u64) {
        let decisions = (0..n)
            .map(|_| {
                let (decision, new_tat) = gcra(now, tat, quota);
                tat = new_tat;
                decision
            })
            .collect();
        (decisions, tat)
    }

    #[test]
    fn fresh_key_allows_limit_in_a_burst_then_refuses() {
        let q = quota(10, 60);
        let now = 1_000 * SECOND;
        let (decisions, _) = burst(now, 0, q, 12);
        let allowed = decisions.iter().filter(|d| d.allowed).count();
        assert_eq!(allowed, 10);
        assert!(decisions[..10].iter().all(|d| d.allowed));
        assert!(decisions[10..].iter().all(|d| !d.allowed));
    }

    #[test]
    fn remaining_counts_down_and_reset_after_grows() {
        let q = quota(5, 10);
        let (decisions, _) = burst(0, 0, q, 6);
        let remaining: Vec<u32> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
        // T = 2 s: after k requests the bucket is full again after k × T.
        let resets: Vec<Duration> = decisions.iter().map(|d| d.reset_after).collect();
        let secs = Duration::from_secs;
        assert_eq!(resets, [secs(2), secs(4), secs(6), secs(8), secs(10), secs(10)]);
        assert!(decisions.iter().all(|d| d.limit == 5));
        assert!(decisions[..5].iter().all(|d| d.retry_after.is_none()));
    }

    #[test]
    fn retry_after_is_one_interval_after_exhaustion_and_waiting_it_allows_one_more() {
        let q = quota(4, 60); // T = 15 s
        let now = 500 * SECOND;
        let (_, tat) = burst(now, 0, q, 4);
        let (refused, same_tat) = gcra(now, tat, q);
        assert!(!refused.allowed);
        assert_eq!(same_tat, tat, "a refusal is not counted");
        assert_eq!(refused.retry_after, Some(Duration::from_secs(15)));
        assert_eq!(refused.reset_after, Duration::from_secs(60));

        // Just before: still refused, with the wait shrinking accordingly.
        let (early, _) = gcra(now + 15 * SECOND - 1, tat, q);
        assert!(!early.allowed);
        assert_eq!(early.retry_after, Some(Duration::from_micros(1)));

        let later = now + 15 * SECOND;
        let (allowed, tat) = gcra(later, tat, q);
        assert!(allowed.allowed);
        assert_eq!(allowed.remaining, 0);
        assert_eq!(allowed.reset_after, Duration::from_secs(60));
        let (again, _) = gcra(later, tat, q);
        assert!(!again.allowed);
        assert_eq!(again.retry_after, Some(Duration::from_secs(15)));
    }

    #[test]
    fn partial_refill_gives_back_whole_requests_only() {
        let q = quota(4, 60); // T = 15 s
        let (_, tat) = burst(0, 0, q, 4);
        // 40 s later, two whole intervals have passed: the request takes one, one is left.
        let (decision, _) = gcra(40 * SECOND, tat, q);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 1);
        assert_eq!(decision.reset_after, Duration::from_secs(35));
    }

    #[test]
    fn idle_key_is_full_again_after_reset_after() {
        let q = quota(3, 30);
        let (decisions, tat) = burst(0, 0, q, 3);
        let reset = decisions[2].reset_after;
        let then = u64::try_from(reset.as_micros()).unwrap();
        let (decisions, _) = burst(then, tat, q, 4);
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 3);
        assert_eq!(decisions[0].remaining, 2);
    }

    #[test]
    fn limit_one() {
        let q = quota(1, 5);
        let (first, tat) = gcra(10 * SECOND, 0, q);
        assert!(first.allowed);
        assert_eq!(first.remaining, 0);
        assert_eq!(first.reset_after, Duration::from_secs(5));
        let (second, _) = gcra(10 * SECOND, tat, q);
        assert!(!second.allowed);
        assert_eq!(second.retry_after, Some(Duration::from_secs(5)));
        let (third, _) = gcra(15 * SECOND, tat, q);
        assert!(third.allowed);
    }

    #[test]
    fn limit_zero_refuses_everything() {
        let q = quota(0, 60);
        let (decision, tat) = gcra(SECOND, 0, q);
        assert!(!decision.allowed);
        assert_eq!(tat, 0);
        assert_eq!(decision.remaining, 0);
        assert_eq!(decision.retry_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn burst_is_exact_when_the_interval_does_not_divide() {
        // 3 per second: T rounds up to 333_334 µs; still exactly 3 at once.
        let q = quota(3, 1);
        let (decisions, _) = burst(0, 0, q, 4);
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 3);
        // More requests than microseconds in the period: T clamps to 1 µs, the burst stays exact.
        let q = Quota::new(5_000_000, Duration::from_secs(1));
        let (decisions, _) = burst(0, 0, q, 5_000_001);
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 5_000_000);
    }

    #[test]
    fn huge_limits_and_periods_do_not_overflow() {
        let now = u64::MAX / 2;
        for q in [
            Quota::new(u32::MAX, Duration::from_secs(1)),
            Quota::new(u32::MAX, Duration::MAX),
            Quota::new(1, Duration::MAX),
            Quota::new(u32::MAX, Duration::ZERO),
            Quota::new(1, Duration::ZERO),
        ] {
            let (first, tat) = gcra(now, 0, q);
            assert!(first.allowed, "{q:?}");
            assert_eq!(first.remaining, q.limit - 1, "{q:?}");
            // And with a TAT far in the future, or at the end of time.
            for tat in [tat, u64::MAX - 1, u64::MAX] {
                let (decision, _) = gcra(now, tat, q);
                assert!(decision.remaining <= q.limit, "{q:?}");
                let _ = gcra(u64::MAX, tat, q);
                let _ = gcra(0, tat, q);
            }
        }
        assert_eq!(Params::new(Quota::new(1, Duration::MAX)).map(|p| p.emission), Some(1 << 50));
    }

    #[tokio::test]
    async fn local_limits_per_key() {
        let limiter = RateLimiter::local();
        assert_eq!(limiter.backend(), "local");
        let q = Quota::per_minute(3);
        for expected in [2, 1, 0] {
            let decision = limiter.check("a", q).await;
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected);
        }
        assert!(!limiter.check("a", q).await.allowed);
        assert!(limiter.check("b", q).await.allowed, "another key has its own bucket");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn local_concurrent_requests_on_one_key_allow_exactly_limit() {
        let limiter = Arc::new(RateLimiter::local());
        let q = Quota::per_hour(100);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let limiter = limiter.clone();
            tasks.spawn(async move {
                let mut allowed = 0;
                for _ in 0..10 {
                    if limiter.check("shared", q).await.allowed {
                        allowed += 1;
                    }
                    tokio::task::yield_now().await;
                }
                allowed
            });
        }
        let mut allowed = 0;
        while let Some(result) = tasks.join_next().await {
            allowed += result.unwrap();
        }
        assert_eq!(allowed, 100);
    }

    #[test]
    fn local_prunes_expired_keys() {
        let limiter = LocalLimiter::new();
        let q = quota(10, 1);
        let keys = LOCAL_SHARDS * MIN_PRUNE_AT * 2;
        for i in 0..keys {
            limiter.check_at(&format!("k{i}"), q, 0);
        }
        assert_eq!(limiter.len(), keys, "live keys are kept");
        // Much later, every one of those has expired; as new keys arrive, each shard sweeps them
        // out (at the latest when it reaches twice its size after the last sweep).
        let new_keys = keys * 4;
        for i in 0..new_keys {
            limiter.check_at(&format!("n{i}"), q, 10 * SECOND);
        }
        let old_left: usize =
            limiter.shards.iter().map(|s| s.lock().unwrap().tats.keys().filter(|k| k.starts_with('k')).count()).sum();
        assert_eq!(old_left, 0);
        assert_eq!(limiter.len(), new_keys);
        // A refused request on an absent key (limit 0) stores nothing.
        limiter.check_at("zero", quota(0, 1), 10 * SECOND);
        assert!(!limiter.shards.iter().any(|s| s.lock().unwrap().tats.contains_key("zero")));
    }
}
