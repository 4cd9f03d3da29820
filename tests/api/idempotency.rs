//! `Idempotency-Key`: replay, conflicts, and exactly-once under concurrency.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, problem};

fn create_key(app: &TestApp, key: &str, idempotency_key: &str, label: &str) -> reqwest::RequestBuilder {
    app.as_key(Method::POST, "/api/v1/api_keys", key)
        .header("idempotency-key", idempotency_key)
        .json(&json!({"label": label, "scopes": ["api_keys:read"]}))
}

async fn count_labelled(app: &TestApp, key: &str, label: &str) -> usize {
    let page: Value =
        app.as_key(Method::GET, "/api/v1/api_keys?limit=100", key).send().await.unwrap().json().await.unwrap();
    page["data"].as_array().unwrap().iter().filter(|k| k["label"] == label).count()
}

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_first_response_without_its_secret() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let first = create_key(&app, &tenant.key, "retry-1", "erp").send().await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert!(first["secret"].as_str().unwrap().starts_with("sk_test_"));

    let replay = create_key(&app, &tenant.key, "retry-1", "erp").send().await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.headers()["content-type"], "application/json");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], first["id"], "the same key, not a second one");
    assert_eq!(replay["secret"], Value::Null, "secrets are never stored, so never replayed");
    assert_eq!(count_labelled(&app, &tenant.key, "erp").await, 1);

    // The stored row holds no secret either.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select response_body from idempotency_keys")
        .fetch_all(&sqlx::PgPool::connect_with(app.superuser.clone().unwrap()).await.unwrap())
        .await
        .unwrap();
    let secret = first["secret"].as_str().unwrap();
    assert!(!stored.is_empty() && stored.iter().all(|b| !String::from_utf8_lossy(b).contains(secret)));
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_422() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    assert_eq!(create_key(&app, &tenant.key, "k-2", "one").send().await.unwrap().status(), 201);
    let response = create_key(&app, &tenant.key, "k-2", "two").send().await.unwrap();
    problem(response, 422, "idempotency_key_reused").await;
    // Whitespace and key order do not make a request different.
    let same = app
        .as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
        .header("idempotency-key", "k-2")
        .header("content-type", "application/json")
        .body(r#"{ "scopes": ["api_keys:read"],   "label": "one" }"#)
        .send()
        .await
        .unwrap();
    assert_eq!(same.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn fifty_concurrent_requests_with_one_key_act_exactly_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let requests = (0..50).map(|_| create_key(&app, &tenant.key, "burst", "burst").send());
    let responses = futures_util::future::join_all(requests).await;
    let (mut originals, mut replays, mut in_flight) = (0, 0, 0);
    for response in responses {
        let response = response.unwrap();
        match (response.status().as_u16(), response.headers().contains_key("idempotent-replayed")) {
            (201, false) => originals += 1,
            (201, true) => replays += 1,
            (409, _) => {
                let body = problem(response, 409, "idempotency_key_in_use").await;
                assert_eq!(body["retryable"], true);
                in_flight += 1;
            }
            (status, _) => panic!("unexpected {status}"),
        }
    }
    assert_eq!(originals, 1, "exactly one request ran (replays {replays}, in flight {in_flight})");
    assert_eq!(originals + replays + in_flight, 50);
    assert_eq!(count_labelled(&app, &tenant.key, "burst").await, 1, "the action happened exactly once");
}

#[tokio::test]
async fn keys_are_scoped_to_the_credential_and_ignored_on_reads() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let other = app.key(&tenant, &["api_keys:write"]).await;
    assert_eq!(create_key(&app, &tenant.key, "shared", "a").send().await.unwrap().status(), 201);
    let second = create_key(&app, &other, "shared", "a").send().await.unwrap();
    assert_eq!(second.status(), 201);
    assert!(second.headers().get("idempotent-replayed").is_none(), "another credential's key is another key");
    assert_eq!(count_labelled(&app, &tenant.key, "a").await, 2);

    let read = app
        .as_key(Method::GET, "/api/v1/api_keys", &tenant.key)
        .header("idempotency-key", "shared")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert!(read.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn failed_requests_are_replayed_too_but_malformed_keys_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let bad = || {
        app.as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
            .header("idempotency-key", "bad-1")
            .json(&json!({"label": "", "scopes": []}))
    };
    problem(bad().send().await.unwrap(), 422, "validation_failed").await;
    let replay = bad().send().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    problem(replay, 422, "validation_failed").await;

    let too_long = "x".repeat(256);
    let response = create_key(&app, &tenant.key, &too_long, "l").send().await.unwrap();
    problem(response, 400, "invalid_request").await;
}
