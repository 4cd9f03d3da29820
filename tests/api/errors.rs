//! Every failure path of the real router answers in the problem shape.

use crate::support::{TestApp, problem};

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let app = TestApp::spawn().await;
    let body = problem(app.get("/api/v1/no_such_thing").await, 404, "not_found").await;
    assert_eq!(body["detail"], "no route matches GET /api/v1/no_such_thing");
    assert_eq!(body["retryable"], false);
    problem(app.client.delete(app.url("/nope")).send().await.unwrap(), 404, "not_found").await;
}

#[tokio::test]
async fn wrong_methods_are_405_problems_with_allow() {
    let app = TestApp::spawn().await;
    let response = app.client.post(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    let body = problem(response, 405, "method_not_allowed").await;
    assert!(body["detail"].as_str().unwrap().starts_with("POST is not allowed on /healthz"), "{body}");
}

#[tokio::test]
async fn oversized_bodies_are_413_problems_before_routing_reads_them() {
    let app = TestApp::spawn().await;
    let body = vec![b'x'; 2 * 1024 * 1024];
    let response = app.client.post(app.url("/healthz")).body(body).send().await.unwrap();
    problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn head_requests_get_no_body() {
    let app = TestApp::spawn().await;
    let response = app.client.head(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
}
