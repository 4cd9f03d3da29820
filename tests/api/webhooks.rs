//! Outbound webhooks: endpoints, signed delivery, retries, disabling, recovery and the SSRF guard,
//! against receivers on loopback ports and the real dispatcher.

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::support::{
    TestApp, TestCluster,
    receiver::{Receiver, Reply},
    tenants::TestTenant,
    test_config,
};

/// An app whose deliveries time out after 2 s and retry after 1 s (4 attempts in all).
pub async fn webhook_app() -> TestApp {
    let mut config = test_config();
    config.webhook_timeout = Duration::from_secs(2);
    config.webhook_retry_schedule = vec![Duration::from_secs(1); 3];
    TestApp::spawn_with(config, TestCluster::get().await.fresh_database().await).await
}

/// Starts a dispatcher for `app` (tests run no workers by default); stops with the app.
pub fn dispatch(app: &TestApp, name: &str) -> CancellationToken {
    let stop = app.shutdown.child_token();
    tokio::spawn(payymo::app::run_dispatcher(app.state.clone(), name.to_owned(), stop.clone()));
    stop
}

pub async fn create_endpoint(app: &TestApp, tenant: &TestTenant, url: &str, types: &[&str]) -> Value {
    let response = app
        .as_key(Method::POST, "/api/v1/webhook_endpoints", &tenant.key)
        .json(&json!({"url": url, "event_types": types}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    response.json().await.unwrap()
}

/// Records an `api_key.created` event by creating a key; returns the event's id.
pub async fn emit(app: &TestApp, tenant: &TestTenant) -> String {
    let response = app
        .as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
        .json(&json!({"label": "webhook-test", "scopes": ["api_keys:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let events: Value = app
        .as_key(Method::GET, "/api/v1/events?type=api_key.created&limit=1", &tenant.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    events["data"][0]["id"].as_str().unwrap().to_owned()
}

/// Records `count` `transaction.created` events for `tenant` in one statement, as a bank sync does:
/// the fan-out trigger makes their deliveries in the same transaction. Each event's data is
/// `{"sequence": n}`.
pub async fn insert_events(superuser: &sqlx::PgPool, tenant: &TestTenant, count: i32) {
    sqlx::query(
        "insert into events (tenant_id, id, event_type, data)
         select $1, 'evt_' || payymo_uuid7_hex(), 'transaction.created', jsonb_build_object('sequence', n)
         from generate_series(1, $2) n",
    )
    .bind(&tenant.id)
    .bind(count)
    .execute(superuser)
    .await
    .unwrap();
}

pub async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    let response = app.as_key(Method::GET, path, key).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Verifies both signatures of a delivery with `secret`, written here from the specifications
/// rather than with the server's code: Standard Webhooks (`v1,` HMAC of `id.timestamp.body` keyed
/// with the decoded secret) and `X-Webhook-Signature` (hex HMAC of `t.body` keyed with the
/// secret's text).
pub fn verifies(received: &crate::support::receiver::Received, secret: &str) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let (id, timestamp) = (received.header("webhook-id"), received.header("webhook-timestamp"));
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&received.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let standard = received.header("webhook-signature").split(' ').any(|s| s == expected);

    let header = received.header("x-webhook-signature");
    let t = header.split(',').find_map(|p| p.strip_prefix("t=")).unwrap_or("");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&received.body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let payymo = header.split(',').any(|p| p.strip_prefix("v1=") == Some(hex.as_str()));
    standard && payymo && t == timestamp
}

#[tokio::test]
async fn an_endpoint_receives_the_events_it_subscribes_to_signed_with_its_secret() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let (all, keys_only, other) = (Receiver::start().await, Receiver::start().await, Receiver::start().await);
    let endpoint = create_endpoint(&app, &tenant, &all.url, &["*"]).await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(STANDARD.decode(&secret[6..]).unwrap().len(), 32);
    create_endpoint(&app, &tenant, &keys_only.url, &["api_key.created"]).await;
    create_endpoint(&app, &tenant, &other.url, &["transaction.created"]).await;
    // The secret is shown once: never listed or read again.
    let id = endpoint["id"].as_str().unwrap();
    let read = get(&app, &tenant.key, &format!("/api/v1/webhook_endpoints/{id}")).await;
    assert!(read.get("secret").is_none(), "{read}");
    let listed = get(&app, &tenant.key, "/api/v1/webhook_endpoints").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
    assert!(!listed.to_string().contains("whsec_"));

    let event_id = emit(&app, &tenant).await;
    let _dispatcher = dispatch(&app, "d1");
    let got = all.wait_for(1, Duration::from_secs(10)).await;
    keys_only.wait_for(1, Duration::from_secs(10)).await;
    let delivery = &got[0];
    assert_eq!(delivery.header("content-type"), "application/json");
    assert_eq!(delivery.header("webhook-id"), event_id);
    assert!(verifies(delivery, &secret), "{:?}", delivery.headers);
    assert!(!verifies(delivery, payymo::webhooks::signing::SigningSecret::generate().expose()));
    let timestamp: i64 = delivery.header("webhook-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 30);
    // The body is the event exactly as the events API shows it.
    let event = get(&app, &tenant.key, &format!("/api/v1/events/{event_id}")).await;
    assert_eq!(delivery.json(), event);

    // Recorded as succeeded, with its attempt.
    let deliveries =
        wait_for_status(&app, &tenant, &format!("/api/v1/events/{event_id}/deliveries"), "succeeded", 2).await;
    let attempt = &deliveries[0]["attempts"][0];
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(attempt["succeeded"], true);
    assert_eq!(attempt["response_body"], "ok");
    assert!(attempt["latency_ms"].as_i64().unwrap() >= 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(other.received().is_empty(), "an endpoint not subscribed to the type got it");
    assert_eq!(all.received().len(), 1, "delivered once");
}

/// Polls `path` (a list of deliveries) until `count` of them have `status`.
pub async fn wait_for_status(app: &TestApp, tenant: &TestTenant, path: &str, status: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = get(app, &tenant.key, path).await;
        let matching: Vec<Value> =
            page["data"].as_array().unwrap().iter().filter(|d| d["status"] == status).cloned().collect();
        if matching.len() >= count {
            return matching;
        }
        assert!(Instant::now() < deadline, "waiting for {count} {status} deliveries at {path}: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_receiver_answering_500_then_200_gets_the_event_once_on_the_retry() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(500)]);
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let event_id = emit(&app, &tenant).await;
    let _dispatcher = dispatch(&app, "d1");
    let got = receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"), "same message id on the retry");
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(800), "retried after the schedule's 1 s (±10 %), not at once: {gap:?}");

    let endpoint_id = endpoint["id"].as_str().unwrap();
    let path = format!("/api/v1/webhook_endpoints/{endpoint_id}/deliveries");
    let delivery = &wait_for_status(&app, &tenant, &path, "succeeded", 1).await[0];
    assert_eq!(delivery["event_id"], event_id.as_str());
    assert_eq!(delivery["attempt_count"], 2);
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!((attempts[0]["status_code"].clone(), attempts[0]["succeeded"].clone()), (json!(500), json!(false)));
    assert_eq!(attempts[0]["error"], "answered 500");
    assert_eq!((attempts[1]["status_code"].clone(), attempts[1]["succeeded"].clone()), (json!(200), json!(true)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 2, "nothing more once it succeeded");
    // The endpoint is healthy again.
    let endpoint = get(&app, &tenant.key, &format!("/api/v1/webhook_endpoints/{endpoint_id}")).await;
    assert_eq!(endpoint["failing_since"], Value::Null);
}

async fn patch(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.as_key(Method::PATCH, path, key).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn gone_disables_the_endpoint_announces_it_and_enabling_resumes_delivery() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let (zap, watcher) = (Receiver::start().await, Receiver::start().await);
    zap.script([Reply::Status(410)]);
    let endpoint = create_endpoint(&app, &tenant, &zap.url, &["api_key.created"]).await;
    create_endpoint(&app, &tenant, &watcher.url, &["webhook_endpoint.disabled"]).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let first = emit(&app, &tenant).await;
    let _dispatcher = dispatch(&app, "d1");
    zap.wait_for(1, Duration::from_secs(10)).await;

    // The other endpoint hears about it, with the reason.
    let announced = watcher.wait_for(1, Duration::from_secs(10)).await;
    let event = announced[0].json();
    assert_eq!(event["event_type"], "webhook_endpoint.disabled");
    assert_eq!(event["data"]["id"], id.as_str());
    assert_eq!(event["data"]["disabled_reason"], "the receiver answered 410 Gone");
    let disabled = get(&app, &tenant.key, &format!("/api/v1/webhook_endpoints/{id}")).await;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["disabled_reason"], "the receiver answered 410 Gone");
    assert!(disabled["disabled_at"].is_string());
    let failed = wait_for_status(&app, &tenant, &format!("/api/v1/events/{first}/deliveries"), "failed", 1).await;
    assert_eq!(failed[0]["attempt_count"], 1, "410 is final: no retry");

    // While disabled: new events are not queued for it, and a test ping is refused.
    emit(&app, &tenant).await;
    let response =
        app.as_key(Method::POST, &format!("/api/v1/webhook_endpoints/{id}/test"), &tenant.key).send().await.unwrap();
    crate::support::problem(response, 409, "conflict").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(zap.received().len(), 1);

    // Enabled again: the reason clears and delivery resumes.
    let enabled = patch(&app, &tenant.key, &format!("/api/v1/webhook_endpoints/{id}"), json!({"enabled": true})).await;
    assert_eq!(enabled.status(), 200);
    let enabled: Value = enabled.json().await.unwrap();
    assert_eq!((enabled["enabled"].clone(), enabled["disabled_reason"].clone()), (json!(true), Value::Null));
    let third = emit(&app, &tenant).await;
    let got = zap.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].header("webhook-id"), third);
}

#[tokio::test]
async fn retry_after_on_429_holds_the_endpoint_back_that_long() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::WithHeader(429, "retry-after", "3".into())]);
    create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    emit(&app, &tenant).await;
    let _dispatcher = dispatch(&app, "d1");
    let got = receiver.wait_for(2, Duration::from_secs(15)).await;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(2900), "the 1 s schedule gave way to Retry-After: 3 ({gap:?})");
}

#[tokio::test]
async fn redirects_are_failures_and_are_not_followed() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let (receiver, target) = (Receiver::start().await, Receiver::start().await);
    receiver.answer_always(Reply::WithHeader(302, "location", target.url.clone()));
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    emit(&app, &tenant).await;
    let _dispatcher = dispatch(&app, "d1");
    receiver.wait_for(2, Duration::from_secs(10)).await;
    assert!(target.received().is_empty(), "the redirect was followed");
    let path = format!("/api/v1/webhook_endpoints/{}/deliveries", endpoint["id"].as_str().unwrap());
    let page = get(&app, &tenant.key, &path).await;
    let attempt = &page["data"][0]["attempts"][0];
    assert_eq!(attempt["status_code"], 302);
    assert_eq!(attempt["error"], "answered 302: redirects are not followed");
}

