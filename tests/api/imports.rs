//! Manual accounts and transaction imports: JSON batches (idempotent, updates, per-row
//! rejections, whole-request refusals that write nothing) and CSV files through the import job
//! (progress, per-row results, every kind of bad file and bad row), with tenant isolation.

use std::fmt::Write;

use reqwest::{Method, multipart};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{TestApp, json_of, problem, tenants::TestTenant};

async fn manual_account(app: &TestApp, tenant: &TestTenant, currency: &str) -> String {
    let response = app
        .as_key(Method::POST, "/api/v1/accounts", &tenant.key)
        .json(&json!({"name": "Petty cash", "currency": currency}))
        .send()
        .await
        .unwrap();
    json_of(response, 201).await["id"].as_str().unwrap().to_owned()
}

async fn import_json(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.as_key(Method::POST, "/api/v1/transactions/import", key).json(body).send().await.unwrap()
}

async fn upload(app: &TestApp, key: &str, file: Vec<u8>, options: &Value) -> reqwest::Response {
    let form = multipart::Form::new()
        .part("options", multipart::Part::text(options.to_string()).mime_str("application/json").unwrap())
        .part("file", multipart::Part::bytes(file).file_name("statement.csv").mime_str("text/csv").unwrap());
    app.as_key(Method::POST, "/api/v1/transactions/import", key).multipart(form).send().await.unwrap()
}

fn basic_options(account: &str) -> Value {
    json!({"account_id": account, "columns": {"external_id": "id", "amount": "amount", "booking_date": "date",
        "description": "text"}})
}

/// Rows the tenant holds, and its events of a type (seen by a superuser, whatever the API says).
async fn counts(db: &PgPool, tenant: &TestTenant, event_type: &str) -> (i64, i64) {
    let transactions: i64 = sqlx::query_scalar("select count(*) from transactions where tenant_id = $1")
        .bind(&tenant.id)
        .fetch_one(db)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar("select count(*) from events where tenant_id = $1 and event_type = $2")
        .bind(&tenant.id)
        .bind(event_type)
        .fetch_one(db)
        .await
        .unwrap();
    (transactions, events)
}

async fn import_of(app: &TestApp, key: &str, id: &str) -> Value {
    json_of(app.as_key(Method::GET, &format!("/api/v1/transactions/imports/{id}"), key).send().await.unwrap(), 200)
        .await
}

/// Every row result of an import with `status`, following the cursor.
async fn row_results(app: &TestApp, key: &str, id: &str, status: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/transactions/imports/{id}/rows?status={status}&limit=100{cursor}");
        let page = json_of(app.as_key(Method::GET, &path, key).send().await.unwrap(), 200).await;
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return out,
        }
    }
}

