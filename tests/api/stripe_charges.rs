//! Taking payments and refunds through Payymo, over the real server against the in-process
//! Stripe simulator: the required `Idempotency-Key` passed on to Stripe, so a retry never
//! charges twice even when Payymo lost its own record of the first answer; declines, refunds,
//! events, isolation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    stripe::{at_stripe, count_events, new_account, put},
    support::{TestApp, json_of, problem},
};

#[tokio::test]
async fn a_payment_is_taken_once_per_idempotency_key_even_when_payymo_forgot_the_first_answer() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (secret, _) = new_account(&app, &tenant, "Charges Ltd").await;
    json_of(put(&app, &tenant.key, &secret).await, 201).await;
    let body = json!({"amount": 2000, "currency": "EUR", "payment_method": "pm_card_visa",
                      "description": "Invoice INV-2026-0104", "metadata": {"invoice_number": "INV-2026-0104"}});
    let take = |key: Option<&'static str>, body: Value| {
        let request = app.as_key(Method::POST, "/api/v1/stripe/payments", &tenant.key).json(&body);
        let request = match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };

    let body_without_key = problem(take(None, body.clone()).await, 400, "invalid_request").await;
    assert!(body_without_key["detail"].as_str().unwrap().contains("Idempotency-Key is required"));
    let bad = json!({"amount": 0, "currency": "EURO", "payment_method": "card", "customer": "bob",
                     "metadata": {"k[0]": "v"}});
    let refused = problem(take(Some("bad-1"), bad).await, 422, "validation_failed").await;
    let fields: Vec<&str> =
        refused["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["amount", "currency", "payment_method", "customer", "metadata"]);

    let first = json_of(take(Some("order-1042"), body.clone()).await, 201).await;
    assert!(first["id"].as_str().unwrap().starts_with("ch_"), "{first}");
    assert_eq!((first["status"].as_str(), first["amount"].as_i64()), (Some("succeeded"), Some(2000)));
    assert_eq!((first["fee"].is_i64(), first["metadata"]["invoice_number"].as_str()), (true, Some("INV-2026-0104")));
    let replayed = take(Some("order-1042"), body.clone()).await;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(replayed, 201).await["id"], first["id"]);

    // Payymo lost its record of the answer (it crashed before its commit): the retry reaches
    // Stripe with the same derived key and gets the first payment back, not a second one.
    let db = app.superuser_pool().await;
    sqlx::query("delete from idempotency_keys where tenant_id = $1").bind(&tenant.id).execute(&db).await.unwrap();
    let again = json_of(take(Some("order-1042"), body.clone()).await, 201).await;
    assert_eq!(again["id"], first["id"]);
    let intents = at_stripe(&app, Method::GET, "/v1/payment_intents", &secret, &[]).await;
    assert_eq!(intents["data"].as_array().unwrap().len(), 1, "one charge at Stripe");
    // The same key for another payment is refused by Stripe, once Payymo forgot it too.
    sqlx::query("delete from idempotency_keys where tenant_id = $1").bind(&tenant.id).execute(&db).await.unwrap();
    let other_body = json!({"amount": 999, "currency": "EUR", "payment_method": "pm_card_visa"});
    problem(take(Some("order-1042"), other_body).await, 422, "idempotency_key_reused").await;

    let declined = json!({"amount": 700, "currency": "EUR", "payment_method": "pm_card_chargeDeclined"});
    let declined = problem(take(Some("order-1043"), declined).await, 402, "payment_declined").await;
    assert!(declined["detail"].as_str().unwrap().contains("declined"), "{declined}");

    // Stripe's own events arrive afterwards: the payment is announced once.
    crate::support::bank::drain(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    crate::support::bank::drain(&app).await;
    assert_eq!(count_events(&app, &tenant, "stripe_payment.succeeded").await, 1);
    let other = app.tenant().await;
    let response = app.as_key(Method::POST, "/api/v1/stripe/payments", &other.key).header("Idempotency-Key", "x");
    let body = problem(response.json(&body).send().await.unwrap(), 404, "not_found").await;
    assert!(body["detail"].as_str().unwrap().contains("no Stripe account is connected"));
}

#[tokio::test]
async fn refunds_are_taken_once_per_key_and_never_more_than_is_left() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (secret, _) = new_account(&app, &tenant, "Refunds Ltd").await;
    json_of(put(&app, &tenant.key, &secret).await, 201).await;
    let taken = app
        .as_key(Method::POST, "/api/v1/stripe/payments", &tenant.key)
        .header("Idempotency-Key", "pay-1")
        .json(&json!({"amount": 3000, "currency": "GBP", "payment_method": "pm_card_visa"}))
        .send()
        .await
        .unwrap();
    let payment = json_of(taken, 201).await;
    let path = format!("/api/v1/stripe/payments/{}/refunds", payment["id"].as_str().unwrap());
    let refund = |key: Option<&'static str>, body: Value| {
        let request = app.as_key(Method::POST, &path, &tenant.key).json(&body);
        let request = match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    problem(refund(None, json!({"amount": 500})).await, 400, "invalid_request").await;
    let bad =
        problem(refund(Some("r-0"), json!({"amount": -1, "reason": "bored"})).await, 422, "validation_failed").await;
    assert_eq!(bad["errors"].as_array().unwrap().len(), 2);
    let too_much = problem(refund(Some("r-1"), json!({"amount": 5000})).await, 422, "validation_failed").await;
    assert_eq!(too_much["errors"][0]["field"], "amount", "{too_much}");

    let made = json_of(refund(Some("r-2"), json!({"amount": 500, "reason": "requested_by_customer"})).await, 201).await;
    assert!(made["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!(
        (made["amount"].as_i64(), made["currency"].as_str(), made["payment_id"].clone()),
        (Some(500), Some("GBP"), payment["id"].clone())
    );
    let db = app.superuser_pool().await;
    sqlx::query("delete from idempotency_keys where tenant_id = $1").bind(&tenant.id).execute(&db).await.unwrap();
    let again =
        json_of(refund(Some("r-2"), json!({"amount": 500, "reason": "requested_by_customer"})).await, 201).await;
    assert_eq!(again["id"], made["id"], "the same refund, not a second one");
    let shown =
        app.as_key(Method::GET, &format!("/api/v1/stripe/payments/{}", payment["id"].as_str().unwrap()), &tenant.key);
    assert_eq!(json_of(shown.send().await.unwrap(), 200).await["amount_refunded"], 500);
    let rest = json_of(refund(Some("r-3"), json!({})).await, 201).await;
    assert_eq!(rest["amount"], 2500, "the rest");
    assert_eq!(count_events(&app, &tenant, "stripe_payment.refunded").await, 2);

    let other = app.tenant().await;
    let response = app.as_key(Method::POST, &path, &other.key).header("Idempotency-Key", "r-9").json(&json!({}));
    problem(response.send().await.unwrap(), 404, "not_found").await;
}