#[tokio::test]
async fn after_the_last_attempt_a_delivery_is_failed_and_kept_then_redeliver_and_recover_send_it_again() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Reply::Status(503));
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let (first, second) = (emit(&app, &tenant).await, emit(&app, &tenant).await);
    let _dispatcher = dispatch(&app, "d1");
    let path = format!("/api/v1/webhook_endpoints/{id}/deliveries");
    let failed = wait_for_status(&app, &tenant, &format!("{path}?status=failed"), "failed", 2).await;
    for delivery in &failed {
        assert_eq!(delivery["attempt_count"], 4, "1 + the 3 retries of the schedule");
        assert_eq!(delivery["attempts"].as_array().unwrap().len(), 4);
        assert_eq!(delivery["last_status_code"], 503);
        assert_eq!(delivery["next_attempt_at"], Value::Null);
    }
    assert_eq!(receiver.received().len(), 8);
    let failing = get(&app, &tenant.key, &format!("/api/v1/webhook_endpoints/{id}")).await;
    assert!(failing["failing_since"].is_string());
    let pending = get(&app, &tenant.key, &format!("{path}?status=pending")).await;
    assert_eq!(pending["data"].as_array().unwrap().len(), 0);

    // The receiver is fixed: one event is redelivered by hand, the rest recovered.
    receiver.answer_always(Reply::Status(200));
    let response = app
        .as_key(Method::POST, &format!("/api/v1/events/{first}/redeliver"), &tenant.key)
        .json(&json!({"endpoint_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let queued: Value = response.json().await.unwrap();
    assert_eq!(queued["data"][0]["reason"], "redeliver");
    assert_eq!(queued["data"][0]["status"], "pending");
    wait_for_status(&app, &tenant, &format!("/api/v1/events/{first}/deliveries"), "succeeded", 1).await;

    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let response = app
        .as_key(Method::POST, &format!("/api/v1/webhook_endpoints/{id}/recover"), &tenant.key)
        .json(&json!({"since": since}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"queued": 1}), "only the event still undelivered");
    let recovered =
        wait_for_status(&app, &tenant, &format!("/api/v1/events/{second}/deliveries"), "succeeded", 1).await;
    assert_eq!(recovered[0]["reason"], "recover");
    let ids: Vec<String> = receiver.received()[8..].iter().map(|r| r.header("webhook-id").to_owned()).collect();
    assert_eq!(ids, [first, second], "each sent again once, with its original id");
    // Recovering again finds nothing left to send.
    let response = app
        .as_key(Method::POST, &format!("/api/v1/webhook_endpoints/{id}/recover"), &tenant.key)
        .json(&json!({"since": since}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"queued": 0}));
}

