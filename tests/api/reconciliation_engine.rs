//! The engine through the API: automatic matches only when certain, suggestions with reasons
//! otherwise, accept and reject, rules, runs, and races with people.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    reconciliation_matches::{SCOPES, credits, invoice},
    support::{TestApp, bank::drain, json_of, problem},
};

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    json_of(app.as_key(Method::GET, path, key).send().await.unwrap(), 200).await
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.as_key(Method::POST, path, key).json(&body).send().await.unwrap()
}

async fn suggestions_of(app: &TestApp, key: &str, txn: &str) -> Vec<Value> {
    get(app, key, &format!("/api/v1/reconciliation/suggestions?transaction_id={txn}")).await["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_reference_and_the_amount_match_automatically_and_say_why() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    let inv = invoice(
        &app,
        &key,
        json!({"number": "INV-2026-0104", "currency": "GBP", "amount_total": 125000, "issue_date": "2026-11-20",
               "due_date": "2026-12-20"}),
    )
    .await;
    // A digit fragment and a look-alike amount elsewhere must not confuse it.
    invoice(&app, &key, json!({"number": "104", "currency": "GBP", "amount_total": 5000})).await;
    let txns = credits(
        &app,
        &key,
        "GBP",
        &[
            json!({"amount": "1250.00", "description": "PAYMENT inv 2026 0104 THANK YOU", "counterparty_name": "ACME WIDGETS LTD"}),
            json!({"amount": "7.31", "description": "INTEREST 104 DAYS"}),
        ],
    )
    .await;
    drain(&app).await;

    let txn = get(&app, &key, &format!("/api/v1/transactions/{}", txns[0])).await;
    assert_eq!(txn["match_status"], "matched");
    let found = get(&app, &key, &format!("/api/v1/reconciliation/matches?transaction_id={}", txns[0])).await;
    let made = &found["data"][0];
    assert_eq!((made["origin"].as_str(), made["created_by"].as_str()), (Some("auto"), Some("engine")));
    assert!(made["score"].as_f64().unwrap() >= 0.9, "{made}");
    let details: Vec<&str> =
        made["reasons"].as_array().unwrap().iter().map(|r| r["detail"].as_str().unwrap()).collect();
    assert!(details.iter().any(|d| d.contains("INV-2026-0104")), "{details:?}");
    assert_eq!(get(&app, &key, &format!("/api/v1/invoices/{inv}")).await["status"], "paid");
    // The interest credit pays nothing: "104" is a fragment, not a reference.
    let interest = get(&app, &key, &format!("/api/v1/transactions/{}", txns[1])).await;
    assert_eq!(interest["match_status"], "unmatched");
    assert!(suggestions_of(&app, &key, &txns[1]).await.is_empty());
    // The decision is audited as the engine's, with its reasons.
    let db = app.superuser_pool().await;
    let detail: Value = sqlx::query_scalar(
        "select detail from audit_logs where action = 'reconciliation.auto_match' and actor_type = 'engine' and resource_id = $1",
    )
    .bind(made["id"].as_str().unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(detail["reasons"].as_array().is_some_and(|r| !r.is_empty()), "{detail}");
}

#[tokio::test]
async fn an_ambiguous_credit_is_suggested_never_guessed_and_a_person_decides() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    let customer = json_of(
        post(&app, &key, "/api/v1/customers", json!({"name": "Acme Widgets Limited", "aliases": ["ACME W"]})).await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a =
        invoice(&app, &key, json!({"number": "S-1", "currency": "EUR", "amount_total": 4900, "customer_id": customer}))
            .await;
    let b =
        invoice(&app, &key, json!({"number": "S-2", "currency": "EUR", "amount_total": 4900, "customer_id": customer}))
            .await;
    let txns = credits(
        &app,
        &key,
        "EUR",
        &[json!({"amount": "49.00", "description": "SUBSCRIPTION", "counterparty_name": "ACME WIDGETS LTD"})],
    )
    .await;
    drain(&app).await;

    let txn = get(&app, &key, &format!("/api/v1/transactions/{}", txns[0])).await;
    assert_eq!(txn["match_status"], "suggested");
    let suggested = suggestions_of(&app, &key, &txns[0]).await;
    let targets: Vec<&str> = suggested.iter().map(|s| s["target_ids"][0].as_str().unwrap()).collect();
    assert_eq!(suggested.len(), 2, "{suggested:?}");
    assert!(targets.contains(&a.as_str()) && targets.contains(&b.as_str()));
    assert_eq!(suggested[0]["rank"], 1);
    assert!(suggested[0]["reasons"].as_array().unwrap().iter().any(|r| r["signal"] == "name"), "{suggested:?}");
    let by_invoice = get(&app, &key, &format!("/api/v1/reconciliation/suggestions?target_id={a}")).await;
    assert_eq!(by_invoice["data"].as_array().unwrap().len(), 1);
    let events = get(&app, &key, "/api/v1/events?type=reconciliation.suggested").await;
    assert_eq!(events["data"][0]["data"]["transaction_id"], txns[0].as_str());

    // Reject the one for B: it never comes back, even after a run.
    let for_b = suggested.iter().find(|s| s["target_ids"][0] == b.as_str()).unwrap();
    let rejected = json_of(
        post(
            &app,
            &key,
            &format!("/api/v1/reconciliation/suggestions/{}/reject", for_b["id"].as_str().unwrap()),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rejected["status"], "rejected");
    json_of(post(&app, &key, "/api/v1/reconciliation/runs", json!({})).await, 202).await;
    drain(&app).await;
    let again = suggestions_of(&app, &key, &txns[0]).await;
    assert!(again.iter().all(|s| s["target_ids"][0] == a.as_str()), "{again:?}");

    // Accept the one for A: the match is made, and what it pays is paid.
    let for_a = &again[0];
    let accepted = json_of(
        post(
            &app,
            &key,
            &format!("/api/v1/reconciliation/suggestions/{}/accept", for_a["id"].as_str().unwrap()),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(accepted["suggestion"]["status"], "accepted");
    assert_eq!(accepted["match"]["origin"], "suggestion");
    assert_eq!(accepted["match"]["suggestion_id"], for_a["id"]);
    assert_eq!(get(&app, &key, &format!("/api/v1/invoices/{a}")).await["status"], "paid");
    assert_eq!(get(&app, &key, &format!("/api/v1/invoices/{b}")).await["status"], "open");
    let twice = post(
        &app,
        &key,
        &format!("/api/v1/reconciliation/suggestions/{}/accept", for_a["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    problem(twice, 409, "conflict").await;
}

#[tokio::test]
async fn rules_exclude_and_runs_report_their_progress() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    json_of(
        post(
            &app,
            &key,
            "/api/v1/reconciliation/rules",
            json!({"name": "Own transfers", "field": "description", "operator": "contains", "pattern": "from savings",
                   "action": "exclude"}),
        )
        .await,
        201,
    )
    .await;
    invoice(&app, &key, json!({"number": "INV-77881", "currency": "GBP", "amount_total": 9900})).await;
    let txns = credits(
        &app,
        &key,
        "GBP",
        &[
            json!({"amount": "500.00", "description": "Transfer FROM SAVINGS", "booking_date": "2026-11-02"}),
            json!({"amount": "99.00", "description": "INV-77881", "booking_date": "2026-11-03"}),
            json!({"amount": "12.00", "description": "unknown", "booking_date": "2026-10-01"}),
        ],
    )
    .await;
    drain(&app).await;
    let excluded = get(&app, &key, &format!("/api/v1/transactions/{}", txns[0])).await;
    assert_eq!(excluded["match_status"], "excluded");
    assert_eq!(get(&app, &key, &format!("/api/v1/transactions/{}", txns[1])).await["match_status"], "matched");

    let run = json_of(
        post(&app, &key, "/api/v1/reconciliation/runs", json!({"date_from": "2026-10-01", "date_to": "2026-10-31"}))
            .await,
        202,
    )
    .await;
    assert_eq!(run["status"], "queued");
    let busy = post(&app, &key, "/api/v1/reconciliation/runs", json!({})).await;
    let busy = problem(busy, 409, "conflict").await;
    assert!(busy["detail"].as_str().unwrap().contains(run["id"].as_str().unwrap()));
    drain(&app).await;
    let done = get(&app, &key, &format!("/api/v1/reconciliation/runs/{}", run["id"].as_str().unwrap())).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        (done["total"].as_i64(), done["examined"].as_i64(), done["unmatched"].as_i64()),
        (Some(1), Some(1), Some(1))
    );
    let completed = get(&app, &key, "/api/v1/events?type=reconciliation.run.completed").await;
    assert_eq!(completed["data"][0]["data"]["id"], run["id"]);
    let bad =
        post(&app, &key, "/api/v1/reconciliation/runs", json!({"date_from": "2026-10-31", "date_to": "2026-10-01"}))
            .await;
    problem(bad, 422, "validation_failed").await;
}

#[tokio::test]
async fn a_person_and_the_engine_racing_for_one_credit_never_both_win() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    for round in 0..4 {
        let number = format!("RACE-2026-{round:04}");
        let inv = invoice(&app, &key, json!({"number": number, "currency": "GBP", "amount_total": 3000})).await;
        let txns = credits(&app, &key, "GBP", &[json!({"amount": "30.00", "description": number})]).await;
        let tenant_id = payymo::domain::ids::TenantId::from_db(tenant.id.clone());
        let engine = payymo::reconciliation::engine::reconcile_pending(&app.state.db, &tenant_id);
        let person = post(
            &app,
            &key,
            "/api/v1/reconciliation/matches",
            json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": inv}]}),
        );
        let (engine, person) = tokio::join!(engine, person);
        engine.unwrap();
        assert!([201, 409].contains(&person.status().as_u16()), "{}", person.status());
        let db = app.superuser_pool().await;
        let active: i64 = sqlx::query_scalar(
            "select count(*) from reconciliation_match_transactions where transaction_id = $1 and active",
        )
        .bind(&txns[0])
        .fetch_one(&db)
        .await
        .unwrap();
        let paid: i64 = sqlx::query_scalar("select amount_paid from invoices where id = $1")
            .bind(&inv)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!((active, paid), (1, 3000), "round {round}: exactly one match, the invoice paid once");
    }
}

#[tokio::test]
async fn a_simulation_shows_what_a_change_would_do_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    let customer =
        json_of(post(&app, &key, "/api/v1/customers", json!({"name": "Globex Limited"})).await, 201).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
    invoice(&app, &key, json!({"number": "INV-SIM-000001", "currency": "GBP", "amount_total": 10000})).await;
    let by_hand =
        invoice(&app, &key, json!({"number": "G-7", "currency": "GBP", "amount_total": 5500, "customer_id": customer}))
            .await;
    let txns = credits(
        &app,
        &key,
        "GBP",
        &[
            json!({"amount": "100.00", "description": "INV-SIM-000001"}),
            json!({"amount": "55.00", "description": "thanks", "counterparty_name": "GLOBEX LTD"}),
        ],
    )
    .await;
    drain(&app).await;
    assert_eq!(get(&app, &key, &format!("/api/v1/transactions/{}", txns[0])).await["match_status"], "matched");
    // A person matches the second by hand.
    json_of(
        post(
            &app,
            &key,
            "/api/v1/reconciliation/matches",
            json!({"transaction_ids": [txns[1]], "allocations": [{"target_type": "invoice", "target_id": by_hand}]}),
        )
        .await,
        201,
    )
    .await;
    let db = app.superuser_pool().await;
    let before: (i64, i64) = sqlx::query_as(
        "select (select count(*) from reconciliation_matches), (select count(*) from reconciliation_suggestions)",
    )
    .fetch_one(&db)
    .await
    .unwrap();

    let sim = json_of(
        post(&app, &key, "/api/v1/reconciliation/simulate", json!({"settings": {"signals": {"reference": false}}}))
            .await,
        200,
    )
    .await;
    assert_eq!(sim["examined"], 2, "{sim}");
    assert_eq!(sim["current"]["auto_matched"], 1, "{sim}");
    assert_eq!(sim["proposed"]["auto_matched"], 0, "{sim}");
    assert_eq!(sim["auto_matches"]["disappear"], 1, "{sim}");
    assert_eq!(sim["people"]["decisions"], 1, "{sim}");
    assert_eq!(sim["people"]["current"]["disagree"], 0, "{sim}");
    let example = sim["examples"].as_array().unwrap().iter().find(|e| e["transaction_id"] == txns[0].as_str()).unwrap();
    assert_eq!(
        (example["current"]["verdict"].as_str(), example["text"].as_str()),
        (Some("auto_match"), Some("INV-SIM-000001"))
    );

    let excluding = json_of(
        post(
            &app,
            &key,
            "/api/v1/reconciliation/simulate",
            json!({"rules": [{"name": "sim", "field": "description", "pattern": "inv-sim", "action": "exclude"}]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(excluding["proposed"]["excluded"], 1, "{excluding}");
    let bad =
        post(&app, &key, "/api/v1/reconciliation/simulate", json!({"settings": {"auto_match_threshold": 2}})).await;
    let bad = problem(bad, 422, "validation_failed").await;
    assert_eq!(bad["errors"][0]["field"], "settings.auto_match_threshold", "{bad}");

    let after: (i64, i64) = sqlx::query_as(
        "select (select count(*) from reconciliation_matches), (select count(*) from reconciliation_suggestions)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(before, after, "a simulation writes nothing");
}

#[tokio::test]
async fn a_payout_in_the_bank_is_matched_with_its_fees_and_the_invoices_its_charges_paid() {
    use crate::stripe::{at_stripe, control, new_account, put};
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = tenant.key.clone();
    let (secret, _) = new_account(&app, &tenant, "Card Shop Ltd").await;
    json_of(put(&app, &key, &secret).await, 201).await;
    let inv = invoice(&app, &key, json!({"number": "INV-CARD-0001", "currency": "EUR", "amount_total": 2500})).await;
    let pay = |amount: &'static str, invoice: &'static str| {
        [
            ("amount", amount),
            ("currency", "eur"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("metadata[invoice_number]", invoice),
        ]
    };
    at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay("2500", "INV-CARD-0001")).await;
    at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay("4000", "none")).await;
    // Days pass: Stripe pays the balance out and it arrives.
    control(&app, "/_stripe/clock/advance", json!({"seconds": 8 * 86_400})).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let payout = loop {
        drain(&app).await;
        let paid = get(&app, &key, "/api/v1/stripe/payouts?status=paid").await;
        if let Some(p) = paid["data"].as_array().unwrap().first().filter(|p| !p["summary"].is_null()) {
            break p.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no paid payout");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let net = payout["amount"].as_i64().unwrap();
    let amount = format!("{}.{:02}", net / 100, net % 100);
    let text = format!(
        "STRIPE PAYMENTS {} {}",
        payout["statement_descriptor"].as_str().unwrap(),
        payout["trace_id"].as_str().unwrap()
    );
    let txns = credits(
        &app,
        &key,
        "EUR",
        &[json!({"amount": amount, "description": text, "booking_date": payout["arrival_date"]})],
    )
    .await;
    drain(&app).await;

    let found = get(&app, &key, &format!("/api/v1/reconciliation/matches?transaction_id={}", txns[0])).await;
    let made = &found["data"][0];
    assert_eq!(made["origin"], "auto", "{found}");
    let payout_id = payout["id"].as_str().unwrap();
    let allocations = made["allocations"].as_array().unwrap();
    assert!(
        allocations
            .iter()
            .any(|a| a["target_type"] == "stripe_payout" && a["target_id"] == payout_id && a["amount"] == 6500)
    );
    assert!(
        allocations
            .iter()
            .any(|a| a["target_id"] == inv.as_str() && a["via_payout_id"] == payout_id && a["amount"] == 2500)
    );
    let fees: i64 = made["adjustments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "stripe_fee")
        .map(|a| a["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(fees, -payout["summary"]["fees"].as_i64().unwrap());
    assert_eq!(get(&app, &key, &format!("/api/v1/invoices/{inv}")).await["status"], "paid");
    // The payout is taken: it is never matched twice.
    let again = post(
        &app,
        &key,
        "/api/v1/reconciliation/matches",
        json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "stripe_payout", "target_id": payout_id}]}),
    )
    .await;
    problem(again, 409, "conflict").await;
}

/// The `transaction.needs_review` events of the tenant, by transaction id.
async fn needing_review(app: &TestApp, key: &str) -> std::collections::BTreeMap<String, Vec<Value>> {
    let events = get(app, key, "/api/v1/events?type=transaction.needs_review&limit=100").await;
    let mut by = std::collections::BTreeMap::<String, Vec<Value>>::new();
    for event in events["data"].as_array().unwrap() {
        by.entry(event["data"]["id"].as_str().unwrap().to_owned()).or_default().push(event["data"].clone());
    }
    by
}

#[tokio::test]
async fn a_credit_left_for_a_person_is_announced_once_however_often_the_engine_looks_again() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    let customer = json_of(
        post(&app, &key, "/api/v1/customers", json!({"name": "Acme Widgets Limited", "aliases": ["ACME W"]})).await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for number in ["S-1", "S-2"] {
        invoice(
            &app,
            &key,
            json!({"number": number, "currency": "EUR", "amount_total": 4900, "customer_id": customer}),
        )
        .await;
    }
    invoice(&app, &key, json!({"number": "INV-2026-0104", "currency": "GBP", "amount_total": 125000})).await;
    let eur = credits(
        &app,
        &key,
        "EUR",
        &[
            json!({"amount": "49.00", "description": "SUBSCRIPTION", "counterparty_name": "ACME WIDGETS LTD"}),
            json!({"amount": "7.31", "description": "INTEREST 104 DAYS"}),
        ],
    )
    .await;
    let (suggested, unmatched) = (eur[0].clone(), eur[1].clone());
    let gbp = credits(
        &app,
        &key,
        "GBP",
        &[json!({"amount": "1250.00", "description": "PAYMENT inv 2026 0104 THANK YOU",
                 "counterparty_name": "ACME WIDGETS LTD"})],
    )
    .await;
    let auto = gbp[0].clone();
    drain(&app).await;
    assert_eq!(get(&app, &key, &format!("/api/v1/transactions/{auto}")).await["match_status"], "matched");

    // One event each for the credits left for a person, none for the one matched on its own.
    let events = needing_review(&app, &key).await;
    assert_eq!(events.keys().collect::<Vec<_>>(), {
        let mut expected = vec![&suggested, &unmatched];
        expected.sort();
        expected
    });
    assert!(events.values().all(|e| e.len() == 1), "{events:?}");
    // `data` is the transaction as the API shows it, with its open suggestions, best first.
    let first = &events[&suggested][0];
    let shown = get(&app, &key, &format!("/api/v1/transactions/{suggested}")).await;
    for field in ["id", "account_id", "amount", "currency", "description", "counterparty_name", "match_status"] {
        assert_eq!(first[field], shown[field], "{field}");
    }
    assert_eq!((first["match_status"].as_str(), first["direction"].as_str()), (Some("suggested"), Some("credit")));
    let offered = first["suggestions"].as_array().unwrap();
    assert_eq!(offered.len(), 2, "{first}");
    assert!(offered.iter().all(|s| s["transaction_id"] == suggested.as_str() && s["status"] == "open"));
    assert_eq!((offered[0]["rank"].as_i64(), offered[1]["rank"].as_i64()), (Some(1), Some(2)));
    assert_eq!(
        offered.iter().map(|s| &s["id"]).collect::<Vec<_>>(),
        suggestions_of(&app, &key, &suggested).await.iter().map(|s| &s["id"]).collect::<Vec<_>>()
    );
    let nothing = &events[&unmatched][0];
    assert_eq!((nothing["match_status"].as_str(), nothing["amount"].as_i64()), (Some("unmatched"), Some(731)));
    assert_eq!(nothing["suggestions"], json!([]));

    // The engine looks again: a new invoice it might pay, then a run over everything.
    invoice(&app, &key, json!({"number": "S-3", "currency": "EUR", "amount_total": 4900, "customer_id": customer}))
        .await;
    drain(&app).await;
    assert_eq!(suggestions_of(&app, &key, &suggested).await.len(), 3, "the engine looked again");
    let run = json_of(post(&app, &key, "/api/v1/reconciliation/runs", json!({})).await, 202).await;
    drain(&app).await;
    let done = get(&app, &key, &format!("/api/v1/reconciliation/runs/{}", run["id"].as_str().unwrap())).await;
    assert_eq!((done["status"].as_str(), done["examined"].as_i64()), (Some("succeeded"), Some(2)), "{done}");
    let again = needing_review(&app, &key).await;
    assert_eq!(again.len(), 2);
    assert!(again.values().all(|e| e.len() == 1), "{again:?}");

    // A person matches it, then undoes that: the credit is left for a person again, but it was
    // announced already.
    let accepted = json_of(
        post(
            &app,
            &key,
            &format!(
                "/api/v1/reconciliation/suggestions/{}/accept",
                suggestions_of(&app, &key, &suggested).await[0]["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    let undone = app
        .as_key(
            Method::DELETE,
            &format!("/api/v1/reconciliation/matches/{}", accepted["match"]["id"].as_str().unwrap()),
            &key,
        )
        .send()
        .await
        .unwrap();
    json_of(undone, 200).await;
    json_of(post(&app, &key, "/api/v1/reconciliation/runs", json!({})).await, 202).await;
    drain(&app).await;
    assert_eq!(get(&app, &key, &format!("/api/v1/transactions/{suggested}")).await["match_status"], "suggested");
    let after = needing_review(&app, &key).await;
    assert_eq!(after.len(), 2);
    assert!(after.values().all(|e| e.len() == 1), "{after:?}");
}
