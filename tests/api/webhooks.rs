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