#[tokio::test]
async fn an_endpoint_failing_for_the_disable_period_is_disabled_with_its_reason() {
    let mut config = test_config();
    config.webhook_timeout = Duration::from_secs(2);
    config.webhook_retry_schedule = vec![Duration::from_secs(1); 5];
    config.webhook_disable_after = Duration::from_secs(1);
    let app = TestApp::spawn_with(config, TestCluster::get().await.fresh_database().await).await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Reply::Status(500));
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let id = endpoint["id"].as_str().unwrap();
    emit(&app, &tenant).await;
    let _dispatcher = dispatch(&app, "d1");
    let deadline = Instant::now() + Duration::from_secs(15);
    let disabled = loop {
        let endpoint = get(&app, &tenant.key, &format!("/api/v1/webhook_endpoints/{id}")).await;
        if endpoint["enabled"] == false {
            break endpoint;
        }
        assert!(Instant::now() < deadline, "never disabled: {endpoint}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(disabled["disabled_reason"], "every attempt failed for 1 second without a break");
    let events = get(&app, &tenant.key, "/api/v1/events?type=webhook_endpoint.disabled").await;
    assert_eq!(events["data"][0]["data"]["id"], id);
    // Its pending delivery waits instead of being tried.
    let seen = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.received().len(), seen);

    // Enabled again by the tenant, it starts afresh (the one health policy): not failing, not
    // paused, no reason kept; and the waiting delivery goes out.
    assert!(disabled["failing_since"].is_string());
    receiver.answer_always(Reply::Status(200));
    let path = format!("/api/v1/webhook_endpoints/{id}");
    let enabled: Value = patch(&app, &tenant.key, &path, json!({"enabled": true})).await.json().await.unwrap();
    for field in ["disabled_reason", "disabled_at", "failing_since", "paused_until"] {
        assert_eq!(enabled[field], Value::Null, "{field}: {enabled}");
    }
    receiver.wait_for(seen + 1, Duration::from_secs(10)).await;
    // Asking again for the state it is in changes nothing.
    let again: Value = patch(&app, &tenant.key, &path, json!({"enabled": true})).await.json().await.unwrap();
    assert_eq!(again["updated_at"], get(&app, &tenant.key, &path).await["updated_at"]);
    assert_eq!(again["enabled"], true);
}

