//! The end-of-day report: balances as the bank reported them (or derived, and said so), the
//! day's booked and pending money, the balance check, match statuses, overdue invoices, CSV, and
//! who may read it.

use chrono::{Days, NaiveDate, Utc};
use payymo::domain::ids::{BankAccountId, InvoiceId, TransactionId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    TestApp,
    bank::{all_transactions, connect, drain},
    json_of, problem,
    tenants::TestTenant,
};

/// A day safely in the past whatever the tenant's time zone.
fn day() -> NaiveDate {
    Utc::now().date_naive().checked_sub_days(Days::new(10)).unwrap()
}

fn shift(date: NaiveDate, days: i64) -> NaiveDate {
    date + chrono::Duration::days(days)
}

async fn manual_account(app: &TestApp, tenant: &TestTenant, name: &str, currency: &str) -> String {
    let response = app
        .as_key(Method::POST, "/api/v1/accounts", &tenant.key)
        .json(&json!({"name": name, "currency": currency}))
        .send()
        .await
        .unwrap();
    json_of(response, 201).await["id"].as_str().unwrap().to_owned()
}

/// A transaction in `account`: booked on `booked` (else pending with that value date).
async fn transaction(
    app: &TestApp,
    tenant: &TestTenant,
    account: &str,
    amount: i64,
    date: NaiveDate,
    status: &str,
    match_status: &str,
) {
    let id = TransactionId::generate();
    let booking_date = (status == "booked").then_some(date);
    let excluded_by = (match_status == "excluded").then_some("user:test");
    sqlx::query(
        "insert into transactions (tenant_id, id, account_id, provider_transaction_id, status, amount, currency,
             booking_date, value_date, description, raw, source, external_id, match_status, excluded_by)
         values ($1, $2, $3, $2, $4, $5, 'GBP', $6, $7, 'Payment', '{}', 'import', $2, $8, $9)",
    )
    .bind(&tenant.id)
    .bind(id.as_str())
    .bind(account)
    .bind(status)
    .bind(amount)
    .bind(booking_date)
    .bind(date)
    .bind(match_status)
    .bind(excluded_by)
    .execute(&app.superuser_pool().await)
    .await
    .unwrap();
}

async fn set_balances(app: &TestApp, account: &str, balances: Value) {
    sqlx::query("update bank_accounts set balances = $2, balances_fetched_at = now() where id = $1")
        .bind(account)
        .bind(balances)
        .execute(&app.superuser_pool().await)
        .await
        .unwrap();
}

fn balance(balance_type: &str, amount: i64, date: NaiveDate) -> Value {
    json!({"type": balance_type, "amount": amount, "currency": "GBP", "reference_date": date.to_string()})
}

/// A manual GBP account with a known day `day()`: credits 125000 (matched), 30000 (suggested),
/// 20000 (unmatched); debits 4000 (excluded), 550 (unmatched): net 170450. One pending debit of
/// 1999 that day, and booked transactions the day before and after that must not count.
async fn known_day(app: &TestApp, tenant: &TestTenant) -> String {
    let account = manual_account(app, tenant, "Main account", "GBP").await;
    let d = day();
    for (amount, match_status) in
        [(125_000, "matched"), (30_000, "suggested"), (20_000, "unmatched"), (-4_000, "excluded"), (-550, "unmatched")]
    {
        transaction(app, tenant, &account, amount, d, "booked", match_status).await;
    }
    transaction(app, tenant, &account, -1_999, d, "pending", "unmatched").await;
    transaction(app, tenant, &account, 777, shift(d, -1), "booked", "unmatched").await;
    transaction(app, tenant, &account, 888, shift(d, 1), "booked", "matched").await;
    account
}

async fn report(app: &TestApp, tenant: &TestTenant, query: &str) -> Value {
    let path = format!("/api/v1/reconciliation/report?{query}");
    json_of(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 200).await
}

