//! The Stripe simulator over real HTTP: Stripe's idempotency (replays, mismatches, concurrent
//! duplicates), faults, keys, errors and headers, payouts and their failures, webhook deliveries
//! that misbehave on command, and conformance with the official `stripe` Python client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{TimeZone, Utc};
use payymo::sandbox::{
    gocardless::Clock,
    stripe::{DEFAULT_RESTRICTED_KEY, DEFAULT_SECRET_KEY, StripeSim, serve, signature},
};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[path = "conformance/python.rs"]
mod python;

/// One in-process simulator on an ephemeral port, stopped when dropped.
struct Sim {
    base: String,
    http: Client,
    shutdown: CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(seed: u64) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let clock = Clock::fixed(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, StripeSim::new(seed, clock), shutdown.clone()));
    Sim { base, http: Client::builder().no_proxy().build().unwrap(), shutdown }
}

impl Sim {
    /// A form-encoded POST, as Stripe's clients send.
    async fn post(
        &self,
        path: &str,
        key: &str,
        idempotency_key: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.base)).bearer_auth(key).form(form);
        if let Some(idempotency_key) = idempotency_key {
            request = request.header("Idempotency-Key", idempotency_key);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(key).send().await.unwrap()
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let response = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }
}

async fn error_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["type"].is_string(), "{body}");
    body["error"].clone()
}

const VISA: &[(&str, &str)] =
    &[("amount", "2000"), ("currency", "eur"), ("payment_method", "pm_card_visa"), ("confirm", "true")];

#[tokio::test]
async fn idempotency_keys_replay_refuse_other_parameters_and_hold_concurrent_duplicates() {
    let sim = start(1).await;
    let first = sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, Some("k1"), VISA).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers()["request-id"].to_str().unwrap().starts_with("req_"));
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let replay = sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, Some("k1"), VISA).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    let other = [("amount", "2001"), ("currency", "eur")];
    let error = error_of(sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, Some("k1"), &other).await, 400).await;
    assert_eq!(error["type"], "idempotency_error");

    // An error is stored and replayed too, once the operation ran.
    let declined =
        [("amount", "500"), ("currency", "eur"), ("payment_method", "pm_card_chargeDeclined"), ("confirm", "true")];
    let error = error_of(sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, Some("k2"), &declined).await, 402).await;
    let replayed = sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, Some("k2"), &declined).await;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(error_of(replayed, 402).await, error);

    // A duplicate arriving while the first is still running is a 409; afterwards, a replay.
    sim.control("/_stripe/faults", json!({"status": 0, "latency_ms": 500, "path": "/v1/customers"})).await;
    let slow = sim.post("/v1/customers", DEFAULT_SECRET_KEY, Some("k3"), &[("name", "Slow")]);
    let racer = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        sim.post("/v1/customers", DEFAULT_SECRET_KEY, Some("k3"), &[("name", "Slow")]).await
    };
    let (slow, racer) = tokio::join!(slow, racer);
    assert_eq!(slow.status(), StatusCode::OK);
    assert_eq!(error_of(racer, 409).await["type"], "idempotency_error");
    let customers: Value = sim.get("/v1/customers", DEFAULT_SECRET_KEY).await.json().await.unwrap();
    assert_eq!(customers["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn faults_keys_versions_and_errors_look_like_stripes() {
    let sim = start(2).await;
    sim.control("/_stripe/faults", json!({"status": 429, "count": 1, "should_retry": true})).await;
    let limited = sim.get("/v1/balance", DEFAULT_SECRET_KEY).await;
    assert_eq!(limited.headers()["stripe-should-retry"], "true");
    assert_eq!(error_of(limited, 429).await["code"], "rate_limit");
    assert_eq!(sim.get("/v1/balance", DEFAULT_SECRET_KEY).await.status(), StatusCode::OK, "one fault, once");

    let versioned = sim
        .http
        .get(format!("{}/v1/account", sim.base))
        .basic_auth(DEFAULT_SECRET_KEY, Some(""))
        .header("Stripe-Version", "2024-09-30.acacia")
        .send()
        .await
        .unwrap();
    assert_eq!(versioned.headers()["stripe-version"], "2024-09-30.acacia");
    assert_eq!(versioned.json::<Value>().await.unwrap()["object"], "account");

    let missing = sim.http.get(format!("{}/v1/balance", sim.base)).send().await.unwrap();
    assert_eq!(error_of(missing, 401).await["type"], "invalid_request_error");
    let write = sim.post("/v1/customers", DEFAULT_RESTRICTED_KEY, None, &[("name", "x")]).await;
    error_of(write, 403).await;
    sim.control(&format!("/_stripe/keys/{DEFAULT_RESTRICTED_KEY}/expire"), json!({})).await;
    let expired = sim.get("/v1/balance", DEFAULT_RESTRICTED_KEY).await;
    assert_eq!(error_of(expired, 401).await["code"], "api_key_expired");

    let bad = sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, None, &[("currency", "eur")]).await;
    let error = error_of(bad, 400).await;
    assert_eq!((error["code"].as_str(), error["param"].as_str()), (Some("parameter_missing"), Some("amount")));
    let bad =
        sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, None, &[("amount", "12.5"), ("currency", "eur")]).await;
    assert_eq!(error_of(bad, 400).await["param"], "amount");
    let unknown = sim.get("/v1/charges/ch_nothing", DEFAULT_SECRET_KEY).await;
    assert_eq!(error_of(unknown, 404).await["code"], "resource_missing");
    let route = sim.get("/v1/teleports", DEFAULT_SECRET_KEY).await;
    assert!(error_of(route, 404).await["message"].as_str().unwrap().starts_with("Unrecognized request URL"));
    let list = sim.get("/v1/charges?limit=101", DEFAULT_SECRET_KEY).await;
    assert_eq!(error_of(list, 400).await["param"], "limit");
    let expand = sim.get("/v1/balance?expand[]=nothing", DEFAULT_SECRET_KEY).await;
    assert_eq!(error_of(expand, 400).await["param"], "expand");
}

