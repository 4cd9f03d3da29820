//! Stripe payouts and the balance, over the real server against the in-process Stripe simulator:
//! payouts kept from Stripe's events as the simulated clock moves them to the bank, each summed
//! from its balance transactions and checked against its amount, a failed payout returned and
//! paid out again, the payments a payout carried, the balance read live, isolation.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    stripe::{at_stripe, control, count_events, new_account, put},
    support::{TestApp, json_of, problem, tenants::TestTenant},
};

const DAY: i64 = 86_400;

/// Waits (10 s at most) until the tenant's inbox holds an event of `event_type`, then applies
/// the inbox.
async fn applied_after(app: &TestApp, tenant: &TestTenant, event_type: &str, count: i64) {
    let db = app.superuser_pool().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kept: i64 =
            sqlx::query_scalar("select count(*) from stripe_events where tenant_id = $1 and event_type = $2")
                .bind(&tenant.id)
                .bind(event_type)
                .fetch_one(&db)
                .await
                .unwrap();
        if kept >= count {
            break;
        }
        assert!(Instant::now() < deadline, "no {event_type} reached the inbox");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::support::bank::drain(app).await;
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    json_of(app.as_key(Method::GET, path, key).send().await.unwrap(), 200).await
}

async fn advance(app: &TestApp, days: i64) {
    control(app, "/_stripe/clock/advance", json!({"seconds": days * DAY})).await;
}

#[tokio::test]
async fn payouts_are_kept_summed_from_their_balance_transactions_and_checked() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (secret, _) = new_account(&app, &tenant, "Payouts Ltd").await;
    json_of(put(&app, &tenant.key, &secret).await, 201).await;
    let pay = |amount: &'static str| {
        [("amount", amount), ("currency", "eur"), ("payment_method", "pm_card_visa"), ("confirm", "true")]
    };
    let first = at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay("2500")).await;
    at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay("4000")).await;
    let refund = [("payment_intent", first["id"].as_str().unwrap()), ("amount", "500")];
    at_stripe(&app, Method::POST, "/v1/refunds", &secret, &refund).await;

    // Three days on, the funds became available, a payout took them and is on its way.
    advance(&app, 3).await;
    applied_after(&app, &tenant, "payout.updated", 1).await;
    let listed = get(&app, &tenant.key, "/api/v1/stripe/payouts").await;
    let payouts = listed["data"].as_array().unwrap();
    assert_eq!(payouts.len(), 1, "{listed}");
    let payout = &payouts[0];
    let id = payout["id"].as_str().unwrap().to_owned();
    assert_eq!((payout["status"].as_str(), payout["currency"].as_str()), (Some("in_transit"), Some("EUR")));
    assert_eq!(payout["statement_descriptor"], "PAYYMO SANDBOX");
    assert!(payout["trace_id"].as_str().is_some_and(|t| !t.is_empty()), "{payout}");

    // The summary is the sum of what Stripe lists for the payout, and it adds up.
    let at_stripe_txns =
        at_stripe(&app, Method::GET, &format!("/v1/balance_transactions?payout={id}"), &secret, &[]).await;
    let parts: Vec<&Value> =
        at_stripe_txns["data"].as_array().unwrap().iter().filter(|t| t["type"] != "payout").collect();
    let fees: i64 = parts.iter().map(|t| t["fee"].as_i64().unwrap()).sum();
    let summary = &payout["summary"];
    assert_eq!(
        summary,
        &json!({"gross": 6500, "refunds": -500, "adjustments": 0, "fees": fees, "net": 6000 - fees,
                "transaction_count": parts.len(), "adds_up": true, "difference": 0})
    );
    assert_eq!(payout["amount"].as_i64(), Some(6000 - fees));
    let lines = get(&app, &tenant.key, &format!("/api/v1/stripe/payouts/{id}/balance_transactions")).await;
    let lines = lines["data"].as_array().unwrap();
    assert_eq!(lines.len(), parts.len() + 1, "with the payout's own transaction");
    assert!(lines.iter().any(|l| l["type"] == "payout"
        && l["source"] == id.as_str()
        && l["amount"] == -payout["amount"].as_i64().unwrap()));
    let charge = lines.iter().find(|l| l["type"] == "charge" && l["amount"] == 2500).unwrap();
    assert_eq!(charge["fee_details"][0]["type"], "stripe_fee");

    // The payments it carried name it, and the list filters by it.
    crate::support::bank::drain(&app).await;
    let carried = get(&app, &tenant.key, &format!("/api/v1/stripe/payments?payout_id={id}")).await;
    let carried = carried["data"].as_array().unwrap();
    assert_eq!(carried.len(), 2, "{carried:?}");
    assert!(carried.iter().all(|p| p["payout_id"] == id.as_str()));
    let big = get(&app, &tenant.key, "/api/v1/stripe/payments?amount_min=3000").await;
    assert_eq!(big["data"].as_array().unwrap().len(), 1);

    // The bank returns it: failed, with Stripe's reason, once; the amount is paid out again.
    control(&app, &format!("/_stripe/payouts/{id}/fail"), json!({"failure_code": "account_closed"})).await;
    applied_after(&app, &tenant, "payout.failed", 1).await;
    let failed = get(&app, &tenant.key, &format!("/api/v1/stripe/payouts/{id}")).await;
    assert_eq!((failed["status"].as_str(), failed["failure_code"].as_str()), (Some("failed"), Some("account_closed")));
    assert_eq!(failed["summary"]["adds_up"], true);
    assert_eq!(count_events(&app, &tenant, "stripe_payout.failed").await, 1);
    advance(&app, 5).await;
    applied_after(&app, &tenant, "payout.paid", 1).await;
    let paid = get(&app, &tenant.key, "/api/v1/stripe/payouts?status=paid").await;
    let paid = paid["data"].as_array().unwrap();
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(paid[0]["amount"], failed["amount"]);
    assert_eq!(paid[0]["summary"]["adjustments"], failed["amount"], "the returned amount, paid out again");
    assert_eq!(paid[0]["summary"]["adds_up"], true);
    assert_eq!(count_events(&app, &tenant, "stripe_payout.paid").await, 1);
    let trace = paid[0]["trace_id"].as_str().unwrap();
    let by_trace = get(&app, &tenant.key, &format!("/api/v1/stripe/payouts?trace_id={trace}")).await;
    assert_eq!(by_trace["data"][0]["id"], paid[0]["id"]);

    // Applying every event again changes nothing and emits nothing.
    let db = app.superuser_pool().await;
    sqlx::query("update stripe_events set applied_at = null where tenant_id = $1")
        .bind(&tenant.id)
        .execute(&db)
        .await
        .unwrap();
    let before = get(&app, &tenant.key, "/api/v1/stripe/payouts").await;
    crate::support::bank::drain(&app).await;
    let after = get(&app, &tenant.key, "/api/v1/stripe/payouts").await;
    assert_eq!(before["data"], after["data"]);
    assert_eq!(count_events(&app, &tenant, "stripe_payout.paid").await, 1);

    // Another tenant sees none of it.
    let other = app.tenant().await;
    assert_eq!(get(&app, &other.key, "/api/v1/stripe/payouts").await["data"], json!([]));
    for path in [format!("/api/v1/stripe/payouts/{id}"), format!("/api/v1/stripe/payouts/{id}/balance_transactions")] {
        problem(app.as_key(Method::GET, &path, &other.key).send().await.unwrap(), 404, "not_found").await;
    }
}

