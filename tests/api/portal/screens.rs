//! Every screen renders without an error, on a large screen and at 360 px wide.

use serde_json::json;

use super::{Browser, signed_in};
use crate::{
    reconciliation_matches::{credits, invoice},
    support::{TestApp, bank::drain},
};

const SCREENS: &[(&str, &str)] = &[
    ("", "Overview"),
    ("#/inbox", "Reconciliation inbox"),
    ("#/transactions", "Transactions"),
    ("#/report", "End of day"),
    ("#/invoices", "Invoices"),
    ("#/customers", "Customers"),
    ("#/payouts", "Stripe payouts"),
    ("#/banks", "Bank connections"),
    ("#/developers", "Developers"),
    ("#/developers/webhooks", "Webhooks"),
    ("#/developers/audit", "Audit log"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_screen_renders_on_a_large_screen_and_a_phone() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(&app, "every_screen").await else { return };
    let tenant = app.tenant().await;
    invoice(
        &app,
        &tenant.key,
        json!({"number": "INV-1", "currency": "EUR", "amount_total": 1000, "due_date": "2026-01-31"}),
    )
    .await;
    credits(&app, &tenant.key, "EUR", &[json!({"amount": "10.00", "description": "INV-1", "counterparty_name": "A"})])
        .await;
    drain(&app).await;
    signed_in(&app, &tenant, &browser).await;

    for width in [1280, 360] {
        browser.client().set_window_size(width, 900).await.unwrap();
        for (route, heading) in SCREENS {
            browser.goto(route).await;
            browser.wait_text("main h1", heading).await;
            // Let the screen's own requests settle, then look for an error or a page wider
            // than the window (tables scroll inside their own box).
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let errors = browser.eval("return [...document.querySelectorAll('.error')].map(e => e.textContent);").await;
            browser.check(errors == json!([]), &format!("{route} at {width} px shows {errors}")).await;
            let (scroll, inner) = (
                browser.eval("return document.documentElement.scrollWidth;").await,
                browser.eval("return window.innerWidth;").await,
            );
            browser
                .check(scroll.as_i64() <= inner.as_i64(), &format!("{route} at {width} px is {scroll} px wide"))
                .await;
        }
        browser.snap(&format!("done at {width}")).await;
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_works_from_the_keyboard_alone() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(&app, "inbox_keyboard").await else { return };
    let tenant = app.tenant().await;
    let key = &tenant.key;
    for (number, amount) in [("K-1", 4900), ("K-2", 4900), ("K-3", 7700), ("K-4", 7700)] {
        invoice(&app, key, json!({"number": number, "currency": "EUR", "amount_total": amount})).await;
    }
    let txns = credits(
        &app,
        key,
        "EUR",
        &[
            json!({"amount": "49.00", "description": "K 1", "booking_date": "2026-12-02"}),
            json!({"amount": "77.00", "description": "K 3", "booking_date": "2026-12-01"}),
        ],
    )
    .await;
    drain(&app).await;
    signed_in(&app, &tenant, &browser).await;

    browser.goto("#/inbox").await;
    let selected = |id: &str| format!(".inbox-list li[data-id='{id}'][aria-selected=true]");
    browser.wait_for(&selected(&txns[0])).await;
    browser.wait_for(".suggestion").await;
    browser.keys("j").await;
    browser.wait_for(&selected(&txns[1])).await;
    browser.keys("k").await;
    browser.wait_for(&selected(&txns[0])).await;
    // The detail pane reloads for the credit selected: count its suggestions once it shows them.
    browser.wait_text(".inbox-detail h2", "49.00").await;
    browser.wait_for(".inbox-detail .suggestion").await;
    let before = browser.eval("return document.querySelectorAll('.suggestion').length;").await;
    browser.check(before.as_i64() > Some(0), "the selected credit has suggestions").await;
    browser.keys("r").await;
    browser.wait_text("#notice", "rejected").await;
    let started = std::time::Instant::now();
    loop {
        let now = browser.eval("return document.querySelectorAll('.suggestion').length;").await;
        if now.as_i64() < before.as_i64() {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(15) {
            browser.fail(&format!("still {now} suggestions after rejecting one of {before}")).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.keys("/").await;
    let focused = browser.eval("return document.activeElement.name;").await;
    browser.check(focused == "q", &format!("/ focuses the search, not {focused}")).await;
    browser.close().await;
}