#[tokio::test]
async fn a_failed_payout_returns_its_funds_to_the_next_payout() {
    let sim = start(3).await;
    for _ in 0..3 {
        assert_eq!(sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, None, VISA).await.status(), StatusCode::OK);
    }
    sim.control("/_stripe/clock/advance", json!({"seconds": 2 * 86_400})).await;
    let payouts: Value = sim.get("/v1/payouts", DEFAULT_SECRET_KEY).await.json().await.unwrap();
    let payout = payouts["data"][0].clone();
    assert_eq!((payout["amount"].as_i64(), payout["status"].as_str()), (Some(3 * 1912), Some("in_transit")));
    assert_eq!(payout["arrival_date"].as_i64().unwrap() - payout["created"].as_i64().unwrap(), 2 * 86_400);

    let failed = sim.control(&format!("/_stripe/payouts/{}/fail", payout["id"].as_str().unwrap()), json!({})).await;
    assert_eq!((failed["status"].as_str(), failed["failure_code"].as_str()), (Some("failed"), Some("account_closed")));
    let txn = sim
        .get(
            &format!("/v1/balance_transactions/{}", failed["failure_balance_transaction"].as_str().unwrap()),
            DEFAULT_SECRET_KEY,
        )
        .await;
    let txn: Value = txn.json().await.unwrap();
    assert_eq!((txn["type"].as_str(), txn["amount"].as_i64()), (Some("payout_failure"), Some(3 * 1912)));

    sim.control("/_stripe/clock/advance", json!({"seconds": 86_400})).await;
    let payouts: Value = sim.get("/v1/payouts", DEFAULT_SECRET_KEY).await.json().await.unwrap();
    assert_eq!(payouts["data"].as_array().unwrap().len(), 2);
    assert_eq!(payouts["data"][0]["amount"].as_i64(), Some(3 * 1912), "the failed amount is paid out again");
    let events: Value = sim.get("/v1/events?type=payout.failed", DEFAULT_SECRET_KEY).await.json().await.unwrap();
    assert_eq!(events["data"][0]["data"]["object"]["id"], payout["id"]);
}

