//! Connecting a tenant's Stripe account, over the real server against the in-process Stripe
//! simulator: the key checked with Stripe before it is kept, permissions a restricted key lacks,
//! keys of the wrong kind or mode refused, Stripe outages, sealing, events, scopes, isolation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, json_of, problem, tenants::TestTenant};

pub(crate) async fn put(app: &TestApp, key: &str, api_key: &str) -> reqwest::Response {
    app.as_key(Method::PUT, "/api/v1/stripe/connection", key).json(&json!({"api_key": api_key})).send().await.unwrap()
}

/// The in-process simulator's control API.
pub(crate) async fn control(app: &TestApp, path: &str, body: Value) -> Value {
    let base = app.state.stripe.base(false).to_owned();
    let response = reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}");
    response.json().await.unwrap()
}

pub(crate) async fn count_events(app: &TestApp, tenant: &TestTenant, event_type: &str) -> i64 {
    let db = app.superuser_pool().await;
    sqlx::query_scalar("select count(*) from events where tenant_id = $1 and event_type = $2")
        .bind(&tenant.id)
        .bind(event_type)
        .fetch_one(&db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stripe_account_is_connected_with_a_checked_key_that_is_never_shown_again() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let account = control(
        &app,
        "/_stripe/accounts",
        json!({"name": "Acme Widgets Ltd", "secret_key": format!("sk_test_{}", tenant.id.replace('_', "")),
               "restricted_key": format!("rk_test_{}", tenant.id.replace('_', "")),
               "restricted_without": ["payouts", "events"]}),
    )
    .await;
    let (secret, restricted) =
        (account["secret_key"].as_str().unwrap().to_owned(), account["restricted_key"].as_str().unwrap().to_owned());
    problem(app.as_key(Method::GET, "/api/v1/stripe/connection", &tenant.key).send().await.unwrap(), 404, "not_found")
        .await;

    let connected = json_of(put(&app, &tenant.key, &restricted).await, 201).await;
    assert!(connected["id"].as_str().unwrap().starts_with("sc_"));
    assert_eq!(connected["account_id"], account["id"]);
    assert_eq!(connected["account_name"], "Acme Widgets Ltd");
    assert_eq!((connected["livemode"].as_bool(), connected["key_kind"].as_str()), (Some(false), Some("restricted")));
    assert_eq!(connected["missing_permissions"], json!(["payouts:read", "events:read"]));
    assert!(connected["key_hint"].as_str().unwrap().starts_with("rk_test_…"));
    assert!(!connected.to_string().contains(&restricted), "the key is never shown");

    // A secret key replaces it: same connection, nothing missing.
    let replaced = json_of(put(&app, &tenant.key, &secret).await, 200).await;
    assert_eq!(replaced["id"], connected["id"]);
    assert_eq!((replaced["key_kind"].as_str(), replaced["missing_permissions"].clone()), (Some("secret"), json!([])));
    let shown =
        json_of(app.as_key(Method::GET, "/api/v1/stripe/connection", &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(shown, replaced);
    let db = app.superuser_pool().await;
    let sealed: String = sqlx::query_scalar("select key_sealed from stripe_connections where tenant_id = $1")
        .bind(&tenant.id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(!sealed.is_empty() && !sealed.contains(&secret), "the key is sealed at rest");
    assert_eq!(count_events(&app, &tenant, "stripe_connection.connected").await, 2);

    // Another tenant sees no connection, and cannot disconnect this one.
    let other = app.tenant().await;
    for method in [Method::GET, Method::DELETE] {
        let response = app.as_key(method, "/api/v1/stripe/connection", &other.key).send().await.unwrap();
        problem(response, 404, "not_found").await;
    }

    let gone = app.as_key(Method::DELETE, "/api/v1/stripe/connection", &tenant.key).send().await.unwrap();
    let gone = json_of(gone, 200).await;
    assert_eq!((gone["id"].clone(), gone["status"].as_str()), (connected["id"].clone(), Some("disconnected")));
    problem(app.as_key(Method::GET, "/api/v1/stripe/connection", &tenant.key).send().await.unwrap(), 404, "not_found")
        .await;
    let sealed: String = sqlx::query_scalar("select key_sealed from stripe_connections where tenant_id = $1")
        .bind(&tenant.id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(sealed, "", "a disconnected key is forgotten");
    assert_eq!(count_events(&app, &tenant, "stripe_connection.disconnected").await, 1);
    // Connecting again makes a new connection.
    let again = json_of(put(&app, &tenant.key, &secret).await, 201).await;
    assert_ne!(again["id"], connected["id"]);
}

#[tokio::test]
async fn keys_of_the_wrong_kind_mode_or_that_stripe_refuses_are_422_and_outages_503() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    for (key, says) in [
        ("sk_live_51AbCdEfGhIjKlMnOp", "test-mode tenant"),
        ("pk_test_51AbCdEfGhIjKlMnOp", "publishable"),
        ("whsec_51AbCdEfGhIjKlMnOp", "restricted key"),
        ("sk_test_51NoSuchKeyAtStripe", "Stripe refused the key"),
    ] {
        let body = problem(put(&app, &tenant.key, key).await, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "api_key", "{key}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains(says), "{key}: {body}");
    }
    let account = control(&app, "/_stripe/accounts", json!({"name": "Revoked Ltd"})).await;
    let secret = account["secret_key"].as_str().unwrap();
    control(&app, &format!("/_stripe/keys/{secret}/revoke"), json!({})).await;
    problem(put(&app, &tenant.key, secret).await, 422, "validation_failed").await;
    control(&app, &format!("/_stripe/keys/{secret}/restore"), json!({})).await;

    control(&app, "/_stripe/faults", json!({"status": 503, "count": 3, "path": "/v1/account"})).await;
    let body = problem(put(&app, &tenant.key, secret).await, 503, "provider_unavailable").await;
    assert!(body["detail"].as_str().unwrap().contains("Stripe is unavailable"), "{body}");
    problem(app.as_key(Method::GET, "/api/v1/stripe/connection", &tenant.key).send().await.unwrap(), 404, "not_found")
        .await;
    assert_eq!(count_events(&app, &tenant, "stripe_connection.connected").await, 0, "nothing was kept");
    // Once Stripe answers again, the same key connects.
    json_of(put(&app, &tenant.key, secret).await, 201).await;

    let reader = app.key(&tenant, &["stripe:read"]).await;
    json_of(app.as_key(Method::GET, "/api/v1/stripe/connection", &reader).send().await.unwrap(), 200).await;
    problem(put(&app, &reader, secret).await, 403, "insufficient_scope").await;
    let response = app.as_key(Method::DELETE, "/api/v1/stripe/connection", &reader).send().await.unwrap();
    problem(response, 403, "insufficient_scope").await;
}

/// A new simulated account for `tenant`; returns (secret key, restricted key).
pub(crate) async fn new_account(app: &TestApp, tenant: &TestTenant, name: &str) -> (String, String) {
    let suffix = tenant.id.replace('_', "");
    let account = control(
        app,
        "/_stripe/accounts",
        json!({"name": name, "secret_key": format!("sk_test_{suffix}"), "restricted_key": format!("rk_test_{suffix}")}),
    )
    .await;
    (account["secret_key"].as_str().unwrap().to_owned(), account["restricted_key"].as_str().unwrap().to_owned())
}

/// A call to the simulator's API with `key`.
pub(crate) async fn at_stripe(app: &TestApp, method: Method, path: &str, key: &str, form: &[(&str, &str)]) -> Value {
    let base = app.state.stripe.base(false).to_owned();
    let request = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(key);
    let request = if form.is_empty() { request } else { request.form(form) };
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// The ids and types of the connection's kept Stripe events, waiting (10 s at most) for `count`.
pub(crate) async fn kept_events(app: &TestApp, tenant: &TestTenant, count: usize) -> Vec<(String, String)> {
    let db = app.superuser_pool().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows: Vec<(String, String)> =
            sqlx::query_as("select id, event_type from stripe_events where tenant_id = $1 order by created, id")
                .bind(&tenant.id)
                .fetch_all(&db)
                .await
                .unwrap();
        if rows.len() >= count || std::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stripe_events_arrive_at_the_registered_endpoint_signed_and_are_kept_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (secret, _) = new_account(&app, &tenant, "Events Ltd").await;
    let connected = json_of(put(&app, &tenant.key, &secret).await, 201).await;
    assert_eq!(
        (connected["webhook_status"].as_str(), connected["webhook_error"].clone()),
        (Some("registered"), Value::Null)
    );
    let id = connected["id"].as_str().unwrap().to_owned();
    let endpoints = at_stripe(&app, Method::GET, "/v1/webhook_endpoints", &secret, &[]).await;
    let endpoints = endpoints["data"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert!(endpoints[0]["url"].as_str().unwrap().ends_with(&format!("/api/v1/stripe/webhooks/{id}")));

    let pay = [("amount", "2500"), ("currency", "gbp"), ("payment_method", "pm_card_visa"), ("confirm", "true")];
    let intent = at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay).await;
    let kept = kept_events(&app, &tenant, 2).await;
    let mut types: Vec<&str> = kept.iter().map(|(_, t)| t.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["charge.succeeded", "payment_intent.succeeded"], "only subscribed events, each once");

    // Deliveries sent twice are kept once.
    let base = app.state.stripe.base(false).to_owned();
    reqwest::Client::new()
        .put(format!("{base}/_stripe/webhooks/mode"))
        .json(&json!({"duplicate": 1}))
        .send()
        .await
        .unwrap();
    at_stripe(&app, Method::POST, "/v1/refunds", &secret, &[("payment_intent", intent["id"].as_str().unwrap())]).await;
    let kept = kept_events(&app, &tenant, 4).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(kept_events(&app, &tenant, 0).await.len(), 4, "{kept:?}");

    // Forged, stale, or for no such connection: refused, never kept.
    let body = json!({"id": "evt_forged", "object": "event", "type": "payout.paid", "created": 1}).to_string();
    let now = chrono::Utc::now().timestamp();
    let failures = app.state.metrics.stripe_signature_failures.get();
    for (signature, why) in [
        (payymo::sandbox::stripe::signature("whsec_not_the_secret", now, &body), "no v1 signature matches"),
        (format!("t={now}"), "missing"),
        (payymo::sandbox::stripe::signature("whsec_not_the_secret", now - 3_600, &body), "300 s"),
    ] {
        let response = app
            .client
            .post(app.url(&format!("/api/v1/stripe/webhooks/{id}")))
            .header("Stripe-Signature", signature)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let refused = problem(response, 400, "invalid_request").await;
        assert!(refused["detail"].as_str().unwrap().contains(why), "{refused}");
    }
    assert_eq!(app.state.metrics.stripe_signature_failures.get(), failures + 3);
    let response = app
        .client
        .post(app.url("/api/v1/stripe/webhooks/sc_0192f3c4d5e6478fa1b2c3d4e5f60718"))
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(response, 404, "not_found").await;
    assert_eq!(kept_events(&app, &tenant, 0).await.len(), 4);

    // Disconnecting removes the endpoint at Stripe.
    json_of(app.as_key(Method::DELETE, "/api/v1/stripe/connection", &tenant.key).send().await.unwrap(), 200).await;
    let endpoints = at_stripe(&app, Method::GET, "/v1/webhook_endpoints", &secret, &[]).await;
    assert_eq!(endpoints["data"], json!([]));
}

#[tokio::test]
async fn a_key_that_may_not_create_webhook_endpoints_connects_without_one_and_says_why() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (_, restricted) = new_account(&app, &tenant, "Read Only Ltd").await;
    let connected = json_of(put(&app, &tenant.key, &restricted).await, 201).await;
    assert_eq!(connected["webhook_status"], "not_registered");
    assert!(connected["webhook_error"].as_str().unwrap().contains("Webhook Endpoints: write"), "{connected}");
    let id = connected["id"].as_str().unwrap();
    let response = app.client.post(app.url(&format!("/api/v1/stripe/webhooks/{id}"))).body("{}").send().await.unwrap();
    problem(response, 404, "not_found").await;
}

/// The tenant's Stripe payments, as the API lists them.
pub(crate) async fn listed_payments(app: &TestApp, key: &str) -> Vec<Value> {
    let page =
        json_of(app.as_key(Method::GET, "/api/v1/stripe/payments?limit=100", key).send().await.unwrap(), 200).await;
    page["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn stripe_payments_follow_stripes_events_with_fees_refunds_declines_and_disputes() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (secret, _) = new_account(&app, &tenant, "Payments Ltd").await;
    json_of(put(&app, &tenant.key, &secret).await, 201).await;

    let pay = |pm: &'static str, amount: &'static str| {
        [("amount", amount), ("currency", "gbp"), ("payment_method", pm), ("confirm", "true")]
    };
    let paid = at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay("pm_card_visa", "2500")).await;
    let base = app.state.stripe.base(false).to_owned();
    let declined = reqwest::Client::new()
        .post(format!("{base}/v1/payment_intents"))
        .bearer_auth(&secret)
        .form(&pay("pm_card_chargeDeclined", "700"))
        .send()
        .await
        .unwrap();
    assert_eq!(declined.status(), 402);
    at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay("pm_card_createDispute", "4000")).await;
    at_stripe(
        &app,
        Method::POST,
        "/v1/refunds",
        &secret,
        &[("payment_intent", paid["id"].as_str().unwrap()), ("amount", "500")],
    )
    .await;
    // charge.succeeded ×2, payment_intent.succeeded ×2, charge.failed, payment_intent.payment_failed,
    // charge.dispute.created, refund.created, charge.refunded.
    assert_eq!(kept_events(&app, &tenant, 9).await.len(), 9);
    crate::support::bank::drain(&app).await;

    let payments = listed_payments(&app, &tenant.key).await;
    assert_eq!(payments.len(), 3, "{payments:?}");
    let by_amount = |amount: i64| payments.iter().find(|p| p["amount"] == amount).unwrap().clone();
    let card = by_amount(2500);
    assert_eq!((card["status"].as_str(), card["currency"].as_str()), (Some("succeeded"), Some("GBP")));
    assert_eq!(
        (card["fee"].as_i64(), card["net"].as_i64(), card["amount_refunded"].as_i64()),
        (Some(103), Some(2397), Some(500))
    );
    assert_eq!(card["payment_intent_id"], paid["id"]);
    let failed = by_amount(700);
    assert_eq!(
        (failed["status"].as_str(), failed["failure_code"].as_str(), failed["fee"].clone()),
        (Some("failed"), Some("card_declined"), Value::Null)
    );
    assert_eq!(by_amount(4000)["disputed"], true);
    let one =
        app.as_key(Method::GET, &format!("/api/v1/stripe/payments/{}", card["id"].as_str().unwrap()), &tenant.key);
    assert_eq!(json_of(one.send().await.unwrap(), 200).await, card);
    let failed_only =
        app.as_key(Method::GET, "/api/v1/stripe/payments?status=failed", &tenant.key).send().await.unwrap();
    assert_eq!(json_of(failed_only, 200).await["data"].as_array().unwrap().len(), 1);
    problem(
        app.as_key(Method::GET, "/api/v1/stripe/payments?status=lost", &tenant.key).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;

    for (event_type, count) in [
        ("stripe_payment.succeeded", 2),
        ("stripe_payment.failed", 1),
        ("stripe_payment.refunded", 1),
        ("stripe_payment.disputed", 1),
    ] {
        assert_eq!(count_events(&app, &tenant, event_type).await, count, "{event_type}");
    }
    // Applying again (a redelivered event, a re-run job) changes nothing and emits nothing.
    let db = app.superuser_pool().await;
    sqlx::query("update stripe_events set applied_at = null where tenant_id = $1")
        .bind(&tenant.id)
        .execute(&db)
        .await
        .unwrap();
    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    let connection: String = sqlx::query_scalar("select id from stripe_connections where tenant_id = $1")
        .bind(&tenant.id)
        .fetch_one(&db)
        .await
        .unwrap();
    payymo::stripe::apply::run(&app.state, &tenant_id, &connection).await.unwrap();
    assert_eq!(listed_payments(&app, &tenant.key).await, payments);
    assert_eq!(count_events(&app, &tenant, "stripe_payment.succeeded").await, 2);

    // Another tenant sees none of them.
    let other = app.tenant().await;
    assert!(listed_payments(&app, &other.key).await.is_empty());
    let response =
        app.as_key(Method::GET, &format!("/api/v1/stripe/payments/{}", card["id"].as_str().unwrap()), &other.key);
    problem(response.send().await.unwrap(), 404, "not_found").await;
}

#[tokio::test]
async fn polling_catches_the_events_whose_webhooks_were_lost_and_keeps_none_twice() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (secret, _) = new_account(&app, &tenant, "Lossy Ltd").await;
    let connected = json_of(put(&app, &tenant.key, &secret).await, 201).await;
    let connection = connected["id"].as_str().unwrap().to_owned();
    let base = app.state.stripe.base(false).to_owned();
    let mode = |body: Value| {
        let url = format!("{base}/_stripe/webhooks/mode");
        async move { reqwest::Client::new().put(url).json(&body).send().await.unwrap() }
    };
    mode(json!({"drop": 100})).await;
    let pay = [("amount", "1200"), ("currency", "gbp"), ("payment_method", "pm_card_visa"), ("confirm", "true")];
    at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(kept_events(&app, &tenant, 0).await.is_empty(), "the webhooks were lost");

    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    assert_eq!(payymo::stripe::poll::run(&app.state, &tenant_id, &connection).await.unwrap(), 2);
    let db = app.superuser_pool().await;
    let sources: Vec<String> = sqlx::query_scalar("select source from stripe_events where tenant_id = $1")
        .bind(&tenant.id)
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(sources, ["poll", "poll"]);
    crate::support::bank::drain(&app).await;
    assert_eq!(listed_payments(&app, &tenant.key).await.len(), 1);
    assert_eq!(payymo::stripe::poll::run(&app.state, &tenant_id, &connection).await.unwrap(), 0, "nothing new");

    // Webhooks work again: what they bring is not kept again by the next poll, and what the
    // next poll brings first is not kept again by a late webhook.
    mode(json!({})).await;
    at_stripe(&app, Method::POST, "/v1/payment_intents", &secret, &pay).await;
    assert_eq!(kept_events(&app, &tenant, 4).await.len(), 4);
    assert_eq!(payymo::stripe::poll::run(&app.state, &tenant_id, &connection).await.unwrap(), 0);
    assert_eq!(kept_events(&app, &tenant, 0).await.len(), 4);
    crate::support::bank::drain(&app).await;
    assert_eq!(listed_payments(&app, &tenant.key).await.len(), 2);
    assert_eq!(count_events(&app, &tenant, "stripe_payment.succeeded").await, 2);
}

#[tokio::test]
async fn a_key_stripe_stops_taking_fails_the_connection_once_until_a_working_key_is_put() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (secret, _) = new_account(&app, &tenant, "Revoked Later Ltd").await;
    let connected = json_of(put(&app, &tenant.key, &secret).await, 201).await;
    let connection = connected["id"].as_str().unwrap().to_owned();
    control(&app, &format!("/_stripe/keys/{secret}/revoke"), json!({})).await;
    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    for _ in 0..2 {
        assert_eq!(payymo::stripe::poll::run(&app.state, &tenant_id, &connection).await.unwrap(), 0);
    }
    let shown =
        json_of(app.as_key(Method::GET, "/api/v1/stripe/connection", &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(shown["status"], "failed");
    assert!(shown["error"].as_str().unwrap().starts_with("Stripe refused the key"), "{shown}");
    assert_eq!(count_events(&app, &tenant, "stripe_connection.failed").await, 1, "once");

    control(&app, &format!("/_stripe/keys/{secret}/restore"), json!({})).await;
    let again = json_of(put(&app, &tenant.key, &secret).await, 200).await;
    assert_eq!(
        (again["id"].as_str(), again["status"].as_str(), again["error"].clone()),
        (Some(connection.as_str()), Some("connected"), Value::Null)
    );
}
