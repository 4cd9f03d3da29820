//! Access control driven by the OpenAPI document, so every route added later is covered:
//! - isolation: for every `/api/v1` path with an id and every method, tenant B's credential on
//!   tenant A's object answers 404, A's data is unchanged, and B's attempt is audited;
//! - scopes: every operation refuses a credential lacking its declared scope with 403 naming it,
//!   and lets a credential holding exactly that scope past the scope check.

use std::collections::BTreeMap;

use payymo::domain::ids::{ApiKeyId, OAuthClientId, UserId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    TestApp,
    ids::{collection, placeholder_id},
    problem,
    tenants::TestTenant,
};

fn spec() -> Value {
    serde_json::from_str(&payymo::http::openapi::spec_json()).unwrap()
}

/// Every (method, path) under `/api/v1` in the spec.
fn operations(spec: &Value) -> Vec<(Method, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            ops.push((method, path.clone(), op.clone()));
        }
    }
    ops
}

/// Substitutes the path's single `{param}` with `id`.
fn fill(path: &str, id: &str) -> String {
    let start = path.find('{').unwrap();
    let end = path.find('}').unwrap();
    format!("{}{}{}", &path[..start], id, &path[end + 1..])
}

/// A body that passes validation, so the request reaches the lookup whose answer is tested.
/// Operations not listed get `{}`; a 422 tells you to add one here.
fn valid_body(method: &Method, path: &str) -> Value {
    match (method.as_str(), path) {
        ("PATCH", "/api/v1/members/{user_id}") => json!({"role": "viewer"}),
        ("POST", "/api/v1/webhook_endpoints/{id}/recover") => json!({"since": "2026-01-01T00:00:00Z"}),
        _ => json!({}),
    }
}

/// A match of a credit imported into `account` (EUR) with an invoice.
async fn reconciliation_match(app: &TestApp, a: &TestTenant, account: &str) -> String {
    let send = |method: Method, path: &'static str, body: Value| async move {
        let response = app.as_key(method, path, &a.key).json(&body).send().await.unwrap();
        response.json::<Value>().await.unwrap()
    };
    let import = send(
        Method::POST,
        "/api/v1/transactions/import",
        json!({"account_id": account, "rows": [{"external_id": "m-1", "amount": "5.00", "booking_date": "2026-01-02"}]}),
    )
    .await;
    let invoice =
        send(Method::POST, "/api/v1/invoices", json!({"number": "INV-A-M", "currency": "EUR", "amount_total": 500}))
            .await;
    let made = send(
        Method::POST,
        "/api/v1/reconciliation/matches",
        json!({"transaction_ids": [import["results"][0]["transaction_id"]],
               "allocations": [{"target_type": "invoice", "target_id": invoice["id"]}]}),
    )
    .await;
    made["id"].as_str().expect("tenant A has a match").to_owned()
}

/// A suggestion: a credit into `account` (EUR) that two invoices of its amount could be.
async fn reconciliation_suggestion(app: &TestApp, a: &TestTenant, account: &str) -> String {
    let send = |method: Method, path: &'static str, body: Value| async move {
        let response = app.as_key(method, path, &a.key).json(&body).send().await.unwrap();
        response.json::<Value>().await.unwrap()
    };
    for number in ["INV-A-S1", "INV-A-S2"] {
        send(Method::POST, "/api/v1/invoices", json!({"number": number, "currency": "EUR", "amount_total": 777})).await;
    }
    let import = send(
        Method::POST,
        "/api/v1/transactions/import",
        json!({"account_id": account, "rows": [{"external_id": "s-1", "amount": "7.77", "booking_date": "2026-01-03"}]}),
    )
    .await;
    crate::support::bank::drain(app).await;
    let txn = import["results"][0]["transaction_id"].as_str().unwrap();
    let path = format!("/api/v1/reconciliation/suggestions?transaction_id={txn}");
    let found: Value = app.as_key(Method::GET, &path, &a.key).send().await.unwrap().json().await.unwrap();
    found["data"][0]["id"].as_str().expect("tenant A has a suggestion").to_owned()
}

/// Tenant A's objects, one per collection that has id paths. A new resource with `{id}` paths
/// needs an entry here, or the isolation test fails and says so.
struct Fixtures {
    ids: BTreeMap<&'static str, String>,
}

