//! Connecting a Stripe account with Stripe Connect OAuth, over the real server and the in-process
//! Stripe simulator's platform: the authorize URL with its signed state, the simulator's consent,
//! the callback that exchanges the code and connects the account as a key would be; refusals,
//! altered, expired and reused states and codes, tenants kept apart, and deauthorization.

use reqwest::{Method, Url, redirect::Policy};
use serde_json::{Value, json};

use crate::support::{TestApp, json_of, problem, tenants::TestTenant, test_config};

const RETURN_URL: &str = "https://portal.example.com/stripe/done?tab=2";

/// A client that shows redirects instead of following them, as a test of a browser's journey.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(Policy::none()).build().unwrap()
}

/// `GET /api/v1/stripe/connect?{query}`, answered 200.
async fn authorization(app: &TestApp, key: &str, query: &str) -> Value {
    json_of(app.as_key(Method::GET, &format!("/api/v1/stripe/connect?{query}"), key).send().await.unwrap(), 200).await
}

/// Where a 302 or 303 sends the browser.
fn location(response: &reqwest::Response, status: u16) -> Url {
    assert_eq!(response.status().as_u16(), status);
    Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Follows the authorize URL (with `extra` sandbox parameters) to where Stripe sends the browser.
async fn consent(url: &str, extra: &str) -> Url {
    location(&browser().get(format!("{url}{extra}")).send().await.unwrap(), 302)
}

/// The simulator's control API.
async fn control(app: &TestApp, path: &str, body: Value) -> Value {
    let base = app.state.stripe.base(false).to_owned();
    let response = reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}");
    response.json().await.unwrap()
}

