//! The backfill of a connected account's history, over the real server against the in-process
//! Stripe simulator: charges (several pages), refunds and payouts made before the connection are
//! read with their balance transactions, progress shows on the connection, an outage midway is
//! resumed from where it stopped without counting anything twice, and history emits no events.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    stripe::{at_stripe, control, count_events, new_account, put},
    support::{TestApp, json_of, problem},
};

async fn connection(app: &TestApp, key: &str) -> Value {
    json_of(app.as_key(Method::GET, "/api/v1/stripe/connection", key).send().await.unwrap(), 200).await
}

async fn all_payments(app: &TestApp, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = "/api/v1/stripe/payments?limit=100".to_owned();
    loop {
        let page = json_of(app.as_key(Method::GET, &path, key).send().await.unwrap(), 200).await;
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/stripe/payments?limit=100&cursor={cursor}"),
            None => return out,
        }
    }
}

#[tokio::test]
async fn history_before_the_connection_is_read_resumably_with_progress_and_no_events() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (secret, _) = new_account(&app, &tenant, "History Ltd").await;
    // History: 120 card payments (two pages), one refund, one declined card, and a payout.
    let pay = [("amount", "1000"), ("currency", "eur"), ("payment_method", "pm_card_visa"), ("confirm", "true")];
    let mut first = Value::Null;
    for _ in 0..120 {
        first = at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay).await;
    }
    let refund = [("payment_intent", first["id"].as_str().unwrap()), ("amount", "300")];
    at_stripe(&app, Method::POST, "/v1/refunds", &secret, &refund).await;
    let base = app.state.stripe.base(false).to_owned();
    let declined =
        [("amount", "700"), ("currency", "eur"), ("payment_method", "pm_card_chargeDeclined"), ("confirm", "true")];
    let response =
        reqwest::Client::new().post(format!("{base}/v1/payment_intents")).bearer_auth(&secret).form(&declined).send();
    assert_eq!(response.await.unwrap().status(), 402);
    control(&app, "/_stripe/clock/advance", json!({"seconds": 3 * 86_400})).await;

    // Refunds fail for a while: the backfill stops there, having kept the charges.
    control(&app, "/_stripe/faults", json!({"status": 500, "count": 100, "path": "/v1/refunds"})).await;
    let connected = json_of(put(&app, &tenant.key, &secret).await, 201).await;
    let backfill = &connected["backfill"];
    assert_eq!((backfill["status"].as_str(), backfill["phase"].as_str()), (Some("running"), Some("charges")));
    let since = chrono::DateTime::parse_from_rfc3339(backfill["since"].as_str().unwrap()).unwrap();
    let days = (chrono::Utc::now() - since.with_timezone(&chrono::Utc)).num_days();
    assert!((89..=90).contains(&days), "90 days back by default: {days}");
    crate::support::bank::drain(&app).await;
    let stopped = connection(&app, &tenant.key).await["backfill"].clone();
    assert_eq!((stopped["status"].as_str(), stopped["phase"].as_str()), (Some("running"), Some("refunds")));
    assert_eq!(stopped["charges"], 121, "{stopped}");

    // Stripe answers again: the backfill resumes at the refunds, counting nothing twice.
    reqwest::Client::new().delete(format!("{base}/_stripe/faults")).send().await.unwrap();
    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    let connection_id = connected["id"].as_str().unwrap();
    payymo::stripe::backfill::run(&app.state, &tenant_id, connection_id).await.unwrap();
    let done = connection(&app, &tenant.key).await["backfill"].clone();
    assert_eq!((done["status"].as_str(), done["phase"].as_str()), (Some("completed"), Some("done")), "{done}");
    assert_eq!(
        (done["charges"].as_i64(), done["refunds"].as_i64(), done["payouts"].as_i64()),
        (Some(121), Some(1), Some(1))
    );
    assert!(done["completed_at"].is_string());

    let payments = all_payments(&app, &tenant.key).await;
    assert_eq!(payments.len(), 121);
    let refunded = payments.iter().find(|p| p["id"] == first["latest_charge"]).unwrap();
    assert_eq!((refunded["amount_refunded"].as_i64(), refunded["fee"].is_i64()), (Some(300), true));
    assert_eq!(payments.iter().filter(|p| p["status"] == "failed").count(), 1);
    let payouts =
        json_of(app.as_key(Method::GET, "/api/v1/stripe/payouts", &tenant.key).send().await.unwrap(), 200).await;
    let payout = &payouts["data"][0];
    assert_eq!(payout["summary"]["adds_up"], true, "{payout}");
    assert_eq!(
        (payout["summary"]["gross"].as_i64(), payout["summary"]["refunds"].as_i64()),
        (Some(120_000), Some(-300))
    );
    assert_eq!(payments.iter().filter(|p| p["payout_id"] == payout["id"]).count(), 120);
    let at_stripe_lines = at_stripe(
        &app,
        Method::GET,
        &format!("/v1/balance_transactions?payout={}&limit=100", payout["id"].as_str().unwrap()),
        &secret,
        &[],
    )
    .await;
    assert!(at_stripe_lines["has_more"] == true, "the payout's lines take several pages");
    for event_type in ["stripe_payment.succeeded", "stripe_payment.failed", "stripe_payout.paid"] {
        assert_eq!(count_events(&app, &tenant, event_type).await, 0, "history emits no {event_type}");
    }

    // Running it again writes nothing new; replacing the key with a start date reads again.
    payymo::stripe::backfill::run(&app.state, &tenant_id, connection_id).await.unwrap();
    assert_eq!(connection(&app, &tenant.key).await["backfill"], done);
    let replaced = app
        .as_key(Method::PUT, "/api/v1/stripe/connection", &tenant.key)
        .json(&json!({"api_key": secret, "backfill_from": "2026-01-01"}))
        .send()
        .await
        .unwrap();
    let replaced = json_of(replaced, 200).await;
    assert_eq!(
        (replaced["backfill"]["status"].as_str(), replaced["backfill"]["since"].as_str()),
        (Some("running"), Some("2026-01-01T00:00:00Z"))
    );
    crate::support::bank::drain(&app).await;
    assert_eq!(connection(&app, &tenant.key).await["backfill"]["charges"], 121);
    assert_eq!(all_payments(&app, &tenant.key).await.len(), 121);

    for day in ["2099-01-01", "2009-12-31", "yesterday"] {
        let response = app
            .as_key(Method::PUT, "/api/v1/stripe/connection", &tenant.key)
            .json(&json!({"api_key": secret, "backfill_from": day}))
            .send()
            .await
            .unwrap();
        let body = problem(response, 422, "validation_failed").await;
        assert!(body.to_string().contains("backfill_from"), "{day}: {body}");
    }
}
