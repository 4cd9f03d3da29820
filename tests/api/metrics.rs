use crate::support::TestApp;

#[tokio::test]
async fn metrics_count_requests_by_route_template_method_and_status() {
    let app = TestApp::spawn().await;
    app.get("/healthz").await;
    app.get("/healthz").await;
    app.get("/api/v1/nowhere/txn_secret_123").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"} 2"#), "{text}");
    assert!(text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#), "{text}");
    assert!(
        text.contains(
            r#"http_request_duration_seconds_bucket{le="0.0005",method="GET",route="/healthz",status="200"}"#
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"), "{text}");
    assert!(text.contains("http_requests_in_flight"), "{text}");
    assert!(!text.contains("txn_secret_123"), "raw paths must never become labels");
    assert!(text.trim_end().ends_with("# EOF"));
}