/// A call to the simulator's API with `key`; answers the status and the body.
async fn at_stripe(app: &TestApp, method: Method, path: &str, key: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let base = app.state.stripe.base(false).to_owned();
    let request = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(key);
    let request = if form.is_empty() { request } else { request.form(form) };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A simulated account the Stripe user owns: (its id, its own secret key).
async fn stripe_user(app: &TestApp, name: &str) -> (String, String) {
    let account = control(app, "/_stripe/accounts", json!({"name": name})).await;
    (account["id"].as_str().unwrap().to_owned(), account["secret_key"].as_str().unwrap().to_owned())
}

async fn count_events(app: &TestApp, tenant: &TestTenant, event_type: &str) -> i64 {
    sqlx::query_scalar("select count(*) from events where tenant_id = $1 and event_type = $2")
        .bind(&tenant.id)
        .bind(event_type)
        .fetch_one(&app.superuser_pool().await)
        .await
        .unwrap()
}

/// The tenant's connection's access token, opened (as Payymo would to call Stripe).
async fn access_token(app: &TestApp, tenant: &TestTenant) -> String {
    let sealed: String = sqlx::query_scalar("select key_sealed from stripe_connections where tenant_id = $1")
        .bind(&tenant.id)
        .fetch_one(&app.superuser_pool().await)
        .await
        .unwrap();
    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    let key = payymo::stripe::connection::key_of(&sealed, app.state.keys.get().await.unwrap(), &tenant_id).unwrap();
    secrecy::ExposeSecret::expose_secret(&key).to_owned()
}

async fn connection(app: &TestApp, key: &str) -> reqwest::Response {
    app.as_key(Method::GET, "/api/v1/stripe/connection", key).send().await.unwrap()
}

#[tokio::test]
async fn a_platform_connects_an_account_with_oauth_and_it_then_works_as_a_key_would() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (account, own_key) = stripe_user(&app, "OAuth Widgets Ltd").await;
    let query = format!("scope=read_write&backfill_from=2026-06-01&return_url={}", urlencode(RETURN_URL));
    let started = authorization(&app, &tenant.key, &query).await;
    let url = started["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/oauth/authorize?", app.state.stripe.base(false))), "{url}");
    let authorize = Url::parse(url).unwrap();
    assert_eq!(param(&authorize, "client_id").as_deref(), Some(payymo::sandbox::stripe::DEFAULT_CLIENT_ID));
    assert_eq!(param(&authorize, "state").as_deref(), started["state"].as_str());
    assert_eq!(param(&authorize, "redirect_uri").unwrap(), app.url("/api/v1/stripe/connect/callback"));
    let expires: chrono::DateTime<chrono::Utc> = started["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((expires - chrono::Utc::now()).num_seconds().abs_diff(600) < 30, "{expires}");

    let back = consent(url, &format!("&sandbox_account={account}")).await;
    assert!(param(&back, "code").unwrap().starts_with("ac_"));
    assert_eq!(
        (param(&back, "scope").as_deref(), param(&back, "state")),
        (Some("read_write"), param(&authorize, "state"))
    );
    let done = location(&browser().get(back.clone()).send().await.unwrap(), 303);
    assert_eq!(done.as_str().split('&').next(), Some("https://portal.example.com/stripe/done?tab=2"));
    assert_eq!(param(&done, "stripe").as_deref(), Some("connected"));

    let connected = json_of(connection(&app, &tenant.key).await, 200).await;
    assert_eq!(param(&done, "stripe_connection_id").as_deref(), connected["id"].as_str());
    assert_eq!((connected["method"].as_str(), connected["status"].as_str()), (Some("oauth"), Some("connected")));
    assert_eq!(connected["backfill"]["since"], "2026-06-01T00:00:00Z", "the history from the day asked for");
    assert_eq!(
        (connected["account_id"].as_str(), connected["account_name"].as_str()),
        (Some(account.as_str()), Some("OAuth Widgets Ltd"))
    );
    assert_eq!(
        (connected["key_kind"].as_str(), connected["webhook_status"].as_str()),
        (Some("secret"), Some("registered"))
    );
    let id = connected["id"].as_str().unwrap().to_owned();
    let (_, endpoints) = at_stripe(&app, Method::GET, "/v1/webhook_endpoints", &own_key, &[]).await;
    assert!(endpoints["data"][0]["url"].as_str().unwrap().ends_with(&format!("/api/v1/stripe/webhooks/{id}")));
    assert_eq!(count_events(&app, &tenant, "stripe_connection.connected").await, 1);

    // Reloading the callback page is harmless: the code is not sent to Stripe again.
    let again = location(&browser().get(back).send().await.unwrap(), 303);
    assert_eq!(again, done);
    assert_eq!(count_events(&app, &tenant, "stripe_connection.connected").await, 1);

    // Payments made at the account reach Payymo through the endpoint and the access token.
    let pay = [("amount", "4200"), ("currency", "gbp"), ("payment_method", "pm_card_visa"), ("confirm", "true")];
    assert_eq!(at_stripe(&app, Method::POST, "/v1/payment_intents", &own_key, &pay).await.0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let payments = loop {
        crate::support::bank::drain(&app).await;
        let page = app.as_key(Method::GET, "/api/v1/stripe/payments", &tenant.key).send().await.unwrap();
        let page = json_of(page, 200).await;
        if page["data"].as_array().unwrap().len() == 1 || std::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(payments["data"][0]["amount"], 4200, "{payments}");

    // Disconnecting removes the endpoint and deauthorizes the platform: the token stops working.
    let token = access_token(&app, &tenant).await;
    assert_eq!(at_stripe(&app, Method::GET, "/v1/account", &token, &[]).await.0, 200);
    let gone = app.as_key(Method::DELETE, "/api/v1/stripe/connection", &tenant.key).send().await.unwrap();
    assert_eq!(json_of(gone, 200).await["status"], "disconnected");
    let (status, refused) = at_stripe(&app, Method::GET, "/v1/account", &token, &[]).await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(at_stripe(&app, Method::GET, "/v1/webhook_endpoints", &own_key, &[]).await.1["data"], json!([]));
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn refused_consent_altered_or_expired_states_and_bad_codes_are_clear_errors_and_keep_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let with_return = format!("return_url={}", urlencode(RETURN_URL));

    // The account holder refuses: back to the return_url with the reason, or a problem.
    let url = authorization(&app, &tenant.key, &with_return).await["url"].as_str().unwrap().to_owned();
    let back = consent(&url, "&sandbox_consent=deny").await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    let done = location(&browser().get(back).send().await.unwrap(), 303);
    assert_eq!(
        (param(&done, "stripe").as_deref(), param(&done, "error").as_deref()),
        (Some("error"), Some("access_denied"))
    );
    assert!(param(&done, "detail").unwrap().contains("declined to connect"), "{done}");
    control(&app, "/_stripe/oauth/refuse", json!({"count": 1})).await;
    let url = authorization(&app, &tenant.key, "").await["url"].as_str().unwrap().to_owned();
    let back = consent(&url, "").await;
    let body = problem(browser().get(back).send().await.unwrap(), 400, "invalid_request").await;
    assert!(body["detail"].as_str().unwrap().contains("declined to connect"), "{body}");

    // An altered state is refused, and where it says to go is not trusted.
    let started = authorization(&app, &tenant.key, &with_return).await;
    let state = started["state"].as_str().unwrap();
    let (payload, tag) = state.split_once('.').unwrap();
    let last = if payload.ends_with('A') { "B" } else { "A" };
    let altered = format!("{}{last}.{tag}", &payload[..payload.len() - 1]);
    let callback = |query: String| {
        let url = app.url(&format!("/api/v1/stripe/connect/callback?{query}"));
        async move { browser().get(url).send().await.unwrap() }
    };
    for query in [format!("code=ac_x&state={altered}"), "code=ac_x".to_owned(), format!("code=ac_x&state={payload}")] {
        let body = problem(callback(query).await, 400, "invalid_request").await;
        assert!(body["detail"].as_str().unwrap().contains("state"), "{body}");
    }

    // An expired one sends the browser back saying so.
    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    let eleven_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(11);
    let test = payymo::auth::Environment::Test;
    let (old, _) = payymo::stripe::oauth::sign_state(
        &app.state,
        &tenant_id,
        test,
        "read_only",
        Some(RETURN_URL.into()),
        None,
        eleven_minutes_ago,
    )
    .await
    .unwrap();
    let done = location(&callback(format!("code=ac_x&state={old}")).await, 303);
    assert_eq!(param(&done, "error").as_deref(), Some("expired_state"));
    let (old, _) =
        payymo::stripe::oauth::sign_state(&app.state, &tenant_id, test, "read_only", None, None, eleven_minutes_ago)
            .await
            .unwrap();
    let body = problem(callback(format!("code=ac_x&state={old}")).await, 400, "invalid_request").await;
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");

    // A code Stripe never gave, or one that expired before it was exchanged.
    let state = authorization(&app, &tenant.key, "").await["state"].as_str().unwrap().to_owned();
    let body = problem(callback(format!("code=ac_NoSuchCode&state={state}")).await, 400, "invalid_request").await;
    assert!(body["detail"].as_str().unwrap().contains("does not exist"), "{body}");
    let url = authorization(&app, &tenant.key, "").await["url"].as_str().unwrap().to_owned();
    let back = consent(&url, "").await;
    control(&app, "/_stripe/clock/advance", json!({"seconds": payymo::sandbox::stripe::CODE_LIFETIME + 1})).await;
    let body = problem(browser().get(back).send().await.unwrap(), 400, "invalid_request").await;
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");

    problem(connection(&app, &tenant.key).await, 404, "not_found").await;
    assert_eq!(count_events(&app, &tenant, "stripe_connection.connected").await, 0);
}

#[tokio::test]
async fn a_code_used_twice_is_refused_and_stripe_revokes_what_it_gave() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let url = authorization(&app, &tenant.key, "scope=read_write").await["url"].as_str().unwrap().to_owned();
    let back = consent(&url, "").await;
    let connected = json_of(browser().get(back.clone()).send().await.unwrap(), 201).await;
    assert_eq!(connected["method"], "oauth");
    let token = access_token(&app, &tenant).await;
    assert_eq!(at_stripe(&app, Method::GET, "/v1/account", &token, &[]).await.0, 200);

    // The same code under a new state (not a reload: a second authorization) is sent to Stripe.
    let state = authorization(&app, &tenant.key, "").await["state"].as_str().unwrap().to_owned();
    let code = param(&back, "code").unwrap();
    let reused = app.url(&format!("/api/v1/stripe/connect/callback?code={code}&state={state}"));
    let body = problem(browser().get(reused).send().await.unwrap(), 400, "invalid_request").await;
    assert!(body["detail"].as_str().unwrap().contains("already been used"), "{body}");
    assert_eq!(at_stripe(&app, Method::GET, "/v1/account", &token, &[]).await.0, 401, "revoked by Stripe");
}

#[tokio::test]
async fn a_state_names_its_tenant_and_a_read_only_grant_connects_without_an_endpoint() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant().await, app.tenant().await);
    let started = authorization(&app, &a.key, "").await;
    let back = consent(started["url"].as_str().unwrap(), "").await;

    // B rewrites A's state to name itself: no longer signed, refused.
    let (payload, tag) = started["state"].as_str().unwrap().split_once('.').unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&base64::Engine::decode(&b64, payload).unwrap()).unwrap();
    claims["t"] = json!(b.id);
    let forged = format!("{}.{tag}", base64::Engine::encode(&b64, claims.to_string()));
    let mut as_b = back.clone();
    as_b.query_pairs_mut().clear().append_pair("code", &param(&back, "code").unwrap()).append_pair("state", &forged);
    problem(browser().get(as_b).send().await.unwrap(), 400, "invalid_request").await;

    // A's own callback connects A, never B; read_only gives a read-only key and no endpoint.
    let connected = json_of(browser().get(back).send().await.unwrap(), 201).await;
    assert_eq!(
        (connected["key_kind"].as_str(), connected["webhook_status"].as_str()),
        (Some("restricted"), Some("not_registered"))
    );
    assert!(connected["webhook_error"].as_str().unwrap().contains("scope=read_write"), "{connected}");
    assert_eq!(json_of(connection(&app, &a.key).await, 200).await["id"], connected["id"]);
    problem(connection(&app, &b.key).await, 404, "not_found").await;
}

