//! `Idempotency-Key`: replay, conflicts, and exactly-once under concurrency.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, json_of, problem};

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

/// Every operation whose success response holds a `SecretShownOnce`, found in the spec.
fn operations_returning_a_secret() -> Vec<(String, String)> {
    let spec: Value = serde_json::from_str(&payymo::http::openapi::spec_json()).unwrap();
    fn mentions_secret(spec: &Value, value: &Value, seen: &mut Vec<String>) -> bool {
        match value {
            Value::Object(fields) => match fields.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let name = reference.rsplit('/').next().unwrap().to_owned();
                    if name == "SecretShownOnce" {
                        return true;
                    }
                    if seen.contains(&name) {
                        return false;
                    }
                    seen.push(name.clone());
                    mentions_secret(spec, &spec["components"]["schemas"][&name], seen)
                }
                None => fields.values().any(|v| mentions_secret(spec, v, seen)),
            },
            Value::Array(items) => items.iter().any(|v| mentions_secret(spec, v, seen)),
            _ => false,
        }
    }
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let success = op["responses"].as_object().unwrap().iter().filter(|(status, _)| status.starts_with('2'));
            if success.into_iter().any(|(_, response)| mentions_secret(&spec, response, &mut Vec::new())) {
                found.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

#[tokio::test]
async fn no_operation_returning_a_secret_stores_it_and_replays_show_it_as_null() {
    const ADMIN: &str = "idempotency-admin-token-0123456789abcdef";
    let mut config = crate::support::test_config();
    config.admin_token = Some(secrecy::SecretString::from(ADMIN.to_owned()));
    let app = TestApp::spawn_with(config, crate::support::TestCluster::get().await.fresh_database().await).await;
    let tenant = app.tenant().await;
    let endpoint = json_of(
        app.as_key(Method::POST, "/api/v1/webhook_endpoints", &tenant.key)
            .json(&json!({"url": "https://example.com/hooks", "event_types": ["*"]}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // (method, path, body, the field holding the secret, whether Idempotency-Key applies)
    let cases: Vec<(&str, String, Value, &str, bool)> = vec![
        ("POST", "/api/v1/api_keys".into(), json!({"label": "a", "scopes": ["*"]}), "secret", true),
        ("POST", format!("/api/v1/api_keys/{}/rotate", tenant.key_id), json!({}), "secret", true),
        ("POST", "/api/v1/oauth_clients".into(), json!({"name": "a", "scopes": ["*"]}), "client_secret", true),
        (
            "POST",
            "/api/v1/webhook_endpoints".into(),
            json!({"url": "https://example.com/other", "event_types": ["*"]}),
            "secret",
            true,
        ),
        ("POST", format!("/api/v1/webhook_endpoints/{endpoint}/rotate_secret"), json!({}), "secret", true),
        // The admin API is the platform's, outside the tenant's idempotency store.
        (
            "POST",
            format!("/admin/v1/tenants/{}/api_keys", tenant.id),
            json!({"label": "a", "scopes": ["*"]}),
            "secret",
            false,
        ),
    ];
    let template = |path: &str| {
        let mut template = path.to_owned();
        for id in [tenant.key_id.as_str(), tenant.id.as_str(), endpoint.as_str()] {
            template = template.replace(id, "{id}");
        }
        template
    };
    let mut covered: Vec<(String, String)> = cases.iter().map(|(m, p, ..)| (m.to_string(), template(p))).collect();
    let mut listed = operations_returning_a_secret();
    covered.sort();
    listed.sort();
    assert_eq!(covered, listed, "an operation returns a secret: add it to this test's cases");

    let superuser = app.superuser_pool().await;
    for (n, (method, path, body, field, replays)) in cases.into_iter().enumerate() {
        let send = || {
            let credential = if path.starts_with("/admin/") { ADMIN } else { tenant.key.as_str() };
            app.client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), app.url(&path))
                .bearer_auth(credential)
                .header("idempotency-key", format!("secret-case-{n}"))
                .json(&body)
                .send()
        };
        let first = send().await.unwrap();
        assert!(first.status().is_success(), "{method} {path}: {}", first.status());
        let first: Value = first.json().await.unwrap();
        let secret = first[field].as_str().unwrap_or_else(|| panic!("{method} {path}: no {field}")).to_owned();
        let replay = send().await.unwrap();
        if replays {
            assert_eq!(replay.headers()["idempotent-replayed"], "true", "{method} {path}");
            let replay: Value = replay.json().await.unwrap();
            assert_eq!(replay[field], Value::Null, "{method} {path}: the replay shows no secret");
            let mut without = first.clone();
            without[field] = Value::Null;
            assert_eq!(replay, without, "{method} {path}: otherwise the same object");
        }
        let stored: i64 = sqlx::query_scalar(
            "select count(*) from idempotency_keys where position(convert_to($1, 'UTF8') in coalesce(response_body, '')) > 0",
        )
        .bind(&secret)
        .fetch_one(&superuser)
        .await
        .unwrap();
        assert_eq!(stored, 0, "{method} {path}: the secret sits in the idempotency store");
    }
}
