//! The simulator's control API, outside `/v1` (Stripe has no such thing): advance the clock
//! (funds become available, payouts run and arrive), create accounts and their keys, fail a
//! payout, inject faults, revoke or expire keys, and make webhook deliveries misbehave.
//!
//! - `GET /_stripe/clock`, `POST /_stripe/clock/advance` `{"seconds": 86400}`
//! - `POST /_stripe/accounts` `{"name", "country", "default_currency", "secret_key"?, "restricted_key"?}`
//! - `POST /_stripe/accounts/{id}/bank` `{"account_id": "<sandbox bank account>"}`: paid payouts
//!   arrive there as credits
//! - `POST /_stripe/accounts/{id}/seed` `{"charges": N, "currency"?: "eur", "amount"?}`: N
//!   succeeded card payments made as `POST /v1/payment_intents` makes them ([`seed`](super::seed))
//! - `POST /_stripe/payouts/{id}/fail` `{"failure_code": "account_closed"}`
//! - `POST /_stripe/faults` `{"status": 500|429|503|0, "count", "path"?, "should_retry"?, "latency_ms"?}`,
//!   `DELETE /_stripe/faults`
//! - `POST /_stripe/keys/{key}/revoke`, `POST /_stripe/keys/{key}/expire`
//! - `PUT /_stripe/webhooks/mode` `{"duplicate", "drop", "delay_ms", "reorder"}`,
//!   `GET /_stripe/webhooks/deliveries`
//! - `GET /_stripe/webhooks/endpoints`: every registered endpoint with its signing secret, as the
//!   Dashboard reveals it (a test or load generator signs deliveries of its own with it)

use axum::{
    Json, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    StripeSim, api, balance,
    error::StripeError,
    seed::{self, Seed},
    state::{DeliveryMode, Fault},
};

pub fn router() -> Router<StripeSim> {
    Router::new()
        .route("/_stripe/clock", get(clock))
        .route("/_stripe/clock/advance", post(advance))
        .route("/_stripe/accounts", post(create_account))
        .route("/_stripe/accounts/{id}/bank", post(link_bank))
        .route("/_stripe/accounts/{id}/seed", post(seed_account))
        .route("/_stripe/payouts/{id}/fail", post(fail_payout))
        .route("/_stripe/faults", post(add_fault).delete(clear_faults))
        .route("/_stripe/keys/{key}/{action}", post(key_action))
        .route("/_stripe/webhooks/mode", put(delivery_mode))
        .route("/_stripe/webhooks/deliveries", get(deliveries))
        .route("/_stripe/webhooks/endpoints", get(endpoints))
}

fn answer(result: Result<Value, StripeError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => api::error_response(&error),
    }
}

