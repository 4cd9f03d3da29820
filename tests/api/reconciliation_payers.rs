//! Who may have paid: the engine asks Postgres, per batch, for the customers sharing a word with
//! the payers' names (`customer_lookup_keys`, words cut by the SQL function `payymo_name_words`),
//! then compares names in Rust (`text::NormalizedName`). The two must cut names into the same
//! words, and the lookup rows must follow every change of a customer.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    reconciliation_matches::{SCOPES, credits, invoice},
    support::{TestApp, bank::drain, json_of},
};

/// Every word the engine looks a payer up by is a word the index holds for the same name.
#[tokio::test]
async fn the_index_cuts_names_into_the_words_the_engine_looks_up() {
    let app = TestApp::spawn().await;
    let names = [
        "ACME WIDGETS LTD",
        "Acme Widgets Limited",
        "A.C.M.E. O'Brien & Sons",
        "FP Müller GmbH & Co KG",
        "MÜLLER SØRENSEN ÆRØ",
        "Ĺuboš Ťažký s.r.o.",
        "Crème Brûlée Café",
        "Straße 42 Þór",
        "  zen--garden__co  ",
        "O’Neill’s Bar",
    ];
    for name in names {
        let words: Vec<String> = sqlx::query_scalar("select unnest(payymo_name_words($1, '{}'))")
            .bind(name)
            .fetch_all(&app.state.db)
            .await
            .unwrap();
        let normalized = payymo::reconciliation::text::NormalizedName::new(name);
        for word in normalized.as_str().split(' ').filter(|w| w.len() >= 2) {
            assert!(words.iter().any(|w| w == word), "{name:?}: the engine's word {word:?} is not among {words:?}");
        }
    }
    let aliases: Vec<String> =
        sqlx::query_scalar("select unnest(payymo_name_words('Globex', array['Initech Ltd', 'X']))")
            .fetch_all(&app.state.db)
            .await
            .unwrap();
    assert_eq!(aliases, ["globex", "initech", "ltd"], "aliases count, one-letter words do not");
}

/// A payer is found by a distinctive word of its name even among many customers, and a word
/// that many customers share brings none of them in on its own.
#[tokio::test]
async fn a_distinctive_word_finds_the_payer_and_a_common_one_does_not() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    let customer = |name: String| {
        let (app, key) = (&app, &key);
        async move {
            let created = app.as_key(Method::POST, "/api/v1/customers", key).json(&json!({"name": name})).send().await;
            json_of(created.unwrap(), 201).await["id"].as_str().unwrap().to_owned()
        }
    };
    for i in 0..60 {
        customer(format!("Northwind Holdings {i:02}")).await;
    }
    let zanzibar = customer("Zanzibar Northwind Holdings".into()).await;
    let invoice_id = invoice(
        &app,
        &key,
        json!({"number": "Z-1", "currency": "EUR", "amount_total": 31415, "customer_id": zanzibar}),
    )
    .await;
    let txns = credits(
        &app,
        &key,
        "EUR",
        &[
            json!({"amount": "314.15", "description": "thank you", "counterparty_name": "ZANZIBAR NORTHWIND"}),
            json!({"amount": "271.82", "description": "thank you", "counterparty_name": "NORTHWIND HOLDINGS"}),
        ],
    )
    .await;
    drain(&app).await;
    let suggested = |txn: &str| {
        let (app, key) = (&app, &key);
        let path = format!("/api/v1/reconciliation/suggestions?transaction_id={txn}");
        async move { json_of(app.as_key(Method::GET, &path, key).send().await.unwrap(), 200).await }
    };
    let found: Value = suggested(&txns[0]).await;
    let first = &found["data"][0];
    assert_eq!(first["target_ids"], json!([invoice_id]), "{found}");
    let reasons = first["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r["signal"] == "name"), "the name counted: {first}");
    let none = suggested(&txns[1]).await;
    assert_eq!(none["data"], json!([]), "61 customers share both words: no one is suggested by name: {none}");
}

/// A credit quoting every invoice it pays is matched to them together even when the payer's name
/// says nothing about whose they are: the customer of the quoted invoices is searched for sets.
#[tokio::test]
async fn a_credit_quoting_several_invoices_pays_them_whoever_the_payer_seems() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    let created = app.as_key(Method::POST, "/api/v1/customers", &key).json(&json!({"name": "Acme Widgets"})).send();
    let acme = json_of(created.await.unwrap(), 201).await["id"].as_str().unwrap().to_owned();
    let body = |number: &str, amount: i64| {
        json!({"number": number, "currency": "EUR", "amount_total": amount, "customer_id": acme,
               "issue_date": "2026-11-20", "due_date": "2026-12-20"})
    };
    let first = invoice(&app, &key, body("INV-2026-00731", 12_000)).await;
    let second = invoice(&app, &key, body("INV-2026-00732", 8_050)).await;
    let txns = credits(
        &app,
        &key,
        "EUR",
        &[json!({"amount": "200.50", "description": "INV-2026-00731 INV-2026-00732",
                 "counterparty_name": "J SMITH PAYROLL SERVICES"})],
    )
    .await;
    drain(&app).await;
    let path = format!("/api/v1/transactions/{}", txns[0]);
    let txn = json_of(app.as_key(Method::GET, &path, &key).send().await.unwrap(), 200).await;
    assert_eq!(txn["match_status"], "matched", "both numbers quoted, the sum exact: {txn}");
    for id in [&first, &second] {
        let paid = app.as_key(Method::GET, &format!("/api/v1/invoices/{id}"), &key).send().await.unwrap();
        assert_eq!(json_of(paid, 200).await["status"], "paid");
    }
}

/// The lookup rows follow the customer: created with it, changed with its name, aliases and bank
/// accounts, gone with it.
#[tokio::test]
async fn the_lookup_keys_follow_every_change_of_a_customer() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    let db = app.superuser_pool().await;
    let keys = |id: String| {
        let db = db.clone();
        async move {
            let keys: Vec<String> =
                sqlx::query_scalar("select key from customer_lookup_keys where customer_id = $1 order by key")
                    .bind(id)
                    .fetch_all(&db)
                    .await
                    .unwrap();
            keys
        }
    };
    let body = json!({"name": "Acme Widgets Ltd", "aliases": ["ACME W"],
                      "bank_accounts": [{"iban": "GB82WEST12345698765432"}]});
    let created = app.as_key(Method::POST, "/api/v1/customers", &key).json(&body).send().await.unwrap();
    let id = json_of(created, 201).await["id"].as_str().unwrap().to_owned();
    assert_eq!(keys(id.clone()).await, ["a:GB82WEST12345698765432", "w:acme", "w:ltd", "w:widgets"]);

    let path = format!("/api/v1/customers/{id}");
    let patch = json!({"name": "Globex Müller", "aliases": [], "bank_accounts": []});
    json_of(app.as_key(Method::PATCH, &path, &key).json(&patch).send().await.unwrap(), 200).await;
    assert_eq!(keys(id.clone()).await, ["w:globex", "w:muller"]);

    json_of(app.as_key(Method::DELETE, &path, &key).send().await.unwrap(), 200).await;
    assert!(keys(id).await.is_empty());
}