#[tokio::test]
async fn a_day_whose_bank_balances_add_up_is_ok_with_every_total_and_match_status() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let account = known_day(&app, &tenant).await;
    let d = day();
    set_balances(
        &app,
        &account,
        json!([
            balance("closingBooked", 1_000_000, shift(d, -1)),
            balance("closingBooked", 1_170_450, d),
            balance("interimAvailable", 5, Utc::now().date_naive()),
        ]),
    )
    .await;

    let body = report(&app, &tenant, &format!("date={d}")).await;
    assert_eq!(body["date"], d.to_string());
    assert_eq!(body["time_zone"], "Europe/London");
    let accounts = body["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1, "{body}");
    let a = &accounts[0];
    assert_eq!(a["account_id"], account.as_str());
    assert_eq!(a["account_name"], "Main account");
    assert_eq!(a["currency"], "GBP");
    assert_eq!(a["opening_balance"]["amount"], 1_000_000);
    assert_eq!(a["opening_balance"]["source"], "bank");
    assert_eq!(a["opening_balance"]["balance_type"], "closingBooked");
    assert_eq!(a["opening_balance"]["reference_date"], shift(d, -1).to_string());
    assert_eq!(a["closing_balance"]["amount"], 1_170_450);
    assert_eq!(a["closing_balance"]["source"], "bank");
    assert_eq!(a["closing_balance"]["reference_date"], d.to_string());
    assert_eq!(
        a["booked"],
        json!({"count": 5, "credits": {"count": 3, "amount": 175_000}, "debits": {"count": 2, "amount": 4_550}, "net": 170_450})
    );
    assert_eq!(
        a["pending"],
        json!({"count": 1, "credits": {"count": 0, "amount": 0}, "debits": {"count": 1, "amount": 1_999}, "net": -1_999})
    );
    assert_eq!(a["balance_check"]["status"], "ok");
    assert_eq!(a["balance_check"]["difference"], 0);
    assert_eq!(a["balance_check"]["expected_closing"], 1_170_450);
    let zero = json!({"count": 0, "amount": 0});
    assert_eq!(
        a["by_match_status"],
        json!({
            "matched": {"credits": {"count": 1, "amount": 125_000}, "debits": zero},
            "suggested": {"credits": {"count": 1, "amount": 30_000}, "debits": zero},
            "unmatched": {"credits": {"count": 1, "amount": 20_000}, "debits": {"count": 1, "amount": 550}},
            "excluded": {"credits": zero, "debits": {"count": 1, "amount": 4_000}},
        })
    );
    assert_eq!(body["overdue_invoices"], json!([]));

    // The next day: its opening is the bank's closing of this one; its closing is not reported,
    // so it is derived from the opening and said so, and nothing is compared.
    let next = report(&app, &tenant, &format!("date={}", shift(d, 1))).await;
    let a = &next["accounts"][0];
    assert_eq!(a["opening_balance"]["amount"], 1_170_450);
    assert_eq!(a["opening_balance"]["source"], "bank");
    assert_eq!(a["booked"]["net"], 888);
    assert_eq!(a["closing_balance"]["amount"], 1_171_338);
    assert_eq!(a["closing_balance"]["source"], "derived");
    assert!(a["closing_balance"]["balance_type"].is_null());
    assert_eq!(a["balance_check"]["status"], "unavailable");
    assert!(a["balance_check"]["difference"].is_null());

    // A week earlier nothing was reported: no number is invented.
    let old = report(&app, &tenant, &format!("date={}", shift(d, -7))).await;
    let a = &old["accounts"][0];
    for end in ["opening_balance", "closing_balance"] {
        assert_eq!(a[end]["source"], "unavailable", "{a}");
        assert!(a[end]["amount"].is_null(), "{a}");
    }
    assert_eq!(a["balance_check"]["status"], "unavailable");
    assert_eq!(a["booked"]["count"], 0);
}

#[tokio::test]
async fn a_balance_that_disagrees_with_the_booked_transactions_is_a_mismatch_with_its_difference() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let account = known_day(&app, &tenant).await;
    let d = day();
    // The bank's opening of the day itself, and a closing 123 (1.23) above what was booked.
    set_balances(
        &app,
        &account,
        json!([balance("openingBooked", 1_000_000, d), balance("closingBooked", 1_170_573, d)]),
    )
    .await;

    let body = report(&app, &tenant, &format!("date={d}&account_id={account}")).await;
    let a = &body["accounts"][0];
    assert_eq!(a["opening_balance"]["balance_type"], "openingBooked");
    assert_eq!(a["balance_check"]["status"], "mismatch", "{a}");
    assert_eq!(a["balance_check"]["expected_closing"], 1_170_450);
    assert_eq!(a["balance_check"]["difference"], 123);

    // Only the closing reported: the opening is derived from it, and nothing is compared.
    set_balances(&app, &account, json!([balance("closingBooked", 1_170_450, d)])).await;
    let body = report(&app, &tenant, &format!("date={d}")).await;
    let a = &body["accounts"][0];
    assert_eq!(a["opening_balance"]["source"], "derived");
    assert_eq!(a["opening_balance"]["amount"], 1_000_000);
    assert_eq!(a["closing_balance"]["source"], "bank");
    assert_eq!(a["balance_check"]["status"], "unavailable");
}

