//! Categorisation rules: CRUD and validation over HTTP, categorisation of synced transactions as
//! they arrive (with the category in their `transaction.created` event), and the apply job
//! (progress, a user's category left alone, idempotence, resuming after a worker died part-way).

use std::collections::HashMap;

use payymo::{
    db::tenant::{begin_tenant, end_read},
    domain::ids::{CategorizationRuleRunId, TenantId},
    transactions::{
        rule_runs::{self, Step},
        rules::{self, RuleSet},
    },
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    TestApp,
    bank::{connect, drain},
    json_of, problem,
    tenants::TestTenant,
};

async fn create_rule(app: &TestApp, tenant: &TestTenant, body: Value) -> Value {
    json_of(
        app.as_key(Method::POST, "/api/v1/categorization_rules", &tenant.key).json(&body).send().await.unwrap(),
        201,
    )
    .await
}

/// The 422 for `body` on create, as (field, message) pairs.
async fn refused(app: &TestApp, tenant: &TestTenant, body: Value) -> Vec<(String, String)> {
    let response = app.as_key(Method::POST, "/api/v1/categorization_rules", &tenant.key).json(&body).send().await;
    let problem = problem(response.unwrap(), 422, "validation_failed").await;
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap().to_owned(), e["message"].as_str().unwrap().to_owned()))
        .collect()
}

async fn all_transactions(app: &TestApp, tenant: &TestTenant) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/transactions?limit=100".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = json_of(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 200).await;
        rows.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return rows,
        }
    }
}

/// `transaction.updated` events per transaction id.
async fn updated_events(app: &TestApp, tenant: &TestTenant) -> HashMap<String, Vec<Value>> {
    let rows: Vec<(Value,)> = sqlx::query_as(
        "select data from events where tenant_id = $1 and event_type = 'transaction.updated' order by id",
    )
    .bind(&tenant.id)
    .fetch_all(&app.superuser_pool().await)
    .await
    .unwrap();
    let mut by_id: HashMap<String, Vec<Value>> = HashMap::new();
    for (data,) in rows {
        by_id.entry(data["id"].as_str().unwrap().to_owned()).or_default().push(data);
    }
    by_id
}

