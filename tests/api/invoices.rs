//! Customers and invoices over the real server: validation that names the field, the status
//! moves clients may make, events only for real changes, tenant isolation, and a changes feed that
//! no late commit slips behind.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, json_of, problem, tenants::TestTenant};

async fn post(app: &TestApp, tenant: &TestTenant, path: &str, body: Value) -> reqwest::Response {
    app.as_key(Method::POST, path, &tenant.key).json(&body).send().await.unwrap()
}

async fn patch(app: &TestApp, tenant: &TestTenant, path: &str, body: Value) -> reqwest::Response {
    app.as_key(Method::PATCH, path, &tenant.key).json(&body).send().await.unwrap()
}

async fn get(app: &TestApp, tenant: &TestTenant, path: &str) -> Value {
    json_of(app.as_key(Method::GET, path, &tenant.key).send().await.unwrap(), 200).await
}

/// The types of the tenant's events, oldest first.
async fn event_types(app: &TestApp, tenant: &TestTenant) -> Vec<String> {
    let events = get(app, tenant, "/api/v1/events?limit=100").await;
    let mut types: Vec<String> =
        events["data"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap().to_owned()).collect();
    types.reverse();
    types
}

/// At least `count` changes of `resource`'s feed from `cursor` on, reading until they arrived
/// (10 s at most): any writing transaction running at the moment of a read, in any test's
/// database of the cluster, holds the feed back for as long as it runs.
async fn read_at_least(
    app: &TestApp,
    tenant: &TestTenant,
    resource: &str,
    cursor: Option<String>,
    count: usize,
) -> (Vec<Value>, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut changes, mut cursor) = read_feed(app, tenant, resource, cursor).await;
    while changes.len() < count && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (more, next) = read_feed(app, tenant, resource, Some(cursor)).await;
        changes.extend(more);
        cursor = next;
    }
    (changes, cursor)
}

/// Every change of `resource`'s feed from `cursor` on, following `has_more`; returns them and
/// the cursor to continue from.
async fn read_feed(app: &TestApp, tenant: &TestTenant, resource: &str, cursor: Option<String>) -> (Vec<Value>, String) {
    let mut changes = Vec::new();
    let mut cursor = cursor;
    loop {
        let mut path = format!("/api/v1/{resource}/changes?limit=2");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = get(app, tenant, &path).await;
        changes.extend(page["data"].as_array().unwrap().iter().cloned());
        cursor = Some(page["next_cursor"].as_str().expect("a feed always has a cursor").to_owned());
        if page["has_more"] == false {
            return (changes, cursor.unwrap());
        }
    }
}

