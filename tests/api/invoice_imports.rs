//! Invoice CSV imports over the real server: a file read by the import job in batches through
//! the invoice batch upsert (customers with their invoices, events only for real changes), every
//! kind of bad row named with its column, whole-file refusals that write nothing, and imports
//! kept apart from transaction imports and from other tenants.

use std::fmt::Write;

use reqwest::{Method, multipart};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{TestApp, bank::drain, json_of, problem, tenants::TestTenant};

async fn upload(app: &TestApp, key: &str, file: Vec<u8>, options: &Value) -> reqwest::Response {
    let form = multipart::Form::new()
        .part("options", multipart::Part::text(options.to_string()).mime_str("application/json").unwrap())
        .part("file", multipart::Part::bytes(file).file_name("invoices.csv").mime_str("text/csv").unwrap());
    app.as_key(Method::POST, "/api/v1/invoices/import", key).multipart(form).send().await.unwrap()
}

fn options() -> Value {
    json!({"source": "erp", "currency": "GBP", "delimiter": ";", "date_format": "%d/%m/%Y", "columns": {
        "external_id": "Id", "number": "No", "amount_total": "Total", "amount_tax": "VAT", "due_date": "Due",
        "status": "State", "payment_reference": "Ref", "rf_reference": "RF", "customer_external_id": "Client",
        "customer_name": "Client name", "customer_email": "Email"}})
}

/// An ERP export: `n` invoices, billed to 50 clients.
fn export(n: usize) -> String {
    let mut csv = String::from("\u{feff}Id;No;Total;VAT;Due;State;Ref;RF;Client;Client name;Email;Notes\n");
    for i in 0..n {
        let client = i % 50;
        writeln!(
            csv,
            "E{i:05};INV-{i:05};{}.{:02};{}.00;{:02}/12/2026;{};INV-{i:05};;C{client};Client {client} Ltd;ap{client}@client.example;x",
            100 + i % 900,
            i % 100,
            (100 + i % 900) / 6,
            1 + i % 28,
            if i % 10 == 0 { "Draft" } else { "open" },
        )
        .unwrap();
    }
    csv
}

async fn import_of(app: &TestApp, key: &str, id: &str) -> Value {
    json_of(app.as_key(Method::GET, &format!("/api/v1/invoices/imports/{id}"), key).send().await.unwrap(), 200).await
}

/// Every row result of an import with `status`, following the cursor.
async fn row_results(app: &TestApp, key: &str, id: &str, status: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/invoices/imports/{id}/rows?status={status}&limit=100{cursor}");
        let page = json_of(app.as_key(Method::GET, &path, key).send().await.unwrap(), 200).await;
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return out,
        }
    }
}

async fn count(db: &PgPool, sql: &str, tenant: &TestTenant) -> i64 {
    sqlx::query_scalar(sql).bind(&tenant.id).fetch_one(db).await.unwrap()
}