#[tokio::test]
async fn a_test_ping_goes_to_that_endpoint_only() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let (pinged, other) = (Receiver::start().await, Receiver::start().await);
    let endpoint = create_endpoint(&app, &tenant, &pinged.url, &["transaction.created"]).await;
    create_endpoint(&app, &tenant, &other.url, &["*"]).await;
    let id = endpoint["id"].as_str().unwrap();
    let response =
        app.as_key(Method::POST, &format!("/api/v1/webhook_endpoints/{id}/test"), &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let delivery: Value = response.json().await.unwrap();
    assert_eq!((delivery["reason"].clone(), delivery["event_type"].clone()), (json!("test"), json!("ping")));
    let _dispatcher = dispatch(&app, "d1");
    let got = pinged.wait_for(1, Duration::from_secs(10)).await;
    let ping = got[0].json();
    assert_eq!(ping["event_type"], "ping");
    assert_eq!(ping["data"]["webhook_endpoint_id"], id);
    assert!(verifies(&got[0], endpoint["secret"].as_str().unwrap()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(other.received().is_empty(), "a ping reached an endpoint subscribed to everything");
}

#[tokio::test]
async fn rotating_the_secret_signs_with_both_during_the_overlap_then_with_the_new_one() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let id = endpoint["id"].as_str().unwrap();
    let old = endpoint["secret"].as_str().unwrap().to_owned();
    let rotate = |overlap: u32| {
        app.as_key(Method::POST, &format!("/api/v1/webhook_endpoints/{id}/rotate_secret"), &tenant.key)
            .json(&json!({"overlap_seconds": overlap}))
            .send()
    };
    let rotated: Value = rotate(3600).await.unwrap().json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert!(rotated["previous_secret_expires_at"].is_string());
    emit(&app, &tenant).await;
    let _dispatcher = dispatch(&app, "d1");
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert!(verifies(&got[0], &old) && verifies(&got[0], &new), "both secrets verify during the overlap");
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);

    // A rotation without overlap retires the replaced secret at once.
    let newest: Value = rotate(0).await.unwrap().json().await.unwrap();
    let newest = newest["secret"].as_str().unwrap();
    emit(&app, &tenant).await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert!(verifies(&got[1], newest));
    assert!(!verifies(&got[1], &new) && !verifies(&got[1], &old));
    let response = rotate(604_801).await.unwrap();
    crate::support::problem(response, 422, "validation_failed").await;
}

