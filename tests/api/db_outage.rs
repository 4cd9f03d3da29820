//! A database that goes away: readiness says so at once, requests fail fast with a retryable 503,
//! and the service recovers without a restart when the database returns.

use std::time::Duration;

use crate::support::{
    TestApp, TestCluster,
    db_proxy::{DbProxy, Mode},
    problem, test_config,
};

#[tokio::test]
async fn readiness_follows_the_database_and_recovers_without_restart() {
    let options = TestCluster::get().await.fresh_database().await;
    let proxy = DbProxy::start(&options).await;
    let mut config = test_config();
    config.db_acquire_timeout = Duration::from_millis(500);
    let app = TestApp::spawn_with(config, proxy.connect_options()).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    proxy.set(Mode::Down);
    let started = std::time::Instant::now();
    let body = problem(app.get("/readyz").await, 503, "database_unavailable").await;
    assert_eq!(body["retryable"], true);
    assert!(started.elapsed() < Duration::from_secs(3), "must fail fast, took {:?}", started.elapsed());
    assert!(!body["detail"].as_str().unwrap().contains("127.0.0.1"), "no internal detail: {body}");
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), 200);

    proxy.set(Mode::Up);
    let mut recovered = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the service did not recover after the database came back");
}

#[tokio::test]
async fn a_hanging_database_cannot_hold_requests_past_the_timeout() {
    let options = TestCluster::get().await.fresh_database().await;
    let proxy = DbProxy::start(&options).await;
    let mut config = test_config();
    config.request_timeout = Duration::from_millis(800);
    config.db_acquire_timeout = Duration::from_secs(10);
    let app = TestApp::spawn_with(config, proxy.connect_options()).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    // Live connections go silent; new ones are accepted and never answered.
    proxy.set(Mode::Hang);
    let started = std::time::Instant::now();
    problem(app.get("/readyz").await, 503, "request_timeout").await;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}
