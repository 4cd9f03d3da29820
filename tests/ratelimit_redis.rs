#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The rate limiter's Redis backend against a real Redis.
//!
//! Each test starts its own throw-away `redis-server` (Debian package `redis-server`) on a free
//! loopback port and kills it when done. With `REDIS_URL` set, the tests use that Redis instead,
//! each under keys of its own; the outage test then puts a TCP relay in front of it and stops the
//! relay, since it cannot stop someone else's server. With neither, the tests fail: they do not
//! pass without having run.

use std::{
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use payymo::ratelimit::{Decision, Quota, RateLimitError, RateLimiter};
use tokio::{
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    task::{JoinHandle, JoinSet},
};

const MISSING: &str = "these tests need Redis: install `redis-server` (Debian package `redis-server`, \
     so that the `redis-server` binary is on PATH) or set REDIS_URL to a Redis they may write to";

fn external_url() -> Option<String> {
    std::env::var("REDIS_URL").ok().filter(|url| !url.trim().is_empty())
}

/// A key no other test (nor an earlier run against the same REDIS_URL) uses.
fn unique_key(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("test:{test}:{}:{nanos}", std::process::id())
}

/// A loopback port with nothing listening on it (at the time of asking).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` this test owns: no persistence, loopback only, killed when dropped.
struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    async fn start_on(port: u16) -> Self {
        let port_arg = port.to_string();
        let spawned = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--port", &port_arg, "--bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!("{MISSING}"),
            Err(error) => panic!("cannot start redis-server: {error}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { port, child };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("redis-server on port {port} exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "redis-server on port {port} did not start listening within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// The Redis a test talks to, and a key of its own in it.
struct TestRedis {
    url: String,
    key: String,
    _server: Option<RedisServer>,
}

impl TestRedis {
    async fn new(test: &str) -> Self {
        let key = unique_key(test);
        match external_url() {
            Some(url) => Self { url, key, _server: None },
            None => {
                let server = RedisServer::start().await;
                Self { url: server.url(), key, _server: Some(server) }
            }
        }
    }

    async fn limiter(&self) -> RateLimiter {
        let limiter = RateLimiter::redis(&self.url).await.expect("connect to the test Redis");
        assert_eq!(limiter.backend(), "redis");
        limiter
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit_under_concurrency() {
    let redis = TestRedis::new("shared").await;
    // Two limiters, two connections: two server instances.
    let instances = [Arc::new(redis.limiter().await), Arc::new(redis.limiter().await)];
    let quota = Quota::per_hour(50);

    let mut requests = JoinSet::new();
    for i in 0..200 {
        let limiter = instances[i % 2].clone();
        let key = redis.key.clone();
        requests.spawn(async move { limiter.check(&key, quota).await });
    }
    let mut decisions = Vec::new();
    while let Some(decision) = requests.join_next().await {
        decisions.push(decision.unwrap());
    }

    let allowed = decisions.iter().filter(|d| d.allowed).count();
    assert_eq!(allowed, 50, "exactly the limit, across both instances");
    // Every allowed request saw a distinct count of what was left: none was answered twice.
    let mut remaining: Vec<u32> = decisions.iter().filter(|d| d.allowed).map(|d| d.remaining).collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..50).collect::<Vec<u32>>());
    for refused in decisions.iter().filter(|d| !d.allowed) {
        assert_eq!(refused.remaining, 0);
        let retry = refused.retry_after.expect("a refusal says when to retry");
        // T = 72 s; a little of it has passed since the bucket emptied.
        assert!(retry <= Duration::from_secs(72) && retry > Duration::from_secs(60), "{retry:?}");
    }
}

#[tokio::test]
async fn decisions_match_the_local_backend() {
    let redis = TestRedis::new("consistency").await;
    let shared = redis.limiter().await;
    let local = RateLimiter::local();
    let quota = Quota::new(5, Duration::from_secs(10)); // T = 2 s

    let mut from_redis = Vec::new();
    let mut from_local = Vec::new();
    for _ in 0..7 {
        from_redis.push(shared.check(&redis.key, quota).await);
        from_local.push(local.check("consistency", quota).await);
    }

    let close = |a: Duration, b: Duration| a.abs_diff(b) < Duration::from_millis(250);
    for (i, (r, l)) in from_redis.iter().zip(&from_local).enumerate() {
        assert_eq!((r.allowed, r.limit, r.remaining), (l.allowed, l.limit, l.remaining), "request {i}: {r:?} vs {l:?}");
        assert!(close(r.reset_after, l.reset_after), "request {i}: {r:?} vs {l:?}");
        match (r.retry_after, l.retry_after) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!(close(a, b), "request {i}: {r:?} vs {l:?}"),
            _ => panic!("request {i}: {r:?} vs {l:?}"),
        }
    }
    let remaining: Vec<u32> = from_redis.iter().map(|d| d.remaining).collect();
    assert_eq!(remaining, [4, 3, 2, 1, 0, 0, 0]);
    assert_eq!(from_redis.iter().filter(|d| d.allowed).count(), 5);
    assert!(close(from_redis[5].retry_after.unwrap(), Duration::from_secs(2)), "{:?}", from_redis[5]);
    assert!(close(from_redis[5].reset_after, Duration::from_secs(10)), "{:?}", from_redis[5]);

    // The key is namespaced and expires once it no longer matters (when the bucket is full).
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let ttl_ms: i64 =
        redis::cmd("PTTL").arg(format!("payymo:rl:{}", redis.key)).query_async(&mut connection).await.unwrap();
    assert!((9_000..=10_000).contains(&ttl_ms), "PTTL {ttl_ms}");
}

#[tokio::test]
async fn unreachable_redis_fails_at_start() {
    let port = free_port();
    let started = Instant::now();
    let error = RateLimiter::redis(&format!("redis://127.0.0.1:{port}")).await.expect_err("nothing listens there");
    assert!(matches!(error, RateLimitError::Connect(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "gave up after {:?}", started.elapsed());

    let error = RateLimiter::redis("not a url").await.expect_err("not a URL");
    assert!(matches!(error, RateLimitError::InvalidUrl(_)), "{error:?}");
}

/// A Redis the test can take away and bring back: its own server, or a relay to REDIS_URL.
enum Stoppable {
    Server(Option<RedisServer>, u16),
    Relay { upstream: String, port: u16, task: Option<JoinHandle<()>> },
}

impl Stoppable {
    /// Returns the URL to connect through.
    async fn start() -> (Self, String) {
        match external_url() {
            None => {
                let server = RedisServer::start().await;
                let (port, url) = (server.port, server.url());
                (Self::Server(Some(server), port), url)
            }
            Some(url) => {
                let upstream = relay_upstream(&url);
                let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
                let port = listener.local_addr().unwrap().port();
                let url = with_local_authority(&url, port);
                let task = Some(tokio::spawn(relay(listener, upstream.clone())));
                (Self::Relay { upstream, port, task }, url)
            }
        }
    }

    async fn stop(&mut self) {
        match self {
            Self::Server(server, _) => server.take().expect("running").stop().await,
            Self::Relay { task, .. } => {
                let task = task.take().expect("running");
                task.abort();
                let _ = task.await;
            }
        }
    }

    async fn restart(&mut self) {
        match self {
            Self::Server(server, port) => *server = Some(RedisServer::start_on(*port).await),
            Self::Relay { upstream, port, task } => {
                let listener = TcpListener::bind(("127.0.0.1", *port)).await.unwrap();
                *task = Some(tokio::spawn(relay(listener, upstream.clone())));
            }
        }
    }
}

/// Forwards every connection to `upstream` until aborted; aborting closes them all.
async fn relay(listener: TcpListener, upstream: String) {
    let mut connections = JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        let upstream = upstream.clone();
        connections.spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// The `host:port` REDIS_URL points at (6379 when it names none).
fn relay_upstream(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("REDIS_URL is a URL");
    assert!(scheme == "redis", "the outage test relays plain TCP only; REDIS_URL has scheme {scheme}");
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    let has_port =
        host_port.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) && !host_port.ends_with(']');
    if has_port { host_port.to_owned() } else { format!("{host_port}:6379") }
}

/// `url` with its host and port replaced by 127.0.0.1:`port`, keeping credentials and database.
fn with_local_authority(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("REDIS_URL is a URL");
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    let credentials = authority.rsplit_once('@').map_or(String::new(), |(credentials, _)| format!("{credentials}@"));
    format!("{scheme}://{credentials}127.0.0.1:{port}{path}")
}

#[tokio::test]
async fn redis_failure_at_request_time_fails_open_and_limits_resume() {
    let (mut redis, url) = Stoppable::start().await;
    let key = unique_key("outage");
    let limiter = RateLimiter::redis(&url).await.expect("connect");
    let quota = Quota::per_hour(3);
    let fail_open = Decision { allowed: true, limit: 3, remaining: 3, reset_after: Duration::ZERO, retry_after: None };

    for _ in 0..3 {
        assert!(limiter.check(&key, quota).await.allowed);
    }
    assert!(!limiter.check(&key, quota).await.allowed, "the quota is used up");

    redis.stop().await;
    for _ in 0..5 {
        let started = Instant::now();
        let decision = limiter.check(&key, quota).await;
        assert_eq!(decision, fail_open, "with Redis gone, requests are let through");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "an outage costs at most the budget: {:?}",
            started.elapsed()
        );
    }

    // Once Redis is back, the connection recovers by itself and limiting resumes.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let decision = limiter.check(&key, quota).await;
        if decision != fail_open {
            // Our own server restarted empty; a relayed REDIS_URL still has the spent bucket.
            assert!(decision.remaining < 3, "{decision:?}");
            break;
        }
        assert!(Instant::now() < deadline, "limiting did not resume within 15 s of Redis coming back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn relay_urls_keep_credentials_and_database() {
    assert_eq!(with_local_authority("redis://:pw@db.example:6380/2", 7000), "redis://:pw@127.0.0.1:7000/2");
    assert_eq!(with_local_authority("redis://localhost", 7000), "redis://127.0.0.1:7000");
    assert_eq!(relay_upstream("redis://u:p@db.example:6380/2"), "db.example:6380");
    assert_eq!(relay_upstream("redis://localhost"), "localhost:6379");
    assert_eq!(relay_upstream("redis://[::1]/0"), "[::1]:6379");
    assert_eq!(relay_upstream("redis://[::1]:6390"), "[::1]:6390");
}
