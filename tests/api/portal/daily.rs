//! A finance person's day in the browser: a bank connected and its transactions arriving,
//! searching and editing them, the export, accepting a suggestion, matching by hand with an
//! adjustment, and unmatching.

use reqwest::Method;
use serde_json::json;

use super::{Browser, get, signed_in};
use crate::{
    reconciliation_matches::{credits, invoice},
    support::{TestApp, bank::drain, json_of},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_bank_is_connected_and_its_transactions_arrive_searched_edited_and_exported() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(&app, "bank_and_transactions").await else { return };
    let tenant = app.tenant().await;
    signed_in(&app, &tenant, &browser).await;

    browser.goto("#/banks").await;
    browser.wait_for("#connect-bank select[name=institution_id] option[value=SANDBOXFINANCE_SFIN0000]").await;
    let bank = browser.wait_for("#connect-bank select[name=institution_id]").await;
    bank.select_by_value("SANDBOXFINANCE_SFIN0000").await.unwrap();
    browser.click("#connect-bank button[type=submit]").await;
    // The sandbox's consent page, on its own origin, as a bank's would be.
    browser.wait_text("body", "Approve").await;
    browser.snap("consent page").await;
    browser.click("form button[type=submit]").await;
    browser.wait_text("main", "The bank is connected").await;
    browser.wait_text("#connections", "linked").await;
    drain(&app).await;

    browser.goto("#/transactions").await;
    browser.wait_for("tbody tr[data-id]").await;
    let rows = browser.client().find_all(fantoccini::Locator::Css("tbody tr[data-id]")).await.unwrap();
    let synced = crate::support::bank::all_transactions(&app, &tenant, "").await;
    browser.check(!rows.is_empty() && !synced.is_empty(), "the synced transactions are listed").await;
    let render = browser.eval("return document.querySelector('.table-wrap').dataset.renderMs;").await;
    eprintln!("portal: first page of {} transactions rendered in {render} ms (target < 100 ms)", rows.len());

    // Scrolling to the end brings the next page on the cursor.
    let started = std::time::Instant::now();
    loop {
        browser.eval("window.scrollTo(0, document.body.scrollHeight); return null;").await;
        let shown = browser.eval("return document.querySelectorAll('tbody tr[data-id]').length;").await;
        if shown.as_u64().unwrap_or(0) as usize == synced.len() {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(15) {
            browser.fail(&format!("{shown} rows after scrolling, of {}", synced.len())).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    browser.snap("scrolled to the end").await;

    // Search as you type: a counterparty from the bank narrows the list to its rows.
    let wanted = synced.iter().find_map(|t| t["counterparty_name"].as_str()).unwrap().to_owned();
    let expected = synced.iter().filter(|t| t["counterparty_name"].as_str() == Some(&wanted)).count();
    browser.fill("form.filters input[name=q]", &wanted).await;
    let started = std::time::Instant::now();
    loop {
        let shown =
            browser.eval("return [...document.querySelectorAll('tbody tr[data-id]')].map(r => r.textContent);").await;
        let shown: Vec<String> = serde_json::from_value(shown).unwrap();
        let all_match =
            !shown.is_empty() && shown.iter().all(|row| row.to_lowercase().contains(&wanted.to_lowercase()));
        if all_match && shown.len() <= expected.max(1) * 2 {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(15) {
            browser.fail(&format!("the search for {wanted:?} never narrowed the list")).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    browser.snap("searched").await;

    // Edit the first row's category, notes and tags.
    let first = browser.wait_for("tbody tr[data-id]").await;
    let id = first.attr("data-id").await.unwrap().unwrap();
    browser.click(&format!("tr[data-id='{id}'] button")).await;
    browser.fill(".editor input[name=category]", "Sales").await;
    browser.fill(".editor textarea[name=notes]", "Checked against the remittance advice").await;
    browser.fill(".editor input[name=tags]", "checked, q4").await;
    browser.click(".editor button[type=submit]").await;
    browser.wait_gone(".editor").await;
    browser.wait_text(&format!("tr[data-id='{id}']"), "Sales").await;
    let saved = get(&app, &tenant.key, &format!("/api/v1/transactions/{id}")).await;
    assert_eq!(saved["category"], "Sales");
    assert_eq!(saved["notes"], "Checked against the remittance advice");
    assert_eq!(saved["tags"], json!(["checked", "q4"]));

    // The export of the current filter downloads as CSV.
    browser.click("#export").await;
    let file = browser.downloaded(".csv").await;
    let csv = std::fs::read_to_string(&file).unwrap();
    let lines = csv.lines().count();
    browser.check(csv.contains(&wanted) && lines > 1, &format!("the export holds the filtered rows: {csv}")).await;

    // The overview shows the account's balance and sync; then the connection is refreshed and
    // removed from its screen.
    browser.goto("").await;
    browser.wait_text(".panel", "Last synced").await;
    browser.goto("#/banks").await;
    browser.click("#connections button.link").await;
    browser.wait_text("#notice", "Sync queued").await;
    let buttons = browser.client().find_all(fantoccini::Locator::Css("#connections button.link")).await.unwrap();
    buttons.last().unwrap().click().await.unwrap();
    browser.client().accept_alert().await.unwrap();
    browser.wait_text("#connections", "deleted").await;
    let listed = get(&app, &tenant.key, "/api/v1/bank_connections").await;
    assert!(listed["data"].as_array().unwrap().iter().all(|c| c["status"] != "linked"), "{listed}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_suggestion_with_the_keyboard_marks_the_invoice_paid() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(&app, "inbox_accept").await else { return };
    let tenant = app.tenant().await;
    let key = &tenant.key;
    let customer = json_of(
        app.as_key(Method::POST, "/api/v1/customers", key)
            .json(&json!({"name": "Acme Widgets Limited"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body =
        |number: &str| json!({"number": number, "currency": "EUR", "amount_total": 4900, "customer_id": customer});
    let first = invoice(&app, key, body("S-1")).await;
    invoice(&app, key, body("S-2")).await;
    let txns = credits(
        &app,
        key,
        "EUR",
        &[json!({"amount": "49.00", "description": "SUBSCRIPTION", "counterparty_name": "ACME WIDGETS LTD"})],
    )
    .await;
    drain(&app).await;
    signed_in(&app, &tenant, &browser).await;

    browser.goto("#/inbox").await;
    browser.wait_for(&format!(".inbox-list li[data-id='{}'][aria-selected=true]", txns[0])).await;
    let top = browser.wait_for(".suggestion").await;
    browser.wait_text(".suggestion .reasons", "name").await;
    browser.wait_text(".suggestion .targets", "Invoice S-").await;
    let top_text = top.text().await.unwrap();
    let chosen = if top_text.contains("S-1") { first.clone() } else { String::new() };
    browser.snap("inbox").await;
    browser.keys("a").await;
    browser.wait_text("#notice", "Matched").await;

    let txn = get(&app, key, &format!("/api/v1/transactions/{}", txns[0])).await;
    assert_eq!(txn["match_status"], "matched");
    let matched = get(&app, key, &format!("/api/v1/reconciliation/matches?transaction_id={}", txns[0])).await;
    let paid = matched["data"][0]["allocations"][0]["target_id"].as_str().unwrap().to_owned();
    if !chosen.is_empty() {
        assert_eq!(paid, chosen, "the top suggestion was accepted");
    }
    browser.goto(&format!("#/invoices/{paid}")).await;
    browser.wait_text("main", "paid").await;
    browser.wait_text("#amount-due", "0.00").await;
    browser.wait_text(".matches", "suggestion match").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_payment_is_matched_by_hand_with_an_adjustment_then_unmatched() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(&app, "manual_match").await else { return };
    let tenant = app.tenant().await;
    let key = &tenant.key;
    let inv = invoice(&app, key, json!({"number": "INV-7781", "currency": "EUR", "amount_total": 10000})).await;
    let txns = credits(
        &app,
        key,
        "EUR",
        &[json!({"amount": "95.00", "description": "TRANSFER", "counterparty_name": "SOMEONE ELSE"})],
    )
    .await;
    drain(&app).await;
    signed_in(&app, &tenant, &browser).await;

    browser.goto(&format!("#/match?transaction_id={}", txns[0])).await;
    browser.fill("input[name=invoice_q]", "INV-7781").await;
    browser.click(".add-invoice[data-number='INV-7781']").await;
    let amount = browser.wait_for("input[aria-label='Amount for INV-7781']").await;
    amount.clear().await.unwrap();
    amount.send_keys("100.00\t").await.unwrap();
    browser.wait_text(".balance", "Still to explain").await;
    let kind = browser.wait_for("select[name=kind]").await;
    kind.select_by_value("short_payment").await.unwrap();
    browser.fill("form.inline input[name=amount]", "-5.00").await;
    browser.click("form.inline button[type=submit]").await;
    browser.wait_text(".balance", "Balanced to the cent").await;
    browser.snap("balanced").await;
    browser.click("#save-match").await;
    browser.wait_text("h1", "Match match_").await;

    let paid = get(&app, key, &format!("/api/v1/invoices/{inv}")).await;
    assert_eq!((paid["status"].as_str(), paid["amount_due"].as_i64()), (Some("paid"), Some(0)), "{paid}");
    let made = get(&app, key, &format!("/api/v1/reconciliation/matches?transaction_id={}", txns[0])).await;
    assert_eq!(made["data"][0]["adjustments"][0]["kind"], "short_payment");
    assert_eq!(made["data"][0]["adjustments"][0]["amount"], -500);

    browser.fill("form.inline input[name=reason]", "Paid by another customer").await;
    browser.click("form.inline button.danger").await;
    browser.wait_text("main", "Paid by another customer").await;
    let open = get(&app, key, &format!("/api/v1/invoices/{inv}")).await;
    assert_eq!((open["status"].as_str(), open["amount_due"].as_i64()), (Some("open"), Some(10000)), "{open}");
    browser.close().await;
}
