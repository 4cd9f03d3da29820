//! The GoCardless Bank Account Data simulator over real HTTP: the whole consent flow, limits,
//! expiry, faults, determinism, and conformance with the official `nordigen` Python client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use payymo::sandbox::gocardless::{Clock, CompanyLimits, SandboxConfig, SandboxState, serve};
use reqwest::{Client, StatusCode, redirect::Policy};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SANDBOX_BANK: &str = "SANDBOXFINANCE_SFIN0000";

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
    start_with(seed, SandboxConfig::default()).await
}

async fn start_with(seed: u64, config: SandboxConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let clock = Clock::fixed(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, SandboxState::with_config(seed, clock, config), shutdown.clone()));
    let http = Client::builder().no_proxy().redirect(Policy::none()).build().unwrap();
    Sim { base, http, shutdown }
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    async fn token(&self) -> Value {
        let response = self
            .post(
                "/api/v2/token/new/",
                None,
                json!({"secret_id": "sandbox-secret-id", "secret_key": "sandbox-secret-key"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn access(&self) -> String {
        self.token().await["access"].as_str().unwrap().to_owned()
    }

    async fn advance(&self, seconds: i64) {
        let response = self.post("/_sandbox/clock/advance", None, json!({"seconds": seconds})).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Agreement + requisition + consent approval; returns (requisition id, account ids).
    async fn link(&self, token: &str, agreement: Value, reference: &str) -> (String, Vec<String>) {
        let response = self.post("/api/v2/agreements/enduser/", Some(token), agreement).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let agreement: Value = response.json().await.unwrap();
        let body = json!({"redirect": "https://app.example/cb", "institution_id": SANDBOX_BANK,
            "reference": reference, "agreement": agreement["id"]});
        let response = self.post("/api/v2/requisitions/", Some(token), body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let requisition: Value = response.json().await.unwrap();
        let id = requisition["id"].as_str().unwrap().to_owned();
        let response = self.post(&format!("/_sandbox/consent/{id}/approve"), None, json!({})).await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let requisition: Value = self.get(&format!("/api/v2/requisitions/{id}/"), token).await.json().await.unwrap();
        assert_eq!(requisition["status"], "LN");
        let accounts = requisition["accounts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned());
        (id, accounts.collect())
    }

    async fn link_default(&self, token: &str, reference: &str) -> (String, Vec<String>) {
        self.link(token, json!({"institution_id": SANDBOX_BANK}), reference).await
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).unwrap_or_else(|| panic!("missing header {name}")).to_str().unwrap().to_owned()
}

fn is_decimal_string(value: &Value) -> bool {
    let Some(text) = value.as_str() else { return false };
    let digits = text.strip_prefix('-').unwrap_or(text);
    let Some((whole, cents)) = digits.split_once('.') else { return false };
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && cents.len() == 2
        && cents.chars().all(|c| c.is_ascii_digit())
}

#[tokio::test]
async fn tokens_and_authentication_errors() {
    let sim = start(1).await;
    let token = sim.token().await;
    assert_eq!(token["access_expires"], 86400);
    assert_eq!(token["refresh_expires"], 2592000);

    let wrong = sim.post("/api/v2/token/new/", None, json!({"secret_id": "x", "secret_key": "y"})).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        json!({"summary": "Authentication failed", "detail": "No active account found with the given credentials",
            "status_code": 401})
    );

    let bogus = sim.get("/api/v2/institutions/?country=GB", "not-a-token").await;
    assert_eq!(bogus.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bogus.json::<Value>().await.unwrap(),
        json!({"summary": "Invalid token", "detail": "Token is invalid or expired", "status_code": 401})
    );

    // The refresh token is not an access token.
    let refresh = token["refresh"].as_str().unwrap();
    assert_eq!(sim.get("/api/v2/institutions/", refresh).await.status(), StatusCode::UNAUTHORIZED);

    // Access tokens die after 24 h of simulated time; the refresh token still mints new ones.
    let access = token["access"].as_str().unwrap();
    sim.advance(86_401).await;
    assert_eq!(sim.get("/api/v2/institutions/", access).await.status(), StatusCode::UNAUTHORIZED);
    let refreshed = sim.post("/api/v2/token/refresh/", None, json!({"refresh": refresh})).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(refreshed["access_expires"], 86400);
    assert!(refreshed.get("refresh").is_none());
    let new_access = refreshed["access"].as_str().unwrap();
    assert_eq!(sim.get("/api/v2/institutions/", new_access).await.status(), StatusCode::OK);

    // After 30 days the refresh token is gone too.
    sim.advance(30 * 86_400).await;
    let late = sim.post("/api/v2/token/refresh/", None, json!({"refresh": refresh})).await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn consent_flow_accounts_and_data_shapes() {
    let sim = start(2).await;
    let token = sim.access().await;

    let institutions: Value = sim.get("/api/v2/institutions/?country=GB", &token).await.json().await.unwrap();
    let list = institutions.as_array().unwrap();
    assert!(list.len() >= 3);
    let bank = list.iter().find(|i| i["id"] == SANDBOX_BANK).expect("sandbox bank listed for GB");
    assert!(bank["transaction_total_days"].is_string() && bank["max_access_valid_for_days"].is_string());
    let one: Value = sim.get(&format!("/api/v2/institutions/{SANDBOX_BANK}/"), &token).await.json().await.unwrap();
    assert!(one["supported_features"].is_array());
    assert_eq!(sim.get("/api/v2/institutions/NOPE_NOPE/", &token).await.status(), StatusCode::NOT_FOUND);

    // Agreement validation, with the reference's 400 bodies.
    let too_long = sim
        .post(
            "/api/v2/agreements/enduser/",
            Some(&token),
            json!({"institution_id": SANDBOX_BANK, "max_historical_days": 731}),
        )
        .await;
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        too_long.json::<Value>().await.unwrap(),
        json!({"summary": "Incorrect max_historical_days", "detail": "max_historical_days must be > 0 and <= 730",
            "status_code": 400})
    );
    let zero = sim
        .post(
            "/api/v2/agreements/enduser/",
            Some(&token),
            json!({"institution_id": SANDBOX_BANK, "access_valid_for_days": 0}),
        )
        .await;
    assert_eq!(zero.status(), StatusCode::BAD_REQUEST);
    assert_eq!(zero.json::<Value>().await.unwrap()["summary"], "Incorrect access_valid_for_days");

    let agreement: Value = sim
        .post(
            "/api/v2/agreements/enduser/",
            Some(&token),
            json!({"institution_id": SANDBOX_BANK, "max_historical_days": 120}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(agreement["access_scope"], json!(["balances", "details", "transactions"]));
    assert_eq!(agreement["accepted"], Value::Null);
    let fetched: Value = sim
        .get(&format!("/api/v2/agreements/enduser/{}/", agreement["id"].as_str().unwrap()), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["id"], agreement["id"]);

    let created = sim
        .post(
            "/api/v2/requisitions/",
            Some(&token),
            json!({"redirect": "https://app.example/cb", "institution_id": SANDBOX_BANK, "reference": "tenant42-conn-7",
                "agreement": agreement["id"], "user_language": "EN"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let requisition: Value = created.json().await.unwrap();
    let id = requisition["id"].as_str().unwrap();
    assert_eq!(requisition["status"], "CR");
    assert_eq!(requisition["accounts"], json!([]));
    assert_eq!(requisition["link"], format!("{}/_sandbox/consent/{id}", sim.base));
    let duplicate = sim
        .post(
            "/api/v2/requisitions/",
            Some(&token),
            json!({"redirect": "https://app.example/cb", "institution_id": SANDBOX_BANK, "reference": "tenant42-conn-7"}),
        )
        .await;
    assert_eq!(duplicate.status(), StatusCode::BAD_REQUEST);

    let page = sim.http.get(requisition["link"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("action=\"/_sandbox/consent/{id}/approve\"")), "{html}");
    assert!(html.contains(&format!("action=\"/_sandbox/consent/{id}/reject\"")), "{html}");

    let approved = sim.post(&format!("/_sandbox/consent/{id}/approve"), None, json!({})).await;
    assert_eq!(approved.status(), StatusCode::FOUND);
    assert_eq!(header(&approved, "location"), "https://app.example/cb?ref=tenant42-conn-7");
    // A used link is spent.
    assert_eq!(sim.post(&format!("/_sandbox/consent/{id}/approve"), None, json!({})).await.status(), StatusCode::GONE);

    let linked: Value = sim.get(&format!("/api/v2/requisitions/{id}/"), &token).await.json().await.unwrap();
    assert_eq!(linked["status"], "LN");
    let account = linked["accounts"][0].as_str().unwrap().to_owned();
    let accepted: Value = sim
        .get(&format!("/api/v2/agreements/enduser/{}/", agreement["id"].as_str().unwrap()), &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(accepted["accepted"].is_string());

    let meta: Value = sim.get(&format!("/api/v2/accounts/{account}/"), &token).await.json().await.unwrap();
    assert_eq!(meta["status"], "READY");
    assert_eq!(meta["institution_id"], SANDBOX_BANK);
    assert!(meta["iban"].as_str().unwrap().starts_with("GB"));
    assert!(meta["owner_name"].is_string());

    let details = sim.get(&format!("/api/v2/accounts/{account}/details/"), &token).await;
    assert_eq!(details.status(), StatusCode::OK);
    let details: Value = details.json().await.unwrap();
    assert_eq!(details["account"]["iban"], meta["iban"]);

    let balances: Value = sim.get(&format!("/api/v2/accounts/{account}/balances/"), &token).await.json().await.unwrap();
    let balances = balances["balances"].as_array().unwrap();
    assert!(!balances.is_empty());
    assert!(balances.iter().all(|b| is_decimal_string(&b["balanceAmount"]["amount"])));

    let response = sim
        .get(&format!("/api/v2/accounts/{account}/transactions/?date_from=2026-01-01&date_to=2026-03-02"), &token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let booked = body["transactions"]["booked"].as_array().unwrap();
    let pending = body["transactions"]["pending"].as_array().unwrap();
    assert!(booked.len() > 30, "two months of history, got {}", booked.len());
    for t in booked {
        assert!(is_decimal_string(&t["transactionAmount"]["amount"]), "{t}");
        for field in
            ["transactionId", "internalTransactionId", "bookingDate", "valueDate", "remittanceInformationUnstructured"]
        {
            assert!(t[field].is_string(), "booked {t} lacks {field}");
        }
        assert!(t["creditorName"].is_string() || t["debtorName"].is_string(), "{t}");
        let date = t["bookingDate"].as_str().unwrap();
        assert!(("2026-01-01".."2026-03-02").contains(&date), "{date} out of range");
    }
    for t in pending {
        assert!(t.get("internalTransactionId").is_none() && t.get("bookingDate").is_none(), "{t}");
        assert!(is_decimal_string(&t["transactionAmount"]["amount"]));
    }
    let invoice =
        |t: &&Value| t["remittanceInformationUnstructured"].as_str().unwrap().to_uppercase().contains("INV-2026-");
    assert!(booked.iter().any(|t| invoice(&t)), "some remittance carries an invoice number");
    assert!(body["last_updated"].is_string());

    let backwards = sim
        .get(&format!("/api/v2/accounts/{account}/transactions/?date_from=2026-03-01&date_to=2026-02-01"), &token)
        .await;
    assert_eq!(backwards.status(), StatusCode::BAD_REQUEST);
    assert_eq!(backwards.json::<Value>().await.unwrap()["summary"], "Incorrect date range");

    let unknown = sim.get("/api/v2/accounts/00000000-0000-4000-8000-000000000000/details/", &token).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.json::<Value>().await.unwrap()["status_code"], 404);
    let invalid = sim.get("/api/v2/accounts/not-a-uuid/", &token).await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    assert_eq!(invalid.json::<Value>().await.unwrap()["summary"], "Invalid Account ID");

    let deleted =
        sim.http.delete(sim.url(&format!("/api/v2/requisitions/{id}/"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(deleted.json::<Value>().await.unwrap()["summary"], "Requisition deleted");
    assert_eq!(sim.get(&format!("/api/v2/requisitions/{id}/"), &token).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rejected_consent_redirects_with_an_error() {
    let sim = start(3).await;
    let token = sim.access().await;
    let requisition: Value = sim
        .post(
            "/api/v2/requisitions/",
            Some(&token),
            json!({"redirect": "https://app.example/cb?tenant=7", "institution_id": SANDBOX_BANK, "reference": "r-1"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = requisition["id"].as_str().unwrap();
    let rejected = sim.post(&format!("/_sandbox/consent/{id}/reject"), None, json!({})).await;
    assert_eq!(rejected.status(), StatusCode::FOUND);
    let location = header(&rejected, "location");
    assert!(
        location.starts_with("https://app.example/cb?tenant=7&ref=r-1&error=UserCancelledSession&details="),
        "{location}"
    );
    let after: Value = sim.get(&format!("/api/v2/requisitions/{id}/"), &token).await.json().await.unwrap();
    assert_eq!(after["status"], "RJ");
    assert_eq!(after["accounts"], json!([]));
}

#[tokio::test]
async fn daily_success_budget_per_account_and_endpoint() {
    let sim = start(4).await;
    let token = sim.access().await;
    let (_, accounts) = sim.link_default(&token, "limits").await;
    let details = format!("/api/v2/accounts/{}/details/", accounts[0]);
    for remaining in (0..4).rev() {
        let response = sim.get(&details, &token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "http_x_ratelimit_account_success_limit"), "4");
        assert_eq!(header(&response, "http_x_ratelimit_account_success_remaining"), remaining.to_string());
    }
    let limited = sim.get(&details, &token).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "http_x_ratelimit_account_success_remaining"), "0");
    // 09:00 on the simulated day: 15 hours to midnight.
    assert_eq!(header(&limited, "http_x_ratelimit_account_success_reset"), "54000");
    assert_eq!(
        limited.json::<Value>().await.unwrap(),
        json!({"summary": "Couldn't update account details",
            "detail": "Daily request limit set by the Institution has been exceeded.", "status_code": 429,
            "type": "RateLimitError"})
    );
    // Other endpoints have their own budget; metadata has none.
    assert_eq!(sim.get(&format!("/api/v2/accounts/{}/balances/", accounts[0]), &token).await.status(), StatusCode::OK);
    assert_eq!(sim.get(&format!("/api/v2/accounts/{}/", accounts[0]), &token).await.status(), StatusCode::OK);
    // The budget resets at midnight.
    sim.advance(15 * 3600).await;
    let token = sim.access().await;
    let next_day = sim.get(&details, &token).await;
    assert_eq!(next_day.status(), StatusCode::OK);
    assert_eq!(header(&next_day, "http_x_ratelimit_account_success_remaining"), "3");
}

#[tokio::test]
async fn access_expires_with_the_agreement_or_on_demand() {
    let sim = start(5).await;
    let token = sim.access().await;
    let (id, accounts) =
        sim.link(&token, json!({"institution_id": SANDBOX_BANK, "access_valid_for_days": 1}), "short").await;
    let balances = format!("/api/v2/accounts/{}/balances/", accounts[0]);
    assert_eq!(sim.get(&balances, &token).await.status(), StatusCode::OK);
    sim.advance(86_400).await;
    let token = sim.access().await;
    let requisition: Value = sim.get(&format!("/api/v2/requisitions/{id}/"), &token).await.json().await.unwrap();
    assert_eq!(requisition["status"], "EX");
    let expired = sim.get(&balances, &token).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["type"], "AccessExpiredError");
    assert_eq!(body["status_code"], 401);

    let (other, accounts) = sim.link_default(&token, "forced").await;
    let expire = sim.post(&format!("/_sandbox/requisitions/{other}/expire"), None, json!({})).await;
    assert_eq!(expire.status(), StatusCode::OK);
    assert_eq!(expire.json::<Value>().await.unwrap()["status"], "EX");
    let denied = sim.get(&format!("/api/v2/accounts/{}/transactions/", accounts[0]), &token).await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(denied.json::<Value>().await.unwrap()["type"], "AccessExpiredError");
}

#[tokio::test]
async fn injected_faults_fail_the_next_calls() {
    let sim = start(6).await;
    let token = sim.access().await;
    let armed = sim.post("/_sandbox/faults", None, json!({"status": 429, "count": 2, "retry_after_seconds": 7})).await;
    assert_eq!(armed.status(), StatusCode::OK);
    for _ in 0..2 {
        let response = sim.get("/api/v2/institutions/", &token).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&response, "retry-after"), "7");
        assert_eq!(response.json::<Value>().await.unwrap()["status_code"], 429);
    }
    assert_eq!(sim.get("/api/v2/institutions/", &token).await.status(), StatusCode::OK);

    sim.post("/_sandbox/faults", None, json!({"status": 503, "count": 1})).await;
    let unavailable = sim.get("/api/v2/institutions/", &token).await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.json::<Value>().await.unwrap()["status_code"], 503);

    sim.post("/_sandbox/faults", None, json!({"count": 1, "latency_ms": 200})).await;
    let started = Instant::now();
    assert_eq!(sim.get("/api/v2/institutions/", &token).await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));

    let bad = sim.post("/_sandbox/faults", None, json!({"status": 200, "count": 1})).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

async fn transactions_of(sim: &Sim, token: &str, account: &str) -> Value {
    let response = sim.get(&format!("/api/v2/accounts/{account}/transactions/"), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn same_seed_same_data_and_history_grows_with_the_clock() {
    let (a, b, c) = (start(77).await, start(77).await, start(78).await);
    let (ta, tb, tc) = (a.access().await, b.access().await, c.access().await);
    let (_, accounts_a) = a.link_default(&ta, "same").await;
    let (_, accounts_b) = b.link_default(&tb, "same").await;
    let (_, accounts_c) = c.link_default(&tc, "same").await;
    assert_eq!(accounts_a, accounts_b);
    assert_ne!(accounts_a, accounts_c);
    let first = transactions_of(&a, &ta, &accounts_a[0]).await;
    assert_eq!(first, transactions_of(&b, &tb, &accounts_b[0]).await);
    assert_ne!(first["transactions"], transactions_of(&c, &tc, &accounts_c[0]).await["transactions"]);

    // A week later, the week's transactions are booked and older ones are unchanged.
    a.advance(7 * 86_400).await;
    let ta = a.access().await;
    let later = transactions_of(&a, &ta, &accounts_a[0]).await;
    let ids = |v: &Value| -> Vec<String> {
        v["transactions"]["booked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["internalTransactionId"].as_str().unwrap().to_owned())
            .collect()
    };
    let (before, after) = (ids(&first), ids(&later));
    assert!(after.iter().any(|id| !before.contains(id)), "new transactions appeared");
    let dates = |v: &Value| -> Vec<String> {
        v["transactions"]["booked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["bookingDate"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(dates(&later).iter().any(|d| d.as_str() >= "2026-03-02"));
    let overlap: Vec<&String> = before.iter().filter(|id| after.contains(id)).collect();
    assert!(overlap.len() > before.len() / 2, "history is stable as the clock moves");
}

async fn balance(sim: &Sim, token: &str, account: &str, kind: &str) -> String {
    let response = sim.get(&format!("/api/v2/accounts/{account}/balances/"), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let entry = body["balances"].as_array().unwrap().iter().find(|b| b["balanceType"] == kind).unwrap().clone();
    entry["balanceAmount"]["amount"].as_str().unwrap().to_owned()
}

fn cents(amount: &str) -> i64 {
    let (whole, fraction) = amount.trim_start_matches('-').split_once('.').unwrap();
    let value = whole.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap();
    if amount.starts_with('-') { -value } else { value }
}

#[tokio::test]
async fn control_api_adds_explicit_and_pending_transactions() {
    let sim = start(10).await;
    let token = sim.access().await;
    let (_, accounts) = sim.link_default(&token, "added").await;
    let account = &accounts[0];
    let closing_before = cents(&balance(&sim, &token, account, "closingBooked").await);
    let available_before = cents(&balance(&sim, &token, account, "interimAvailable").await);

    let added = sim
        .post(
            &format!("/_sandbox/accounts/{account}/transactions"),
            None,
            json!({"transactions": [
                {"booking_date": "2026-03-01", "amount": "1250.00", "counterparty": "Acme Widgets Ltd",
                    "remittance": "Payment INV-2026-0042", "transaction_id": "bank-ref-1"},
                {"booking_date": "2026-03-02", "amount": "-12.34", "counterparty": "Pret A Manger",
                    "remittance": "Card payment Pret", "pending": true}
            ]}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["added"], 2);
    let receipts = added["transactions"].as_array().unwrap();
    assert_eq!(receipts[0]["transaction_id"], "bank-ref-1");
    assert_eq!(receipts[0]["pending"], false);
    assert!(receipts[0]["internal_transaction_id"].is_string());
    assert_eq!(receipts[1]["pending"], true);
    assert_eq!(receipts[1]["internal_transaction_id"], Value::Null);
    let hold = receipts[1]["transaction_id"].as_str().unwrap().to_owned();

    let body = transactions_of(&sim, &token, account).await;
    let booked = body["transactions"]["booked"].as_array().unwrap();
    let mine = booked.iter().find(|t| t["transactionId"] == "bank-ref-1").expect("the added booked transaction");
    assert_eq!(mine["transactionAmount"]["amount"], "1250.00");
    assert_eq!(mine["bookingDate"], "2026-03-01");
    assert_eq!(mine["debtorName"], "Acme Widgets Ltd");
    assert_eq!(mine["internalTransactionId"], receipts[0]["internal_transaction_id"]);
    let pending = body["transactions"]["pending"].as_array().unwrap();
    let held = pending.iter().find(|t| t["remittanceInformationUnstructured"] == "Card payment Pret").unwrap();
    assert!(held.get("internalTransactionId").is_none() && held.get("bookingDate").is_none(), "{held}");
    assert_eq!(held["transactionAmount"]["amount"], "-12.34");
    assert_eq!(held["creditorName"], "Pret A Manger");
    // Both count in the balances: the booked one everywhere, the pending one only as available.
    assert_eq!(cents(&balance(&sim, &token, account, "closingBooked").await), closing_before + 125_000);
    assert_eq!(cents(&balance(&sim, &token, account, "interimAvailable").await), available_before + 125_000 - 1234);

    // Booking the hold settles it a little higher, under the same id.
    let booked = sim
        .post(&format!("/_sandbox/accounts/{account}/transactions/{hold}/book"), None, json!({"amount": "-12.96"}))
        .await;
    assert_eq!(booked.status(), StatusCode::OK);
    let booked: Value = booked.json().await.unwrap();
    assert_eq!(booked["transactionId"], hold.as_str());
    assert_eq!(booked["bookingDate"], "2026-03-02");
    assert_eq!(booked["transactionAmount"]["amount"], "-12.96");
    assert!(booked["internalTransactionId"].is_string());
    let body = transactions_of(&sim, &token, account).await;
    assert!(body["transactions"]["booked"].as_array().unwrap().iter().any(|t| t["transactionId"] == hold.as_str()));
    assert!(
        body["transactions"]["pending"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["transactionAmount"]["amount"] != "-12.34")
    );
    let again = sim.post(&format!("/_sandbox/accounts/{account}/transactions/{hold}/book"), None, json!({})).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let nothing = sim.post(&format!("/_sandbox/accounts/{account}/transactions/nope/book"), None, json!({})).await;
    assert_eq!(nothing.status(), StatusCode::NOT_FOUND);

    // Errors use the API's body.
    let unknown = sim
        .post("/_sandbox/accounts/00000000-0000-4000-8000-000000000000/transactions", None, json!({"generate": 1}))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown["summary"], "Account ID 00000000-0000-4000-8000-000000000000 not found");
    assert_eq!(unknown["status_code"], 404);
    let path = format!("/_sandbox/accounts/{account}/transactions");
    let bad_amount =
        sim.post(&path, None, json!({"transactions": [{"booking_date": "2026-03-01", "amount": "1.234"}]})).await;
    assert_eq!(bad_amount.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad_amount.json::<Value>().await.unwrap()["summary"], "Invalid transactions[0].amount");
    let both = sim.post(&path, None, json!({"transactions": [], "generate": 3})).await;
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sim.post(&path, None, json!({"generate": 0})).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn control_api_generates_a_hundred_thousand_transactions_quickly() {
    let sim = start(11).await;
    let token = sim.access().await;
    let (_, accounts) = sim.link_default(&token, "bulk").await;
    let account = &accounts[0];
    let baseline = transactions_of(&sim, &token, account).await["transactions"]["booked"].as_array().unwrap().len();

    let started = Instant::now();
    let generated =
        sim.post(&format!("/_sandbox/accounts/{account}/transactions"), None, json!({"generate": 100_000})).await;
    let generation = started.elapsed();
    assert_eq!(generated.status(), StatusCode::CREATED);
    let generated: Value = generated.json().await.unwrap();
    assert_eq!(generated["added"], 100_000);
    // The default agreement keeps 90 days: the window is the 90 days up to yesterday.
    assert_eq!(generated["date_from"], "2025-12-02");
    assert_eq!(generated["date_to"], "2026-03-01");

    let started = Instant::now();
    let response = sim.get(&format!("/api/v2/accounts/{account}/transactions/"), &token).await;
    let answered = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap();
    let fetch = started.elapsed();
    eprintln!(
        "generate 100k: {generation:?}; GET /transactions/: answered in {answered:?}, {} bytes read in {fetch:?}",
        bytes.len()
    );
    // Speed is the benchmarks' business (timed assertions fail on a busy machine); this test
    // checks what 100,000 generated rows look like and prints how long they took.

    let body: Value = serde_json::from_slice(&bytes).unwrap();
    let booked = body["transactions"]["booked"].as_array().unwrap();
    assert_eq!(booked.len(), baseline + 100_000);
    let ids: std::collections::HashSet<&str> =
        booked.iter().map(|t| t["internalTransactionId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), booked.len(), "internalTransactionIds are unique");
    assert!(booked.windows(2).all(|w| w[0]["bookingDate"].as_str() >= w[1]["bookingDate"].as_str()), "newest first");

    // Same seed, same calls: the same transactions.
    let twin = start(11).await;
    let twin_token = twin.access().await;
    let (_, twin_accounts) = twin.link_default(&twin_token, "bulk").await;
    twin.post(&format!("/_sandbox/accounts/{}/transactions", twin_accounts[0]), None, json!({"generate": 100_000}))
        .await;
    let twin_body = transactions_of(&twin, &twin_token, &twin_accounts[0]).await;
    assert_eq!(body["transactions"], twin_body["transactions"]);
}

#[tokio::test]
async fn pending_transactions_book_with_changed_amounts_or_ids() {
    let sim = start(12).await;
    let (_, accounts) = sim.link_default(&sim.access().await, "pending").await;
    let account = &accounts[0];
    let mut seen_pending = Vec::new();
    for _ in 0..21 {
        let token = sim.access().await;
        let body = transactions_of(&sim, &token, account).await;
        seen_pending.extend(body["transactions"]["pending"].as_array().unwrap().iter().cloned());
        sim.advance(86_400).await;
    }
    let token = sim.access().await;
    let body = transactions_of(&sim, &token, account).await;
    let booked = body["transactions"]["booked"].as_array().unwrap();
    let (mut amount_changed, mut id_changed) = (0, 0);
    for pending in &seen_pending {
        let same_text = |t: &&Value| {
            t["remittanceInformationUnstructured"] == pending["remittanceInformationUnstructured"]
                && t["creditorName"] == pending["creditorName"]
                && t["debtorName"] == pending["debtorName"]
        };
        let Some(id) = pending["transactionId"].as_str() else { continue };
        if id.starts_with("PDNG-") {
            assert!(booked.iter().all(|t| t["transactionId"] != id), "{id} books under the bank's final id");
            let same_amount = |t: &&Value| t["transactionAmount"] == pending["transactionAmount"];
            assert!(booked.iter().any(|t| same_text(&t) && same_amount(&t)), "{pending} booked with its amount");
            id_changed += 1;
        } else if let Some(settled) = booked.iter().find(|t| t["transactionId"] == id) {
            assert!(same_text(&settled), "{pending} vs {settled}");
            let value_dates = [pending["valueDate"].as_str().unwrap(), settled["valueDate"].as_str().unwrap()];
            let days = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
            assert!((days(value_dates[1]) - days(value_dates[0])).num_days().abs() <= 2, "{value_dates:?}");
            let (held, paid) = (
                cents(pending["transactionAmount"]["amount"].as_str().unwrap()),
                cents(settled["transactionAmount"]["amount"].as_str().unwrap()),
            );
            if held != paid {
                assert!(paid.abs() > held.abs() && paid.abs() <= held.abs() * 106 / 100 + 1, "{held} -> {paid}");
                amount_changed += 1;
            }
        }
    }
    assert!(amount_changed > 0 && id_changed > 0, "{amount_changed} amount changes, {id_changed} id changes");
}

#[tokio::test]
async fn dropped_connection_fault_closes_without_an_answer() {
    let sim = start(13).await;
    let token = sim.access().await;
    let armed = sim.post("/_sandbox/faults", None, json!({"drop_connection": true, "count": 2})).await;
    assert_eq!(armed.status(), StatusCode::OK);
    assert_eq!(armed.json::<Value>().await.unwrap()["drop_connection"], true);
    for _ in 0..2 {
        let outcome = sim.http.get(sim.url("/api/v2/institutions/")).bearer_auth(&token).send().await;
        let error = outcome.expect_err("a dropped connection gives no status");
        assert!(error.is_request() && !error.is_status() && !error.is_timeout(), "{error:?}");
    }
    assert_eq!(sim.get("/api/v2/institutions/", &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn agreements_can_be_accepted_once() {
    let sim = start(14).await;
    let token = sim.access().await;
    let agreement: Value = sim
        .post("/api/v2/agreements/enduser/", Some(&token), json!({"institution_id": SANDBOX_BANK}))
        .await
        .json()
        .await
        .unwrap();
    let accept = |id: String, body: Value| {
        let request = sim.http.put(sim.url(&format!("/api/v2/agreements/enduser/{id}/accept/")));
        request.bearer_auth(&token).json(&body).send()
    };
    let id = agreement["id"].as_str().unwrap().to_owned();
    let consent = json!({"user_agent": "Mozilla/5.0", "ip_address": "203.0.113.7"});
    let missing = accept(id.clone(), json!({"ip_address": "203.0.113.7"})).await.unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(missing.json::<Value>().await.unwrap()["summary"], "user_agent is required");
    let bad_ip = accept(id.clone(), json!({"user_agent": "x", "ip_address": "nope"})).await.unwrap();
    assert_eq!(bad_ip.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad_ip.json::<Value>().await.unwrap()["summary"], "Incorrect ip_address");

    let accepted = accept(id.clone(), consent.clone()).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["id"], id.as_str());
    assert_eq!(accepted["accepted"], "2026-03-02T09:00:00.000000Z");
    let fetched: Value = sim.get(&format!("/api/v2/agreements/enduser/{id}/"), &token).await.json().await.unwrap();
    assert_eq!(fetched["accepted"], accepted["accepted"]);

    let twice = accept(id.clone(), consent.clone()).await.unwrap();
    assert_eq!(twice.status(), StatusCode::CONFLICT);
    assert_eq!(
        twice.json::<Value>().await.unwrap(),
        json!({"summary": "EUA cannot be accepted more than once",
            "detail": format!("End User Agreement {id} has already been accepted"), "status_code": 409})
    );
    let unknown = accept("00000000-0000-4000-8000-000000000000".to_owned(), consent.clone()).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.json::<Value>().await.unwrap()["summary"], "Not found.");
    let invalid = accept("not-a-uuid".to_owned(), consent).await.unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    assert_eq!(invalid.json::<Value>().await.unwrap()["summary"], "Invalid EndUserAgreement ID");
    // An accepted agreement can no longer be deleted.
    let delete = sim.http.delete(sim.url(&format!("/api/v2/agreements/enduser/{id}/"))).bearer_auth(&token);
    assert_eq!(delete.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn company_limits_per_minute_and_hour() {
    let limits = CompanyLimits {
        institutions_per_minute: 3,
        token_new_per_hour: 2,
        accounts_per_minute: 4,
        ..Default::default()
    };
    let sim = start_with(15, SandboxConfig { company_limits: limits, ..Default::default() }).await;
    let token = sim.access().await;
    for remaining in (0..3).rev() {
        let response = sim.get("/api/v2/institutions/", &token).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "http_x_ratelimit_limit"), "3");
        assert_eq!(header(&response, "http_x_ratelimit_remaining"), remaining.to_string());
        assert_eq!(header(&response, "http_x_ratelimit_reset"), "60");
        assert!(response.headers().get("x-ratelimit-limit").is_none(), "the other spelling is opt-in");
    }
    let limited = sim.get("/api/v2/institutions/", &token).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), "60");
    assert_eq!(header(&limited, "http_x_ratelimit_remaining"), "0");
    assert_eq!(
        limited.json::<Value>().await.unwrap(),
        json!({"summary": "Rate limit exceeded",
            "detail": "The rate limit for this resource is 3/minute. Please try again in 60 seconds", "status_code": 429})
    );
    // Other groups have their own budget; the window rolls over with the simulated clock.
    assert_eq!(sim.get("/api/v2/requisitions/", &token).await.status(), StatusCode::OK);
    sim.advance(45).await;
    let later = sim.get("/api/v2/institutions/", &token).await;
    assert_eq!(later.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&later, "retry-after"), "15");
    sim.advance(15).await;
    assert_eq!(sim.get("/api/v2/institutions/", &token).await.status(), StatusCode::OK);

    // New tokens: per hour (one was issued above).
    let credentials = json!({"secret_id": "sandbox-secret-id", "secret_key": "sandbox-secret-key"});
    assert_eq!(sim.post("/api/v2/token/new/", None, credentials.clone()).await.status(), StatusCode::OK);
    let hourly = sim.post("/api/v2/token/new/", None, credentials).await;
    assert_eq!(hourly.status(), StatusCode::TOO_MANY_REQUESTS);
    let detail = hourly.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_owned();
    assert!(detail.starts_with("The rate limit for this resource is 2/hour. Please try again in "), "{detail}");

    // The account endpoints share one budget: metadata, details, balances and transactions.
    let (_, accounts) = sim.link_default(&token, "company").await;
    let account = &accounts[0];
    for path in ["/", "/details/", "/balances/", "/transactions/"] {
        assert_eq!(sim.get(&format!("/api/v2/accounts/{account}{path}"), &token).await.status(), StatusCode::OK);
    }
    let shared = sim.get(&format!("/api/v2/accounts/{account}/details/"), &token).await;
    assert_eq!(shared.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(shared.json::<Value>().await.unwrap()["summary"], "Rate limit exceeded");
}

#[tokio::test]
async fn x_ratelimit_spelling_is_an_option() {
    let sim = start_with(16, SandboxConfig { x_ratelimit_headers: true, ..Default::default() }).await;
    let token = sim.access().await;
    let (_, accounts) = sim.link_default(&token, "spelling").await;
    let response = sim.get(&format!("/api/v2/accounts/{}/details/", accounts[0]), &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    for (documented, alternative) in [
        ("http_x_ratelimit_limit", "X-RateLimit-Limit"),
        ("http_x_ratelimit_remaining", "X-RateLimit-Remaining"),
        ("http_x_ratelimit_reset", "X-RateLimit-Reset"),
        ("http_x_ratelimit_account_success_limit", "X-RateLimit-Account-Success-Limit"),
        ("http_x_ratelimit_account_success_remaining", "X-RateLimit-Account-Success-Remaining"),
        ("http_x_ratelimit_account_success_reset", "X-RateLimit-Account-Success-Reset"),
    ] {
        assert_eq!(header(&response, documented), header(&response, alternative), "{alternative}");
    }
    assert_eq!(header(&response, "X-RateLimit-Account-Success-Remaining"), "3");
    assert_eq!(header(&response, "X-RateLimit-Limit"), "100");
}

#[tokio::test]
async fn accounts_are_processing_before_they_are_ready() {
    let sim = start_with(17, SandboxConfig { account_ready_after_seconds: 5, ..Default::default() }).await;
    let token = sim.access().await;
    let (_, accounts) = sim.link_default(&token, "processing").await;
    let account = &accounts[0];
    let meta: Value = sim.get(&format!("/api/v2/accounts/{account}/"), &token).await.json().await.unwrap();
    assert_eq!(meta["status"], "PROCESSING");
    let early = sim.get(&format!("/api/v2/accounts/{account}/transactions/"), &token).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    let early: Value = early.json().await.unwrap();
    assert_eq!(early["summary"], "Account is being processed");
    assert_eq!(early["status_code"], 409);
    sim.advance(5).await;
    let meta: Value = sim.get(&format!("/api/v2/accounts/{account}/"), &token).await.json().await.unwrap();
    assert_eq!(meta["status"], "READY");
    let ready = sim.get(&format!("/api/v2/accounts/{account}/transactions/"), &token).await;
    assert_eq!(ready.status(), StatusCode::OK);
    // The refused call did not use the day's budget.
    assert_eq!(header(&ready, "http_x_ratelimit_account_success_remaining"), "3");
}

#[tokio::test]
async fn suspended_requisitions_suspend_their_accounts() {
    let sim = start(18).await;
    let token = sim.access().await;
    let (id, accounts) = sim.link_default(&token, "suspend").await;
    let suspended = sim.post(&format!("/_sandbox/requisitions/{id}/suspend"), None, json!({})).await;
    assert_eq!(suspended.status(), StatusCode::OK);
    assert_eq!(suspended.json::<Value>().await.unwrap()["status"], "SU");
    let requisition: Value = sim.get(&format!("/api/v2/requisitions/{id}/"), &token).await.json().await.unwrap();
    assert_eq!(requisition["status"], "SU");
    for account in &accounts {
        let meta: Value = sim.get(&format!("/api/v2/accounts/{account}/"), &token).await.json().await.unwrap();
        assert_eq!(meta["status"], "SUSPENDED");
        for path in ["details/", "balances/", "transactions/"] {
            let response = sim.get(&format!("/api/v2/accounts/{account}/{path}"), &token).await;
            assert_eq!(response.status(), StatusCode::CONFLICT);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["summary"], "Account suspended");
            assert_eq!(body["status_code"], 409);
        }
    }
    let unknown = sim.post("/_sandbox/requisitions/00000000-0000-4000-8000-000000000000/suspend", None, json!({}));
    assert_eq!(unknown.await.status(), StatusCode::NOT_FOUND);
}

#[path = "conformance/python.rs"]
mod python;

/// A Python with the official `nordigen` client.
async fn python_with_nordigen() -> String {
    python::python_with(&[("nordigen", "1.4.2")]).await
}

#[tokio::test]
async fn official_nordigen_client_conforms() {
    let python = python_with_nordigen().await;
    let sim = start(9).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/nordigen_conformance.py");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
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
    assert!(stdout.contains("all nordigen conformance checks passed"), "{stdout}");
}
