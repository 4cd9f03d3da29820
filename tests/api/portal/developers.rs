//! Developers' screens (API keys), and tenant isolation as a person in the browser meets it.

use reqwest::Method;
use serde_json::json;

use super::{Browser, get, signed_in};
use crate::{
    reconciliation_matches::{credits, invoice},
    support::TestApp,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_shown_once_when_created_and_stops_working_when_revoked() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(&app, "api_keys").await else { return };
    let tenant = app.tenant().await;
    signed_in(&app, &tenant, &browser).await;

    browser.goto("#/developers").await;
    browser.fill("#create-key input[name=label]", "Zapier").await;
    browser.click("#create-key input[value='transactions:read']").await;
    browser.click("#create-key button[type=submit]").await;
    let secret = browser.wait_for("#new-secret").await.text().await.unwrap();
    browser.check(secret.starts_with("sk_test_"), &format!("the secret is shown: {secret}")).await;
    browser.wait_text("tbody", "Zapier").await;
    assert_eq!(app.as_key(Method::GET, "/api/v1/transactions", &secret).send().await.unwrap().status(), 200);

    let keys = get(&app, &tenant.key, "/api/v1/api_keys").await;
    let id = keys["data"].as_array().unwrap().iter().find(|k| k["label"] == "Zapier").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.click(&format!("tr[data-id='{id}'] .revoke")).await;
    browser.wait_text(&format!("tr[data-id='{id}']"), "revoked").await;
    let refused = app.as_key(Method::GET, "/api/v1/transactions", &secret).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_of_another_tenant_sees_none_of_its_data() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(&app, "tenant_isolation").await else { return };
    let a = app.tenant_named("Alpha Traders").await;
    let b = app.tenant_named("Beta Wholesale").await;
    let inv = invoice(&app, &a.key, json!({"number": "A-SECRET-1", "currency": "EUR", "amount_total": 1234})).await;
    let txns = credits(
        &app,
        &a.key,
        "EUR",
        &[json!({"amount": "12.34", "description": "ALPHA ONLY", "counterparty_name": "X"})],
    )
    .await;
    signed_in(&app, &b, &browser).await;

    browser.goto("#/transactions").await;
    browser.wait_text("main", "No transactions match.").await;
    browser.goto("#/invoices").await;
    browser.wait_text("main", "No invoices match.").await;
    browser.goto(&format!("#/invoices/{inv}")).await;
    browser.wait_text("main .error", "no such resource").await;
    browser.goto(&format!("#/match?transaction_id={}", txns[0])).await;
    browser.wait_text("main .error", "no such resource").await;
    let body = browser.wait_for("main").await.text().await.unwrap();
    browser.check(!body.contains("A-SECRET-1") && !body.contains("ALPHA ONLY"), "tenant A's data is shown").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_endpoints_deliveries_are_listed_and_one_is_redelivered_and_audited() {
    use crate::{
        support::receiver::Receiver,
        webhooks::{create_endpoint, dispatch, emit, webhook_app},
    };
    let app = webhook_app().await;
    let Some(browser) = Browser::open(&app, "webhooks").await else { return };
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["api_key.created"]).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    dispatch(&app, "portal-test");
    emit(&app, &tenant).await;
    receiver.wait_for(1, std::time::Duration::from_secs(15)).await;
    signed_in(&app, &tenant, &browser).await;

    browser.goto("#/developers/webhooks").await;
    browser.click(&format!("a[href='#/developers/webhooks/{id}']")).await;
    browser.wait_text("main tbody", "api_key.created").await;
    browser.wait_text("main tbody", "succeeded").await;
    browser.click("main tbody button").await;
    browser.wait_text("#notice", "Redelivery queued").await;
    let twice = receiver.wait_for(2, std::time::Duration::from_secs(15)).await;
    browser.check(twice.len() == 2, &format!("{} deliveries after the redelivery", twice.len())).await;

    browser.goto("#/developers/audit").await;
    browser.wait_text("main tbody", "POST /api/v1/events/{id}/redeliver").await;
    browser.close().await;
}