#[tokio::test]
async fn the_balance_is_read_from_stripe_and_bad_filters_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let response = app.as_key(Method::GET, "/api/v1/stripe/balance", &tenant.key).send().await.unwrap();
    let body = problem(response, 404, "not_found").await;
    assert!(body["detail"].as_str().unwrap().contains("PUT /api/v1/stripe/connection"), "{body}");

    let (secret, _) = new_account(&app, &tenant, "Balance Ltd").await;
    let connected = json_of(put(&app, &tenant.key, &secret).await, 201).await;
    let pay = [("amount", "1000"), ("currency", "jpy"), ("payment_method", "pm_card_visa"), ("confirm", "true")];
    at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay).await;
    let balance = get(&app, &tenant.key, "/api/v1/stripe/balance").await;
    let at_stripe_balance = at_stripe(&app, Method::GET, "/v1/balance", &secret, &[]).await;
    assert_eq!(balance["account_id"], connected["account_id"]);
    assert_eq!(balance["livemode"], false);
    assert_eq!(balance["pending"], json!([{"currency": "JPY", "amount": at_stripe_balance["pending"][0]["amount"]}]));
    assert_eq!(balance["available"], json!([{"currency": "JPY", "amount": 0}]));

    control(&app, "/_stripe/faults", json!({"status": 500, "count": 10, "path": "/v1/balance"})).await;
    let response = app.as_key(Method::GET, "/api/v1/stripe/balance", &tenant.key).send().await.unwrap();
    problem(response, 503, "provider_unavailable").await;
    let base = app.state.stripe.base(false).to_owned();
    reqwest::Client::new().delete(format!("{base}/_stripe/faults")).send().await.unwrap();

    for query in [
        "status=lost",
        "currency=EURO",
        "arrival_date_from=2026-12-10&arrival_date_to=2026-12-01",
        "arrival_date_from=tomorrow",
        "limit=0",
    ] {
        let response = app.as_key(Method::GET, &format!("/api/v1/stripe/payouts?{query}"), &tenant.key);
        problem(response.send().await.unwrap(), 422, "validation_failed").await;
    }
    for query in ["payout_id=ch_123", "amount_min=10&amount_max=5", "updated_since=yesterday"] {
        let response = app.as_key(Method::GET, &format!("/api/v1/stripe/payments?{query}"), &tenant.key);
        problem(response.send().await.unwrap(), 422, "validation_failed").await;
    }
    for id in ["ch_123", "po_with-dash", "po_missing"] {
        let response = app.as_key(Method::GET, &format!("/api/v1/stripe/payouts/{id}"), &tenant.key);
        problem(response.send().await.unwrap(), 404, "not_found").await;
    }
    let reader = app.key(&tenant, &["transactions:read"]).await;
    for path in ["/api/v1/stripe/payouts", "/api/v1/stripe/balance"] {
        let response = app.as_key(Method::GET, path, &reader).send().await.unwrap();
        problem(response, 403, "insufficient_scope").await;
    }
}
