//! Bank-feed fixtures: a sandbox bank linked through the real consent flow, the sandbox's control
//! API, and draining the job queue the way a worker would.

use std::collections::HashMap;

use payymo::background;
use reqwest::{Method, StatusCode, redirect::Policy};
use serde_json::{Value, json};

use super::{TestApp, json_of, tenants::TestTenant};

/// A browser that does not follow redirects, so each hop can be checked.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(Policy::none()).build().unwrap()
}

/// The sandbox's origin (`http://127.0.0.1:port`).
pub fn sandbox(app: &TestApp) -> String {
    app.state.sandbox_url.trim_end_matches("/api/v2").to_owned()
}

pub async fn control(app: &TestApp, path: &str, body: Value) -> Value {
    let response = browser().post(format!("{}{path}", sandbox(app))).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

/// An access token of the sandbox itself, to check what the bank holds.
pub async fn sandbox_token(app: &TestApp) -> String {
    let token: Value = browser()
        .post(format!("{}/token/new/", app.state.sandbox_url))
        .json(&json!({"secret_id": "sandbox-secret-id", "secret_key": "sandbox-secret-key"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access"].as_str().unwrap().to_owned()
}

/// Runs due jobs until none is left (at most `rounds` claims).
pub async fn drain(app: &TestApp) -> usize {
    let runner = background::runner(app.state.clone(), "test-worker".into());
    let mut total = 0;
    for _ in 0..20 {
        let claimed = runner.run_once().await.unwrap();
        total += claimed;
        if claimed == 0 {
            break;
        }
    }
    total
}

/// Creates a connection and approves it on the sandbox's consent page; returns the linked connection.
pub async fn connect(app: &TestApp, tenant: &TestTenant) -> Value {
    let created = json_of(
        app.as_key(Method::POST, "/api/v1/bank_connections", &tenant.key)
            .json(&json!({"institution_id": "SANDBOXFINANCE_SFIN0000", "redirect_url": "https://portal.example.com/done?x=1"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(created["status"], "pending");
    let link = created["consent_link"].as_str().unwrap().to_owned();
    let page = browser().get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let approve = format!("{}/approve", link.trim_end_matches('/'));
    let to_callback = browser().post(&approve).send().await.unwrap();
    assert_eq!(to_callback.status(), StatusCode::FOUND);
    let callback = to_callback.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&app.url("/api/v1/bank_connections/callback?ref=")), "{callback}");
    let onwards = browser().get(&callback).send().await.unwrap();
    assert_eq!(onwards.status(), StatusCode::SEE_OTHER);
    let id = created["id"].as_str().unwrap();
    let location = onwards.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("https://portal.example.com/done?x=1&bank_connection_id={id}&status=linked"));
    // Reloading the callback changes nothing and lands in the same place.
    let again = browser().get(&callback).send().await.unwrap();
    assert_eq!(again.headers()["location"].to_str().unwrap(), location);
    json_of(app.as_key(Method::GET, &format!("/api/v1/bank_connections/{id}"), &tenant.key).send().await.unwrap(), 200)
        .await
}

pub async fn all_transactions(app: &TestApp, tenant: &TestTenant, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/transactions?limit=100{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = json_of(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 200).await;
        rows.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return rows,
        }
    }
}

pub async fn event_counts(app: &TestApp, tenant: &TestTenant) -> HashMap<String, usize> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select event_type, count(*) from events where tenant_id = $1 group by event_type")
            .bind(&tenant.id)
            .fetch_all(&app.superuser_pool().await)
            .await
            .unwrap();
    rows.into_iter().map(|(t, n)| (t, n as usize)).collect()
}