async fn invoice(
    app: &TestApp,
    tenant: &TestTenant,
    currency: &str,
    total: i64,
    paid: i64,
    status: &str,
    due: NaiveDate,
) {
    let id = InvoiceId::generate();
    sqlx::query(
        "insert into invoices (tenant_id, id, number, currency, amount_total, amount_paid, status, due_date)
         values ($1, $2, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&tenant.id)
    .bind(id.as_str())
    .bind(currency)
    .bind(total)
    .bind(paid)
    .bind(status)
    .bind(due)
    .execute(&app.superuser_pool().await)
    .await
    .unwrap();
}

#[tokio::test]
async fn overdue_invoices_are_counted_per_currency_by_what_is_still_due() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let d = day();
    invoice(&app, &tenant, "GBP", 50_000, 0, "open", shift(d, -1)).await;
    invoice(&app, &tenant, "GBP", 40_000, 2_500, "partially_paid", shift(d, -30)).await;
    invoice(&app, &tenant, "EUR", 1_000, 0, "open", shift(d, -2)).await;
    // Not overdue: due that very day, already paid, void, or a draft.
    invoice(&app, &tenant, "GBP", 9_999, 0, "open", d).await;
    invoice(&app, &tenant, "GBP", 9_999, 9_999, "paid", shift(d, -5)).await;
    invoice(&app, &tenant, "GBP", 9_999, 0, "void", shift(d, -5)).await;
    invoice(&app, &tenant, "GBP", 9_999, 0, "draft", shift(d, -5)).await;

    let body = report(&app, &tenant, &format!("date={d}")).await;
    assert_eq!(
        body["overdue_invoices"],
        json!([{"currency": "EUR", "count": 1, "amount_due": 1_000}, {"currency": "GBP", "count": 2, "amount_due": 87_500}])
    );
    assert_eq!(body["accounts"], json!([]), "a tenant without accounts");
}

#[tokio::test]
async fn the_report_as_csv_has_a_row_per_account_and_per_overdue_currency() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let account = known_day(&app, &tenant).await;
    let d = day();
    set_balances(
        &app,
        &account,
        json!([balance("closingBooked", 1_000_000, shift(d, -1)), balance("closingBooked", 1_170_450, d)]),
    )
    .await;
    let other = manual_account(&app, &tenant, "=HYPERLINK(\"http://evil\")", "GBP").await;
    invoice(&app, &tenant, "GBP", 50_000, 0, "open", shift(d, -1)).await;

    let by_format = app
        .as_key(Method::GET, &format!("/api/v1/reconciliation/report?date={d}&format=csv"), &tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_format.status(), 200);
    assert!(by_format.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let by_format = by_format.text().await.unwrap();
    let by_accept = app
        .as_key(Method::GET, &format!("/api/v1/reconciliation/report?date={d}"), &tenant.key)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(by_format, by_accept);
    // JSON wins when asked for by name, whatever Accept says.
    let json = app
        .as_key(Method::GET, &format!("/api/v1/reconciliation/report?date={d}&format=json"), &tenant.key)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(json.headers()["content-type"].to_str().unwrap().starts_with("application/json"));

    let mut reader = csv::Reader::from_reader(by_format.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows: Vec<std::collections::HashMap<String, String>> =
        reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_owned)).collect()).collect();
    assert_eq!(rows.len(), 3, "two accounts and one overdue currency: {by_format}");
    let main = rows.iter().find(|r| r["account_id"] == account).unwrap();
    assert_eq!(main["row"], "account");
    assert_eq!(main["date"], d.to_string());
    assert_eq!(main["currency"], "GBP");
    assert_eq!(main["opening_balance"], "1000000");
    assert_eq!(main["opening_source"], "bank");
    assert_eq!(main["opening_balance_type"], "closingBooked");
    assert_eq!(main["closing_balance"], "1170450");
    assert_eq!(main["closing_reference_date"], d.to_string());
    assert_eq!(main["booked_count"], "5");
    assert_eq!(main["credits_amount"], "175000");
    assert_eq!(main["debits_amount"], "4550");
    assert_eq!(main["net"], "170450");
    assert_eq!(main["pending_count"], "1");
    assert_eq!(main["pending_net"], "-1999");
    assert_eq!(main["balance_check"], "ok");
    assert_eq!(main["difference"], "0");
    assert_eq!(main["matched_credits_amount"], "125000");
    assert_eq!(main["excluded_debits_count"], "1");
    assert_eq!(main["excluded_debits_amount"], "4000");
    assert_eq!(main["overdue_count"], "");
    let evil = rows.iter().find(|r| r["account_id"] == other).unwrap();
    assert_eq!(evil["account_name"], "'=HYPERLINK(\"http://evil\")", "formulas are neutralised");
    assert_eq!(evil["opening_source"], "unavailable");
    assert_eq!(evil["opening_balance"], "");
    let overdue = rows.iter().find(|r| r["row"] == "overdue_invoices").unwrap();
    assert_eq!((overdue["currency"].as_str(), overdue["overdue_count"].as_str()), ("GBP", "1"));
    assert_eq!(overdue["overdue_amount_due"], "50000");
    assert_eq!(overdue["account_id"], "");
}

