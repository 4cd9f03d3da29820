//! Reconciliation settings and rules over HTTP: the defaults, partial changes, every validation
//! error named by field, rules CRUD in evaluation order, and what the engine reads back
//! (`settings::load`, `rules::list_all` compiled into `CompiledRules`).

use payymo::{
    db::tenant::{begin_tenant, end_read},
    domain::ids::TenantId,
    reconciliation::{
        rules::{self, CompiledRules, RuleSubject},
        settings,
    },
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, json_of, problem, tenants::TestTenant};

const SETTINGS: &str = "/api/v1/reconciliation/settings";
const RULES: &str = "/api/v1/reconciliation/rules";

async fn patch_settings(app: &TestApp, tenant: &TestTenant, body: Value) -> reqwest::Response {
    app.as_key(Method::PATCH, SETTINGS, &tenant.key).json(&body).send().await.unwrap()
}

/// The fields a 422 names, in order.
async fn refused_fields(response: reqwest::Response) -> Vec<String> {
    let body = problem(response, 422, "validation_failed").await;
    body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
}

async fn create_rule(app: &TestApp, tenant: &TestTenant, body: Value) -> Value {
    json_of(app.as_key(Method::POST, RULES, &tenant.key).json(&body).send().await.unwrap(), 201).await
}

async fn create_customer(app: &TestApp, tenant: &TestTenant, name: &str) -> String {
    let customer = json_of(
        app.as_key(Method::POST, "/api/v1/customers", &tenant.key).json(&json!({"name": name})).send().await.unwrap(),
        201,
    )
    .await;
    customer["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_tenant_starts_with_the_defaults_and_every_signal_listed() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let got = json_of(app.as_key(Method::GET, SETTINGS, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(
        got,
        json!({
            "auto_match_threshold": 0.9, "suggest_threshold": 0.4, "amount_tolerance": 0,
            "amount_tolerance_permille": 0, "date_window_days": 60, "banking_delay_days": 3,
            "signals": {"reference": true, "rf_reference": true, "bank_account": true, "name": true,
                        "amount": true, "currency": true, "date": true, "stripe_trace": true},
            "updated_at": null
        })
    );
}