#[tokio::test]
async fn bad_parameters_are_named_scopes_enforced_and_live_tenants_need_a_platform() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    for (query, field) in [
        ("scope=admin", "scope"),
        ("return_url=ftp%3A%2F%2Fx", "return_url"),
        ("nope=1", "nope"),
        ("backfill_from=2099-01-01", "backfill_from"),
    ] {
        let response = app.as_key(Method::GET, &format!("/api/v1/stripe/connect?{query}"), &tenant.key);
        let body = problem(response.send().await.unwrap(), 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
    let reader = app.key(&tenant, &["stripe:read"]).await;
    problem(
        app.as_key(Method::GET, "/api/v1/stripe/connect", &reader).send().await.unwrap(),
        403,
        "insufficient_scope",
    )
    .await;
    let live = app.tenant_with(payymo::auth::Environment::Live, payymo::auth::Plan::Premium).await;
    let body = problem(
        app.as_key(Method::GET, "/api/v1/stripe/connect", &live.key).send().await.unwrap(),
        409,
        "provider_not_configured",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("STRIPE_CONNECT_CLIENT_ID"), "{body}");

    // With a live platform configured, live tenants are sent to Stripe's Connect host.
    let mut config = test_config();
    config.stripe_connect_url = "https://connect.stripe.test".into();
    config.stripe_platform = Some(payymo::config::StripePlatform {
        client_id: "ca_LivePlatform123".into(),
        secret_key: secrecy::SecretString::from("sk_live_51LivePlatformKey0123456789".to_owned()),
    });
    let app = TestApp::spawn_with(config, crate::support::TestCluster::get().await.fresh_database().await).await;
    let live = app.tenant_with(payymo::auth::Environment::Live, payymo::auth::Plan::Premium).await;
    let url = authorization(&app, &live.key, "").await["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://connect.stripe.test/oauth/authorize?"), "{url}");
    assert_eq!(param(&Url::parse(&url).unwrap(), "client_id").as_deref(), Some("ca_LivePlatform123"));
}