#[tokio::test]
async fn a_missing_malformed_or_future_date_is_422_naming_it() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let future = shift(Utc::now().date_naive(), 2);
    for query in ["", "date=", "date=2026-13-01", "date=2026-1-5", "date=yesterday", &format!("date={future}")] {
        let path = format!("/api/v1/reconciliation/report?{query}");
        let body =
            problem(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "date", "{query}: {body}");
    }
    let path = format!("/api/v1/reconciliation/report?date={}&format=xml", day());
    let body =
        problem(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "format", "{body}");
    // Today itself may be closed (so far).
    report(&app, &tenant, &format!("date={}", Utc::now().date_naive())).await;
}

#[tokio::test]
async fn another_tenants_account_is_404_and_its_data_never_shows() {
    let app = TestApp::spawn().await;
    let a = app.tenant().await;
    let b = app.tenant().await;
    let account = known_day(&app, &a).await;
    let d = day();
    for id in [account.clone(), BankAccountId::generate().as_str().to_owned(), "ba_'%20or%201=1".to_owned()] {
        let path = format!("/api/v1/reconciliation/report?date={d}&account_id={id}");
        problem(app.as_key(Method::GET, &path, &b.key).send().await.unwrap(), 404, "not_found").await;
    }
    let theirs = report(&app, &b, &format!("date={d}")).await;
    assert_eq!(theirs["accounts"], json!([]), "{theirs}");
    let own = report(&app, &a, &format!("date={d}&account_id={account}")).await;
    assert_eq!(own["accounts"][0]["booked"]["count"], 5);
}

#[tokio::test]
async fn the_report_needs_reconciliation_read() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let path = format!("/api/v1/reconciliation/report?date={}", day());
    let lacking = app.key(&tenant, &["transactions:read", "invoices:read"]).await;
    let body = problem(app.as_key(Method::GET, &path, &lacking).send().await.unwrap(), 403, "insufficient_scope").await;
    assert_eq!(body["required_scope"], "reconciliation:read");
    let reader = app.key(&tenant, &["reconciliation:read"]).await;
    assert_eq!(app.as_key(Method::GET, &path, &reader).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_synced_bank_account_reports_the_banks_closing_and_derives_the_opening() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let connection = connect(&app, &tenant).await;
    drain(&app).await;
    let account = connection["accounts"][0]["id"].as_str().unwrap().to_owned();
    // The sandbox reports closingBooked of yesterday and interimAvailable of today (UTC).
    let yesterday = shift(Utc::now().date_naive(), -1);
    let booked = all_transactions(
        &app,
        &tenant,
        &format!("&account_id={account}&status=booked&booking_date_from={yesterday}&booking_date_to={yesterday}"),
    )
    .await;
    let net: i64 = booked.iter().map(|t| t["amount"].as_i64().unwrap()).sum();

    let body = report(&app, &tenant, &format!("date={yesterday}&account_id={account}")).await;
    let a = &body["accounts"][0];
    assert_eq!(a["kind"], "bank_feed");
    assert_eq!(a["booked"]["count"], booked.len());
    assert_eq!(a["booked"]["net"], net);
    assert_eq!(a["closing_balance"]["source"], "bank", "{a}");
    assert_eq!(a["closing_balance"]["balance_type"], "closingBooked");
    assert_eq!(a["closing_balance"]["reference_date"], yesterday.to_string());
    let closing = a["closing_balance"]["amount"].as_i64().unwrap();
    assert_eq!(a["opening_balance"]["source"], "derived");
    assert_eq!(a["opening_balance"]["amount"], closing - net);
    assert_eq!(a["balance_check"]["status"], "unavailable");
}
