//! A tenant's own GoCardless credentials through the API, and how the client manages the
//! provider's tokens across instances (shared, renewed before expiry, renewed after a 401,
//! re-issued when the refresh token has run out). The provider is the project's simulator on its
//! own port, whose token counts show what the client did.

use payymo::{
    auth::{Environment, Plan},
    config::Config,
    sandbox::gocardless::{Clock, SandboxState, serve},
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{TestApp, TestCluster, json_of, problem, tenants::TestTenant, test_config};

/// A simulator standing in for the live GoCardless API.
struct LiveProvider {
    url: String,
    state: SandboxState,
    shutdown: CancellationToken,
}

impl LiveProvider {
    async fn start() -> LiveProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v2", listener.local_addr().unwrap());
        let state = SandboxState::new(11, Clock::system());
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, state.clone(), shutdown.clone()));
        LiveProvider { url, state, shutdown }
    }

    fn config(&self) -> Config {
        let mut config = test_config();
        config.gocardless_url = self.url.clone();
        config
    }

    /// Moves the provider's clock on, so its tokens age while ours (by our clock) do not.
    async fn advance(&self, seconds: i64) {
        let response = reqwest::Client::new()
            .post(format!("{}/_sandbox/clock/advance", self.url.trim_end_matches("/api/v2")))
            .json(&json!({ "seconds": seconds }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

impl Drop for LiveProvider {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn credentials(app: &TestApp, tenant: &TestTenant, method: Method, body: Option<Value>) -> reqwest::Response {
    let request = app.as_key(method, "/api/v1/provider_credentials/gocardless", &tenant.key);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

async fn institutions(app: &TestApp, tenant: &TestTenant, country: &str) -> reqwest::Response {
    app.as_key(Method::GET, &format!("/api/v1/institutions?country={country}"), &tenant.key).send().await.unwrap()
}

#[tokio::test]
async fn a_live_tenant_sets_checks_and_removes_its_own_credentials() {
    let provider = LiveProvider::start().await;
    let app = TestApp::spawn_with(provider.config(), TestCluster::get().await.fresh_database().await).await;
    let live = app.tenant_with(Environment::Live, Plan::Premium).await;

    // Nothing configured: said so, and bank calls say what to set.
    let none = json_of(credentials(&app, &live, Method::GET, None).await, 200).await;
    assert_eq!(none, json!({"provider": "gocardless", "source": "none", "secret_id_last4": null, "updated_at": null}));
    problem(institutions(&app, &live, "GB").await, 409, "provider_not_configured").await;

    // Malformed halves are named; refused ones are caught before anything is stored.
    let body = problem(
        credentials(&app, &live, Method::PUT, Some(json!({"secret_id": "", "secret_key": "has space"}))).await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["secret_id", "secret_key"]);
    let wrong = json!({"secret_id": "sandbox-secret-id", "secret_key": "not-the-key"});
    let body = problem(credentials(&app, &live, Method::PUT, Some(wrong)).await, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "secret_key");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("GoCardless refused"), "{body}");
    assert_eq!(json_of(credentials(&app, &live, Method::GET, None).await, 200).await["source"], "none");
    problem(institutions(&app, &live, "GB").await, 409, "provider_not_configured").await;

    // The right pair is checked, stored sealed, and used.
    let right = json!({"secret_id": "sandbox-secret-id", "secret_key": "sandbox-secret-key"});
    let response = credentials(&app, &live, Method::PUT, Some(right)).await;
    let text = response.text().await.unwrap();
    assert!(!text.contains("sandbox-secret-key") && !text.contains("sandbox-secret-id"), "{text}");
    let set: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(set["source"], "tenant", "{set}");
    assert_eq!(set["secret_id_last4"], "t-id");
    assert!(set["updated_at"].is_string());
    assert_eq!(json_of(credentials(&app, &live, Method::GET, None).await, 200).await, set);
    let banks = json_of(institutions(&app, &live, "GB").await, 200).await;
    assert!(banks.as_array().unwrap().iter().any(|b| b["id"] == "SANDBOXFINANCE_SFIN0000"), "{banks}");

    let superuser = app.superuser_pool().await;
    let (id_sealed, key_sealed): (String, String) =
        sqlx::query_as("select secret_id_sealed, secret_key_sealed from provider_credentials where tenant_id = $1")
            .bind(&live.id)
            .fetch_one(&superuser)
            .await
            .unwrap();
    assert!(!id_sealed.contains("sandbox") && !key_sealed.contains("sandbox"));
    assert_ne!(id_sealed, key_sealed);

    // Audited, without the secrets.
    let audit: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "select action, resource_type, detail::text from audit_logs where tenant_id = $1 and action like 'PUT %' order by seq",
    )
    .bind(&live.id)
    .fetch_all(&superuser)
    .await
    .unwrap();
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert_eq!(audit[2].0, "PUT /api/v1/provider_credentials/gocardless");
    assert_eq!(audit[2].1.as_deref(), Some("provider_credentials"));
    assert!(audit.iter().all(|(_, _, detail)| !detail.contains("sandbox-secret")));

    // A read-only key sees the state but cannot change it.
    let reader = app.key(&live, &["bank_connections:read"]).await;
    let readonly = TestTenant { key: reader, ..live.clone() };
    assert_eq!(json_of(credentials(&app, &readonly, Method::GET, None).await, 200).await["source"], "tenant");
    problem(credentials(&app, &readonly, Method::DELETE, None).await, 403, "insufficient_scope").await;

    // Removing falls back to the deployment's (none here); removing again is harmless.
    let after = json_of(credentials(&app, &live, Method::DELETE, None).await, 200).await;
    assert_eq!(after["source"], "none");
    assert_eq!(json_of(credentials(&app, &live, Method::DELETE, None).await, 200).await["source"], "none");
    problem(institutions(&app, &live, "DE").await, 409, "provider_not_configured").await;

    // Test-mode tenants always use the sandbox.
    let test = app.tenant_with(Environment::Test, Plan::Premium).await;
    assert_eq!(json_of(credentials(&app, &test, Method::GET, None).await, 200).await["source"], "sandbox");
    let right = json!({"secret_id": "sandbox-secret-id", "secret_key": "sandbox-secret-key"});
    let body = problem(credentials(&app, &test, Method::PUT, Some(right)).await, 409, "conflict").await;
    assert!(body["detail"].as_str().unwrap().contains("test-mode"), "{body}");
}

#[tokio::test]
async fn another_tenants_credentials_are_neither_seen_nor_used() {
    let provider = LiveProvider::start().await;
    let app = TestApp::spawn_with(provider.config(), TestCluster::get().await.fresh_database().await).await;
    let a = app.tenant_with(Environment::Live, Plan::Premium).await;
    let b = app.tenant_with(Environment::Live, Plan::Premium).await;
    let right = json!({"secret_id": "sandbox-secret-id", "secret_key": "sandbox-secret-key"});
    json_of(credentials(&app, &a, Method::PUT, Some(right)).await, 200).await;

    assert_eq!(json_of(credentials(&app, &b, Method::GET, None).await, 200).await["source"], "none");
    problem(institutions(&app, &b, "GB").await, 409, "provider_not_configured").await;
    // B removing "its" credentials leaves A's in place.
    json_of(credentials(&app, &b, Method::DELETE, None).await, 200).await;
    assert_eq!(json_of(credentials(&app, &a, Method::GET, None).await, 200).await["source"], "tenant");
    json_of(institutions(&app, &a, "GB").await, 200).await;
}

#[tokio::test]
async fn provider_tokens_are_shared_by_instances_and_renewed_as_they_age() {
    let provider = LiveProvider::start().await;
    let options = TestCluster::get().await.fresh_database().await;
    let first = TestApp::spawn_with(provider.config(), options.clone()).await;
    let tenant = first.tenant_with(Environment::Live, Plan::Premium).await;
    let right = json!({"secret_id": "sandbox-secret-id", "secret_key": "sandbox-secret-key"});
    json_of(credentials(&first, &tenant, Method::PUT, Some(right)).await, 200).await;
    json_of(institutions(&first, &tenant, "GB").await, 200).await;
    // Checking the credentials obtained the one token pair; the call after it reused it.
    assert_eq!(provider.state.tokens_issued(), (1, 1));

    // Another instance uses the pair the first stored, without asking for its own.
    let second = TestApp::spawn_with(provider.config(), options.clone()).await;
    json_of(institutions(&second, &tenant, "GB").await, 200).await;
    assert_eq!(provider.state.tokens_issued(), (1, 1));

    // Within five minutes of expiry, the next instance to need it refreshes it (a new access
    // token, the same refresh token) and shares the renewed one.
    let superuser = first.superuser_pool().await;
    sqlx::query("update provider_tokens set access_expires_at = now() + interval '4 minutes'")
        .execute(&superuser)
        .await
        .unwrap();
    let third = TestApp::spawn_with(provider.config(), options.clone()).await;
    json_of(institutions(&third, &tenant, "GB").await, 200).await;
    assert_eq!(provider.state.tokens_issued(), (2, 1));
    let hours_left: f64 =
        sqlx::query_scalar("select extract(epoch from access_expires_at - now())::float8 / 3600 from provider_tokens")
            .fetch_one(&superuser)
            .await
            .unwrap();
    assert!(hours_left > 23.0, "the refreshed token lives a day: {hours_left}");

    // The provider's clock passes a day: it refuses the access token (401). The client renews it
    // once, with the refresh token, and the call goes through.
    provider.advance(25 * 3600).await;
    json_of(institutions(&third, &tenant, "DE").await, 200).await;
    assert_eq!(provider.state.tokens_issued(), (3, 1));

    // A month on, the refresh token has run out as well: a new pair is obtained.
    provider.advance(31 * 86_400).await;
    json_of(institutions(&third, &tenant, "FR").await, 200).await;
    assert_eq!(provider.state.tokens_issued(), (4, 2));
    // And the other instances pick the new pair up from the database once theirs is refused.
    json_of(institutions(&first, &tenant, "ES").await, 200).await;
    assert_eq!(provider.state.tokens_issued(), (4, 2));
}