#[tokio::test]
async fn a_stripe_outage_after_the_exchange_keeps_nothing_and_leaves_no_grant() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (account, own_key) = stripe_user(&app, "Outage Ltd").await;
    let query = format!("scope=read_write&return_url={}", urlencode(RETURN_URL));
    let url = authorization(&app, &tenant.key, &query).await["url"].as_str().unwrap().to_owned();
    let back = consent(&url, &format!("&sandbox_account={account}")).await;
    control(&app, "/_stripe/faults", json!({"status": 503, "count": 3, "path": "/v1/account"})).await;
    let done = location(&browser().get(back.clone()).send().await.unwrap(), 303);
    assert_eq!(
        (param(&done, "stripe").as_deref(), param(&done, "error").as_deref()),
        (Some("error"), Some("unavailable"))
    );
    problem(connection(&app, &tenant.key).await, 404, "not_found").await;
    let (_, events) = at_stripe(&app, Method::GET, "/v1/events", &own_key, &[]).await;
    let types: Vec<&str> = events["data"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(types.contains(&"account.application.deauthorized"), "{types:?}");
    // The page reloaded: this authorization is spent, and says so.
    let again = location(&browser().get(back).send().await.unwrap(), 303);
    assert_eq!(param(&again, "error").as_deref(), Some("already_used"));
}