impl Fixtures {
    async fn create(app: &TestApp, a: &TestTenant) -> Self {
        let mut ids = BTreeMap::new();
        let (key_id, _) = app.key_with_id(a, &["api_keys:read"]).await;
        ids.insert("api_keys", key_id);
        let client: Value = app
            .as_key(Method::POST, "/api/v1/oauth_clients", &a.key)
            .json(&json!({"name": "erp", "scopes": ["api_keys:read"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert("oauth_clients", client["id"].as_str().unwrap().to_owned());
        ids.insert("members", app.user(a, "member-a@example.com", payymo::domain::scope::Role::Member).await);
        let events: Value =
            app.as_key(Method::GET, "/api/v1/events?limit=1", &a.key).send().await.unwrap().json().await.unwrap();
        ids.insert("events", events["data"][0]["id"].as_str().expect("tenant A has an event").to_owned());
        let connection = crate::support::bank::connect(app, a).await;
        ids.insert("bank_connections", connection["id"].as_str().unwrap().to_owned());
        crate::support::bank::drain(app).await;
        let transactions: Value =
            app.as_key(Method::GET, "/api/v1/transactions?limit=1", &a.key).send().await.unwrap().json().await.unwrap();
        ids.insert(
            "transactions",
            transactions["data"][0]["id"].as_str().expect("tenant A has a transaction").to_owned(),
        );
        let rule: Value = app
            .as_key(Method::POST, "/api/v1/categorization_rules", &a.key)
            .json(&json!({"name": "fees", "direction": "debit", "category": "fees"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert("categorization_rules", rule["id"].as_str().unwrap().to_owned());
        let run: Value = app
            .as_key(Method::POST, "/api/v1/categorization_rules/apply", &a.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert("categorization_rules/runs", run["id"].as_str().unwrap().to_owned());
        let account: Value = app
            .as_key(Method::POST, "/api/v1/accounts", &a.key)
            .json(&json!({"name": "cash", "currency": "EUR"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let account = account["id"].as_str().unwrap().to_owned();
        let form = reqwest::multipart::Form::new()
            .text(
                "options",
                json!({"account_id": account, "columns": {"external_id": "id", "amount": "amount",
                "booking_date": "date"}})
                .to_string(),
            )
            .part("file", reqwest::multipart::Part::bytes(b"id,date,amount\n1,2026-01-01,1.00\n".to_vec()));
        let import: Value = app
            .as_key(Method::POST, "/api/v1/transactions/import", &a.key)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert("transactions/imports", import["id"].as_str().expect("tenant A has an import").to_owned());
        ids.insert("accounts", account);
        let endpoint = crate::webhooks::create_endpoint(app, a, "http://127.0.0.1:9/hooks", &["*"]).await;
        ids.insert("webhook_endpoints", endpoint["id"].as_str().unwrap().to_owned());
        let customer: Value = app
            .as_key(Method::POST, "/api/v1/customers", &a.key)
            .json(&json!({"name": "Acme Widgets Ltd"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert("customers", customer["id"].as_str().unwrap().to_owned());
        let invoice: Value = app
            .as_key(Method::POST, "/api/v1/invoices", &a.key)
            .json(&json!({"number": "INV-A-1", "currency": "GBP", "amount_total": 100}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert("invoices", invoice["id"].as_str().unwrap().to_owned());
        let reconciliation_rule: Value = app
            .as_key(Method::POST, "/api/v1/reconciliation/rules", &a.key)
            .json(&json!({"name": "Acme", "pattern": "acme", "action": "assign_customer",
                          "customer_id": customer["id"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert("reconciliation/rules", reconciliation_rule["id"].as_str().unwrap().to_owned());
        let form = reqwest::multipart::Form::new()
            .text(
                "options",
                json!({"currency": "GBP", "columns": {"external_id": "id", "number": "no", "amount_total": "total"}})
                    .to_string(),
            )
            .part("file", reqwest::multipart::Part::bytes(b"id,no,total\nx1,INV-A-2,1.00\n".to_vec()));
        let import: Value = app
            .as_key(Method::POST, "/api/v1/invoices/import", &a.key)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert("invoices/imports", import["id"].as_str().expect("tenant A has an invoice import").to_owned());
        ids.insert("stripe/payments", stripe_payment(app, a).await);
        ids.insert("stripe/payouts", stripe_payout(app, a).await);
        ids.insert("reconciliation/matches", reconciliation_match(app, a, &ids["accounts"]).await);
        ids.insert("reconciliation/suggestions", reconciliation_suggestion(app, a, &ids["accounts"]).await);
        let run: Value = app
            .as_key(Method::POST, "/api/v1/reconciliation/runs", &a.key)
            .json(&json!({"date_from": "2026-01-01"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert("reconciliation/runs", run["id"].as_str().expect("tenant A has a run").to_owned());
        Self { ids }
    }

    /// Everything about A's fixtures that a request could change.
    async fn snapshot(&self, app: &TestApp, a: &TestTenant) -> Vec<Value> {
        let mut out = Vec::new();
        for path in [
            format!("/api/v1/api_keys/{}", self.ids["api_keys"]),
            format!("/api/v1/oauth_clients/{}", self.ids["oauth_clients"]),
            "/api/v1/members?limit=100".to_owned(),
            format!("/api/v1/bank_connections/{}", self.ids["bank_connections"]),
            format!("/api/v1/transactions/{}", self.ids["transactions"]),
            format!("/api/v1/categorization_rules/{}", self.ids["categorization_rules"]),
            format!("/api/v1/categorization_rules/runs/{}", self.ids["categorization_rules/runs"]),
            format!("/api/v1/accounts/{}", self.ids["accounts"]),
            format!("/api/v1/transactions/imports/{}", self.ids["transactions/imports"]),
            format!("/api/v1/webhook_endpoints/{}", self.ids["webhook_endpoints"]),
            format!("/api/v1/webhook_endpoints/{}/deliveries", self.ids["webhook_endpoints"]),
            format!("/api/v1/events/{}/deliveries", self.ids["events"]),
            format!("/api/v1/customers/{}", self.ids["customers"]),
            format!("/api/v1/invoices/{}", self.ids["invoices"]),
            format!("/api/v1/invoices/imports/{}", self.ids["invoices/imports"]),
            format!("/api/v1/reconciliation/matches/{}", self.ids["reconciliation/matches"]),
            format!("/api/v1/reconciliation/suggestions/{}", self.ids["reconciliation/suggestions"]),
            format!("/api/v1/reconciliation/runs/{}", self.ids["reconciliation/runs"]),
            format!("/api/v1/stripe/payments/{}", self.ids["stripe/payments"]),
            format!("/api/v1/stripe/payouts/{}", self.ids["stripe/payouts"]),
            format!("/api/v1/reconciliation/rules/{}", self.ids["reconciliation/rules"]),
        ] {
            out.push(app.as_key(Method::GET, &path, &a.key).send().await.unwrap().json().await.unwrap());
        }
        out
    }
}

/// A Stripe payment of tenant A's: its own simulated account connected, a card payment there,
/// its events delivered and applied.
async fn stripe_payment(app: &TestApp, a: &TestTenant) -> String {
    let base = app.state.stripe.base(false).to_owned();
    let http = reqwest::Client::new();
    let suffix = a.id.replace('_', "");
    let secret = format!("sk_test_{suffix}");
    let created = http
        .post(format!("{base}/_stripe/accounts"))
        .json(&json!({"name": "Tenant A Ltd", "secret_key": secret, "restricted_key": format!("rk_test_{suffix}")}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let connected = app
        .as_key(Method::PUT, "/api/v1/stripe/connection", &a.key)
        .json(&json!({"api_key": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status(), 201);
    let pay = [("amount", "1500"), ("currency", "gbp"), ("payment_method", "pm_card_visa"), ("confirm", "true")];
    let paid = http.post(format!("{base}/v1/payment_intents")).bearer_auth(&secret).form(&pay).send().await.unwrap();
    assert!(paid.status().is_success());
    for _ in 0..200 {
        crate::support::bank::drain(app).await;
        let page: Value =
            app.as_key(Method::GET, "/api/v1/stripe/payments", &a.key).send().await.unwrap().json().await.unwrap();
        if let Some(id) = page["data"][0]["id"].as_str() {
            return id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("tenant A's Stripe payment never arrived");
}

/// A Stripe payout of tenant A's: the simulated clock moved three days on, so the payment above
/// was paid out, and the payout's events applied.
async fn stripe_payout(app: &TestApp, a: &TestTenant) -> String {
    let base = app.state.stripe.base(false).to_owned();
    let advance = reqwest::Client::new()
        .post(format!("{base}/_stripe/clock/advance"))
        .json(&json!({"seconds": 3 * 86_400}))
        .send()
        .await
        .unwrap();
    assert!(advance.status().is_success());
    for _ in 0..200 {
        crate::support::bank::drain(app).await;
        let page: Value =
            app.as_key(Method::GET, "/api/v1/stripe/payouts", &a.key).send().await.unwrap().json().await.unwrap();
        if let Some(id) = page["data"][0]["id"].as_str() {
            return id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("tenant A's Stripe payout never arrived");
}

#[tokio::test]
async fn another_tenants_object_is_404_on_every_id_path_and_method() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let fixtures = Fixtures::create(&app, &a).await;
    let before = fixtures.snapshot(&app, &a).await;

    let mut checked = Vec::new();
    for (method, path, op) in operations(&spec()) {
        // Public operations take no credential: the inbound Stripe webhook is authenticated by
        // its signature, which another connection's secret cannot make (tests/api/stripe.rs).
        if !path.contains('{') || op.get("security").is_none() {
            continue;
        }
        let id = fixtures.ids.get(collection(&path)).unwrap_or_else(|| {
            panic!("no fixture for {path}: add tenant A's object for `{}` to Fixtures::create", collection(&path))
        });
        let response = app
            .as_key(method.clone(), &fill(&path, id), &b.key)
            .json(&valid_body(&method, &path))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_ne!(
            status, 422,
            "{method} {path}: the body was refused before the lookup; add a valid body to valid_body()"
        );
        let body = problem(response, 404, "not_found").await;
        assert_eq!(body["detail"], "no such resource", "{method} {path}: must look exactly like a missing id");
        checked.push(format!("{method} {path}"));
    }
    assert!(checked.len() >= 7, "{checked:?}");
    assert_eq!(fixtures.snapshot(&app, &a).await, before, "tenant A's data changed");

    // Each attempt is a security incident in B's audit log, naming the resource.
    let incidents: Value = app
        .as_key(Method::GET, "/api/v1/audit_logs?outcome=security_incident&limit=100", &b.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let incidents = incidents["data"].as_array().unwrap();
    assert_eq!(incidents.len(), checked.len(), "one incident per attempt: {incidents:?}");
    assert!(
        incidents
            .iter()
            .all(|i| i["action"] == "access.cross_tenant" && i["ip"] == "127.0.0.1" && i["request_id"].is_string())
    );
    // ...and nothing at all lands in A's log.
    let a_log: Value = app
        .as_key(Method::GET, "/api/v1/audit_logs?outcome=security_incident", &a.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a_log["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_missing_or_malformed_id_is_the_same_404() {
    let app = TestApp::spawn().await;
    let a = app.tenant().await;
    for path in [
        format!("/api/v1/api_keys/{}", ApiKeyId::generate()),
        "/api/v1/api_keys/not-an-id".to_owned(),
        format!("/api/v1/api_keys/{}", UserId::generate()),
        format!("/api/v1/oauth_clients/{}", OAuthClientId::generate()),
        "/api/v1/oauth_clients/cli_'%20or%201=1".to_owned(),
    ] {
        let body = problem(app.as_key(Method::GET, &path, &a.key).send().await.unwrap(), 404, "not_found").await;
        assert_eq!(body["detail"], "no such resource", "{path}");
    }
}

/// The scope an operation declares in the spec, if any.
fn declared_scope(op: &Value) -> Option<String> {
    let requirement = op["security"].as_array()?.first()?.as_object()?;
    requirement.values().next()?.as_array()?.first()?.as_str().map(str::to_owned)
}

#[tokio::test]
async fn every_operation_refuses_a_credential_lacking_its_scope_and_accepts_one_holding_it() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let mut checked = 0;
    for (method, path, op) in operations(&spec()) {
        let secured = op["security"].is_array();
        let Some(scope) = declared_scope(&op) else {
            if secured {
                // Authenticated without a particular scope (e.g. /me): any valid credential works,
                // none is refused.
                let response = app.client.request(method.clone(), app.url(&path)).send().await.unwrap();
                problem(response, 401, "unauthenticated").await;
            }
            continue;
        };
        let url = if path.contains('{') { fill(&path, &placeholder_id(&path)) } else { path.clone() };
        // A credential from an unrelated family.
        let family = scope.split(':').next().unwrap();
        let unrelated = if family == "transactions" { "invoices:write" } else { "transactions:write" };
        let lacking = app.key(&tenant, &[unrelated]).await;
        let body = valid_body(&method, &path);
        let response = app.as_key(method.clone(), &url, &lacking).json(&body).send().await.unwrap();
        let refused = problem(response, 403, "insufficient_scope").await;
        assert_eq!(refused["required_scope"], scope.as_str(), "{method} {path}");

        let holding = app.key(&tenant, &[&scope]).await;
        let response = app.as_key(method.clone(), &url, &holding).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        assert!(status != 401 && status != 403, "{method} {path} refused a credential holding {scope}: {status}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} operations declare scopes");
}

#[tokio::test]
async fn write_scopes_imply_read_and_star_implies_all() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let writer = app.key(&tenant, &["api_keys:write"]).await;
    assert_eq!(app.as_key(Method::GET, "/api/v1/api_keys", &writer).send().await.unwrap().status(), 200);
    let reader = app.key(&tenant, &["api_keys:read"]).await;
    let response = app
        .as_key(Method::POST, "/api/v1/api_keys", &reader)
        .json(&json!({"label": "x", "scopes": ["api_keys:read"]}))
        .send()
        .await
        .unwrap();
    problem(response, 403, "insufficient_scope").await;
    assert_eq!(app.as_key(Method::GET, "/api/v1/audit_logs", &tenant.key).send().await.unwrap().status(), 200);
}
