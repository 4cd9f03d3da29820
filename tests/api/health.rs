use crate::support::{TestApp, TestCluster, problem, test_config};

#[tokio::test]
async fn healthz_answers_without_the_database() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_is_ready_on_a_migrated_database() {
    let app = TestApp::spawn().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ready", "database": "ok", "migrations": "ok"}));
}

#[tokio::test]
async fn readyz_reports_pending_migrations_until_they_are_applied() {
    let options = TestCluster::get().await.empty_database().await;
    let app = TestApp::spawn_with(test_config(), options).await;

    let body = problem(app.get("/readyz").await, 503, "migrations_pending").await;
    assert_eq!(body["retryable"], true);
    assert!(body["detail"].as_str().unwrap().contains("payymo migrate"), "{body}");

    payymo::db::MIGRATOR.run(&app.db).await.unwrap();
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn readyz_turns_away_traffic_once_shutdown_begins() {
    let app = TestApp::spawn().await;
    let url = app.url("/readyz");
    let client = app.client.clone();
    app.shutdown.cancel();
    // The listener may already be closed; if it still answers, it must say it is draining.
    if let Ok(response) = client.get(url).send().await {
        problem(response, 503, "shutting_down").await;
    }
    app.stop().await.unwrap();
}