#[tokio::test]
async fn a_patch_changes_only_the_fields_it_sends_and_is_what_the_engine_loads() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let first = json_of(
        patch_settings(&app, &tenant, json!({"auto_match_threshold": 0.95, "signals": {"name": false}})).await,
        200,
    )
    .await;
    assert_eq!(first["auto_match_threshold"], 0.95);
    assert_eq!(first["suggest_threshold"], 0.4);
    assert_eq!(first["signals"]["name"], false);
    assert_eq!(first["signals"]["reference"], true);
    assert_eq!(first["signals"].as_object().unwrap().len(), 8);
    assert!(first["updated_at"].is_string(), "{first}");

    // A second patch keeps the first one's changes, signals included.
    let second = json_of(
        patch_settings(
            &app,
            &tenant,
            json!({"suggest_threshold": 0.5, "amount_tolerance": 150, "amount_tolerance_permille": 5,
                   "date_window_days": 90, "banking_delay_days": 0, "signals": {"stripe_trace": false}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(second["auto_match_threshold"], 0.95);
    assert_eq!(second["suggest_threshold"], 0.5);
    assert_eq!(second["amount_tolerance"], 150);
    assert_eq!(second["amount_tolerance_permille"], 5);
    assert_eq!(second["date_window_days"], 90);
    assert_eq!(second["banking_delay_days"], 0);
    assert_eq!(second["signals"]["name"], false);
    assert_eq!(second["signals"]["stripe_trace"], false);
    let got = json_of(app.as_key(Method::GET, SETTINGS, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(got, second);

    // Thresholds are stored to 4 decimal places; an empty patch changes nothing.
    let rounded = json_of(patch_settings(&app, &tenant, json!({"auto_match_threshold": 0.876_54})).await, 200).await;
    assert_eq!(rounded["auto_match_threshold"], 0.8765);
    let same = json_of(patch_settings(&app, &tenant, json!({})).await, 200).await;
    assert_eq!(same["auto_match_threshold"], 0.8765);

    // The engine reads the same values.
    let id = TenantId::parse(&tenant.id).unwrap();
    let mut tx = begin_tenant(&app.db, &id).await.unwrap();
    let loaded = settings::load(&mut tx, &id).await.unwrap();
    end_read(tx);
    assert_eq!(loaded.auto_match_threshold, 0.8765);
    assert_eq!(loaded.amount_tolerance, 150);
    assert!(!loaded.signals.name && loaded.signals.currency);

    // Another tenant still has the defaults.
    let other = app.tenant().await;
    let theirs = json_of(app.as_key(Method::GET, SETTINGS, &other.key).send().await.unwrap(), 200).await;
    assert_eq!(theirs["auto_match_threshold"], 0.9);
    assert_eq!(theirs["updated_at"], Value::Null);
}

#[tokio::test]
async fn each_invalid_setting_is_refused_naming_its_field_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    for (body, fields) in [
        (json!({"auto_match_threshold": 0.49}), vec!["auto_match_threshold"]),
        (json!({"auto_match_threshold": 1.5}), vec!["auto_match_threshold"]),
        (json!({"suggest_threshold": 1.2}), vec!["suggest_threshold"]),
        (json!({"suggest_threshold": 0.9}), vec!["suggest_threshold"]),
        (json!({"auto_match_threshold": 0.6, "suggest_threshold": 0.7}), vec!["suggest_threshold"]),
        (json!({"amount_tolerance": -1}), vec!["amount_tolerance"]),
        (json!({"amount_tolerance": 100_000_001}), vec!["amount_tolerance"]),
        (json!({"amount_tolerance_permille": 101}), vec!["amount_tolerance_permille"]),
        (json!({"date_window_days": 731}), vec!["date_window_days"]),
        (json!({"banking_delay_days": 31}), vec!["banking_delay_days"]),
        (json!({"signals": {"currency": false}}), vec!["signals.currency"]),
        (json!({"date_window_days": -1, "banking_delay_days": 99}), vec!["date_window_days", "banking_delay_days"]),
        (json!({"colour": "red"}), vec!["colour"]),
        (json!({"signals": {"vibes": true}}), vec!["signals.vibes"]),
        (json!({"date_window_days": "sixty"}), vec!["date_window_days"]),
    ] {
        let fields_got = refused_fields(patch_settings(&app, &tenant, body.clone()).await).await;
        assert_eq!(fields_got, fields, "{body}");
    }
    let body =
        problem(patch_settings(&app, &tenant, json!({"signals": {"currency": false}})).await, 422, "validation_failed")
            .await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("cannot be turned off"), "{body}");
    let got = json_of(app.as_key(Method::GET, SETTINGS, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(got["updated_at"], Value::Null, "refused patches wrote nothing: {got}");
}

#[tokio::test]
async fn rules_are_created_listed_in_order_updated_and_deleted() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let customer = create_customer(&app, &tenant, "Acme Widgets Ltd").await;

    let assign = create_rule(
        &app,
        &tenant,
        json!({"name": "Acme pays from its parent", "field": "counterparty_name", "operator": "contains",
               "pattern": "Acme Holdings", "action": "assign_customer", "customer_id": customer}),
    )
    .await;
    assert!(assign["id"].as_str().unwrap().starts_with("rrule_"), "{assign}");
    assert_eq!(assign["position"], 100, "default position");
    assert_eq!(assign["enabled"], true);
    assert_eq!(assign["customer_id"], customer.as_str());
    assert_eq!(assign["prefer"], Value::Null);
    assert_eq!(assign["amount_min"], Value::Null);
    let transfers = create_rule(
        &app,
        &tenant,
        json!({"name": "Our savings account", "position": 10, "field": "counterparty_account", "operator": "equals",
               "pattern": "GB33 BUKB 2020 1555 5555 55", "action": "exclude"}),
    )
    .await;
    let payouts = create_rule(
        &app,
        &tenant,
        json!({"name": "Stripe payouts", "pattern": "^stripe\\b", "operator": "regex", "amount_min": 1,
               "action": "prefer", "prefer": "stripe_payout"}),
    )
    .await;
    assert_eq!(payouts["field"], "any", "default field");
    assert_eq!(payouts["prefer"], "stripe_payout");

    // Evaluation order: position, then creation; paged with a cursor.
    let page =
        json_of(app.as_key(Method::GET, &format!("{RULES}?limit=2"), &tenant.key).send().await.unwrap(), 200).await;
    let ids: Vec<&Value> = page["data"].as_array().unwrap().iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&transfers["id"], &assign["id"]]);
    assert_eq!(page["has_more"], true);
    let next = format!("{RULES}?limit=2&cursor={}", page["next_cursor"].as_str().unwrap());
    let rest = json_of(app.as_key(Method::GET, &next, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["id"], payouts["id"]);
    assert_eq!(rest["has_more"], false);
    assert_eq!(rest["next_cursor"], Value::Null);
    problem(
        app.as_key(Method::GET, &format!("{RULES}?cursor=bogus"), &tenant.key).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;

    let path = format!("{RULES}/{}", assign["id"].as_str().unwrap());
    let got = json_of(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(got, assign);

    // PATCH changes what is sent; null clears what may be cleared; the result is checked whole.
    let patched = json_of(
        app.as_key(Method::PATCH, &path, &tenant.key)
            .json(&json!({"enabled": false, "position": 1, "amount_max": 50000}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["position"], 1);
    assert_eq!(patched["amount_max"], 50000);
    assert_eq!(patched["pattern"], "Acme Holdings");
    let to_exclude = json_of(
        app.as_key(Method::PATCH, &path, &tenant.key)
            .json(&json!({"action": "exclude", "customer_id": null, "amount_max": null}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(to_exclude["action"], "exclude");
    assert_eq!(to_exclude["customer_id"], Value::Null);
    assert_eq!(to_exclude["amount_max"], Value::Null);
    let half_done =
        app.as_key(Method::PATCH, &path, &tenant.key).json(&json!({"action": "prefer"})).send().await.unwrap();
    assert_eq!(refused_fields(half_done).await, ["prefer"]);
    let inverted = app
        .as_key(Method::PATCH, &path, &tenant.key)
        .json(&json!({"amount_min": 10, "amount_max": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused_fields(inverted).await, ["amount_max"]);
    let unknown = app.as_key(Method::PATCH, &path, &tenant.key).json(&json!({"colour": "red"})).send().await.unwrap();
    assert_eq!(refused_fields(unknown).await, ["colour"]);
    let unchanged = json_of(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(unchanged, to_exclude, "refused patches changed nothing");

    // What the engine reads: every rule; compiled, the enabled ones in order.
    let id = TenantId::parse(&tenant.id).unwrap();
    let mut tx = begin_tenant(&app.db, &id).await.unwrap();
    let all = rules::list_all(&mut tx, &id).await.unwrap();
    end_read(tx);
    assert_eq!(all.len(), 3);
    let compiled = CompiledRules::compile(all);
    assert_eq!(compiled.len(), 2, "the disabled rule is left out");
    let transfer =
        RuleSubject { counterparty_account: Some("GB33BUKB20201555555555"), amount: 1000, ..Default::default() };
    assert_eq!(compiled.first_match(&transfer).unwrap().id, transfers["id"].as_str().unwrap());
    let payout = RuleSubject { description: Some("STRIPE PAYOUT po_123"), amount: 5000, ..Default::default() };
    assert_eq!(compiled.first_match(&payout).unwrap().id, payouts["id"].as_str().unwrap());
    assert!(compiled.first_match(&RuleSubject { description: Some("rent"), ..Default::default() }).is_none());

    // DELETE answers with the rule; it is gone afterwards.
    let deleted = json_of(app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(deleted["id"], assign["id"]);
    problem(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 404, "not_found").await;
    problem(app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap(), 404, "not_found").await;
    for malformed in ["rrule_nope", "cus_0192f3c4d5e6478fa1b2c3d4e5f60718", "%20"] {
        let response = app.as_key(Method::GET, &format!("{RULES}/{malformed}"), &tenant.key).send().await.unwrap();
        problem(response, 404, "not_found").await;
    }
}

#[tokio::test]
async fn invalid_rules_are_refused_naming_each_field() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let other = app.tenant().await;
    let theirs = create_customer(&app, &other, "Globex").await;
    let refused = |body: Value| {
        let request = app.as_key(Method::POST, RULES, &tenant.key).json(&body);
        async move { refused_fields(request.send().await.unwrap()).await }
    };

    // An invalid regex is named on `pattern`, with the reason.
    let response = app
        .as_key(Method::POST, RULES, &tenant.key)
        .json(&json!({"name": "bad", "operator": "regex", "pattern": "(inv", "action": "exclude"}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(
        body["errors"],
        json!([{"field": "pattern", "message": "is not a valid regular expression: unclosed group"}])
    );
    assert_eq!(
        refused(json!({"name": "huge", "operator": "regex", "pattern": "\\w{200}\\w{200}", "action": "exclude"})).await,
        ["pattern"]
    );
    assert_eq!(refused(json!({"name": "long", "pattern": "a".repeat(501), "action": "exclude"})).await, ["pattern"]);

    // Another tenant's customer is not one of ours.
    assert_eq!(
        refused(json!({"name": "x", "pattern": "globex", "action": "assign_customer", "customer_id": theirs})).await,
        ["customer_id"]
    );
    assert_eq!(refused(json!({"name": "x", "pattern": "globex", "action": "assign_customer"})).await, ["customer_id"]);
    assert_eq!(
        refused(json!({"name": "x", "pattern": "x", "action": "exclude", "prefer": "invoice"})).await,
        ["prefer"]
    );
    assert_eq!(refused(json!({"name": "x", "pattern": "x", "action": "prefer"})).await, ["prefer"]);
    assert_eq!(
        refused(
            json!({"name": " ", "position": -1, "pattern": " ", "action": "exclude", "amount_min": 2, "amount_max": 1})
        )
        .await,
        ["name", "position", "pattern", "amount_max"]
    );
    assert_eq!(refused(json!({"name": "x", "pattern": "x", "action": "delete"})).await, ["action"]);
    assert_eq!(refused(json!({"name": "x", "pattern": "x", "field": "iban", "action": "exclude"})).await, ["field"]);
    assert_eq!(refused(json!({"name": "x", "pattern": "x"})).await, ["action"]);
    assert_eq!(refused(json!({"name": "x", "pattern": "x", "action": "exclude", "colour": 1})).await, ["colour"]);

    let page = json_of(app.as_key(Method::GET, RULES, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(page["data"], json!([]), "nothing was created");
}

#[tokio::test]
async fn a_key_without_reconciliation_write_may_read_but_not_change() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let rule = create_rule(&app, &tenant, json!({"name": "x", "pattern": "loan", "action": "exclude"})).await;
    let path = format!("{RULES}/{}", rule["id"].as_str().unwrap());
    let reader = app.key(&tenant, &["reconciliation:read"]).await;
    for url in [SETTINGS, RULES, path.as_str()] {
        assert_eq!(app.as_key(Method::GET, url, &reader).send().await.unwrap().status(), 200, "{url}");
    }
    for (method, url, body) in [
        (Method::PATCH, SETTINGS, json!({"date_window_days": 30})),
        (Method::POST, RULES, json!({"name": "y", "pattern": "y", "action": "exclude"})),
        (Method::PATCH, path.as_str(), json!({"enabled": false})),
        (Method::DELETE, path.as_str(), json!({})),
    ] {
        let response = app.as_key(method.clone(), url, &reader).json(&body).send().await.unwrap();
        let body = problem(response, 403, "insufficient_scope").await;
        assert_eq!(body["required_scope"], "reconciliation:write", "{method} {url}");
    }
    let invoices_only = app.key(&tenant, &["invoices:write"]).await;
    let response = app.as_key(Method::GET, SETTINGS, &invoices_only).send().await.unwrap();
    assert_eq!(problem(response, 403, "insufficient_scope").await["required_scope"], "reconciliation:read");
}

#[tokio::test]
async fn another_tenants_rule_is_a_404_and_an_audited_probe() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let rule = create_rule(&app, &a, json!({"name": "x", "pattern": "loan", "action": "exclude"})).await;
    let path = format!("{RULES}/{}", rule["id"].as_str().unwrap());
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let response = app.as_key(method.clone(), &path, &b.key).json(&json!({"enabled": false})).send().await.unwrap();
        let body = problem(response, 404, "not_found").await;
        assert_eq!(body["detail"], "no such resource", "{method}");
    }
    let page = json_of(app.as_key(Method::GET, RULES, &b.key).send().await.unwrap(), 200).await;
    assert_eq!(page["data"], json!([]));
    let still = json_of(app.as_key(Method::GET, &path, &a.key).send().await.unwrap(), 200).await;
    assert_eq!(still, rule);
    let incidents = json_of(
        app.as_key(Method::GET, "/api/v1/audit_logs?outcome=security_incident", &b.key).send().await.unwrap(),
        200,
    )
    .await;
    let incidents = incidents["data"].as_array().unwrap();
    assert_eq!(incidents.len(), 3, "{incidents:?}");
    assert!(incidents.iter().all(|i| i["resource_type"] == "reconciliation_rule"), "{incidents:?}");
}

#[tokio::test]
async fn writes_are_audited_with_their_resource() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    json_of(patch_settings(&app, &tenant, json!({"banking_delay_days": 5})).await, 200).await;
    let rule = create_rule(&app, &tenant, json!({"name": "x", "pattern": "loan", "action": "exclude"})).await;
    let log =
        json_of(app.as_key(Method::GET, "/api/v1/audit_logs?limit=100", &tenant.key).send().await.unwrap(), 200).await;
    let entries = log["data"].as_array().unwrap();
    let find = |action: &str| {
        entries.iter().find(|e| e["action"] == action).unwrap_or_else(|| panic!("{action}: {entries:?}"))
    };
    let settings = find("PATCH /api/v1/reconciliation/settings");
    assert_eq!(settings["resource_type"], "reconciliation_settings");
    assert_eq!(settings["resource_id"], tenant.id.as_str());
    let created = find("POST /api/v1/reconciliation/rules");
    assert_eq!(created["resource_type"], "reconciliation_rule");
    assert_eq!(created["resource_id"], rule["id"]);
}

#[tokio::test]
async fn deleting_a_customer_deletes_the_rules_that_assign_it() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let customer = create_customer(&app, &tenant, "Initech").await;
    let rule = create_rule(
        &app,
        &tenant,
        json!({"name": "x", "pattern": "initech", "action": "assign_customer", "customer_id": customer}),
    )
    .await;
    let deleted =
        app.as_key(Method::DELETE, &format!("/api/v1/customers/{customer}"), &tenant.key).send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let path = format!("{RULES}/{}", rule["id"].as_str().unwrap());
    problem(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 404, "not_found").await;
}