async fn events(db: &PgPool, tenant: &TestTenant, event_type: &str) -> i64 {
    sqlx::query_scalar("select count(*) from events where tenant_id = $1 and event_type = $2")
        .bind(&tenant.id)
        .bind(event_type)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_invoice_csv_is_imported_in_batches_with_its_customers_and_every_bad_row_named() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let reader = app.key(&tenant, &["invoices:read"]).await;
    let mut csv = export(2_400);
    csv.push_str("E00007;INV-X1;1.00;;01/12/2026;open;;;C1;Client 1 Ltd;;repeated external id\n");
    csv.push_str("X2;INV-00008;1.00;;01/12/2026;open;;;;;;repeated number\n");
    csv.push_str("X3;INV-X3;12,50;;31/02/2026;open;;;;;;comma decimal and no such day\n");
    csv.push_str("X4;=HYPERLINK(\"http://evil\");1.00;;01/12/2026;open;;;;;;formula\n");
    csv.push_str("X5;INV-X5;1.00;;01/12/2026;paid;;;;;;a client cannot mark an invoice paid\n");
    csv.push_str("X6;INV-X6;1.00;2.00;01/12/2026;open;;RF00 1234;;;;tax over total, bad RF\n");
    csv.push_str("X7;INV-X7;1.00;;01/12/2026;open;;;C9;;;client without a name\n");
    csv.push_str("X8;INV-X8;1.00\n");

    let accepted = json_of(upload(&app, &tenant.key, csv.clone().into_bytes(), &options()).await, 202).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("imp_"));
    assert_eq!((accepted["kind"].as_str(), accepted["account_id"].as_str()), (Some("invoices"), None));
    assert_eq!((accepted["status"].as_str(), accepted["total_rows"].as_i64()), (Some("queued"), Some(2_408)));

    drain(&app).await;
    let done = import_of(&app, &reader, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["processed_rows"], 2_408);
    assert_eq!((done["created"].as_i64(), done["rejected"].as_i64()), (Some(2_400), Some(8)), "{done}");

    let rejected = row_results(&app, &reader, &id, "rejected").await;
    let errors: Vec<(i64, Vec<(String, String)>)> = rejected
        .iter()
        .map(|r| {
            let errors = r["errors"].as_array().unwrap();
            let pairs = errors
                .iter()
                .map(|e| (e["field"].as_str().unwrap().to_owned(), e["message"].as_str().unwrap().to_owned()))
                .collect();
            (r["row"].as_i64().unwrap(), pairs)
        })
        .collect();
    assert_eq!(errors[0].0, 2_402, "the header is row 1");
    assert_eq!(errors[0].1[0].0, "external_id");
    assert!(errors[0].1[0].1.contains("appears earlier in this file (row 9)"), "{errors:?}");
    assert_eq!(errors[1].1[0].0, "number");
    assert!(errors[1].1[0].1.starts_with("column \"No\": appears earlier in this file (row 10)"), "{errors:?}");
    let fields = |row: usize| errors[row].1.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>();
    assert_eq!(fields(2), ["amount_total", "due_date"], "{errors:?}");
    assert!(errors[2].1[0].1.starts_with("column \"Total\": \"12,50\" is not a decimal"), "{errors:?}");
    assert_eq!(fields(3), ["number"]);
    assert!(errors[3].1[0].1.contains("formula"), "{errors:?}");
    assert_eq!(fields(4), ["status"]);
    assert!(errors[4].1[0].1.starts_with("column \"State\": a new invoice is draft or open"), "{errors:?}");
    assert!(fields(5).contains(&"amount_tax") && fields(5).contains(&"rf_reference"), "{errors:?}");
    assert_eq!(fields(6), ["customer.name"]);
    assert!(errors[7].1[0].1.contains("3 fields but the header has 12"), "{errors:?}");
    assert_eq!(rejected[7]["external_id"], "X8");
    assert!(rejected[2]["invoice_id"].is_null());

    let created = row_results(&app, &reader, &id, "created").await;
    assert_eq!(created.len(), 2_400);
    assert!(created[0]["invoice_id"].as_str().unwrap().starts_with("inv_"));
    let first = json_of(
        app.as_key(Method::GET, &format!("/api/v1/invoices/{}", created[0]["invoice_id"].as_str().unwrap()), &reader)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!((first["amount_total"].as_i64(), first["amount_tax"].as_i64()), (Some(10_000), Some(1_600)));
    assert_eq!((first["status"].as_str(), first["source"].as_str()), (Some("draft"), Some("erp")));
    assert_eq!(first["due_date"], "2026-12-01");
    let customer = first["customer_id"].as_str().unwrap();
    let customer = json_of(
        app.as_key(Method::GET, &format!("/api/v1/customers/{customer}"), &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!((customer["name"].as_str(), customer["external_id"].as_str()), (Some("Client 0 Ltd"), Some("C0")));

    let db = app.superuser_pool().await;
    assert_eq!(count(&db, "select count(*) from invoices where tenant_id = $1", &tenant).await, 2_400);
    assert_eq!(count(&db, "select count(*) from customers where tenant_id = $1", &tenant).await, 50);
    assert_eq!(events(&db, &tenant, "invoice.created").await, 2_400);
    assert_eq!(events(&db, &tenant, "customer.created").await, 50);

    // The same file again: every row unchanged, nothing emitted. Then one row changed: updated.
    let again = json_of(upload(&app, &tenant.key, csv.clone().into_bytes(), &options()).await, 202).await;
    drain(&app).await;
    let again = import_of(&app, &reader, again["id"].as_str().unwrap()).await;
    assert_eq!((again["unchanged"].as_i64(), again["created"].as_i64()), (Some(2_400), Some(0)), "{again}");
    assert_eq!(events(&db, &tenant, "invoice.created").await + events(&db, &tenant, "invoice.updated").await, 2_400);
    let changed = csv.replacen("E00001;INV-00001;101.01", "E00001;INV-00001;101.02", 1);
    let third = json_of(upload(&app, &tenant.key, changed.into_bytes(), &options()).await, 202).await;
    drain(&app).await;
    let third = import_of(&app, &reader, third["id"].as_str().unwrap()).await;
    assert_eq!((third["updated"].as_i64(), third["unchanged"].as_i64()), (Some(1), Some(2_399)), "{third}");
    assert_eq!(events(&db, &tenant, "invoice.updated").await, 1);

    // Running a finished import's job again changes nothing.
    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    let import_id = payymo::domain::ids::ImportId::parse(&id).unwrap();
    payymo::imports::invoice_job::run(&app.state, &tenant_id, &import_id).await.unwrap();
    assert_eq!(import_of(&app, &reader, &id).await, done);
    let file: Option<Vec<u8>> =
        sqlx::query_scalar("select file from imports where id = $1").bind(&id).fetch_one(&db).await.unwrap();
    assert_eq!(file, None, "the upload is dropped once processed");
}

#[tokio::test]
async fn bad_invoice_files_are_refused_as_a_whole_and_write_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let good = export(3).into_bytes();

    let refused = |field: &'static str, body: Value| {
        let field = field.to_owned();
        async move {
            let errors = body["errors"].as_array().unwrap().clone();
            assert!(errors.iter().any(|e| e["field"] == field.as_str()), "{field}: {body}");
        }
    };
    let mut missing_column = options();
    missing_column["columns"]["due_date"] = json!("Payable by");
    let body = problem(upload(&app, &tenant.key, good.clone(), &missing_column).await, 422, "validation_failed").await;
    refused("options.columns.due_date", body.clone()).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("\"Payable by\" is not in the file's header"));
    let mut no_currency = options();
    no_currency.as_object_mut().unwrap().remove("currency");
    refused(
        "options.currency",
        problem(upload(&app, &tenant.key, good.clone(), &no_currency).await, 422, "validation_failed").await,
    )
    .await;
    let mut unknown = options();
    unknown["columns"]["colour"] = json!("Colour");
    refused(
        "options.columns.colour",
        problem(upload(&app, &tenant.key, good.clone(), &unknown).await, 422, "validation_failed").await,
    )
    .await;
    refused(
        "file",
        problem(upload(&app, &tenant.key, b"Id;No\n1;caf\xe9\n".to_vec(), &options()).await, 422, "validation_failed")
            .await,
    )
    .await;
    refused("file", problem(upload(&app, &tenant.key, Vec::new(), &options()).await, 422, "validation_failed").await)
        .await;

    let json = app
        .as_key(Method::POST, "/api/v1/invoices/import", &tenant.key)
        .json(&json!({"invoices": []}))
        .send()
        .await
        .unwrap();
    let body = problem(json, 415, "unsupported_media_type").await;
    assert!(body["detail"].as_str().unwrap().contains("/invoices/batch"), "{body}");
    let only_file = multipart::Form::new().part("file", multipart::Part::bytes(good.clone()));
    let response =
        app.as_key(Method::POST, "/api/v1/invoices/import", &tenant.key).multipart(only_file).send().await.unwrap();
    refused("options", problem(response, 422, "validation_failed").await).await;

    let reader = app.key(&tenant, &["invoices:read"]).await;
    problem(upload(&app, &reader, good, &options()).await, 403, "insufficient_scope").await;

    let db = app.superuser_pool().await;
    assert_eq!(count(&db, "select count(*) from imports where tenant_id = $1", &tenant).await, 0);
    assert_eq!(count(&db, "select count(*) from invoices where tenant_id = $1", &tenant).await, 0);
}

#[tokio::test]
async fn an_invoice_import_is_not_a_transaction_import_nor_another_tenants() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let accepted = json_of(upload(&app, &a.key, export(2).into_bytes(), &options()).await, 202).await;
    let id = accepted["id"].as_str().unwrap();
    drain(&app).await;
    assert_eq!(import_of(&app, &a.key, id).await["created"], 2);
    for path in [format!("/api/v1/invoices/imports/{id}"), format!("/api/v1/invoices/imports/{id}/rows")] {
        problem(app.as_key(Method::GET, &path, &b.key).send().await.unwrap(), 404, "not_found").await;
    }
    for path in [format!("/api/v1/transactions/imports/{id}"), format!("/api/v1/transactions/imports/{id}/rows")] {
        problem(app.as_key(Method::GET, &path, &a.key).send().await.unwrap(), 404, "not_found").await;
    }
}
