//! Matches by hand: balancing, paying invoices, unmatching, excluding, and races.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, json_of, problem, tenants::TestTenant};

/// Every scope these tests need.
pub(crate) const SCOPES: &[&str] = &[
    "reconciliation:read",
    "reconciliation:write",
    "transactions:read",
    "transactions:write",
    "invoices:read",
    "invoices:write",
    "webhooks:read",
    "audit_logs:read",
];

/// A manual account in `currency` holding the given rows (`{"amount": "12.50", "description": …}`),
/// imported through the API; returns the transactions' ids in row order.
pub(crate) async fn credits(app: &TestApp, key: &str, currency: &str, rows: &[Value]) -> Vec<String> {
    let account = json_of(
        app.as_key(Method::POST, "/api/v1/accounts", key)
            .json(&json!({"name": format!("Current {currency}"), "currency": currency}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut row = row.clone();
            row["external_id"] = json!(format!("row-{i}-{}", uuid::Uuid::now_v7().simple()));
            if row.get("booking_date").is_none() {
                row["booking_date"] = json!("2026-12-01");
            }
            row
        })
        .collect();
    let report = json_of(
        app.as_key(Method::POST, "/api/v1/transactions/import", key)
            .json(&json!({"account_id": account, "rows": rows}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(report["rejected"], 0, "{report}");
    report["results"].as_array().unwrap().iter().map(|r| r["transaction_id"].as_str().unwrap().to_owned()).collect()
}

/// Creates an invoice and returns its id.
pub(crate) async fn invoice(app: &TestApp, key: &str, body: Value) -> String {
    json_of(app.as_key(Method::POST, "/api/v1/invoices", key).json(&body).send().await.unwrap(), 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    json_of(app.as_key(Method::GET, path, key).send().await.unwrap(), 200).await
}

async fn post_match(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.as_key(Method::POST, "/api/v1/reconciliation/matches", key).json(&body).send().await.unwrap()
}

async fn setup(app: &TestApp) -> (TestTenant, String) {
    let tenant = app.tenant().await;
    let key = app.key(&tenant, SCOPES).await;
    (tenant, key)
}

#[tokio::test]
async fn a_credit_pays_an_invoice_and_unmatching_gives_the_amount_back() {
    let app = TestApp::spawn().await;
    let (_tenant, key) = setup(&app).await;
    let txns = credits(&app, &key, "GBP", &[json!({"amount": "1250.00", "description": "INV-2026-0104"})]).await;
    let inv = invoice(&app, &key, json!({"number": "INV-2026-0104", "currency": "GBP", "amount_total": 125000})).await;

    let made = json_of(
        post_match(
            &app,
            &key,
            json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": inv}],
                   "note": "checked by hand"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(made["status"], "active");
    assert_eq!(made["origin"], "manual");
    assert!(made["created_by"].as_str().unwrap().starts_with("api_key:key_"), "{made}");
    assert_eq!(made["allocations"][0]["amount"], 125000, "defaults to what the invoice owes");
    assert_eq!(made["transactions"][0], json!({"transaction_id": txns[0], "amount": 125000, "currency": "GBP"}));

    let paid = get(&app, &key, &format!("/api/v1/invoices/{inv}")).await;
    assert_eq!(
        (paid["status"].as_str(), paid["amount_paid"].as_i64(), paid["amount_due"].as_i64()),
        (Some("paid"), Some(125000), Some(0))
    );
    let txn = get(&app, &key, &format!("/api/v1/transactions/{}", txns[0])).await;
    assert_eq!(txn["match_status"], "matched");
    let id = made["id"].as_str().unwrap();
    assert_eq!(get(&app, &key, &format!("/api/v1/reconciliation/matches/{id}")).await, made);
    let listed = get(&app, &key, &format!("/api/v1/reconciliation/matches?target_id={inv}")).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    // Matching it again: the transaction is taken.
    let again = post_match(
        &app,
        &key,
        json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": inv}]}),
    )
    .await;
    problem(again, 409, "conflict").await;

    let undone = json_of(
        app.as_key(Method::DELETE, &format!("/api/v1/reconciliation/matches/{id}?reason=wrong%20customer"), &key)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        (undone["status"].as_str(), undone["unmatch_reason"].as_str()),
        (Some("unmatched"), Some("wrong customer"))
    );
    let open = get(&app, &key, &format!("/api/v1/invoices/{inv}")).await;
    assert_eq!((open["status"].as_str(), open["amount_paid"].as_i64()), (Some("open"), Some(0)));
    let txn = get(&app, &key, &format!("/api/v1/transactions/{}", txns[0])).await;
    assert_eq!(txn["match_status"], "unmatched");
    let twice = app.as_key(Method::DELETE, &format!("/api/v1/reconciliation/matches/{id}"), &key).send().await.unwrap();
    problem(twice, 409, "conflict").await;

    // Every decision is in the audit log with its actor, and the events went out in order.
    let events = get(&app, &key, "/api/v1/events?limit=20").await;
    let types: Vec<&str> =
        events["data"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    for expected in ["transaction.unmatched", "invoice.updated", "transaction.matched", "invoice.paid"] {
        assert!(types.contains(&expected), "{expected} missing from {types:?}");
    }
    let db = app.superuser_pool().await;
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_logs where resource_id = $1 and action like 'reconciliation.%' order by seq",
    )
    .bind(id)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(actions, ["reconciliation.match.create", "reconciliation.match.unmatch"]);
    let verified = get(&app, &key, "/api/v1/audit_logs/verify").await;
    assert_eq!(verified["valid"], true, "{verified}");
}

#[tokio::test]
async fn instalments_and_combined_payments_balance_to_the_cent() {
    let app = TestApp::spawn().await;
    let (_tenant, key) = setup(&app).await;
    let txns = credits(
        &app,
        &key,
        "GBP",
        &[
            json!({"amount": "400.00"}),
            json!({"amount": "600.00"}),
            json!({"amount": "295.00"}),
            json!({"amount": "1.00"}),
        ],
    )
    .await;
    let big = invoice(&app, &key, json!({"number": "A-1", "currency": "GBP", "amount_total": 100000})).await;
    let small_a = invoice(&app, &key, json!({"number": "A-2", "currency": "GBP", "amount_total": 20000})).await;
    let small_b = invoice(&app, &key, json!({"number": "A-3", "currency": "GBP", "amount_total": 10000})).await;

    // Two instalments pay one invoice: partially paid, then paid.
    json_of(post_match(&app, &key, json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": big, "amount": 40000}]})).await, 201).await;
    let part = get(&app, &key, &format!("/api/v1/invoices/{big}")).await;
    assert_eq!((part["status"].as_str(), part["amount_due"].as_i64()), (Some("partially_paid"), Some(60000)));
    json_of(
        post_match(
            &app,
            &key,
            json!({"transaction_ids": [txns[1]], "allocations": [{"target_type": "invoice", "target_id": big}]}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(get(&app, &key, &format!("/api/v1/invoices/{big}")).await["status"], "paid");

    // One credit of 295.00 pays 200.00 + 100.00 less a 5.00 bank charge: without the adjustment it
    // does not balance, and the problem says by how much.
    let both = |adjustments: Value| {
        json!({"transaction_ids": [txns[2]], "allocations": [
            {"target_type": "invoice", "target_id": small_a}, {"target_type": "invoice", "target_id": small_b}],
            "adjustments": adjustments})
    };
    let refused = problem(post_match(&app, &key, both(json!([]))).await, 422, "validation_failed").await;
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("GBP: transactions 295.00 ≠ allocations 300.00 + adjustments 0.00 (difference -5.00)"),
        "{message}"
    );
    let made = json_of(
        post_match(
            &app,
            &key,
            both(json!([{"kind": "bank_charge", "amount": -500, "description": "Correspondent fee"}])),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(made["adjustments"][0]["currency"], "GBP");
    assert_eq!(get(&app, &key, &format!("/api/v1/invoices/{small_a}")).await["status"], "paid");

    // Paying more than an invoice owes is refused; an overpayment is an adjustment.
    let over = post_match(
        &app,
        &key,
        json!({"transaction_ids": [txns[3]], "allocations": [{"target_type": "invoice", "target_id": small_b, "amount": 100}]}),
    )
    .await;
    let over = problem(over, 409, "conflict").await;
    assert!(over["detail"].as_str().unwrap().contains("only open and partially paid"), "{over}");
}

#[tokio::test]
async fn bad_matches_are_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    let (_tenant, key) = setup(&app).await;
    let txns = credits(&app, &key, "GBP", &[json!({"amount": "10.00"}), json!({"amount": "-10.00"})]).await;
    let inv = invoice(&app, &key, json!({"number": "B-1", "currency": "GBP", "amount_total": 1000})).await;
    let cases = [
        (
            json!({"transaction_ids": [], "allocations": [{"target_type": "invoice", "target_id": inv}]}),
            "transaction_ids",
        ),
        (json!({"transaction_ids": [txns[0]], "allocations": []}), "allocations"),
        (
            json!({"transaction_ids": [txns[0], txns[0]], "allocations": [{"target_type": "invoice", "target_id": inv}]}),
            "transaction_ids",
        ),
        (
            json!({"transaction_ids": [txns[1]], "allocations": [{"target_type": "invoice", "target_id": inv}]}),
            "transaction_ids[0]",
        ),
        (
            json!({"transaction_ids": ["txn_00000000000000000000000000000000"], "allocations": [{"target_type": "invoice", "target_id": inv}]}),
            "transaction_ids[0]",
        ),
        (
            json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": "inv_00000000000000000000000000000000"}]}),
            "allocations[0].target_id",
        ),
        (
            json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": inv, "amount": 0}]}),
            "allocations[0].amount",
        ),
        (
            json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": inv}], "adjustments": [{"kind": "other", "amount": 0}]}),
            "adjustments[0].amount",
        ),
        (
            json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "stripe_payout", "target_id": "po_nothing"}]}),
            "allocations[0].target_id",
        ),
    ];
    for (body, field) in cases {
        let refused = problem(post_match(&app, &key, body.clone()).await, 422, "validation_failed").await;
        let fields: Vec<&str> =
            refused["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "{body}: {refused}");
    }
    let unknown = post_match(
        &app,
        &key,
        json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "order", "target_id": inv}]}),
    )
    .await;
    assert_eq!(unknown.status(), 422);
    // Nothing was written by any of them.
    assert_eq!(get(&app, &key, "/api/v1/reconciliation/matches").await["data"], json!([]));
    assert_eq!(get(&app, &key, &format!("/api/v1/invoices/{inv}")).await["amount_paid"], 0);
}

#[tokio::test]
async fn an_excluded_transaction_is_not_matched_until_included_again() {
    let app = TestApp::spawn().await;
    let (_tenant, key) = setup(&app).await;
    let txns = credits(&app, &key, "EUR", &[json!({"amount": "50.00", "description": "Transfer from savings"})]).await;
    let inv = invoice(&app, &key, json!({"number": "C-1", "currency": "EUR", "amount_total": 5000})).await;
    let path = |action: &str| format!("/api/v1/transactions/{}/{action}", txns[0]);

    let excluded = json_of(
        app.as_key(Method::POST, &path("exclude"), &key).json(&json!({"reason": "own transfer"})).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(excluded, json!({"transaction_id": txns[0], "match_status": "excluded", "changed": true}));
    // Without a body, and again: nothing changes.
    let again = json_of(app.as_key(Method::POST, &path("exclude"), &key).send().await.unwrap(), 200).await;
    assert_eq!(again["changed"], false);
    let body = json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": inv}]});
    problem(post_match(&app, &key, body.clone()).await, 409, "conflict").await;
    let listed = get(&app, &key, "/api/v1/transactions?match_status=excluded").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    let included = json_of(app.as_key(Method::POST, &path("include"), &key).send().await.unwrap(), 200).await;
    assert_eq!(included, json!({"transaction_id": txns[0], "match_status": "unmatched", "changed": true}));
    json_of(post_match(&app, &key, body).await, 201).await;
    // A matched transaction is not excluded behind its match's back.
    problem(app.as_key(Method::POST, &path("exclude"), &key).send().await.unwrap(), 409, "conflict").await;
}

#[tokio::test]
async fn two_people_racing_for_one_transaction_never_both_win() {
    let app = TestApp::spawn().await;
    let (_tenant, key) = setup(&app).await;
    let txns = credits(&app, &key, "GBP", &[json!({"amount": "100.00"})]).await;
    let first = invoice(&app, &key, json!({"number": "R-1", "currency": "GBP", "amount_total": 10000})).await;
    let second = invoice(&app, &key, json!({"number": "R-2", "currency": "GBP", "amount_total": 10000})).await;
    for _ in 0..3 {
        let attempts = [&first, &second].map(|inv| {
            post_match(
                &app,
                &key,
                json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": inv}]}),
            )
        });
        let [a, b] = attempts;
        let (a, b) = tokio::join!(a, b);
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [201, 409]);
        let won =
            get(&app, &key, &format!("/api/v1/reconciliation/matches?transaction_id={}&status=active", txns[0])).await;
        let id = won["data"][0]["id"].as_str().unwrap().to_owned();
        json_of(
            app.as_key(Method::DELETE, &format!("/api/v1/reconciliation/matches/{id}"), &key).send().await.unwrap(),
            200,
        )
        .await;
    }
    let db = app.superuser_pool().await;
    let total: i64 = sqlx::query_scalar("select coalesce(sum(amount_paid), 0)::int8 from invoices where id = any($1)")
        .bind(vec![first, second])
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(total, 0, "every unmatch gave its amount back");
}

#[tokio::test]
async fn matches_need_the_reconciliation_scopes() {
    let app = TestApp::spawn().await;
    let (tenant, key) = setup(&app).await;
    let reader = app.key(&tenant, &["reconciliation:read"]).await;
    let txns = credits(&app, &key, "GBP", &[json!({"amount": "1.00"})]).await;
    let body = json!({"transaction_ids": [txns[0]], "allocations": [{"target_type": "invoice", "target_id": "inv_00000000000000000000000000000000"}]});
    problem(post_match(&app, &reader, body).await, 403, "insufficient_scope").await;
    problem(
        app.as_key(Method::POST, &format!("/api/v1/transactions/{}/exclude", txns[0]), &reader).send().await.unwrap(),
        403,
        "insufficient_scope",
    )
    .await;
    let nothing = app.key(&tenant, &["transactions:read"]).await;
    problem(
        app.as_key(Method::GET, "/api/v1/reconciliation/matches", &nothing).send().await.unwrap(),
        403,
        "insufficient_scope",
    )
    .await;
}
