//! Signing in, staying signed in, switching tenants and signing out; and what the page is
//! allowed to do (its Content-Security-Policy) and weigh.

use payymo::domain::scope::Role;

use super::{Browser, owner};
use crate::support::{TestApp, tenants::PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_stays_signed_in_and_signs_out_with_no_token_in_reach_of_script() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(&app, "sign_in").await else { return };
    let tenant = app.tenant().await;
    let email = owner(&app, &tenant).await;

    browser.goto("").await;
    browser.wait_for("#sign-in").await;
    // The first load, as a new visitor's browser fetches it: the page and every module.
    let bytes = browser
        .eval(
            "const [page] = performance.getEntriesByType('navigation');
             return performance.getEntriesByType('resource').reduce((s, r) => s + r.transferSize, page.transferSize);",
        )
        .await
        .as_f64()
        .unwrap();
    eprintln!("portal first load: {:.1} KB transferred (target <= 200 KB)", bytes / 1000.0);
    browser.check(bytes > 0.0 && bytes <= 200_000.0, &format!("the first load transfers {bytes} bytes")).await;

    browser.fill("#sign-in input[name=email]", &email).await;
    browser.fill("#sign-in input[name=password]", "not the password at all").await;
    browser.click("#sign-in button[type=submit]").await;
    browser.wait_text("#sign-in .error", "the email, password or tenant is not right").await;
    browser.snap("wrong password").await;

    browser.sign_in(&email, PASSWORD).await;
    browser.wait_text(".test-mode", "Test mode").await;
    browser.wait_text("#user-email", &email).await;
    let reachable =
        browser.eval("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie;").await;
    let reachable = reachable.as_str().unwrap();
    browser
        .check(
            !reachable.contains("rt_") && !reachable.contains("eyJ") && !reachable.contains("payymo_refresh"),
            &format!("script can reach a token: {reachable}"),
        )
        .await;

    // A reload keeps the person signed in: the HttpOnly cookie renews the session.
    browser.goto("#/transactions").await;
    browser.wait_for("#sign-out").await;
    browser.wait_text("h1", "Transactions").await;

    browser.click("#sign-out").await;
    browser.wait_for("#sign-in").await;
    browser.goto("").await;
    browser.wait_for("#sign-in").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_in_two_tenants_switches_between_them() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(&app, "switch_tenant").await else { return };
    let first = app.tenant_named("Alpha Traders").await;
    let second = app.tenant_named("Beta Wholesale").await;
    let email = owner(&app, &first).await;
    app.user(&second, &email, Role::Member).await;

    browser.sign_in(&email, PASSWORD).await;
    let tenant = browser.eval("return document.body.dataset.tenant;").await;
    browser.check(tenant == first.id.as_str(), &format!("signed in to {tenant}, not the first by name")).await;
    let select = browser.wait_for("select#tenant").await;
    select.select_by_value(&second.id).await.unwrap();
    let started = std::time::Instant::now();
    while browser.eval("return document.body.dataset.tenant;").await != second.id.as_str() {
        if started.elapsed() > std::time::Duration::from_secs(15) {
            browser.fail("the switch to the second tenant never happened").await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.snap("switched").await;
    // And it sticks across a reload: the cookie now holds the second tenant's session.
    browser.goto("").await;
    browser.wait_for("#sign-out").await;
    let tenant = browser.eval("return document.body.dataset.tenant;").await;
    browser.check(tenant == second.id.as_str(), &format!("after a reload the tenant is {tenant}")).await;
    browser.close().await;
}

#[tokio::test]
async fn the_portal_is_served_with_a_strict_policy_and_cached_by_content_hash() {
    let app = TestApp::spawn().await;
    let page = app.get("/app").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    let start = html.find("/app/assets/").unwrap();
    let script = &html[start..start + html[start..].find('"').unwrap()];
    assert!(script.ends_with("/favicon.svg") || script.ends_with(".css") || script.ends_with(".js"), "{script}");
    let root = &script[..script.rfind('/').unwrap()];

    let module = app.get(&format!("{root}/app.js")).await;
    assert_eq!(module.status(), 200);
    assert_eq!(module.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(module.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(app.get("/app/assets/0000000000000000/app.js").await.status(), 404, "another build's hash");
    assert_eq!(app.get(&format!("{root}/secrets.js")).await.status(), 404);
}
