//! The middleware stack, over real HTTP. Most of it is exercised through the application's own
//! routes; the JSON extractor, panics, timeouts and draining need handlers that take a body, fail
//! or take their time, so those run the production stack (`http::with_middleware`) around a few
//! test handlers on a real port.

use std::{sync::Arc, time::Duration};

use axum::{Router, routing::post};
use payymo::{
    app,
    http::{
        error::{ApiError, FieldError},
        json::ApiJson,
    },
    metrics::Metrics,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{TestApp, client, problem, test_config};

#[derive(serde::Deserialize, serde::Serialize)]
struct Payment {
    amount: i64,
    currency: String,
}

async fn create_payment(ApiJson(payment): ApiJson<Payment>) -> Result<ApiJson<Payment>, ApiError> {
    let mut errors = Vec::new();
    if payment.amount <= 0 {
        errors.push(FieldError { field: "amount".into(), message: "must be a positive number of minor units".into() });
    }
    if payment.currency.len() != 3 || !payment.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(FieldError { field: "currency".into(), message: "must be an ISO 4217 code such as EUR".into() });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(ApiJson(payment))
}

async fn panicking() -> &'static str {
    panic!("boom: secret detail")
}

struct StackServer {
    base: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn stack_server(config: payymo::config::Config) -> StackServer {
    let routes = Router::new().route("/payments", post(create_payment)).route("/panic", post(panicking)).route(
        "/slow",
        post(|| async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            "done"
        }),
    );
    let grace = config.shutdown_grace;
    let router = payymo::http::with_middleware(routes, &config, Arc::new(Metrics::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app::serve(listener, router, shutdown.clone(), grace));
    StackServer { base, shutdown, server }
}

#[tokio::test]
async fn valid_json_passes_through() {
    let s = stack_server(test_config()).await;
    let response = client()
        .post(format!("{}/payments", s.base))
        .json(&serde_json::json!({"amount": 1250, "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["amount"], 1250);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let s = stack_server(test_config()).await;
    let response = client()
        .post(format!("{}/payments", s.base))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(response, 415, "unsupported_media_type").await;
    let response = client().post(format!("{}/payments", s.base)).body("{}").send().await.unwrap();
    problem(response, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn malformed_json_is_400_saying_where() {
    let s = stack_server(test_config()).await;
    let response = client()
        .post(format!("{}/payments", s.base))
        .header("content-type", "application/json")
        .body("{\n  \"amount\": 10,\n  \"currency\": EUR\n}")
        .send()
        .await
        .unwrap();
    let body = problem(response, 400, "malformed_json").await;
    assert!(body["detail"].as_str().unwrap().ends_with("at line 3 column 15"), "{body}");
}

#[tokio::test]
async fn wrongly_typed_and_missing_fields_are_422_per_field() {
    let s = stack_server(test_config()).await;
    let post = |body: serde_json::Value| client().post(format!("{}/payments", s.base)).json(&body).send();

    let body = problem(
        post(serde_json::json!({"amount": "12.50", "currency": "EUR"})).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "amount");

    let body = problem(post(serde_json::json!({"amount": 5})).await.unwrap(), 422, "validation_failed").await;
    assert_eq!(body["errors"], serde_json::json!([{"field": "currency", "message": "is required"}]));

    let body =
        problem(post(serde_json::json!({"amount": -5, "currency": "eur"})).await.unwrap(), 422, "validation_failed")
            .await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["amount", "currency"]);
    assert_eq!(body["detail"], "2 fields are invalid");
}

#[tokio::test]
async fn oversized_chunked_bodies_are_413() {
    let mut config = test_config();
    config.body_limit = 4096;
    let s = stack_server(config).await;
    // A streamed body has no Content-Length, so the limit is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..10).map(|_| Ok(vec![b' '; 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = client()
        .post(format!("{}/payments", s.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn panics_are_500_problems_without_detail() {
    let s = stack_server(test_config()).await;
    let response = client().post(format!("{}/panic", s.base)).send().await.unwrap();
    let body = problem(response, 500, "internal_error").await;
    assert!(!body.to_string().contains("secret detail"), "{body}");
    // The server survives.
    let response = client()
        .post(format!("{}/payments", s.base))
        .json(&serde_json::json!({"amount": 1, "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn slow_requests_time_out_as_retryable_503() {
    let mut config = test_config();
    config.request_timeout = Duration::from_millis(200);
    let s = stack_server(config).await;
    let body = problem(client().post(format!("{}/slow", s.base)).send().await.unwrap(), 503, "request_timeout").await;
    assert_eq!(body["retryable"], true);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let s = stack_server(test_config()).await;
    let in_flight = tokio::spawn(client().post(format!("{}/slow", s.base)).send());
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.shutdown.cancel();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "done");
    s.server.await.unwrap().unwrap();
    // And the listener is closed afterwards.
    assert!(client().post(format!("{}/slow", s.base)).send().await.is_err());
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let mut config = test_config();
    config.shutdown_grace = Duration::from_millis(100);
    let s = stack_server(config).await;
    let _in_flight = tokio::spawn(client().post(format!("{}/slow", s.base)).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    s.shutdown.cancel();
    s.server.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let given = app.client.get(app.url("/healthz")).header("x-request-id", "portal-7f3a").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "portal-7f3a");

    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(id.starts_with("req_") && id.len() == 36, "{id}");

    let unsafe_id = app.client.get(app.url("/healthz")).header("x-request-id", "a b<script>").send().await.unwrap();
    assert!(unsafe_id.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
}

#[tokio::test]
async fn security_headers_are_set() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await;
    let h = response.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    assert_eq!(h["cache-control"], "no-store");
}

#[tokio::test]
async fn responses_are_compressed_when_asked() {
    let app = TestApp::spawn().await;
    let response =
        app.client.get(app.url("/api/v1/openapi.json")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let mut config = test_config();
    config.cors_origins = vec!["https://portal.example.com".into()];
    let options = crate::support::TestCluster::get().await.fresh_database().await;
    let app = TestApp::spawn_with(config, options).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/healthz"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let allowed = preflight("https://portal.example.com").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://portal.example.com");
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let plain = TestApp::spawn().await;
    let response =
        plain.client.get(plain.url("/healthz")).header("origin", "https://portal.example.com").send().await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none(), "CORS is off by default");
}
