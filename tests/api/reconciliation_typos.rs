//! A reference one character off proves an invoice only when nothing else can be meant.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    reconciliation_matches::{SCOPES, credits, invoice},
    support::{TestApp, bank::drain, json_of},
};

async fn transaction(app: &TestApp, key: &str, id: &str) -> Value {
    json_of(app.as_key(Method::GET, &format!("/api/v1/transactions/{id}"), key).send().await.unwrap(), 200).await
}

/// A typo'd number owing exactly the credit is matched; the same text once its invoice is paid
/// is a second payment of that invoice, never a typo of the open neighbour owing as much.
#[tokio::test]
async fn a_typo_is_matched_but_paying_a_paid_invoice_again_is_not_read_as_one() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    let body = |number: &str| {
        json!({"number": number, "currency": "EUR", "amount_total": 31_400, "issue_date": "2026-11-20",
               "due_date": "2026-12-20"})
    };
    let first = invoice(&app, &key, body("INV-2026-00418")).await;
    let second = invoice(&app, &key, body("INV-2026-00419")).await;

    let paid =
        credits(&app, &key, "EUR", &[json!({"amount": "314.00", "description": "PAYMENT INV-2026-00418"})]).await;
    drain(&app).await;
    assert_eq!(transaction(&app, &key, &paid[0]).await["match_status"], "matched", "the exact quote");

    let again =
        credits(&app, &key, "EUR", &[json!({"amount": "314.00", "description": "PAYMENT INV-2026-00418"})]).await;
    drain(&app).await;
    let txn = transaction(&app, &key, &again[0]).await;
    assert_eq!(txn["match_status"], "suggested", "a second payment of a paid invoice: {txn}");
    let path = format!("/api/v1/reconciliation/suggestions?transaction_id={}", again[0]);
    let suggestions = json_of(app.as_key(Method::GET, &path, &key).send().await.unwrap(), 200).await;
    assert_eq!(suggestions["data"][0]["target_ids"], json!([second]), "offered, not taken: {suggestions}");

    let typo =
        credits(&app, &key, "EUR", &[json!({"amount": "314.00", "description": "PAYMENT INV-2026-00491"})]).await;
    drain(&app).await;
    let txn = transaction(&app, &key, &typo[0]).await;
    assert_eq!(txn["match_status"], "matched", "two digits swapped, the only invoice it can mean: {txn}");
    let paid_first =
        json_of(app.as_key(Method::GET, &format!("/api/v1/invoices/{first}"), &key).send().await.unwrap(), 200).await;
    assert_eq!(paid_first["status"], "paid");
}