async fn clock(State(sim): State<StripeSim>) -> Response {
    answer(Ok(json!({"now": sim.lock().now()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

async fn advance(State(sim): State<StripeSim>, Json(body): Json<Advance>) -> Response {
    let now = {
        let mut inner = sim.lock();
        inner.clock.advance(body.seconds);
        let accounts: Vec<String> = inner.accounts.keys().cloned().collect();
        for account in accounts {
            balance::settle(&mut inner, &account);
        }
        inner.now()
    };
    sim.wake.notify_one();
    answer(Ok(json!({"now": now})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
    #[serde(default = "gb")]
    country: String,
    #[serde(default = "gbp")]
    default_currency: String,
    secret_key: Option<String>,
    restricted_key: Option<String>,
    /// Resources the restricted key may not read (`payouts`, `events`).
    #[serde(default)]
    restricted_without: Vec<String>,
}

fn gb() -> String {
    "GB".into()
}

fn gbp() -> String {
    "gbp".into()
}

async fn create_account(State(sim): State<StripeSim>, Json(body): Json<NewAccount>) -> Response {
    let mut inner = sim.lock();
    let suffix = inner.id("key");
    let secret = body.secret_key.unwrap_or_else(|| format!("sk_test_{}", &suffix[4..]));
    let restricted = body.restricted_key.unwrap_or_else(|| format!("rk_test_{}", &suffix[4..]));
    if !secret.starts_with("sk_test_") || !restricted.starts_with("rk_test_") || inner.keys.contains_key(&secret) {
        return answer(Err(StripeError::invalid(
            "secret_key",
            "parameter_invalid_string",
            "Keys must be new sk_test_… and rk_test_… keys.",
        )));
    }
    let id = inner.create_account(
        &body.name,
        &body.country,
        &body.default_currency.to_ascii_lowercase(),
        (&secret, &restricted),
    );
    if let Some(key) = inner.keys.get_mut(&restricted) {
        key.without = body.restricted_without;
    }
    answer(Ok(json!({"id": id, "secret_key": secret, "restricted_key": restricted})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BankLink {
    /// The GoCardless simulator's account id (a UUID).
    account_id: String,
}

async fn link_bank(State(sim): State<StripeSim>, Path(id): Path<String>, Json(body): Json<BankLink>) -> Response {
    answer(
        sim.link_bank(&id, &body.account_id)
            .map(|()| json!({"account": id, "bank_account": body.account_id}))
            .map_err(|reason| StripeError::invalid("account_id", "resource_missing", reason)),
    )
}

/// Seeding a large history holds the simulator's lock for a while: off the async workers.
async fn seed_account(State(sim): State<StripeSim>, Path(id): Path<String>, Json(body): Json<Seed>) -> Response {
    let worker = sim.clone();
    let result =
        tokio::task::spawn_blocking(move || seed::seed(&mut worker.lock(), &id, &body)).await.unwrap_or_else(|e| {
            let mut error = StripeError::fault(500, None);
            error.message = format!("seeding stopped: {e}");
            Err(error)
        });
    sim.wake.notify_one();
    answer(result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fail {
    #[serde(default = "account_closed")]
    failure_code: String,
}

fn account_closed() -> String {
    "account_closed".into()
}

async fn fail_payout(State(sim): State<StripeSim>, Path(id): Path<String>, Json(body): Json<Fail>) -> Response {
    let result = {
        let mut inner = sim.lock();
        let account = inner.accounts.values().find(|a| a.get(&id).is_some()).map(|a| a.id.clone());
        match account {
            Some(account) => balance::fail_payout(&mut inner, &account, &id, &body.failure_code),
            None => Err(StripeError::no_such("payout", &id, "id")),
        }
    };
    sim.wake.notify_one();
    answer(result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFault {
    status: u16,
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    path: String,
    should_retry: Option<bool>,
    #[serde(default)]
    latency_ms: u64,
}

fn one() -> u32 {
    1
}

async fn add_fault(State(sim): State<StripeSim>, Json(body): Json<NewFault>) -> Response {
    if body.status != 0 && !(400..600).contains(&body.status) {
        return answer(Err(StripeError::invalid(
            "status",
            "parameter_invalid_integer",
            "status is 0 (latency only) or 400 to 599",
        )));
    }
    sim.lock().faults.push(Fault {
        path: body.path,
        status: body.status,
        should_retry: body.should_retry,
        latency_ms: body.latency_ms,
        remaining: body.count,
    });
    answer(Ok(json!({"queued": true})))
}

async fn clear_faults(State(sim): State<StripeSim>) -> Response {
    sim.lock().faults.clear();
    answer(Ok(json!({"cleared": true})))
}

async fn key_action(State(sim): State<StripeSim>, Path((key, action)): Path<(String, String)>) -> Response {
    let mut inner = sim.lock();
    let Some(found) = inner.keys.get_mut(&key) else {
        return answer(Err(StripeError::invalid("key", "resource_missing", "No such key")));
    };
    match action.as_str() {
        "revoke" => found.revoked = true,
        "expire" => found.expired = true,
        "restore" => {
            found.revoked = false;
            found.expired = false;
        }
        other => return answer(Err(StripeError::unknown_route("POST", &format!("/_stripe/keys/{{key}}/{other}")))),
    }
    answer(Ok(json!({"key": key, "action": action})))
}

async fn delivery_mode(State(sim): State<StripeSim>, Json(mode): Json<DeliveryMode>) -> Response {
    sim.lock().delivery_mode = mode.clone();
    answer(Ok(json!(mode)))
}

async fn deliveries(State(sim): State<StripeSim>) -> Response {
    let inner = sim.lock();
    let list: Vec<Value> = inner
        .delivered
        .iter()
        .map(|(endpoint, event, status)| json!({"endpoint": endpoint, "event": event, "status": status}))
        .collect();
    answer(Ok(json!({"deliveries": list, "queued": inner.deliveries.len()})))
}

/// Every webhook endpoint of every account, with its signing secret: what Stripe's Dashboard
/// shows under "Reveal signing secret", so a tool can sign deliveries as Stripe would.
async fn endpoints(State(sim): State<StripeSim>) -> Response {
    let inner = sim.lock();
    let mut list: Vec<Value> = inner
        .accounts
        .values()
        .flat_map(|account| {
            account.newest_first("webhook_endpoint").map(move |endpoint| {
                let id = endpoint["id"].as_str().unwrap_or_default();
                json!({
                    "account": account.id, "id": id, "url": endpoint["url"], "status": endpoint["status"],
                    "secret": account.secrets.get(id),
                })
            })
        })
        .collect();
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    answer(Ok(json!({"endpoints": list})))
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::sandbox::{gocardless::Clock, stripe::DEFAULT_SECRET_KEY};

    async fn call(sim: &StripeSim, request: Request<Body>) -> Value {
        let answer = super::super::router(sim.clone()).oneshot(request).await.expect("the router answers");
        assert!(answer.status().is_success(), "{}", answer.status());
        let body = answer.into_body().collect().await.expect("a body").to_bytes();
        serde_json::from_slice(&body).expect("JSON")
    }

    #[tokio::test]
    async fn the_endpoints_list_reveals_each_signing_secret() {
        let sim = StripeSim::new(42, Clock::system());
        let created = call(
            &sim,
            Request::post("/v1/webhook_endpoints")
                .header("authorization", format!("Bearer {DEFAULT_SECRET_KEY}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("url=http%3A%2F%2F127.0.0.1%3A9%2Fhook&enabled_events[]=charge.succeeded"))
                .expect("a request"),
        )
        .await;
        let listed =
            call(&sim, Request::get("/_stripe/webhooks/endpoints").body(Body::empty()).expect("a request")).await;
        let endpoints = listed["endpoints"].as_array().expect("a list");
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0]["id"], created["id"]);
        assert_eq!(endpoints[0]["url"], "http://127.0.0.1:9/hook");
        assert_eq!(endpoints[0]["secret"], created["secret"]);
        assert!(created["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")));
    }
}
