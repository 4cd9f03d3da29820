//! Per-credential rate limits: the headers, the 429, and one shared limit across server
//! processes through Redis.

use std::time::Duration;

use payymo::{
    auth::{Environment, Plan},
    ratelimit::Quota,
};
use reqwest::Method;

use crate::support::{
    APP_PASSWORD, TestApp, TestCluster, client, problem,
    process::{database_url, redis, serve},
    test_config,
};

fn three_per_minute() -> payymo::config::Config {
    let mut config = test_config();
    config.rate_limits.free = Quota { limit: 3, period: Duration::from_secs(60) };
    config
}

#[tokio::test]
async fn responses_carry_the_budget_and_the_limit_is_enforced_with_429() {
    let options = TestCluster::get().await.fresh_database().await;
    let app = TestApp::spawn_with(three_per_minute(), options).await;
    let tenant = app.tenant_with(Environment::Test, Plan::Free).await;

    for remaining in [2, 1, 0] {
        let response = app.as_key(Method::GET, "/api/v1/me", &tenant.key).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let h = response.headers();
        assert_eq!(h["x-rate-limit-limit"], "3");
        assert_eq!(h["x-rate-limit-remaining"], remaining.to_string().as_str());
        let reset: u64 = h["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        assert_eq!(h["ratelimit-policy"], "\"default\";q=3;w=60");
        assert_eq!(h["ratelimit"], format!("\"default\";r={remaining};t={reset}").as_str());
    }
    let refused = app.as_key(Method::GET, "/api/v1/me", &tenant.key).send().await.unwrap();
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "one request frees up every 20 s: {retry_after}");
    assert_eq!(refused.headers()["x-rate-limit-remaining"], "0");
    let body = problem(refused, 429, "rate_limited").await;
    assert_eq!(body["retryable"], true);

    // The limit is per credential: another key of the same tenant has its own budget.
    let other = app.key(&tenant, &["*"]).await;
    assert_eq!(app.as_key(Method::GET, "/api/v1/me", &other).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn plans_size_the_limit() {
    let options = TestCluster::get().await.fresh_database().await;
    let app = TestApp::spawn_with(three_per_minute(), options).await;
    let premium = app.tenant_with(Environment::Test, Plan::Premium).await;
    let response = app.as_key(Method::GET, "/api/v1/me", &premium.key).send().await.unwrap();
    assert_eq!(response.headers()["x-rate-limit-limit"], "6000");
}

/// Two `payymo serve` processes against one database and one Redis: together they allow
/// exactly one limit's worth of requests for a credential, not one each.
#[tokio::test]
async fn two_server_processes_share_one_limit_through_redis() {
    let redis = redis().await;
    let options = TestCluster::get().await.fresh_database().await;
    // The in-process app only creates the fixtures.
    let fixtures = TestApp::spawn_with(test_config(), options.clone()).await;
    let tenant = fixtures.tenant_with(Environment::Test, Plan::Free).await;
    let url = database_url(&options, APP_PASSWORD);
    let envs = [
        ("DATABASE_URL", url.as_str()),
        ("REDIS_URL", redis.url.as_str()),
        ("PAYYMO_RATE_LIMITS", "free=10/1m,standard=600/1m,premium=6000/1m"),
        ("PAYYMO_LOG", "info"),
    ];
    let (one, two) = (serve(&envs).await, serve(&envs).await);

    let client = client();
    let requests = (0..30).map(|i| {
        let base = if i % 2 == 0 { &one.base } else { &two.base };
        client.get(format!("{base}/api/v1/me")).bearer_auth(&tenant.key).send()
    });
    let statuses: Vec<u16> =
        futures_util::future::join_all(requests).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((allowed, limited), (10, 20), "{statuses:?}");
}