#[tokio::test]
async fn customers_are_checked_normalised_listed_updated_and_deleted_only_when_nothing_points_at_them() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let created = post(
        &app,
        &tenant,
        "/api/v1/customers",
        json!({"name": " Acme Widgets Ltd ", "email": "accounts@acme.example", "source": "hubspot",
               "external_id": "hs-1", "aliases": ["ACME WIDGETS LTD"],
               "bank_accounts": [{"iban": "gb82 west 1234 5698 7654 32"}, {"account_number": "31926819", "sort_code": "60-16-13"}],
               "metadata": {"segment": "wholesale"}}),
    )
    .await;
    let customer = json_of(created, 201).await;
    let id = customer["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cus_"));
    assert_eq!(customer["name"], "Acme Widgets Ltd");
    assert_eq!(customer["bank_accounts"][0]["iban"], "GB82WEST12345698765432");
    assert_eq!(customer["bank_accounts"][1]["sort_code"], "601613");

    // Every bad field is named.
    let bad = post(
        &app,
        &tenant,
        "/api/v1/customers",
        json!({"name": "", "email": "nope", "bank_accounts": [{"iban": "GB82WEST12345698765433"},
               {"account_number": "000123456789", "routing_number": "021000022"}]}),
    )
    .await;
    let body = problem(bad, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["name", "email", "bank_accounts[0].iban", "bank_accounts[1].routing_number"]);
    // The same external id from the same source is a conflict.
    let again =
        post(&app, &tenant, "/api/v1/customers", json!({"name": "Other", "source": "hubspot", "external_id": "hs-1"}))
            .await;
    problem(again, 409, "conflict").await;

    let found = get(&app, &tenant, "/api/v1/customers?q=widgets").await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
    let found = get(&app, &tenant, "/api/v1/customers?source=hubspot&external_id=hs-1").await;
    assert_eq!(found["data"][0]["id"], id.as_str());
    problem(
        app.as_key(Method::GET, "/api/v1/customers?q=ab", &tenant.key).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;

    let path = format!("/api/v1/customers/{id}");
    let updated = json_of(
        patch(&app, &tenant, &path, json!({"aliases": ["ACME W"], "metadata": {"segment": null, "owner": "ana"}}))
            .await,
        200,
    )
    .await;
    assert_eq!(updated["aliases"], json!(["ACME W"]));
    assert_eq!(updated["metadata"], json!({"owner": "ana"}));
    // A PATCH that changes nothing writes nothing: no event.
    let before = event_types(&app, &tenant).await;
    json_of(patch(&app, &tenant, &path, json!({"aliases": ["ACME W"]})).await, 200).await;
    assert_eq!(event_types(&app, &tenant).await, before);
    assert_eq!(before, vec!["customer.created", "customer.updated"]);

    // An invoice that is not void keeps the customer; once voided, the customer can go.
    let invoice = json_of(
        post(
            &app,
            &tenant,
            "/api/v1/invoices",
            json!({"number": "INV-1", "customer_id": id, "currency": "GBP", "amount_total": 1000}),
        )
        .await,
        201,
    )
    .await;
    let refused = app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap();
    let body = problem(refused, 409, "conflict").await;
    assert!(body["detail"].as_str().unwrap().contains("1 invoice"), "{body}");
    let invoice_id = invoice["id"].as_str().unwrap();
    json_of(
        app.as_key(Method::POST, &format!("/api/v1/invoices/{invoice_id}/void"), &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    json_of(app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap(), 200).await;
    problem(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 404, "not_found").await;
    let voided = get(&app, &tenant, &format!("/api/v1/invoices/{invoice_id}")).await;
    assert_eq!((voided["status"].clone(), voided["customer_id"].clone()), (json!("void"), Value::Null));
}

#[tokio::test]
async fn invoices_are_validated_field_by_field_and_move_only_along_allowed_transitions() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let bad = post(
        &app,
        &tenant,
        "/api/v1/invoices",
        json!({"number": "INV-9", "currency": "XYZ", "amount_total": 10000, "amount_tax": 1000,
               "rf_reference": "RF19539007547034", "status": "paid",
               "lines": [{"description": "Widgets", "quantity": 2, "unit_amount": 4000}]}),
    )
    .await;
    let body = problem(bad, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["currency", "status", "rf_reference", "lines"]);
    assert!(body["errors"][3]["message"].as_str().unwrap().contains("8000"), "{body}");

    let created = post(
        &app,
        &tenant,
        "/api/v1/invoices",
        json!({"number": "INV-2026-0104", "currency": "gbp", "amount_total": 10000, "amount_tax": 2000,
               "status": "draft", "rf_reference": "rf18 5390 0754 7034", "payment_reference": "INV-2026-0104",
               "issue_date": "2026-11-20", "due_date": "2026-12-20",
               "lines": [{"description": "Widgets", "quantity": 2, "unit_amount": 4000}]}),
    )
    .await;
    let invoice = json_of(created, 201).await;
    let id = invoice["id"].as_str().unwrap().to_owned();
    assert_eq!(invoice["currency"], "GBP");
    assert_eq!(invoice["rf_reference"], "RF18539007547034");
    assert_eq!(invoice["lines"][0]["amount"], 8000);
    assert_eq!((invoice["amount_paid"].clone(), invoice["amount_due"].clone()), (json!(0), json!(10000)));
    let duplicate = post(
        &app,
        &tenant,
        "/api/v1/invoices",
        json!({"number": "INV-2026-0104", "currency": "GBP", "amount_total": 1}),
    )
    .await;
    problem(duplicate, 409, "conflict").await;

    let path = format!("/api/v1/invoices/{id}");
    for (status, message) in [("paid", "reconciliation"), ("void", "/void"), ("uncollectible", "cannot become")] {
        let refused = patch(&app, &tenant, &path, json!({"status": status})).await;
        let body = problem(refused, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "status");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains(message), "{status}: {body}");
    }
    let open = json_of(patch(&app, &tenant, &path, json!({"status": "open"})).await, 200).await;
    assert_eq!(open["status"], "open");
    // Open invoices are voided, never deleted.
    let refused = app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap();
    assert!(problem(refused, 409, "conflict").await["detail"].as_str().unwrap().contains("void"));
    let written_off = json_of(patch(&app, &tenant, &path, json!({"status": "uncollectible"})).await, 200).await;
    assert_eq!(written_off["status"], "uncollectible");
    let void_path = format!("{path}/void");
    let voided = json_of(app.as_key(Method::POST, &void_path, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(voided["status"], "void");
    assert!(voided["voided_at"].is_string());
    let again = json_of(app.as_key(Method::POST, &void_path, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(again["voided_at"], voided["voided_at"], "voiding twice changes nothing");
    problem(patch(&app, &tenant, &path, json!({"due_date": "2027-01-01"})).await, 409, "conflict").await;

    // A draft is deleted outright.
    let draft = json_of(
        post(
            &app,
            &tenant,
            "/api/v1/invoices",
            json!({"number": "D-1", "currency": "EUR", "amount_total": 5, "status": "draft"}),
        )
        .await,
        201,
    )
    .await;
    let draft_path = format!("/api/v1/invoices/{}", draft["id"].as_str().unwrap());
    json_of(app.as_key(Method::DELETE, &draft_path, &tenant.key).send().await.unwrap(), 200).await;
    problem(app.as_key(Method::GET, &draft_path, &tenant.key).send().await.unwrap(), 404, "not_found").await;

    assert_eq!(
        event_types(&app, &tenant).await,
        vec![
            "invoice.created",
            "invoice.updated",
            "invoice.updated",
            "invoice.voided",
            "invoice.created",
            "invoice.deleted"
        ]
    );
    let events = get(&app, &tenant, "/api/v1/events?type=invoice.updated&limit=1").await;
    assert_eq!(events["data"][0]["data"]["previous_attributes"], json!({"status": "open"}));
}

#[tokio::test]
async fn invoice_lists_filter_by_status_customer_overdue_amount_and_text() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let customer =
        json_of(post(&app, &tenant, "/api/v1/customers", json!({"name": "Globex Corporation"})).await, 201).await;
    let customer_id = customer["id"].as_str().unwrap();
    for (number, total, due, with_customer) in
        [("A-1", 1000, "2020-01-31", true), ("A-2", 5000, "2099-01-31", true), ("B-1", 250, "2020-01-31", false)]
    {
        let mut body = json!({"number": number, "currency": "GBP", "amount_total": total, "due_date": due,
                              "payment_reference": format!("REF {number}")});
        if with_customer {
            body["customer_id"] = json!(customer_id);
        }
        json_of(post(&app, &tenant, "/api/v1/invoices", body).await, 201).await;
    }
    let numbers = |page: Value| -> Vec<String> {
        page["data"].as_array().unwrap().iter().map(|i| i["number"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(
        numbers(get(&app, &tenant, &format!("/api/v1/invoices?customer_id={customer_id}")).await),
        vec!["A-2", "A-1"]
    );
    assert_eq!(numbers(get(&app, &tenant, "/api/v1/invoices?overdue=true").await), vec!["B-1", "A-1"]);
    assert_eq!(numbers(get(&app, &tenant, "/api/v1/invoices?amount_min=900&amount_max=1000").await), vec!["A-1"]);
    assert_eq!(
        numbers(get(&app, &tenant, "/api/v1/invoices?q=globex").await),
        vec!["A-2", "A-1"],
        "the customer's name"
    );
    assert_eq!(numbers(get(&app, &tenant, "/api/v1/invoices?q=ref b-1").await), vec!["B-1"], "the reference");
    assert_eq!(numbers(get(&app, &tenant, "/api/v1/invoices?status=open&limit=1").await).len(), 1);
    let refused = app
        .as_key(
            Method::GET,
            "/api/v1/invoices?status=settled&customer_id=inv_1&currency=GBX&amount_min=5&amount_max=1",
            &tenant.key,
        )
        .send()
        .await
        .unwrap();
    let body = problem(refused, 422, "validation_failed").await;
    let mut fields: Vec<&str> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["amount_max", "currency", "customer_id", "status"]);
}

#[tokio::test]
async fn another_tenants_customers_and_invoices_are_not_found_and_scopes_are_enforced() {
    let app = TestApp::spawn().await;
    let (owner, other) = (app.tenant().await, app.tenant().await);
    let customer = json_of(post(&app, &owner, "/api/v1/customers", json!({"name": "Initech"})).await, 201).await;
    let invoice = json_of(
        post(&app, &owner, "/api/v1/invoices", json!({"number": "X-1", "currency": "USD", "amount_total": 100})).await,
        201,
    )
    .await;
    let customer_path = format!("/api/v1/customers/{}", customer["id"].as_str().unwrap());
    let invoice_path = format!("/api/v1/invoices/{}", invoice["id"].as_str().unwrap());
    for (method, path) in [
        (Method::GET, customer_path.clone()),
        (Method::PATCH, customer_path.clone()),
        (Method::DELETE, customer_path.clone()),
        (Method::GET, invoice_path.clone()),
        (Method::PATCH, invoice_path.clone()),
        (Method::DELETE, invoice_path.clone()),
        (Method::POST, format!("{invoice_path}/void")),
    ] {
        let response = app.as_key(method.clone(), &path, &other.key).json(&json!({})).send().await.unwrap();
        problem(response, 404, "not_found").await;
    }
    assert_eq!(get(&app, &other, "/api/v1/invoices").await["data"], json!([]));
    assert_eq!(get(&app, &other, "/api/v1/invoices/changes").await["data"], json!([]));
    // An invoice cannot point at another tenant's customer.
    let foreign = post(
        &app,
        &other,
        "/api/v1/invoices",
        json!({"number": "Y-1", "currency": "USD", "amount_total": 1, "customer_id": customer["id"]}),
    )
    .await;
    assert_eq!(problem(foreign, 422, "validation_failed").await["errors"][0]["field"], "customer_id");

    let reader = app.key(&owner, &["invoices:read"]).await;
    let response = app.as_key(Method::GET, &invoice_path, &reader).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app.as_key(Method::POST, "/api/v1/invoices", &reader).json(&json!({})).send().await.unwrap();
    problem(response, 403, "insufficient_scope").await;
    let unrelated = app.key(&owner, &["transactions:read"]).await;
    let response = app.as_key(Method::GET, "/api/v1/customers", &unrelated).send().await.unwrap();
    problem(response, 403, "insufficient_scope").await;
}

/// The feed returns every change once, in order, with tombstones; and a change whose transaction
/// is still open when a page is read is not skipped: the page stops before it, and the next
/// read returns it, then what committed after it.
#[tokio::test]
async fn the_changes_feed_never_skips_a_change_committed_late() {
    use payymo::{
        db::tenant::begin_tenant,
        domain::ids::TenantId,
        invoices::invoice::{self, NewInvoice},
    };
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let first = json_of(
        post(&app, &tenant, "/api/v1/invoices", json!({"number": "F-1", "currency": "GBP", "amount_total": 100})).await,
        201,
    )
    .await;
    json_of(
        patch(
            &app,
            &tenant,
            &format!("/api/v1/invoices/{}", first["id"].as_str().unwrap()),
            json!({"amount_total": 150}),
        )
        .await,
        200,
    )
    .await;
    let draft = json_of(
        post(
            &app,
            &tenant,
            "/api/v1/invoices",
            json!({"number": "F-2", "currency": "GBP", "amount_total": 1, "status": "draft"}),
        )
        .await,
        201,
    )
    .await;
    let draft_id = draft["id"].as_str().unwrap();
    json_of(
        app.as_key(Method::DELETE, &format!("/api/v1/invoices/{draft_id}"), &tenant.key).send().await.unwrap(),
        200,
    )
    .await;

    let (changes, cursor) = read_at_least(&app, &tenant, "invoices", None, 4).await;
    let kinds: Vec<&str> = changes.iter().map(|c| c["change"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["created", "updated", "created", "deleted"]);
    assert_eq!(changes[1]["data"]["amount_total"], 150);
    assert_eq!((changes[3]["object_id"].as_str(), changes[3]["data"].clone()), (Some(draft_id), Value::Null));

    // A writer begins (and takes its transaction id) before another commits after it.
    let tenant_id = TenantId::parse(&tenant.id).unwrap();
    let mut slow = begin_tenant(&app.db, &tenant_id).await.unwrap();
    let spec = NewInvoice { number: "SLOW-1".into(), currency: "GBP".into(), amount_total: 7, ..NewInvoice::default() }
        .check()
        .unwrap();
    invoice::create(&mut slow, &tenant_id, &spec).await.unwrap();
    json_of(
        post(&app, &tenant, "/api/v1/invoices", json!({"number": "FAST-1", "currency": "GBP", "amount_total": 8}))
            .await,
        201,
    )
    .await;
    let (held, cursor) = read_feed(&app, &tenant, "invoices", Some(cursor)).await;
    assert_eq!(held, Vec::<Value>::new(), "FAST-1 waits behind the open transaction rather than passing it");

    slow.commit().await.unwrap();
    let (late, _) = read_at_least(&app, &tenant, "invoices", Some(cursor), 2).await;
    let numbers: Vec<&str> = late.iter().map(|c| c["data"]["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, vec!["SLOW-1", "FAST-1"], "the late commit is returned, then what followed it");

    // A cursor is the feed's own: edited or from the other feed, it is refused.
    let customers_cursor =
        get(&app, &tenant, "/api/v1/customers/changes").await["next_cursor"].as_str().unwrap().to_owned();
    let refused = app
        .as_key(Method::GET, &format!("/api/v1/invoices/changes?cursor={customers_cursor}"), &tenant.key)
        .send()
        .await
        .unwrap();
    problem(refused, 422, "validation_failed").await;
}

#[tokio::test]
async fn a_batch_upserts_by_external_id_reports_each_row_and_twice_is_a_no_op() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let batch = json!({"invoices": [
        {"number": "B-1", "source": "hubspot", "external_id": "hs-1", "currency": "GBP", "amount_total": 1000,
         "customer": {"name": "Acme Widgets Ltd", "external_id": "hs-c1", "aliases": ["ACME WIDGETS LTD"]}},
        {"number": "B-2", "source": "hubspot", "external_id": "hs-2", "currency": "XYZ", "amount_total": 500},
        {"number": "B-3", "source": "hubspot", "external_id": "hs-1", "currency": "GBP", "amount_total": 1},
        {"number": "B-4", "source": "hubspot", "external_id": "hs-4", "currency": "EUR", "amount_total": 700,
         "customer": {"name": "Acme Widgets Ltd", "external_id": "hs-c1", "aliases": ["ACME WIDGETS LTD"]}}
    ]});
    let first = json_of(post(&app, &tenant, "/api/v1/invoices/batch", batch.clone()).await, 200).await;
    let statuses: Vec<&str> =
        first["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["created", "error", "error", "created"]);
    assert_eq!(first["results"][1]["errors"][0]["field"], "currency");
    assert!(first["results"][2]["errors"][0]["message"].as_str().unwrap().contains("row 0"));
    assert_eq!((first["created"].clone(), first["failed"].clone()), (json!(2), json!(2)));
    let invoice =
        get(&app, &tenant, &format!("/api/v1/invoices/{}", first["results"][0]["id"].as_str().unwrap())).await;
    let customers = get(&app, &tenant, "/api/v1/customers?source=hubspot&external_id=hs-c1").await;
    assert_eq!(customers["data"].as_array().unwrap().len(), 1, "the inline customer is upserted once");
    assert_eq!(invoice["customer_id"], customers["data"][0]["id"]);
    let events = event_types(&app, &tenant).await;
    assert_eq!(events, vec!["customer.created", "invoice.created", "invoice.created"]);

    // The same batch again: nothing written, nothing emitted.
    let again = json_of(post(&app, &tenant, "/api/v1/invoices/batch", batch).await, 200).await;
    let statuses: Vec<&str> =
        again["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["unchanged", "error", "error", "unchanged"]);
    assert_eq!(event_types(&app, &tenant).await, events);

    // A changed row updates, with its previous values in the event.
    let changed = json!({"invoices": [{"number": "B-1", "source": "hubspot", "external_id": "hs-1", "currency": "GBP",
                                       "amount_total": 1200}]});
    let updated = json_of(post(&app, &tenant, "/api/v1/invoices/batch", changed).await, 200).await;
    assert_eq!(updated["results"][0]["status"], "updated");
    let events = get(&app, &tenant, "/api/v1/events?type=invoice.updated&limit=1").await;
    assert_eq!(events["data"][0]["data"]["previous_attributes"]["amount_total"], 1000);
    assert_eq!(
        events["data"][0]["data"]["previous_attributes"]["customer_id"], invoice["customer_id"],
        "no inline customer now"
    );

    // All or nothing: one bad row, a 422 naming it, and nothing of the others written.
    let atomic = json!({"atomic": true, "invoices": [
        {"number": "C-1", "external_id": "c-1", "currency": "GBP", "amount_total": 1},
        {"number": "C-2", "external_id": "c-2", "currency": "GBP", "amount_total": 1, "rf_reference": "RF00123"}
    ]});
    let refused = post(&app, &tenant, "/api/v1/invoices/batch", atomic).await;
    let body = problem(refused, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "invoices[1].rf_reference");
    assert_eq!(get(&app, &tenant, "/api/v1/invoices?external_id=c-1").await["data"], json!([]));

    // A number another invoice holds, or one used twice in the batch, is that row's error.
    let numbers = json!({"invoices": [
        {"number": "B-1", "external_id": "other-1", "currency": "GBP", "amount_total": 1},
        {"number": "D-1", "external_id": "d-1", "currency": "GBP", "amount_total": 1},
        {"number": "D-1", "external_id": "d-2", "currency": "GBP", "amount_total": 1}
    ]});
    let result = json_of(post(&app, &tenant, "/api/v1/invoices/batch", numbers).await, 200).await;
    let statuses: Vec<&str> =
        result["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["error", "created", "error"]);
    assert_eq!(result["results"][0]["errors"][0]["field"], "number");
    assert!(result["results"][2]["errors"][0]["message"].as_str().unwrap().contains("row 1"));

    // Too many rows, or none.
    let rows: Vec<Value> = (0..1001)
        .map(|n| json!({"number": format!("N-{n}"), "external_id": format!("n-{n}"), "currency": "GBP", "amount_total": 1}))
        .collect();
    let body = problem(
        post(&app, &tenant, "/api/v1/invoices/batch", json!({"invoices": rows})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "invoices");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("1001"));
    problem(post(&app, &tenant, "/api/v1/invoices/batch", json!({"invoices": []})).await, 422, "validation_failed")
        .await;

    // Customers batch: the same contract.
    let customers = json!({"customers": [
        {"name": "Initech", "external_id": "i-1"}, {"name": "", "external_id": "i-2"}, {"name": "Hooli"}
    ]});
    let result = json_of(post(&app, &tenant, "/api/v1/customers/batch", customers).await, 200).await;
    let statuses: Vec<&str> =
        result["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["created", "error", "error"]);
    assert_eq!(result["results"][1]["errors"][0]["field"], "name");
    assert_eq!(result["results"][2]["errors"][0]["field"], "external_id");
}

/// A batch's changes and events are each invoice exactly as the API shows it: the created ones
/// first, then the updated ones, each kind in input order, and an update's event adds the
/// previous values of what changed.
#[tokio::test]
async fn a_batchs_changes_and_events_are_its_invoices_as_the_api_shows_them() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (_, cursor) = read_feed(&app, &tenant, "invoices", None).await;
    let full = |total: i64, tax: i64, region: &str| {
        json!({"number": "E-1", "source": "xero", "external_id": "x-1", "currency": "eur", "amount_total": total,
               "amount_tax": tax, "issue_date": "2026-11-20", "due_date": "2026-12-20", "payment_reference": " E-1 ",
               "rf_reference": "rf18 5390 0754 7034", "lines": [{"description": "Widgets", "quantity": 2, "unit_amount": 5000}],
               "metadata": {"region": region}, "customer": {"name": "Acme", "external_id": "x-c1"}})
    };
    let first = json_of(
        post(&app, &tenant, "/api/v1/invoices/batch", json!({"invoices": [full(12100, 2100, "emea")]})).await,
        200,
    )
    .await;
    let id = first["results"][0]["id"].as_str().unwrap().to_owned();
    let as_created = get(&app, &tenant, &format!("/api/v1/invoices/{id}")).await;

    let minimal =
        json!({"number": "E-2", "source": "xero", "external_id": "x-2", "currency": "GBP", "amount_total": 500});
    let second = json!({"invoices": [full(12500, 2500, "apac"), minimal]});
    let second = json_of(post(&app, &tenant, "/api/v1/invoices/batch", second).await, 200).await;
    assert_eq!(second["results"][0]["status"], "updated");
    assert_eq!(second["results"][1]["status"], "created");
    let new_id = second["results"][1]["id"].as_str().unwrap().to_owned();
    let as_updated = get(&app, &tenant, &format!("/api/v1/invoices/{id}")).await;
    let new = get(&app, &tenant, &format!("/api/v1/invoices/{new_id}")).await;

    let (changes, _) = read_at_least(&app, &tenant, "invoices", Some(cursor), 3).await;
    let feed: Vec<(&str, &str, &Value)> =
        changes.iter().map(|c| (c["change"].as_str().unwrap(), c["object_id"].as_str().unwrap(), &c["data"])).collect();
    assert_eq!(
        feed,
        vec![
            ("created", id.as_str(), &as_created),
            ("created", new_id.as_str(), &new),
            ("updated", id.as_str(), &as_updated)
        ]
    );

    let events = get(&app, &tenant, "/api/v1/events?limit=10").await;
    let events: Vec<(&str, &Value)> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| (e["event_type"].as_str().unwrap(), &e["data"]))
        .collect();
    let mut updated = as_updated.clone();
    updated["previous_attributes"] = json!({"amount_total": 12100, "amount_tax": 2100, "metadata": {"region": "emea"}});
    assert_eq!(
        events,
        vec![
            ("customer.created", events[0].1),
            ("invoice.created", &as_created),
            ("invoice.created", &new),
            ("invoice.updated", &updated)
        ]
    );
}

/// `payymo demo`'s invoices refer to the sandbox bank's payments: quoted exactly (number and
/// amount), with a typo, two paid at once, one paid in part; re-seeding changes nothing.
#[tokio::test]
async fn the_demo_invoices_refer_to_the_sandbox_banks_payments() {
    use crate::support::bank::{all_transactions, connect, drain};
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    connect(&app, &tenant).await;
    drain(&app).await;
    let id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    let first = payymo::demo::invoices::seed(&app.db, &id, 10).await.unwrap();
    assert_eq!(first.failed, 0, "{:?}", first.results.iter().filter(|r| !r.errors.is_empty()).collect::<Vec<_>>());
    assert!(first.created >= 12, "{}", first.created);
    let again = payymo::demo::invoices::seed(&app.db, &id, 10).await.unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, first.created));

    let credits: Vec<Value> = all_transactions(&app, &tenant, "&direction=credit")
        .await
        .into_iter()
        .filter(|t| t["status"] == "booked")
        .collect();
    let mut invoices = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/invoices?limit=100&source=demo&cursor={c}"),
            None => "/api/v1/invoices?limit=100&source=demo".to_owned(),
        };
        let page = get(&app, &tenant, &path).await;
        invoices.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let quoting = |number: &str| -> Vec<&Value> {
        credits.iter().filter(|t| t["description"].as_str().unwrap_or("").to_uppercase().contains(number)).collect()
    };
    let exact = invoices
        .iter()
        .filter(|i| quoting(i["number"].as_str().unwrap()).iter().any(|t| t["amount"] == i["amount_total"]))
        .count();
    let partly = invoices
        .iter()
        .filter(|i| {
            quoting(i["number"].as_str().unwrap()).iter().any(|t| t["amount"].as_i64() < i["amount_total"].as_i64())
        })
        .count();
    let unquoted = invoices.iter().filter(|i| quoting(i["number"].as_str().unwrap()).is_empty()).count();
    assert!(exact >= 3, "exact: {exact}");
    assert!(partly >= 1, "paid in part or together: {partly}");
    assert!(unquoted >= 4, "typos, the second of a pair, the unpaid and the payments to come: {unquoted}");
    let customers = get(&app, &tenant, "/api/v1/customers?source=demo&limit=100").await;
    assert!(customers["data"].as_array().unwrap().iter().all(|c| !c["aliases"].as_array().unwrap().is_empty()));
}