/// A receiver that answers 500 to its first `fail` requests, then 200; keeps every body and
/// signature.
async fn receiver(fail: usize) -> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    use axum::{Router, http::HeaderMap, routing::post};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let mut kept = kept.lock().unwrap();
                let signature = headers["stripe-signature"].to_str().unwrap().to_owned();
                kept.push((body, signature));
                if kept.len() <= fail { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn wait_for(seen: &std::sync::Mutex<Vec<(String, String)>>, count: usize) -> Vec<(String, String)> {
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.lock().unwrap().clone()
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_misbehave_on_command() {
    let sim = start(4).await;
    let (url, seen) = receiver(1).await;
    let endpoint = sim
        .post(
            "/v1/webhook_endpoints",
            DEFAULT_SECRET_KEY,
            None,
            &[("url", &url), ("enabled_events[]", "customer.created")],
        )
        .await;
    let endpoint: Value = endpoint.json().await.unwrap();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let listed: Value = sim.get("/v1/webhook_endpoints", DEFAULT_SECRET_KEY).await.json().await.unwrap();
    assert!(listed["data"][0].get("secret").is_none(), "the secret is shown once");

    sim.post("/v1/customers", DEFAULT_SECRET_KEY, None, &[("name", "Retried")]).await;
    sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, None, VISA).await;
    let got = wait_for(&seen, 2).await;
    assert_eq!(got.len(), 2, "the failed delivery is retried; unsubscribed events are not sent");
    assert_eq!(got[0].0, got[1].0);
    for (body, header) in &got {
        let t: i64 = header.split(',').next().unwrap().trim_start_matches("t=").parse().unwrap();
        assert_eq!(header, &signature(&secret, t, body));
    }

    sim.http.put(format!("{}/_stripe/webhooks/mode", sim.base)).json(&json!({"duplicate": 1})).send().await.unwrap();
    sim.post("/v1/customers", DEFAULT_SECRET_KEY, None, &[("name", "Twice")]).await;
    let got = wait_for(&seen, 4).await;
    assert_eq!(got.len(), 4);
    assert_eq!(got[2].0, got[3].0, "a duplicate is the same event");
    sim.http.put(format!("{}/_stripe/webhooks/mode", sim.base)).json(&json!({"drop": 1})).send().await.unwrap();
    sim.post("/v1/customers", DEFAULT_SECRET_KEY, None, &[("name", "Dropped")]).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(seen.lock().unwrap().len(), 4, "a dropped delivery never arrives");
}

#[tokio::test]
async fn official_stripe_client_conforms() {
    let python = python::python_with(&[("stripe", "16.1.0")]).await;
    let sim = start(5).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/stripe_conformance.py");
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(&sim.base)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .output(),
    )
    .await
    .expect("the conformance script timed out")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "conformance failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[tokio::test]
async fn a_paid_payout_arrives_in_the_linked_sandbox_bank_as_a_credit() {
    use payymo::sandbox::gocardless::{self, SandboxState};
    let start_at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let bank = SandboxState::new(6, Clock::fixed(start_at));
    let bank_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bank_base = format!("http://{}", bank_listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(gocardless::serve(bank_listener, bank.clone(), shutdown.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stripe = StripeSim::new(6, Clock::fixed(start_at)).with_bank(bank);
    let account = stripe.default_account();
    tokio::spawn(serve(listener, stripe, shutdown.clone()));
    let http = Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let sim = Sim { base, http, shutdown };

    // A bank account in GBP at the sandbox bank, through the consent flow.
    let http = &sim.http;
    let new_token = || async {
        let token: Value = http
            .post(format!("{bank_base}/api/v2/token/new/"))
            .json(&json!({"secret_id": "sandbox-secret-id", "secret_key": "sandbox-secret-key"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token["access"].as_str().unwrap().to_owned()
    };
    let token = &new_token().await;
    let requisition: Value = http
        .post(format!("{bank_base}/api/v2/requisitions/"))
        .bearer_auth(token)
        .json(&json!({"redirect": "https://app.example/cb", "institution_id": "SANDBOXFINANCE_SFIN0000"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = requisition["id"].as_str().unwrap();
    http.post(format!("{bank_base}/_sandbox/consent/{id}/approve")).send().await.unwrap();
    let requisition: Value = http
        .get(format!("{bank_base}/api/v2/requisitions/{id}/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut gbp = None;
    for bank_account in requisition["accounts"].as_array().unwrap() {
        let bank_account = bank_account.as_str().unwrap();
        let meta: Value = http
            .get(format!("{bank_base}/api/v2/accounts/{bank_account}/details/"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if meta["account"]["currency"] == "GBP" {
            gbp = Some(bank_account.to_owned());
        }
    }
    let gbp = gbp.expect("the sandbox bank has a GBP account");
    sim.control(&format!("/_stripe/accounts/{account}/bank"), json!({"account_id": gbp})).await;

    let pay = [("amount", "12345"), ("currency", "gbp"), ("payment_method", "pm_card_visa"), ("confirm", "true")];
    sim.post("/v1/payment_intents", DEFAULT_SECRET_KEY, None, &pay).await;
    sim.control("/_stripe/clock/advance", json!({"seconds": 5 * 86_400})).await;
    http.post(format!("{bank_base}/_sandbox/clock/advance"))
        .json(&json!({"seconds": 5 * 86_400}))
        .send()
        .await
        .unwrap();
    let payouts: Value = sim.get("/v1/payouts", DEFAULT_SECRET_KEY).await.json().await.unwrap();
    let payout = &payouts["data"][0];
    assert_eq!((payout["status"].as_str(), payout["amount"].as_i64()), (Some("paid"), Some(12345 - 388)));
    let token = &new_token().await;

    let transactions: Value = http
        .get(format!("{bank_base}/api/v2/accounts/{gbp}/transactions/?date_from=2026-03-01"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let booked = transactions["transactions"]["booked"].as_array().unwrap_or_else(|| panic!("{transactions}"));
    let credit = booked
        .iter()
        .find(|t| t["transactionId"] == format!("stripe-{}", payout["id"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("no payout credit among {booked:?}"));
    assert_eq!(credit["transactionAmount"]["amount"], "119.57");
    assert_eq!(credit["transactionAmount"]["currency"], "GBP");
    let arrival = chrono::DateTime::from_timestamp(payout["arrival_date"].as_i64().unwrap(), 0).unwrap();
    assert_eq!(credit["bookingDate"], arrival.format("%Y-%m-%d").to_string());
    let remittance = credit["remittanceInformationUnstructured"].as_str().unwrap();
    assert!(remittance.contains("PAYYMO SANDBOX"), "{remittance}");
    assert!(remittance.contains(payout["trace_id"]["value"].as_str().unwrap()), "{remittance}");
}