#[tokio::test]
async fn endpoints_are_validated_updated_and_deleted() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let post = |body: Value| app.as_key(Method::POST, "/api/v1/webhook_endpoints", &tenant.key).json(&body).send();
    let body = crate::support::problem(
        post(json!({"url": "ftp://example.com/x", "event_types": ["transaction.deleted"], "description": "d".repeat(501)}))
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["url", "event_types", "description"], "{body}");
    crate::support::problem(
        post(json!({"url": "https://example.com", "event_types": []})).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    crate::support::problem(
        post(json!({"url": "https://example.com", "event_types": ["ping"]})).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    crate::support::problem(
        post(json!({"url": "https://example.com", "event_types": ["*"], "secret": "mine"})).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;

    let receiver = Receiver::start().await;
    let created = post(json!({"url": receiver.url, "event_types": ["transaction.created", "*"],
        "description": "ERP", "metadata": {"team": "finance"}}))
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["event_types"], json!(["*"]));
    assert_eq!(created["metadata"], json!({"team": "finance"}));
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/webhook_endpoints/{id}");
    let updated: Value = patch(
        &app,
        &tenant.key,
        &path,
        json!({"event_types": ["transaction.updated"],
        "description": null, "metadata": {"team": null, "owner": "ana"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(updated["event_types"], json!(["transaction.updated"]));
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["metadata"], json!({"owner": "ana"}));
    let disabled: Value = patch(&app, &tenant.key, &path, json!({"enabled": false})).await.json().await.unwrap();
    assert_eq!(disabled["disabled_reason"], "disabled through the API");

    let deleted = app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    crate::support::problem(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 404, "not_found").await;
}

#[tokio::test]
async fn internal_addresses_are_refused_when_saved_and_again_before_connecting() {
    // No allowed networks: loopback is refused like any internal address.
    let mut config = test_config();
    config.webhook_allowed_networks = Vec::new();
    config.webhook_timeout = Duration::from_secs(2);
    config.webhook_retry_schedule = vec![Duration::from_secs(1)];
    let app = TestApp::spawn_with(config, TestCluster::get().await.fresh_database().await).await;
    let tenant = app.tenant().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://localhost/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://100.64.0.1/".to_owned(),
    ] {
        let response = app
            .as_key(Method::POST, "/api/v1/webhook_endpoints", &tenant.key)
            .json(&json!({"url": url, "event_types": ["*"]}))
            .send()
            .await
            .unwrap();
        let body = crate::support::problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "url", "{url}: {body}");
    }
    // Saved behind the API's back (as if the rules had been looser), the address is refused again
    // before any connection: by the literal check, and through the resolver for a name.
    let id = payymo::domain::ids::WebhookEndpointId::generate();
    let keys = app.state.keys.get().await.unwrap();
    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    let secret = payymo::webhooks::signing::SigningSecret::generate();
    let sealed = payymo::webhooks::endpoints::seal_secret(keys, &tenant_id, &id, &secret).unwrap();
    let superuser = app.superuser_pool().await;
    sqlx::query(
        "insert into webhook_endpoints (tenant_id, id, url, event_types, secret) values ($1, $2, $3, '{*}', $4)",
    )
    .bind(&tenant.id)
    .bind(id.as_str())
    .bind(format!("http://127.0.0.1:{port}/"))
    .bind(&sealed)
    .execute(&superuser)
    .await
    .unwrap();
    emit(&app, &tenant).await;
    let _dispatcher = dispatch(&app, "d1");
    let path = format!("/api/v1/webhook_endpoints/{}/deliveries", id.as_str());
    let failed = wait_for_status(&app, &tenant, &path, "failed", 1).await;
    let error = failed[0]["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("127.0.0.1") && error.contains("loopback"), "{error}");
    assert_eq!(failed[0]["attempts"][0]["status_code"], Value::Null);
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "a connection reached the refused address");
}

#[tokio::test]
async fn live_tenants_need_https() {
    let app = webhook_app().await;
    let tenant = app.tenant_with(payymo::auth::Environment::Live, payymo::auth::Plan::Premium).await;
    let response = app
        .as_key(Method::POST, "/api/v1/webhook_endpoints", &tenant.key)
        .json(&json!({"url": "http://127.0.0.1:9/hooks", "event_types": ["*"]}))
        .send()
        .await
        .unwrap();
    let body = crate::support::problem(response, 422, "validation_failed").await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("https"), "{body}");
}

#[tokio::test]
async fn old_events_are_pruned_with_their_deliveries_unless_one_is_pending() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let (old_done, old_pending, recent) =
        (emit(&app, &tenant).await, emit(&app, &tenant).await, emit(&app, &tenant).await);
    let superuser = app.superuser_pool().await;
    sqlx::query("update events set occurred_at = now() - interval '31 days' where id = any($1)")
        .bind([&old_done, &old_pending])
        .execute(&superuser)
        .await
        .unwrap();
    sqlx::query("update webhook_deliveries set status = 'succeeded' where event_id <> $1")
        .bind(&old_pending)
        .execute(&superuser)
        .await
        .unwrap();
    let deleted = payymo::webhooks::retention::prune(&app.db, Duration::from_secs(30 * 86_400)).await.unwrap();
    assert_eq!(deleted, 1);
    let left: Vec<String> =
        sqlx::query_scalar("select id from events where event_type = 'api_key.created' order by id")
            .fetch_all(&superuser)
            .await
            .unwrap();
    assert_eq!(left, [old_pending.clone(), recent]);
    let orphans: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries where event_id = $1")
        .bind(&old_done)
        .fetch_one(&superuser)
        .await
        .unwrap();
    assert_eq!(orphans, 0);
}