#[tokio::test]
async fn manual_accounts_are_created_listed_and_read_beside_bank_feed_accounts() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let writer = app.key(&tenant, &["transactions:write"]).await;
    let created = json_of(
        app.as_key(Method::POST, "/api/v1/accounts", &writer)
            .json(&json!({"name": " Petty cash ", "currency": "gbp", "iban": "GB33 BUKB 2020 1555 5555 55"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(created["kind"], "manual");
    assert_eq!(created["name"], "Petty cash");
    assert_eq!(created["currency"], "GBP");
    assert_eq!(created["iban"], "GB33BUKB20201555555555");
    assert_eq!(created["bank_connection_id"], Value::Null);
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("ba_"));

    let refused = problem(
        app.as_key(Method::POST, "/api/v1/accounts", &writer)
            .json(&json!({"name": "", "currency": "EURO", "iban": "GB34BUKB20201555555555"}))
            .send()
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> =
        refused["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "currency", "iban"]);

    let connection = crate::support::bank::connect(&app, &tenant).await;
    let all = json_of(app.as_key(Method::GET, "/api/v1/accounts?limit=100", &writer).send().await.unwrap(), 200).await;
    let kinds: Vec<&str> = all["data"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"manual") && kinds.contains(&"bank_feed"), "{kinds:?}");
    let feed = all["data"].as_array().unwrap().iter().find(|a| a["kind"] == "bank_feed").unwrap();
    assert_eq!(feed["bank_connection_id"], connection["id"]);
    assert_eq!(connection["accounts"][0]["kind"], "bank_feed", "connections still embed their accounts");

    let manual =
        json_of(app.as_key(Method::GET, "/api/v1/accounts?kind=manual", &writer).send().await.unwrap(), 200).await;
    assert_eq!(manual["data"].as_array().unwrap().len(), 1);
    assert_eq!(manual["data"][0]["id"], id);
    let page = json_of(app.as_key(Method::GET, "/api/v1/accounts?limit=1", &writer).send().await.unwrap(), 200).await;
    assert_eq!(page["has_more"], true);
    let next = page["next_cursor"].as_str().unwrap();
    let rest = json_of(
        app.as_key(Method::GET, &format!("/api/v1/accounts?limit=100&cursor={next}"), &writer).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(rest["data"].as_array().unwrap().len() + 1, all["data"].as_array().unwrap().len());
    problem(
        app.as_key(Method::GET, "/api/v1/accounts?kind=cash", &writer).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;

    let got =
        json_of(app.as_key(Method::GET, &format!("/api/v1/accounts/{id}"), &writer).send().await.unwrap(), 200).await;
    assert_eq!(got, created);
}

#[tokio::test]
async fn a_json_batch_is_imported_once_and_updates_rows_whose_content_changed() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let key = app.key(&tenant, &["transactions:write"]).await;
    let account = manual_account(&app, &tenant, "EUR").await;
    // The tenant's categorisation rules apply to imported rows as they arrive.
    json_of(
        app.as_key(Method::POST, "/api/v1/categorization_rules", &key)
            .json(&json!({"name": "coffee", "description_contains": "coffee", "category": "pantry"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let mut body = json!({"account_id": account, "rows": [
        {"external_id": "r-1", "amount": "-12.50", "booking_date": "2026-11-20", "description": "Coffee beans",
         "counterparty_name": "Roastery Ltd", "reference": "INV-7"},
        {"external_id": "r-2", "amount": "1500", "currency": "EUR", "booking_date": "2026-11-21", "value_date": "2026-11-22"},
        {"external_id": "r-3", "amount": "0.05", "booking_date": "2026-11-22"},
    ]});
    let report = json_of(import_json(&app, &key, &body).await, 200).await;
    assert_eq!(
        (report["created"].as_u64(), report["unchanged"].as_u64(), report["rejected"].as_u64()),
        (Some(3), Some(0), Some(0))
    );
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.iter().map(|r| r["row"].as_i64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    let first_id = results[0]["transaction_id"].as_str().unwrap().to_owned();

    let first =
        json_of(app.as_key(Method::GET, &format!("/api/v1/transactions/{first_id}"), &key).send().await.unwrap(), 200)
            .await;
    assert_eq!(first["amount"], -1250);
    assert_eq!(first["currency"], "EUR");
    assert_eq!(first["status"], "booked");
    assert_eq!(first["source"], "import");
    assert_eq!(first["external_id"], "r-1");
    assert_eq!(first["account_id"], account.as_str());
    assert_eq!(first["bank_connection_id"], Value::Null);
    assert_eq!(first["reference"], "INV-7");
    assert_eq!(first["direction"], "debit");
    assert_eq!((first["category"].as_str(), first["category_source"].as_str()), (Some("pantry"), Some("rule")));
    let db = app.superuser_pool().await;
    let provider_key: String = sqlx::query_scalar("select provider_transaction_id from transactions where id = $1")
        .bind(&first_id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(provider_key, "import:r-1");

    // One transaction.created per row, carrying the stored row.
    let events = json_of(
        app.as_key(Method::GET, "/api/v1/events?type=transaction.created&limit=100", &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    let announced = events.iter().find(|e| e["data"]["id"] == first_id.as_str()).unwrap();
    assert_eq!(announced["data"], first);

    // The same batch again changes nothing.
    let again = json_of(import_json(&app, &key, &body).await, 200).await;
    assert_eq!((again["created"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(3)));
    assert_eq!(again["results"][0]["transaction_id"], first_id.as_str());
    assert_eq!(counts(&db, &tenant, "transaction.created").await, (3, 3));
    assert_eq!(counts(&db, &tenant, "transaction.updated").await.1, 0);

    // A known external id with other content updates the transaction.
    body["rows"][0]["amount"] = json!("-13.00");
    body["rows"][0]["description"] = json!("Coffee beans (corrected)");
    let changed = json_of(import_json(&app, &key, &body).await, 200).await;
    assert_eq!((changed["updated"].as_u64(), changed["unchanged"].as_u64()), (Some(1), Some(2)));
    assert_eq!(changed["results"][0]["status"], "updated");
    assert_eq!(changed["results"][0]["transaction_id"], first_id.as_str());
    let after =
        json_of(app.as_key(Method::GET, &format!("/api/v1/transactions/{first_id}"), &key).send().await.unwrap(), 200)
            .await;
    assert_eq!(after["amount"], -1300);
    let updated = json_of(
        app.as_key(Method::GET, "/api/v1/events?type=transaction.updated", &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    let data = &updated["data"][0]["data"];
    assert_eq!(data["id"], first_id.as_str());
    assert_eq!(data["amount"], -1300);
    assert_eq!(data["previous_attributes"], json!({"amount": -1250, "description": "Coffee beans"}));
    assert_eq!(counts(&db, &tenant, "transaction.updated").await, (3, 1));
}

#[tokio::test]
async fn bad_json_rows_are_rejected_with_reasons_and_never_spoil_the_good_ones() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let account = manual_account(&app, &tenant, "EUR").await;
    let body = json!({"account_id": account, "rows": [
        {"external_id": "ok-1", "amount": "1.00", "booking_date": "2026-01-01"},
        {"external_id": "float", "amount": 12.5, "booking_date": "2026-01-01"},
        {"external_id": "cents", "amount": "12.505", "booking_date": "2026-01-01"},
        {"external_id": "feb30", "amount": "1", "booking_date": "2026-02-30"},
        {"amount": "1", "booking_date": "2026-01-01"},
        {"external_id": "ok-1", "amount": "2.00", "booking_date": "2026-01-02"},
        {"external_id": "usd", "amount": "1", "currency": "USD", "booking_date": "2026-01-01"},
        {"external_id": "nodate", "amount": "1"},
        {"external_id": "ok-2", "amount": "-3", "booking_date": "2026-01-03"},
    ]});
    let report = json_of(import_json(&app, &tenant.key, &body).await, 200).await;
    assert_eq!((report["created"].as_u64(), report["rejected"].as_u64()), (Some(2), Some(7)));
    let reasons: Vec<(String, String)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "rejected")
        .map(|r| (r["row"].to_string(), r["error"].as_str().unwrap().to_owned()))
        .collect();
    let expect = [
        ("1", "amount: must be a decimal string"),
        ("2", "amount: \"12.505\" has more decimal places than EUR allows"),
        ("3", "booking_date: \"2026-02-30\" is not a date"),
        ("4", "external_id: is missing"),
        ("5", "external_id: \"ok-1\" is repeated (first on row 0)"),
        ("6", "currency: \"USD\" is not the account's currency (EUR)"),
        ("7", "booking_date: is missing"),
    ];
    assert_eq!(reasons.len(), expect.len());
    for ((row, reason), (want_row, want)) in reasons.iter().zip(expect) {
        assert_eq!(row, want_row);
        assert!(reason.starts_with(want), "row {row}: {reason}");
    }
    assert_eq!(report["results"][8]["status"], "created");
    assert_eq!(counts(&app.superuser_pool().await, &tenant, "transaction.created").await, (2, 2));
}

#[tokio::test]
async fn a_request_refused_as_a_whole_writes_nothing() {
    let app = TestApp::spawn().await;
    let (tenant, other) = (app.tenant().await, app.tenant().await);
    let account = manual_account(&app, &tenant, "EUR").await;
    let others = manual_account(&app, &other, "EUR").await;
    let row = json!({"external_id": "a", "amount": "1", "booking_date": "2026-01-01"});
    let connection = crate::support::bank::connect(&app, &tenant).await;
    let feed_account = connection["accounts"][0]["id"].as_str().unwrap();
    let db = app.superuser_pool().await;
    let before = counts(&db, &tenant, "transaction.created").await;

    let body =
        problem(import_json(&app, &tenant.key, &json!({"account_id": others, "rows": [row]})).await, 404, "not_found")
            .await;
    assert!(body["detail"].as_str().unwrap().contains("no such account"), "{body}");
    let unknown = payymo::domain::ids::BankAccountId::generate().to_string();
    problem(import_json(&app, &tenant.key, &json!({"account_id": unknown, "rows": [row]})).await, 404, "not_found")
        .await;
    let body = problem(
        import_json(&app, &tenant.key, &json!({"account_id": feed_account, "rows": [row]})).await,
        409,
        "conflict",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("bank-feed account"), "{body}");
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"external_id": format!("r{i}"), "amount": "1", "booking_date": "2026-01-01"}))
        .collect();
    let body = problem(
        import_json(&app, &tenant.key, &json!({"account_id": account, "rows": many})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "rows");
    assert!(body["detail"].as_str().unwrap().contains("1001"), "{body}");
    problem(
        import_json(&app, &tenant.key, &json!({"account_id": account, "rows": []})).await,
        422,
        "validation_failed",
    )
    .await;
    let body = problem(
        import_json(&app, &tenant.key, &json!({"account_id": account, "rows": [{"external_id": "a", "amonut": "1"}]}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "rows[0].amonut", "{body}");
    let malformed = app
        .as_key(Method::POST, "/api/v1/transactions/import", &tenant.key)
        .header("content-type", "application/json")
        .body(r#"{"account_id": "x", "rows": [{"external_id": "a",}]}"#)
        .send()
        .await
        .unwrap();
    problem(malformed, 400, "malformed_json").await;
    let text =
        app.as_key(Method::POST, "/api/v1/transactions/import", &tenant.key).body("id,amount").send().await.unwrap();
    problem(text, 415, "unsupported_media_type").await;

    assert_eq!(counts(&db, &tenant, "transaction.created").await, before, "nothing was written");
    assert_eq!(counts(&db, &other, "transaction.created").await, (0, 0));
}

/// A CSV of `n` good rows in the bank-export shape the tests use: `;`-separated, day-first dates,
/// a BOM, and an unmapped column.
fn statement(n: usize) -> String {
    let mut csv = String::from("\u{feff}Ref;Booked;Amount;Text;Branch\n");
    for i in 0..n {
        writeln!(csv, "T{i:06};{:02}/11/2026;-{}.{:02};Card payment {i};Leeds", 1 + i % 28, i % 500, i % 100).unwrap();
    }
    csv
}

#[tokio::test]
async fn a_csv_file_is_imported_by_a_job_that_reports_progress_and_every_rejected_row() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let reader = app.key(&tenant, &["transactions:read"]).await;
    let account = manual_account(&app, &tenant, "GBP").await;
    let mut csv = statement(12_000);
    csv.push_str("T000005;06/11/2026;-1.00;Repeated id;Leeds\n");
    csv.push_str("X1;31/02/2026;1.00;No such day;Leeds\n");
    csv.push_str("X2;01/12/2026;12,50;Comma decimal;Leeds\n");
    csv.push_str("X3;01/12/2026;1.00;=HYPERLINK(\"http://evil\");Leeds\n");
    csv.push_str("X4;01/12/2026;1.00;Too few\n");
    let options = json!({"account_id": account, "delimiter": ";", "date_format": "%d/%m/%Y",
        "columns": {"external_id": "Ref", "amount": "Amount", "booking_date": "Booked", "description": "Text"}});

    let accepted = json_of(upload(&app, &tenant.key, csv.clone().into_bytes(), &options).await, 202).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("imp_"));
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["total_rows"], 12_005);
    assert_eq!(accepted["processed_rows"], 0);
    assert_eq!(accepted["account_id"], account.as_str());
    assert_eq!(import_of(&app, &reader, &id).await["status"], "queued");

    crate::support::bank::drain(&app).await;
    let done = import_of(&app, &reader, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["processed_rows"], 12_005);
    assert_eq!((done["created"].as_i64(), done["rejected"].as_i64()), (Some(12_000), Some(5)), "{done}");
    assert!(done["finished_at"].is_string());

    let rejected = row_results(&app, &reader, &id, "rejected").await;
    let reasons: Vec<(i64, &str)> =
        rejected.iter().map(|r| (r["row"].as_i64().unwrap(), r["error"].as_str().unwrap())).collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert_eq!(reasons[0].0, 12_002, "the header is row 1");
    assert!(reasons[0].1.contains("repeated (first on row 7)"), "{reasons:?}");
    assert!(reasons[1].1.starts_with("booking_date: \"31/02/2026\""), "{reasons:?}");
    assert!(reasons[2].1.starts_with("amount: \"12,50\""), "{reasons:?}");
    assert!(reasons[3].1.starts_with("description:") && reasons[3].1.contains("formula"), "{reasons:?}");
    assert!(reasons[4].1.contains("4 fields but the header has 5"), "{reasons:?}");
    assert_eq!(rejected[4]["external_id"], "X4");
    let created = row_results(&app, &reader, &id, "created").await;
    assert_eq!(created.len(), 12_000);
    assert!(created[0]["transaction_id"].as_str().unwrap().starts_with("txn_"));

    let db = app.superuser_pool().await;
    assert_eq!(counts(&db, &tenant, "transaction.created").await, (12_000, 12_000));
    let (amount, raw): (i64, Value) =
        sqlx::query_as("select amount, raw from transactions where tenant_id = $1 and external_id = 'T000001'")
            .bind(&tenant.id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(amount, -101);
    assert_eq!(raw["Branch"], "Leeds", "unmapped columns are kept");
    let file: Option<Vec<u8>> =
        sqlx::query_scalar("select file from imports where id = $1").bind(&id).fetch_one(&db).await.unwrap();
    assert_eq!(file, None, "the upload is dropped once processed");

    // The same file again: a new import, every row unchanged.
    let again = json_of(upload(&app, &tenant.key, csv.into_bytes(), &options).await, 202).await;
    crate::support::bank::drain(&app).await;
    let again = import_of(&app, &reader, again["id"].as_str().unwrap()).await;
    assert_eq!(
        (again["unchanged"].as_i64(), again["created"].as_i64(), again["rejected"].as_i64()),
        (Some(12_000), Some(0), Some(5))
    );
    assert_eq!(counts(&db, &tenant, "transaction.created").await, (12_000, 12_000));

    // Running a finished import's job again changes nothing.
    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    let import_id = payymo::domain::ids::ImportId::parse(&id).unwrap();
    payymo::imports::job::run(&app.state, &tenant_id, &import_id).await.unwrap();
    assert_eq!(import_of(&app, &reader, &id).await, done);

    problem(
        app.as_key(Method::GET, &format!("/api/v1/transactions/imports/{id}/rows?status=lost"), &reader)
            .send()
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn a_job_killed_after_a_batch_resumes_where_it_stopped() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let account = manual_account(&app, &tenant, "GBP").await;
    let options = json!({"account_id": account, "delimiter": ";", "date_format": "%d/%m/%Y",
        "columns": {"external_id": "Ref", "amount": "Amount", "booking_date": "Booked"}});
    let first = statement(payymo::imports::job::BATCH);
    // A first run that committed one batch, then died: its transactions, results and progress.
    let setup = json_of(upload(&app, &tenant.key, first.into_bytes(), &options).await, 202).await;
    crate::support::bank::drain(&app).await;
    let full = statement(payymo::imports::job::BATCH + 1_500);
    let resumed = json_of(upload(&app, &tenant.key, full.into_bytes(), &options).await, 202).await;
    let id = resumed["id"].as_str().unwrap();
    let db = app.superuser_pool().await;
    sqlx::query("update imports set status = 'running', processed_rows = $2, created = $2 where id = $1;")
        .bind(id)
        .bind(payymo::imports::job::BATCH as i32)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "insert into import_rows (tenant_id, import_id, row_number, external_id, status, object_id)
         select tenant_id, $1, row_number, external_id, status, object_id from import_rows where import_id = $2",
    )
    .bind(id)
    .bind(setup["id"].as_str().unwrap())
    .execute(&db)
    .await
    .unwrap();

    crate::support::bank::drain(&app).await;
    let done = import_of(&app, &tenant.key, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["processed_rows"], payymo::imports::job::BATCH + 1_500);
    assert_eq!(
        (done["created"].as_i64(), done["unchanged"].as_i64()),
        (Some(payymo::imports::job::BATCH as i64 + 1_500), Some(0)),
        "the committed batch was not processed again"
    );
    assert_eq!(row_results(&app, &tenant.key, id, "created").await.len(), payymo::imports::job::BATCH + 1_500);
    assert_eq!(counts(&db, &tenant, "transaction.created").await.0, payymo::imports::job::BATCH as i64 + 1_500);
}

#[tokio::test]
async fn bad_csv_files_are_refused_as_a_whole_and_write_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let account = manual_account(&app, &tenant, "EUR").await;
    let options = basic_options(&account);
    let good = b"id,date,amount,text\n1,2026-01-01,1.00,Coffee\n".to_vec();

    let body = problem(
        upload(&app, &tenant.key, b"id,date,amount,text\n1,2026-01-01,1.00,Caf\xe9\n".to_vec(), &options).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "file");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("not UTF-8") && message.contains("line 2") && message.contains("re-save it as UTF-8"),
        "{message}"
    );

    let body = problem(
        upload(&app, &tenant.key, b"id,day,amount,text\n1,2026-01-01,1.00,x\n".to_vec(), &options).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "options.columns.booking_date");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("\"date\" is not in the file's header"), "{body}");

    let body = problem(upload(&app, &tenant.key, Vec::new(), &options).await, 422, "validation_failed").await;
    assert!(body["detail"].as_str().unwrap().contains("empty"), "{body}");
    let body =
        problem(upload(&app, &tenant.key, b"id,date,amount,text\n".to_vec(), &options).await, 422, "validation_failed")
            .await;
    assert!(body["detail"].as_str().unwrap().contains("no rows"), "{body}");

    let mut bad_options = options.clone();
    bad_options["date_format"] = json!("%Q");
    let body = problem(upload(&app, &tenant.key, good.clone(), &bad_options).await, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "options.date_format");
    let body = problem(
        upload(&app, &tenant.key, good.clone(), &json!({"account_id": account, "columns": {"amount": "amount"}})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "options.columns.external_id", "{body}");
    let only_file = multipart::Form::new().part("file", multipart::Part::bytes(good.clone()));
    let body = problem(
        app.as_key(Method::POST, "/api/v1/transactions/import", &tenant.key).multipart(only_file).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "options");

    // Over the size limit: refused from the declared length, before anything is stored.
    let mut huge = b"id,date,amount,text\n".to_vec();
    huge.resize(payymo::imports::UPLOAD_LIMIT + 1024, b'x');
    let response = upload(&app, &tenant.key, huge, &options).await;
    let body = problem(response, 413, "payload_too_large").await;
    assert!(body["detail"].as_str().unwrap().contains("larger than"), "{body}");

    let connection = crate::support::bank::connect(&app, &tenant).await;
    let mut feed_options = options.clone();
    feed_options["account_id"] = connection["accounts"][0]["id"].clone();
    problem(upload(&app, &tenant.key, good.clone(), &feed_options).await, 409, "conflict").await;

    let db = app.superuser_pool().await;
    let imports: i64 = sqlx::query_scalar("select count(*) from imports").fetch_one(&db).await.unwrap();
    assert_eq!(imports, 0);
    assert_eq!(counts(&db, &tenant, "transaction.created").await.0, 0);
    // And a good file still goes through.
    json_of(upload(&app, &tenant.key, good, &options).await, 202).await;
}

#[tokio::test]
async fn bad_csv_rows_are_rejected_with_their_reasons() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let account = manual_account(&app, &tenant, "EUR").await;
    let file = "id,date,amount,text\n\
                ok-1,2026-01-01,1.00,Coffee\n\
                ragged,2026-01-01,1.00\n\
                feb30,2026-02-30,1.00,x\n\
                nonsense,2026-13-01,1.00,x\n\
                amount,2026-01-01,1.0.0,x\n\
                precise,2026-01-01,1.001,x\n\
                ,2026-01-01,1.00,no id\n\
                ok-1,2026-01-02,2.00,again\n\
                eq,2026-01-01,1.00,=1+1\n\
                at,2026-01-01,1.00,@SUM(A1)\n\
                tab,2026-01-01,1.00,\"\tcmd\"\n\
                cr,2026-01-01,1.00,\"\rcmd\"\n\
                minus,2026-01-01,1.00,-A1\n\
                plus,2026-01-01,1.00,+x\n\
                =id,2026-01-01,1.00,x\n\
                ok-2,2026-01-02,-2.00,-2 for the fee\n";
    let accepted =
        json_of(upload(&app, &tenant.key, file.as_bytes().to_vec(), &basic_options(&account)).await, 202).await;
    let id = accepted["id"].as_str().unwrap();
    crate::support::bank::drain(&app).await;
    let done = import_of(&app, &tenant.key, id).await;
    assert_eq!((done["created"].as_i64(), done["rejected"].as_i64()), (Some(2), Some(14)), "{done}");
    let rejected = row_results(&app, &tenant.key, id, "rejected").await;
    let expect = [
        (3, "the row has 3 fields but the header has 4"),
        (4, "booking_date: \"2026-02-30\" is not a date"),
        (5, "booking_date: \"2026-13-01\" is not a date"),
        (6, "amount: \"1.0.0\" is not a decimal amount"),
        (7, "amount: \"1.001\" has more decimal places than EUR allows"),
        (8, "external_id: is missing"),
        (9, "external_id: \"ok-1\" is repeated (first on row 2)"),
        (10, "description: \"=1+1\" would run as a formula"),
        (11, "description: \"@SUM(A1)\" would run as a formula"),
        (12, "description: \"\\tcmd\" would run as a formula"),
        (13, "description: \"\\rcmd\" would run as a formula"),
        (14, "description: \"-A1\" would run as a formula"),
        (15, "description: \"+x\" would run as a formula"),
        (16, "external_id: \"=id\" would run as a formula"),
    ];
    assert_eq!(rejected.len(), expect.len(), "{rejected:?}");
    for (result, (row, reason)) in rejected.iter().zip(expect) {
        assert_eq!(result["row"], row, "{result}");
        assert!(result["error"].as_str().unwrap().starts_with(reason), "{result}");
        assert_eq!(result["status"], "rejected");
        assert_eq!(result["transaction_id"], Value::Null);
    }
    let all = row_results(&app, &tenant.key, id, "created").await;
    assert_eq!(all.iter().map(|r| r["external_id"].as_str().unwrap()).collect::<Vec<_>>(), ["ok-1", "ok-2"]);
}

#[tokio::test]
async fn another_tenants_account_and_import_are_404() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let account = manual_account(&app, &a, "EUR").await;
    let accepted = json_of(
        upload(&app, &a.key, b"id,date,amount,text\n1,2026-01-01,1.00,x\n".to_vec(), &basic_options(&account)).await,
        202,
    )
    .await;
    let import = accepted["id"].as_str().unwrap();

    for path in [
        format!("/api/v1/accounts/{account}"),
        format!("/api/v1/transactions/imports/{import}"),
        format!("/api/v1/transactions/imports/{import}/rows"),
    ] {
        let body = problem(app.as_key(Method::GET, &path, &b.key).send().await.unwrap(), 404, "not_found").await;
        assert_eq!(body["detail"], "no such resource", "{path}");
    }
    let row = json!({"external_id": "x", "amount": "1", "booking_date": "2026-01-01"});
    problem(import_json(&app, &b.key, &json!({"account_id": account, "rows": [row]})).await, 404, "not_found").await;
    problem(
        upload(&app, &b.key, b"id,date,amount,text\n1,2026-01-01,1.00,x\n".to_vec(), &basic_options(&account)).await,
        404,
        "not_found",
    )
    .await;

    let incidents = json_of(
        app.as_key(Method::GET, "/api/v1/audit_logs?outcome=security_incident&limit=100", &b.key).send().await.unwrap(),
        200,
    )
    .await;
    let types: Vec<&str> =
        incidents["data"].as_array().unwrap().iter().map(|i| i["resource_type"].as_str().unwrap()).collect();
    assert_eq!(types.iter().filter(|t| **t == "bank_account").count(), 3, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "transaction_import").count(), 2, "{types:?}");
    let db = app.superuser_pool().await;
    assert_eq!(counts(&db, &a, "transaction.created").await.0, 0);
    let imports: i64 = sqlx::query_scalar("select count(*) from imports").fetch_one(&db).await.unwrap();
    assert_eq!(imports, 1, "B's refused upload stored nothing");
}