async fn apply(app: &TestApp, tenant: &TestTenant, body: Option<Value>) -> Value {
    let mut request = app.as_key(Method::POST, "/api/v1/categorization_rules/apply", &tenant.key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let run = json_of(request.send().await.unwrap(), 202).await;
    assert_eq!(run["status"], "queued", "{run}");
    assert!(run["id"].as_str().unwrap().starts_with("crr_"));
    run
}

async fn get_run(app: &TestApp, tenant: &TestTenant, id: &str) -> Value {
    let path = format!("/api/v1/categorization_rules/runs/{id}");
    json_of(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 200).await
}

#[tokio::test]
async fn rules_are_created_listed_updated_and_deleted() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;

    let fees = create_rule(
        &app,
        &tenant,
        json!({"name": "Card fees", "counterparty_contains": "Stripe", "description_regex": "^fee\\b",
               "amount_max": -1, "direction": "debit", "category": "bank_fees"}),
    )
    .await;
    assert!(fees["id"].as_str().unwrap().starts_with("cr_"), "{fees}");
    assert_eq!(fees["priority"], 100, "default priority");
    assert_eq!(fees["enabled"], true);
    assert_eq!(fees["amount_max"], -1);
    assert_eq!(fees["description_contains"], Value::Null);
    let first =
        create_rule(&app, &tenant, json!({"name": "Big", "priority": 5, "amount_min": 100000, "category": "large"}))
            .await;
    let third =
        create_rule(&app, &tenant, json!({"name": "Also 100", "direction": "credit", "category": "income"})).await;

    // Evaluation order: priority, then creation; paged with a cursor.
    let page = json_of(
        app.as_key(Method::GET, "/api/v1/categorization_rules?limit=2", &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    let ids: Vec<&Value> = page["data"].as_array().unwrap().iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&first["id"], &fees["id"]]);
    assert_eq!(page["has_more"], true);
    let next = format!("/api/v1/categorization_rules?limit=2&cursor={}", page["next_cursor"].as_str().unwrap());
    let rest = json_of(app.as_key(Method::GET, &next, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["id"], third["id"]);
    assert_eq!(rest["has_more"], false);
    problem(
        app.as_key(Method::GET, "/api/v1/categorization_rules?cursor=bogus", &tenant.key).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;

    let path = format!("/api/v1/categorization_rules/{}", fees["id"].as_str().unwrap());
    let got = json_of(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(got, fees);

    // PATCH changes what is sent; null clears a condition.
    let patched = json_of(
        app.as_key(Method::PATCH, &path, &tenant.key)
            .json(&json!({"description_regex": null, "enabled": false, "priority": 1, "amount_min": -5000}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(patched["description_regex"], Value::Null);
    assert_eq!(patched["counterparty_contains"], "Stripe");
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["priority"], 1);
    assert_eq!(patched["amount_min"], -5000);
    assert_eq!(patched["category"], "bank_fees");
    // ...and the result must still be a valid rule.
    let emptied = app
        .as_key(Method::PATCH, &path, &tenant.key)
        .json(&json!({"counterparty_contains": null, "amount_min": null, "amount_max": null, "direction": null}))
        .send()
        .await
        .unwrap();
    let body = problem(emptied, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "conditions", "{body}");
    let inverted = app.as_key(Method::PATCH, &path, &tenant.key).json(&json!({"amount_min": 0})).send().await.unwrap();
    let body = problem(inverted, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "amount_max", "{body}");
    let nulled = app.as_key(Method::PATCH, &path, &tenant.key).json(&json!({"category": null})).send().await.unwrap();
    let body = problem(nulled, 422, "validation_failed").await;
    assert_eq!(body["errors"][0], json!({"field": "category", "message": "cannot be null"}));
    let unknown = app.as_key(Method::PATCH, &path, &tenant.key).json(&json!({"colour": "red"})).send().await.unwrap();
    problem(unknown, 422, "validation_failed").await;
    let unchanged = json_of(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(unchanged, patched, "refused patches changed nothing");

    // DELETE answers with the rule; it is gone afterwards.
    let deleted = json_of(app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(deleted["id"], fees["id"]);
    problem(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 404, "not_found").await;
    problem(app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap(), 404, "not_found").await;
    problem(
        app.as_key(Method::GET, "/api/v1/categorization_rules/cr_nope", &tenant.key).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    // A read-only credential may list but not write.
    let reader = app.key(&tenant, &["transactions:read"]).await;
    assert_eq!(app.as_key(Method::GET, "/api/v1/categorization_rules", &reader).send().await.unwrap().status(), 200);
    let write = app
        .as_key(Method::POST, "/api/v1/categorization_rules", &reader)
        .json(&json!({"name": "x", "direction": "debit", "category": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(write, 403, "insufficient_scope").await["required_scope"], "transactions:write");
}

#[tokio::test]
async fn invalid_rules_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let base = |extra: Value| {
        let mut body = json!({"name": "r", "category": "c"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };

    let errors = refused(&app, &tenant, base(json!({"description_regex": "(unclosed"}))).await;
    assert_eq!(errors, [("description_regex".into(), "is not a valid regular expression: unclosed group".into())]);
    let errors = refused(&app, &tenant, base(json!({"counterparty_regex": "a".repeat(501)}))).await;
    assert_eq!(errors, [("counterparty_regex".into(), "must be at most 500 characters".into())]);
    let errors = refused(&app, &tenant, base(json!({"description_regex": "\\w{200}\\w{200}"}))).await;
    assert_eq!(errors[0].0, "description_regex");
    assert!(errors[0].1.starts_with("compiles to more than 256 KiB"), "{errors:?}");
    let errors = refused(&app, &tenant, base(json!({}))).await;
    assert_eq!(errors[0].0, "conditions");
    assert!(errors[0].1.starts_with("a rule needs at least one condition"), "{errors:?}");
    let errors = refused(&app, &tenant, base(json!({"direction": "outgoing"}))).await;
    assert_eq!(errors, [("direction".into(), "must be credit or debit (or null)".into())]);
    let errors = refused(&app, &tenant, base(json!({"amount_min": 500, "amount_max": 100}))).await;
    assert_eq!(errors, [("amount_max".into(), "must be greater than or equal to amount_min".into())]);
    let errors = refused(&app, &tenant, base(json!({"account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718"}))).await;
    assert_eq!(errors, [("account_id".into(), "is not one of this tenant's accounts".into())]);
    let errors =
        refused(&app, &tenant, json!({"name": "", "category": "", "priority": -1, "direction": "debit"})).await;
    let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["name", "priority", "category"]);
    let errors = refused(&app, &tenant, json!({"name": "r", "direction": "debit"})).await;
    assert_eq!(errors, [("category".into(), "is required".into())]);
    let errors = refused(&app, &tenant, base(json!({"amount_min": 1.5}))).await;
    assert_eq!(errors[0].0, "amount_min");
    let count: i64 = sqlx::query_scalar("select count(*) from categorization_rules")
        .fetch_one(&app.superuser_pool().await)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing written");
}

#[tokio::test]
async fn a_tenant_has_at_most_500_rules() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    sqlx::query(
        "insert into categorization_rules (tenant_id, id, name, priority, direction, category)
         select $1, 'cr_' || lpad(to_hex(n), 32, '0'), 'rule ' || n, n, 'debit', 'c' from generate_series(1, 499) n",
    )
    .bind(&tenant.id)
    .execute(&app.superuser_pool().await)
    .await
    .unwrap();
    let last = create_rule(&app, &tenant, json!({"name": "500th", "direction": "credit", "category": "c"})).await;
    let over = app
        .as_key(Method::POST, "/api/v1/categorization_rules", &tenant.key)
        .json(&json!({"name": "501st", "direction": "credit", "category": "c"}))
        .send()
        .await
        .unwrap();
    let body = problem(over, 409, "conflict").await;
    assert!(body["detail"].as_str().unwrap().contains("at most 500"), "{body}");
    // Deleting one makes room again; another tenant is not affected.
    let path = format!("/api/v1/categorization_rules/{}", last["id"].as_str().unwrap());
    json_of(app.as_key(Method::DELETE, &path, &tenant.key).send().await.unwrap(), 200).await;
    create_rule(&app, &tenant, json!({"name": "500th again", "direction": "credit", "category": "c"})).await;
    let other = app.tenant().await;
    create_rule(&app, &other, json!({"name": "first", "direction": "credit", "category": "c"})).await;
}

#[tokio::test]
async fn another_tenants_rule_and_run_are_404() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let rule = create_rule(&app, &a, json!({"name": "r", "direction": "debit", "category": "c"})).await;
    let run = apply(&app, &a, None).await;
    let rule_path = format!("/api/v1/categorization_rules/{}", rule["id"].as_str().unwrap());
    let run_path = format!("/api/v1/categorization_rules/runs/{}", run["id"].as_str().unwrap());

    for (method, path) in
        [(Method::GET, &rule_path), (Method::PATCH, &rule_path), (Method::DELETE, &rule_path), (Method::GET, &run_path)]
    {
        let response = app.as_key(method.clone(), path, &b.key).json(&json!({"category": "stolen"})).send().await;
        let body = problem(response.unwrap(), 404, "not_found").await;
        assert_eq!(body["detail"], "no such resource", "{method} {path}");
    }
    let listed =
        json_of(app.as_key(Method::GET, "/api/v1/categorization_rules", &b.key).send().await.unwrap(), 200).await;
    assert_eq!(listed["data"], json!([]));
    assert_eq!(json_of(app.as_key(Method::GET, &rule_path, &a.key).send().await.unwrap(), 200).await, rule);
    // B cannot scope a run to A's account either.
    let connection = connect(&app, &a).await;
    let account = connection["accounts"][0]["id"].as_str().unwrap();
    let response = app
        .as_key(Method::POST, "/api/v1/categorization_rules/apply", &b.key)
        .json(&json!({"account_id": account}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "account_id");
}

#[tokio::test]
async fn synced_transactions_are_categorised_on_arrival() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let connection = connect(&app, &tenant).await;
    drain(&app).await;
    let history = all_transactions(&app, &tenant).await;
    assert!(history.iter().all(|t| t["category"].is_null()), "no rules yet, no categories");

    let consulting = create_rule(
        &app,
        &tenant,
        json!({"name": "Consulting", "priority": 10, "counterparty_contains": "categorise-me",
               "description_regex": "^INV-\\d+", "direction": "credit", "category": "consulting"}),
    )
    .await;
    // Matches too, but runs later.
    create_rule(
        &app,
        &tenant,
        json!({"name": "Later", "priority": 50, "counterparty_contains": "categorise", "category": "other"}),
    )
    .await;
    // Would win, but is disabled.
    create_rule(
        &app,
        &tenant,
        json!({"name": "Off", "priority": 0, "enabled": false, "counterparty_contains": "categorise", "category": "off"}),
    )
    .await;
    let account = connection["accounts"][0]["id"].as_str().unwrap();
    create_rule(
        &app,
        &tenant,
        json!({"name": "Fees", "account_id": account, "amount_min": -1000, "amount_max": -1, "category": "fees"}),
    )
    .await;

    let provider_id: String = sqlx::query_scalar("select provider_account_id from bank_accounts where id = $1")
        .bind(account)
        .fetch_one(&app.superuser_pool().await)
        .await
        .unwrap();
    let day = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    let sandbox = app.state.sandbox_url.trim_end_matches("/api/v2").to_owned();
    let added = crate::support::client()
        .post(format!("{sandbox}/_sandbox/accounts/{provider_id}/transactions"))
        .json(&json!({"transactions": [
            {"booking_date": day, "amount": "1250.00", "counterparty": "Categorise-Me Ltd",
             "remittance": "inv-2026-7 thanks", "transaction_id": "rule-test-1"},
            {"booking_date": day, "amount": "-4.20", "counterparty": "Bank", "remittance": "Monthly fee",
             "transaction_id": "rule-test-2"},
            {"booking_date": day, "amount": "-99999.00", "counterparty": "Landlord", "remittance": "Rent",
             "transaction_id": "rule-test-3"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let id = connection["id"].as_str().unwrap();
    let refreshed =
        app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap();
    assert_eq!(refreshed.status(), 202);
    drain(&app).await;

    let now = all_transactions(&app, &tenant).await;
    assert_eq!(now.len(), history.len() + 3);
    let by_counterparty = |name: &str| now.iter().find(|t| t["counterparty_name"] == name).unwrap().clone();
    let invoice = by_counterparty("Categorise-Me Ltd");
    assert_eq!((&invoice["category"], &invoice["category_source"]), (&json!("consulting"), &json!("rule")));
    let fee = by_counterparty("Bank");
    assert_eq!((&fee["category"], &fee["category_source"]), (&json!("fees"), &json!("rule")));
    let rent = by_counterparty("Landlord");
    assert_eq!((&rent["category"], &rent["category_source"]), (&Value::Null, &Value::Null), "below amount_min");
    let rule_id: Option<String> = sqlx::query_scalar("select category_rule_id from transactions where id = $1")
        .bind(invoice["id"].as_str().unwrap())
        .fetch_one(&app.superuser_pool().await)
        .await
        .unwrap();
    assert_eq!(rule_id.as_deref(), consulting["id"].as_str());
    // Rows already stored were not touched by the new rules.
    let old_categorised = now.iter().filter(|t| !t["category"].is_null()).count();
    assert_eq!(old_categorised, 2, "only the new rows");

    // Their transaction.created events carry the stored row, category included.
    for transaction in [&invoice, &fee, &rent] {
        let events: Vec<(Value,)> = sqlx::query_as(
            "select data from events where tenant_id = $1 and event_type = 'transaction.created' and data->>'id' = $2",
        )
        .bind(&tenant.id)
        .bind(transaction["id"].as_str().unwrap())
        .fetch_all(&app.superuser_pool().await)
        .await
        .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(&events[0].0, transaction, "the event is the row as stored");
    }
}

#[tokio::test]
async fn applying_rules_recategorises_existing_transactions_but_never_a_users_choice() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let connection = connect(&app, &tenant).await;
    drain(&app).await;
    let before = all_transactions(&app, &tenant).await;
    let credits: Vec<&Value> = before.iter().filter(|t| t["direction"] == "credit").collect();
    let debits: Vec<&Value> = before.iter().filter(|t| t["direction"] == "debit").collect();
    assert!(credits.len() >= 2 && !debits.is_empty(), "the sandbox history has both directions");

    // A user categorised one credit by hand (PATCH is built elsewhere: set it directly).
    let chosen = credits[0]["id"].as_str().unwrap().to_owned();
    sqlx::query("update transactions set category = 'my own', category_source = 'user' where id = $1")
        .bind(&chosen)
        .execute(&app.superuser_pool().await)
        .await
        .unwrap();
    let rule = create_rule(&app, &tenant, json!({"name": "Income", "direction": "credit", "category": "income"})).await;

    let run = apply(&app, &tenant, None).await;
    let id = run["id"].as_str().unwrap();
    assert_eq!(get_run(&app, &tenant, id).await["status"], "queued");
    drain(&app).await;
    let done = get_run(&app, &tenant, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["total"], before.len());
    assert_eq!(done["processed"], before.len());
    assert_eq!(done["changed"], credits.len() - 1);
    assert!(done["finished_at"].is_string() && done["started_at"].is_string());

    let after = all_transactions(&app, &tenant).await;
    for t in &after {
        let expected = if t["id"] == chosen.as_str() {
            (json!("my own"), json!("user"))
        } else if t["direction"] == "credit" {
            (json!("income"), json!("rule"))
        } else {
            (Value::Null, Value::Null)
        };
        assert_eq!((t["category"].clone(), t["category_source"].clone()), expected, "{t}");
    }
    let events = updated_events(&app, &tenant).await;
    assert_eq!(events.len(), credits.len() - 1, "one event per changed row");
    for (txn, list) in &events {
        assert_eq!(list.len(), 1, "{txn}");
        assert_eq!(list[0]["category"], "income");
        assert_eq!(list[0]["previous_attributes"], json!({"category": null, "category_source": null}));
    }

    // Running again changes nothing and announces nothing.
    let again = apply(&app, &tenant, Some(json!({}))).await;
    drain(&app).await;
    let again = get_run(&app, &tenant, again["id"].as_str().unwrap()).await;
    assert_eq!((again["status"].clone(), again["changed"].clone()), (json!("succeeded"), json!(0)));
    assert_eq!(again["processed"], before.len());
    assert_eq!(updated_events(&app, &tenant).await, events);

    // The rule now says debits: credits lose the rule's category, debits gain it; one account only.
    let rule_path = format!("/api/v1/categorization_rules/{}", rule["id"].as_str().unwrap());
    json_of(
        app.as_key(Method::PATCH, &rule_path, &tenant.key).json(&json!({"direction": "debit"})).send().await.unwrap(),
        200,
    )
    .await;
    let account = connection["accounts"][0]["id"].as_str().unwrap();
    let in_account = |t: &&Value| t["account_id"] == account;
    let scoped = apply(&app, &tenant, Some(json!({"account_id": account}))).await;
    assert_eq!(scoped["account_id"], account);
    drain(&app).await;
    let scoped = get_run(&app, &tenant, scoped["id"].as_str().unwrap()).await;
    assert_eq!(scoped["processed"], before.iter().filter(in_account).count());
    let expected_changes = before.iter().filter(in_account).filter(|t| t["id"] != chosen.as_str()).count();
    assert_eq!(scoped["changed"], expected_changes);
    for t in all_transactions(&app, &tenant).await {
        let expected = if t["id"] == chosen.as_str() {
            json!("my own")
        } else if t["account_id"] == account {
            if t["direction"] == "debit" { json!("income") } else { Value::Null }
        } else if t["direction"] == "credit" {
            json!("income")
        } else {
            Value::Null
        };
        assert_eq!(t["category"], expected, "{t}");
    }
    let events = updated_events(&app, &tenant).await;
    let cleared = events.values().flatten().filter(|e| e["category"].is_null()).collect::<Vec<_>>();
    assert!(!cleared.is_empty());
    for e in cleared {
        assert_eq!(e["previous_attributes"], json!({"category": "income", "category_source": "rule"}));
        assert_eq!(e["category_source"], Value::Null);
    }
    let bad = app
        .as_key(Method::POST, "/api/v1/categorization_rules/apply", &tenant.key)
        .json(&json!({"account_id": "nope"}))
        .send()
        .await
        .unwrap();
    problem(bad, 422, "validation_failed").await;
}

#[tokio::test]
async fn a_run_stopped_part_way_resumes_from_its_last_batch() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    connect(&app, &tenant).await;
    drain(&app).await;
    let before = all_transactions(&app, &tenant).await;
    assert!(before.len() > 25, "{}", before.len());
    create_rule(&app, &tenant, json!({"name": "Everything", "amount_min": -100000000000_i64, "category": "all"})).await;
    let run = apply(&app, &tenant, None).await;
    let run_id = CategorizationRuleRunId::parse(run["id"].as_str().unwrap()).unwrap();
    let tenant_id = TenantId::parse(&tenant.id).unwrap();

    // A worker commits one batch of 10, then dies (its job is still queued for another attempt).
    let mut tx = begin_tenant(&app.db, &tenant_id).await.unwrap();
    let rules = RuleSet::load(&mut tx, &tenant_id).await.unwrap();
    end_read(tx);
    assert_eq!(rule_runs::step(&app.db, &tenant_id, &run_id, &rules, 10).await.unwrap(), Step::More);
    let partway = get_run(&app, &tenant, run_id.as_str()).await;
    assert_eq!(partway["status"], "running");
    assert_eq!(partway["total"], before.len());
    assert_eq!(partway["processed"], 10);
    assert_eq!(partway["changed"], 10);

    drain(&app).await;
    let done = get_run(&app, &tenant, run_id.as_str()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["processed"], before.len());
    assert_eq!(done["changed"], before.len());
    let events = updated_events(&app, &tenant).await;
    assert_eq!(events.len(), before.len());
    assert!(events.values().all(|list| list.len() == 1), "no row announced twice");
    assert!(all_transactions(&app, &tenant).await.iter().all(|t| t["category"] == "all"));
    // A finished run stays finished however often its job runs.
    assert_eq!(rule_runs::step(&app.db, &tenant_id, &run_id, &rules, 10).await.unwrap(), Step::Done);
    assert_eq!(get_run(&app, &tenant, run_id.as_str()).await, done);
}

#[tokio::test]
async fn categorize_sets_rows_without_a_category_and_nothing_else() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    connect(&app, &tenant).await;
    drain(&app).await;
    let rows = all_transactions(&app, &tenant).await;
    let ids: Vec<String> = rows.iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    let debits: Vec<&str> =
        rows.iter().filter(|t| t["direction"] == "debit").map(|t| t["id"].as_str().unwrap()).collect();
    let superuser = app.superuser_pool().await;
    sqlx::query("update transactions set category = 'mine', category_source = 'user' where id = $1")
        .bind(debits[0])
        .execute(&superuser)
        .await
        .unwrap();
    let rule = create_rule(&app, &tenant, json!({"name": "Spend", "direction": "debit", "category": "spend"})).await;

    // As an importer would: in its own tenant-bound transaction, for the rows it wrote.
    let tenant_id = TenantId::parse(&tenant.id).unwrap();
    let mut tx = begin_tenant(&app.db, &tenant_id).await.unwrap();
    let mut set = rules::categorize(&mut tx, &tenant_id, &ids).await.unwrap();
    // Another tenant's ids are ignored.
    let other = app.tenant().await;
    let other_id = TenantId::parse(&other.id).unwrap();
    tx.commit().await.unwrap();
    let mut foreign = begin_tenant(&app.db, &other_id).await.unwrap();
    assert_eq!(rules::categorize(&mut foreign, &other_id, &ids).await.unwrap(), vec![]);
    foreign.commit().await.unwrap();

    set.sort_by(|a, b| a.transaction_id.cmp(&b.transaction_id));
    let mut expected: Vec<&str> = debits[1..].to_vec();
    expected.sort();
    assert_eq!(set.iter().map(|c| c.transaction_id.as_str()).collect::<Vec<_>>(), expected);
    assert!(set.iter().all(|c| c.category == "spend" && c.rule_id == rule["id"].as_str().unwrap()));
    for t in all_transactions(&app, &tenant).await {
        let expected = match t["id"].as_str().unwrap() {
            id if id == debits[0] => json!("mine"),
            _ if t["direction"] == "debit" => json!("spend"),
            _ => Value::Null,
        };
        assert_eq!(t["category"], expected, "{t}");
    }
    // Rows that have a category already are left alone: a second call sets nothing.
    let mut tx = begin_tenant(&app.db, &tenant_id).await.unwrap();
    assert_eq!(rules::categorize(&mut tx, &tenant_id, &ids).await.unwrap(), vec![]);
    tx.commit().await.unwrap();
}