#[tokio::test]
async fn delivery_metrics_count_outcomes_and_show_the_queue() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(500)]);
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    emit(&app, &tenant).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("webhook_deliveries_due 1"), "{metrics}");
    assert!(metrics.contains("webhook_oldest_pending_age_seconds"));
    let _dispatcher = dispatch(&app, "d1");
    let path = format!("/api/v1/webhook_endpoints/{}/deliveries", endpoint["id"].as_str().unwrap());
    wait_for_status(&app, &tenant, &path, "succeeded", 1).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("webhook_attempts_total{outcome=\"retrying\"} 1"), "{metrics}");
    assert!(metrics.contains("webhook_attempts_total{outcome=\"succeeded\"} 1"), "{metrics}");
    assert!(metrics.contains("webhook_attempt_duration_seconds_count 2"), "{metrics}");
    assert!(metrics.contains("webhook_deliveries_pending 0"), "{metrics}");
}

#[tokio::test]
async fn another_tenants_events_never_reach_an_endpoint() {
    let app = webhook_app().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let receiver = Receiver::start().await;
    create_endpoint(&app, &a, &receiver.url, &["*"]).await;
    emit(&app, &b).await;
    let mine = emit(&app, &a).await;
    let _dispatcher = dispatch(&app, "d1");
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = receiver.received().iter().map(|r| r.header("webhook-id").to_owned()).collect();
    assert_eq!(ids, [mine], "{got:?}");
}

#[tokio::test]
async fn deleting_an_endpoint_mid_attempt_does_not_hold_up_other_outcomes() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let (slow, healthy) = (Receiver::start().await, Receiver::start().await);
    slow.answer_always(Reply::Hang(Duration::from_millis(1500)));
    let doomed = create_endpoint(&app, &tenant, &slow.url, &["*"]).await;
    let kept = create_endpoint(&app, &tenant, &healthy.url, &["*"]).await;
    let event = emit(&app, &tenant).await;
    let _dispatcher = dispatch(&app, "d1");
    slow.wait_for(1, Duration::from_secs(10)).await;
    let path = format!("/api/v1/webhook_endpoints/{}", doomed["id"].as_str().unwrap());
    assert_eq!(app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap().status(), 200);
    // The slow attempt ends after the deletion, in the same batches as the healthy one's.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let second = emit(&app, &tenant).await;
    let kept_path = format!("/api/v1/webhook_endpoints/{}/deliveries", kept["id"].as_str().unwrap());
    let started = Instant::now();
    wait_for_status(&app, &tenant, &kept_path, "succeeded", 2).await;
    // A recorder stuck on the vanished delivery would hold every later outcome for the 12 s lease.
    assert!(started.elapsed() < Duration::from_secs(8), "outcomes were held up for {:?}", started.elapsed());
    let deliveries = get(&app, &tenant.key, &format!("/api/v1/events/{event}/deliveries")).await;
    assert_eq!(deliveries["data"].as_array().unwrap().len(), 1, "the deleted endpoint's delivery went with it");
    assert_eq!(healthy.wait_for(2, Duration::from_secs(5)).await[1].header("webhook-id"), second);
}

