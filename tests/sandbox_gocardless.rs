//! The GoCardless Bank Account Data simulator over real HTTP: the whole consent flow, limits,
//! expiry, faults, determinism, and conformance with the official `nordigen` Python client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use payymo::sandbox::gocardless::{Clock, SandboxState, serve};
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let clock = Clock::fixed(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, SandboxState::new(seed, clock), shutdown.clone()));
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

/// A Python with the official client: the system's when it has `nordigen`, otherwise a private
/// virtualenv under `target/` that this creates once (from PyPI), so `cargo test` needs no manual
/// step on a fresh machine.
async fn python_with_nordigen() -> String {
    let has_nordigen = |python: String| async move {
        let probe = tokio::process::Command::new(&python).args(["-c", "import nordigen"]).output().await;
        probe.is_ok_and(|out| out.status.success())
    };
    if has_nordigen("python3".to_owned()).await {
        return "python3".to_owned();
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/conformance-venv");
    let python = format!("{venv}/bin/python");
    if has_nordigen(python.clone()).await {
        return python;
    }
    let run = |program: String, args: Vec<&'static str>| async move {
        let out = tokio::process::Command::new(&program).args(&args).output().await;
        assert!(
            out.as_ref().is_ok_and(|o| o.status.success()),
            "installing the nordigen client failed ({program} {args:?}): {out:?}; install it by hand with pip install nordigen==1.4.2"
        );
    };
    run("python3".to_owned(), vec!["-m", "venv", venv]).await;
    run(python.clone(), vec!["-m", "pip", "install", "--quiet", "nordigen==1.4.2"]).await;
    python
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