#[tokio::test]
async fn two_dispatchers_share_the_work_and_send_each_attempt_once() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    create_endpoint(&app, &tenant, &first.url, &["*"]).await;
    create_endpoint(&app, &tenant, &second.url, &["*"]).await;
    let _dispatchers = (dispatch(&app, "d1"), dispatch(&app, "d2"));
    // 300 events in one statement, as a bank sync records them.
    let superuser = app.superuser_pool().await;
    insert_events(&superuser, &tenant, 300).await;
    for receiver in [&first, &second] {
        receiver.wait_for(300, Duration::from_secs(30)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries where status = 'succeeded'")
            .fetch_one(&superuser)
            .await
            .unwrap();
        if done == 600 {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of 600 deliveries recorded as succeeded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every delivery succeeded on its one attempt, recorded once, whichever dispatcher sent it.
    let superuser_rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "select d.status, d.attempts, (select count(*) from webhook_attempts a
                                       where a.tenant_id = d.tenant_id and a.delivery_id = d.id)
         from webhook_deliveries d",
    )
    .fetch_all(&superuser)
    .await
    .unwrap();
    assert_eq!(superuser_rows.len(), 600);
    assert!(
        superuser_rows
            .iter()
            .all(|(status, attempts, recorded)| status == "succeeded" && *attempts == 1 && *recorded == 1)
    );
    let split: Vec<(String, i64)> =
        sqlx::query_as("select locked_by, count(*) from webhook_deliveries group by 1 order by 1")
            .fetch_all(&superuser)
            .await
            .unwrap();
    eprintln!("deliveries sent per dispatcher: {split:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for receiver in [&first, &second] {
        let mut ids: Vec<String> = receiver.received().iter().map(|r| r.header("webhook-id").to_owned()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!((receiver.received().len(), ids.len()), (300, 300), "each event exactly once");
    }
}

#[tokio::test]
async fn an_endpoint_failing_again_and_again_backs_off_and_its_deliveries_wait_for_it() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Reply::Status(500));
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let path = format!("/api/v1/webhook_endpoints/{}", endpoint["id"].as_str().unwrap());
    let superuser = app.superuser_pool().await;
    insert_events(&superuser, &tenant, 12).await;
    let _dispatcher = dispatch(&app, "d1");
    // Ten failures in a row: the endpoint pauses, and nothing is sent while it does.
    let deadline = Instant::now() + Duration::from_secs(15);
    let paused_until = loop {
        let state = get(&app, &tenant.key, &path).await;
        if let Some(until) = state["paused_until"].as_str() {
            break chrono::DateTime::parse_from_rfc3339(until).unwrap();
        }
        assert!(Instant::now() < deadline, "never backed off: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let left = (paused_until.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default();
    let seen = receiver.received().len();
    assert!(seen >= 10, "{seen}");
    if left > Duration::from_millis(600) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(receiver.received().len(), seen, "an attempt started while the endpoint was paused");
    }
    // The receiver recovers: the next probe succeeds and every waiting delivery goes out, none of
    // them having spent all its attempts on the outage.
    receiver.answer_always(Reply::Status(200));
    wait_for_status(&app, &tenant, &format!("{path}/deliveries?limit=100"), "succeeded", 12).await;
    let state = get(&app, &tenant.key, &path).await;
    assert_eq!(state["failing_since"], Value::Null);
    assert_eq!(state["enabled"], true);
}

/// A receiver that has not answered yet (here: hangs) gets a probe's worth of claimed attempts
/// (dispatcher::CLAIM_AHEAD_PROBE), not a full lane: what it holds counts against what the
/// dispatcher may hold in all, and the healthy endpoints beside it would claim in smaller batches.
#[tokio::test]
async fn an_endpoint_not_heard_from_yet_holds_only_a_probes_worth_of_claims() {
    let app = webhook_app().await; // timeout 2 s
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Reply::Hang(Duration::from_secs(10)));
    create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let superuser = app.superuser_pool().await;
    insert_events(&superuser, &tenant, 100).await;
    let _dispatcher = dispatch(&app, "d1");
    receiver.wait_for(8, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // before the first answers time out
    let claimed: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries where attempts > 0")
        .fetch_one(&superuser)
        .await
        .unwrap();
    let probe = 8 * payymo::webhooks::dispatcher::CLAIM_AHEAD_PROBE;
    assert_eq!(claimed, probe as i64, "claimed for an endpoint that has not answered");
    assert_eq!(receiver.received().len(), 8, "sent at once: PAYYMO_WEBHOOK_CONCURRENCY");
}

#[tokio::test]
async fn attempts_queued_too_long_behind_a_slow_receiver_are_given_back_uncounted() {
    const EVENTS: usize = 128;
    let app = webhook_app().await; // timeout 2 s: an attempt must start within 12 s of its claim
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    // Slow but successful: after its first answers its lane holds 16 x 8 claimed attempts, which
    // go out 8 every 1.5 s, so the last of them would start some 24 s after their claim.
    receiver.answer_always(Reply::Hang(Duration::from_millis(1500)));
    create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let superuser = app.superuser_pool().await;
    insert_events(&superuser, &tenant, EVENTS as i32).await;
    let dispatcher = dispatch(&app, "d1");
    tokio::time::sleep(Duration::from_millis(14_500)).await;
    dispatcher.cancel(); // waits for the attempts in flight and writes their outcomes
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts: Vec<(String, i32, i64, Option<String>)> = sqlx::query_as(
        "select d.id, d.attempts, (select count(*) from webhook_attempts a
                                   where a.tenant_id = d.tenant_id and a.delivery_id = d.id), d.locked_by
         from webhook_deliveries d",
    )
    .fetch_all(&superuser)
    .await
    .unwrap();
    let sent = receiver.received().len() as i64;
    let recorded: i64 = counts.iter().map(|(_, _, n, _)| n).sum();
    assert_eq!(recorded, sent, "every request made is recorded");
    for (id, attempts, made, _) in &counts {
        assert_eq!(i64::from(*attempts), *made, "{id}: counted attempts that were never made");
    }
    // Claimed (it names the dispatcher) but given back unsent: not counted.
    let given_back = counts.iter().filter(|(_, attempts, _, by)| *attempts == 0 && by.is_some()).count();
    assert!(given_back > 0, "none given back: {sent} of {EVENTS} sent");
}

/// A busy lane tops itself up from where its last claim ended in the endpoint's queue, not from
/// the front, where the index entries of everything already claimed lie (dispatcher::Resume). A
/// delivery that falls due behind that position (here the newest one moved back an hour, as an
/// insert that committed late, or a lease that ran out, would be) must still go out while the
/// backlog drains, found by the search from the front that runs at least once a second.
#[tokio::test]
async fn a_delivery_due_behind_where_a_busy_lane_resumes_still_goes_out_while_it_drains() {
    const BACKLOG: usize = 20_000;
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let superuser = app.superuser_pool().await;
    insert_events(&superuser, &tenant, BACKLOG as i32).await;
    let started = Instant::now();
    let _dispatcher = dispatch(&app, "d1");
    receiver.wait_for(500, Duration::from_secs(30)).await;

    // The newest delivery not claimed yet would go out last; an update fires no notification, so
    // only the search can find it behind the lane's position.
    let late: String = sqlx::query_scalar(
        "update webhook_deliveries set next_attempt_at = now() - interval '1 hour'
         where id = (select id from webhook_deliveries where status = 'pending' and attempts = 0
                     order by next_attempt_at desc, id desc limit 1)
         returning event_id",
    )
    .fetch_one(&superuser)
    .await
    .unwrap();
    let moved_at = receiver.count();

    let received = receiver.wait_for(BACKLOG, Duration::from_secs(120)).await;
    let position = received.iter().position(|r| r.header("webhook-id") == late).expect("the late delivery arrived");
    eprintln!(
        "moved after {moved_at} arrivals; it arrived as number {}; {BACKLOG} in {:?}",
        position + 1,
        started.elapsed()
    );
    assert!(
        position < BACKLOG - 2_000,
        "the delivery moved behind the lane arrived as number {} of {BACKLOG}: it waited for the backlog",
        position + 1
    );
}
