//! Credentials end to end: API keys (use, expiry, revocation, rotation, environments, IP
//! allow-lists, revocation across instances), OAuth2 client credentials, access tokens (JWT) and
//! user sessions, all against the real server and database.

use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use payymo::{
    auth::{
        Environment, Plan,
        jwt::{AUDIENCE, Claims, ISSUER, JwtKeys},
        keys,
    },
    domain::{ids::ApiKeyId, scope::Role, secret::sha256},
};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::{
    TestApp, TestCluster, problem,
    tenants::{PASSWORD, TestTenant},
    test_config,
};

const MISSING: &str =
    "authentication required: send an API key (Authorization: Bearer sk_... or X-API-Key) or an access token";
const MALFORMED: &str = "the credential is malformed";
const UNKNOWN: &str = "the API key is not valid";
const EXPIRED: &str = "the credential has expired";
const REVOKED: &str = "the credential has been revoked";
const INVALID_LOGIN: &str = "the email, password or tenant is not right";

/// The JWT signing secret of apps spawned with [`known_secret_config`].
const JWT_SECRET: &str = "jwt-secret-for-tests-0123456789-abcdefghij";

fn short_cache_config() -> payymo::config::Config {
    let mut config = test_config();
    config.credential_cache_ttl = Duration::from_secs(1);
    config
}

fn known_secret_config() -> payymo::config::Config {
    let mut config = test_config();
    config.jwt_secret = Some(SecretString::from(JWT_SECRET.to_owned()));
    config
}

async fn me(app: &TestApp, credential: &str) -> reqwest::Response {
    app.as_key(Method::GET, "/api/v1/me", credential).send().await.unwrap()
}

/// `GET /me` succeeds with `credential`; returns the body.
async fn me_ok(app: &TestApp, credential: &str) -> Value {
    let response = me(app, credential).await;
    assert_eq!(response.status(), 200, "GET /me with a valid credential");
    response.json().await.unwrap()
}

/// Asserts a 401 `unauthenticated` with the RFC 6750 challenge, and that both say `detail`.
async fn refused(response: reqwest::Response, detail: &str) -> Value {
    let header = response.headers().get("www-authenticate").expect("a 401 carries WWW-Authenticate").clone();
    let challenge = String::from_utf8_lossy(header.as_bytes()).into_owned();
    assert!(challenge.starts_with(r#"Bearer realm="payymo", error="invalid_token""#), "{challenge}");
    // The challenge says why (checked word for word when the reason is plain ASCII; see below).
    assert!(challenge.contains(r#"error_description=""#), "{challenge}");
    if detail.is_ascii() {
        let description = format!(r#"error_description="{}""#, detail.replace('"', "'"));
        assert!(challenge.contains(&description), "the challenge says why: {challenge}");
    }
    let body = problem(response, 401, "unauthenticated").await;
    assert_eq!(body["detail"], detail, "{body}");
    // RFC 6750 §3: error_description is limited to printable ASCII (%x20-21 / %x23-5B / %x5D-7E),
    // which is also all that clients can read back as a header string.
    assert!(
        header.as_bytes().iter().all(|b| (0x20..=0x7e).contains(b)),
        "WWW-Authenticate must be printable ASCII (RFC 6750 §3), got {challenge:?}"
    );
    body
}

/// `POST /api/v1/api_keys` with `credential`, expecting 201; returns the key with its secret.
async fn create_key(app: &TestApp, credential: &str, body: Value) -> Value {
    let response = app.as_key(Method::POST, "/api/v1/api_keys", credential).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "create key {body}");
    response.json().await.unwrap()
}

async fn get_key(app: &TestApp, tenant: &TestTenant, id: &str) -> Value {
    let response = app.as_key(Method::GET, &format!("/api/v1/api_keys/{id}"), &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn secret_of(key: &Value) -> String {
    key["secret"].as_str().expect("a secret").to_owned()
}

/// Calls `probe` every 100 ms until it answers `status` or `within` passes; returns that response
/// and how long it took.
async fn poll_until<F, Fut>(within: Duration, status: u16, mut probe: F) -> (reqwest::Response, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let started = Instant::now();
    loop {
        let response = probe().await;
        if response.status().as_u16() == status || started.elapsed() > within {
            return (response, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// --- API keys ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_key_works_as_bearer_and_as_x_api_key() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (id, key) = app.key_with_id(&tenant, &["api_keys:read"]).await;
    assert!(key.starts_with("sk_test_") && key.len() == "sk_test_".len() + 40, "{key}");
    assert_eq!(keys::parse(&key), Some(Environment::Test));

    let bearer = app.client.get(app.url("/api/v1/me")).header("authorization", format!("Bearer {key}"));
    let x_api_key = app.client.get(app.url("/api/v1/me")).header("x-api-key", &key);
    for request in [bearer, x_api_key] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["tenant_id"], tenant.id.as_str(), "{body}");
        assert_eq!(body["environment"], "test", "{body}");
        assert_eq!(body["actor_type"], "api_key", "{body}");
        assert_eq!(body["actor_id"], id.as_str(), "{body}");
        assert_eq!(body["scopes"], json!(["api_keys:read"]), "{body}");
        assert_eq!(body["user"], Value::Null, "{body}");
        assert_eq!(body["memberships"], json!([]), "{body}");
    }

    // The key does what its scope allows, and no more.
    let response = app.client.get(app.url("/api/v1/api_keys")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .as_key(Method::POST, "/api/v1/api_keys", &key)
        .json(&json!({"label": "x", "scopes": ["api_keys:read"]}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 403, "insufficient_scope").await;
    assert_eq!(body["required_scope"], "api_keys:write", "{body}");
}

#[tokio::test]
async fn missing_malformed_and_unknown_credentials_are_401_with_a_challenge() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;

    let cases: &[(&str, &str, &str)] = &[
        ("authorization", "Bearer sk_test_short", MALFORMED),
        ("x-api-key", "sk_test_short", MALFORMED),
        ("authorization", "Bearer garbage", MALFORMED),
        ("authorization", "Bearer ", MALFORMED),
        ("authorization", "Basic xyz", MALFORMED),
        ("authorization", &format!("Basic {}", tenant.key), MALFORMED),
        ("authorization", "Bearer not.a.jwt", "the access token is malformed"),
    ];
    for (header, value, detail) in cases {
        let response = app.client.get(app.url("/api/v1/me")).header(*header, *value).send().await.unwrap();
        refused(response, detail).await;
    }

    // Shaped like our keys, but never issued: unknown, in either environment.
    for environment in [Environment::Test, Environment::Live] {
        refused(me(&app, &keys::generate(environment).secret).await, UNKNOWN).await;
    }
    // One character off a real key is just as unknown.
    let mut tampered = tenant.key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    refused(me(&app, &tampered).await, UNKNOWN).await;

    let me = me_ok(&app, &tenant.key).await;
    // An integration labels its connection with the tenant's name and mode.
    assert_eq!((me["tenant_name"].as_str(), me["environment"].as_str()), (Some("Acme Ltd"), Some("test")), "{me}");

    // No credential at all, on any protected route.
    refused(app.get("/api/v1/me").await, MISSING).await;
    refused(app.client.get(app.url("/api/v1/api_keys")).send().await.unwrap(), MISSING).await;
}

#[tokio::test]
async fn an_expired_key_is_refused_and_the_failure_is_audited() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let expires_at = Utc::now() + chrono::Duration::seconds(2);
    let key = create_key(
        &app,
        &tenant.key,
        json!({"label": "short-lived", "scopes": ["api_keys:read"], "expires_at": expires_at.to_rfc3339()}),
    )
    .await;
    let secret = secret_of(&key);
    me_ok(&app, &secret).await;

    let wait = (expires_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(200);
    tokio::time::sleep(wait).await;
    refused(me(&app, &secret).await, EXPIRED).await;

    // A failure of a recognised credential lands in its tenant's audit log.
    let response = app.as_key(Method::GET, "/api/v1/audit_logs?action=auth.failed", &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    let entry = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["credential_id"] == key["id"])
        .unwrap_or_else(|| panic!("no auth.failed entry for the key: {page}"));
    assert_eq!(entry["outcome"], "denied", "{entry}");
    assert_eq!(entry["status"], 401, "{entry}");
    assert_eq!(entry["detail"]["reason"], EXPIRED, "{entry}");
}

#[tokio::test]
async fn an_expiry_set_behind_the_apps_back_is_honoured() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (id, key) = app.key_with_id(&tenant, &["api_keys:read"]).await;
    // Expired before it was ever used (so it is not in the credential cache).
    let mut conn = PgConnection::connect_with(app.superuser.as_ref().unwrap()).await.unwrap();
    sqlx::query("update api_keys set expires_at = now() - interval '1 minute' where id = $1")
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    refused(me(&app, &key).await, EXPIRED).await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_on_the_instance_that_revoked_it() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (id, key) = app.key_with_id(&tenant, &["api_keys:read"]).await;
    me_ok(&app, &key).await; // now cached

    let path = format!("/api/v1/api_keys/{id}/revoke");
    let response = app.as_key(Method::POST, &path, &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let revoked: Value = response.json().await.unwrap();
    assert_eq!(revoked["id"], id.as_str());
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert!(revoked.get("secret").is_none(), "{revoked}");

    refused(me(&app, &key).await, REVOKED).await;

    // Revoking again changes nothing.
    let response = app.as_key(Method::POST, &path, &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);

    // Rotating a revoked key is a conflict.
    let response =
        app.as_key(Method::POST, &format!("/api/v1/api_keys/{id}/rotate"), &tenant.key).send().await.unwrap();
    problem(response, 409, "conflict").await;
    refused(me(&app, &key).await, REVOKED).await;
}

#[tokio::test]
async fn rotating_with_no_overlap_retires_the_old_key_at_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (old_id, old_key) = app.key_with_id(&tenant, &["api_keys:read"]).await;
    me_ok(&app, &old_key).await; // cached

    let path = format!("/api/v1/api_keys/{old_id}/rotate");
    let response =
        app.as_key(Method::POST, &path, &tenant.key).json(&json!({"overlap_seconds": 0})).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let new: Value = response.json().await.unwrap();
    let new_key = secret_of(&new);
    assert_ne!(new["id"], old_id.as_str());
    assert_ne!(new_key, old_key);
    assert_eq!(new["scopes"], json!(["api_keys:read"]), "{new}");
    assert_eq!(new["label"], "fixture", "{new}");

    refused(me(&app, &old_key).await, EXPIRED).await;
    let body = me_ok(&app, &new_key).await;
    assert_eq!(body["actor_id"], new["id"]);

    let old = get_key(&app, &tenant, &old_id).await;
    assert_eq!(old["rotated_to"], new["id"], "{old}");

    // The old key was rotated already: rotate its successor instead.
    let response = app.as_key(Method::POST, &path, &tenant.key).send().await.unwrap();
    problem(response, 409, "conflict").await;
}

#[tokio::test]
async fn rotating_with_the_default_overlap_keeps_both_keys_working() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (old_id, old_key) = app.key_with_id(&tenant, &["api_keys:read"]).await;

    // Over 30 days of overlap is refused.
    let path = format!("/api/v1/api_keys/{old_id}/rotate");
    let response = app
        .as_key(Method::POST, &path, &tenant.key)
        .json(&json!({"overlap_seconds": 30 * 86_400 + 1}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "overlap_seconds", "{body}");

    let response = app.as_key(Method::POST, &path, &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let new: Value = response.json().await.unwrap();
    let new_key = secret_of(&new);

    assert_eq!(me_ok(&app, &old_key).await["actor_id"], old_id.as_str());
    assert_eq!(me_ok(&app, &new_key).await["actor_id"], new["id"]);

    // The old key now ends after the default overlap of 24 hours; the new one never does.
    let old = get_key(&app, &tenant, &old_id).await;
    let ends: chrono::DateTime<Utc> = old["expires_at"].as_str().unwrap().parse().unwrap();
    let overlap = ends - Utc::now();
    assert!(
        overlap > chrono::Duration::hours(24) - chrono::Duration::minutes(1) && overlap <= chrono::Duration::hours(24),
        "{old}"
    );
    assert_eq!(new["expires_at"], Value::Null, "{new}");
}

#[tokio::test]
async fn a_test_key_stored_for_a_live_tenant_is_refused() {
    let app = TestApp::spawn().await;
    let live = app.tenant_with(Environment::Live, Plan::Premium).await;
    assert!(live.key.starts_with("sk_live_"), "{}", live.key);
    assert_eq!(me_ok(&app, &live.key).await["environment"], "live");

    let forged = keys::generate(Environment::Test);
    let id = ApiKeyId::generate();
    let mut conn = PgConnection::connect_with(app.superuser.as_ref().unwrap()).await.unwrap();
    sqlx::query(
        "insert into api_keys (tenant_id, id, label, scopes, key_hash, key_prefix) values ($1, $2, 'forged', '{*}', $3, $4)",
    )
    .bind(&live.id)
    .bind(id.as_str())
    .bind(sha256(&forged.secret))
    .bind(&forged.prefix)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    refused(me(&app, &forged.secret).await, "the API key's environment does not match its tenant's").await;
}

#[tokio::test]
async fn ip_allow_lists_admit_only_their_networks() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;

    let elsewhere = create_key(
        &app,
        &tenant.key,
        json!({"label": "office", "scopes": ["api_keys:read"], "allowed_networks": ["203.0.113.0/24"]}),
    )
    .await;
    let response = me(&app, &secret_of(&elsewhere)).await;
    assert!(response.headers().get("www-authenticate").is_none(), "a 403 is not a challenge");
    let body = problem(response, 403, "ip_not_allowed").await;
    assert_eq!(body["detail"], "this API key may not be used from this IP address");
    // X-Forwarded-For from an untrusted peer is not believed.
    let response = app
        .as_key(Method::GET, "/api/v1/me", &secret_of(&elsewhere))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    problem(response, 403, "ip_not_allowed").await;

    let loopback = create_key(
        &app,
        &tenant.key,
        json!({"label": "local", "scopes": ["api_keys:read"], "allowed_networks": ["127.0.0.0/8"]}),
    )
    .await;
    assert_eq!(loopback["allowed_networks"], json!(["127.0.0.0/8"]));
    me_ok(&app, &secret_of(&loopback)).await;

    let single = create_key(
        &app,
        &tenant.key,
        json!({"label": "host", "scopes": ["api_keys:read"], "allowed_networks": ["127.0.0.1"]}),
    )
    .await;
    assert_eq!(single["allowed_networks"], json!(["127.0.0.1/32"]));
    me_ok(&app, &secret_of(&single)).await;

    // A network that does not parse is a validation error.
    let response = app
        .as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
        .json(&json!({"label": "bad", "scopes": ["api_keys:read"], "allowed_networks": ["10.0.0.0/33"]}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "allowed_networks[0]", "{body}");
}

#[tokio::test]
async fn a_revocation_reaches_other_instances_within_the_cache_ttl() {
    let options = TestCluster::get().await.fresh_database().await;
    let a = TestApp::spawn_with(short_cache_config(), options.clone()).await;
    let b = TestApp::spawn_with(short_cache_config(), options).await;
    let tenant = a.tenant().await;
    let (id, key) = a.key_with_id(&tenant, &["api_keys:read"]).await;

    me_ok(&b, &key).await; // cached on B
    me_ok(&a, &key).await; // and on A

    let response = a.as_key(Method::POST, &format!("/api/v1/api_keys/{id}/revoke"), &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // A forgets at once; B within its cache lifetime (1 s), polled with margin.
    refused(me(&a, &key).await, REVOKED).await;
    let (response, took) = poll_until(Duration::from_secs(3), 401, || me(&b, &key)).await;
    assert!(took <= Duration::from_millis(2500), "B accepted a revoked key for {took:?}");
    refused(response, REVOKED).await;
}

#[tokio::test]
async fn a_key_can_only_grant_scopes_it_holds() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let writer = app.key(&tenant, &["api_keys:write"]).await;

    for (scopes, missing) in [(json!(["*"]), "*"), (json!(["api_keys:read", "members:read"]), "members:read")] {
        let response = app
            .as_key(Method::POST, "/api/v1/api_keys", &writer)
            .json(&json!({"label": "escalate", "scopes": scopes}))
            .send()
            .await
            .unwrap();
        let body = problem(response, 403, "insufficient_scope").await;
        assert_eq!(body["required_scope"], missing, "{body}");
    }

    // Write implies read, so these are within its grant.
    let key = create_key(&app, &writer, json!({"label": "reader", "scopes": ["api_keys:read"]})).await;
    assert_eq!(key["scopes"], json!(["api_keys:read"]));
    me_ok(&app, &secret_of(&key)).await;

    // And an OAuth client cannot be given more than the caller holds either.
    let response = app
        .as_key(Method::POST, "/api/v1/oauth_clients", &writer)
        .json(&json!({"name": "partner", "scopes": ["*"]}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 403, "insufficient_scope").await;
    assert_eq!(body["required_scope"], "*", "{body}");
}

// --- OAuth2 client credentials ----------------------------------------------------------------

/// Registers an OAuth client; returns `(client_id, client_secret)`.
async fn oauth_client(app: &TestApp, tenant: &TestTenant, scopes: &[&str]) -> (String, String) {
    let response = app
        .as_key(Method::POST, "/api/v1/oauth_clients", &tenant.key)
        .json(&json!({"name": "partner", "scopes": scopes}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let client: Value = response.json().await.unwrap();
    let id = client["id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cli_") && secret.starts_with("cs_"), "{client}");
    assert_eq!(client["scopes"], json!(scopes));
    (id, secret)
}

/// `POST /api/v1/oauth/token` with a form body and, optionally, HTTP Basic client authentication.
async fn token_request(app: &TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/api/v1/oauth/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap()
}

/// Asserts an RFC 6749 error: plain JSON `{error, error_description}`, not a problem.
async fn oauth_error(response: reqwest::Response, status: u16, error: &str) -> reqwest::header::HeaderMap {
    assert_eq!(response.status().as_u16(), status);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "only error and error_description: {body}");
    headers
}

async fn access_token(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    response.json().await.unwrap()
}

#[tokio::test]
async fn oauth_clients_get_tokens_by_basic_auth_or_form_fields() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (id, secret) = oauth_client(&app, &tenant, &["api_keys:read"]).await;

    let by_basic =
        access_token(token_request(&app, &[("grant_type", "client_credentials")], Some((&id, &secret))).await).await;
    let by_form = access_token(
        token_request(
            &app,
            &[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)],
            None,
        )
        .await,
    )
    .await;
    let narrowed = access_token(
        token_request(&app, &[("grant_type", "client_credentials"), ("scope", "api_keys:read")], Some((&id, &secret)))
            .await,
    )
    .await;

    for token in [by_basic, by_form, narrowed] {
        assert_eq!(token["token_type"], "Bearer", "{token}");
        assert_eq!(token["expires_in"], 900, "{token}");
        assert_eq!(token["scope"], "api_keys:read", "{token}");
        let access = token["access_token"].as_str().unwrap();
        assert_eq!(access.split('.').count(), 3, "a JWT: {access}");

        let response = app.as_key(Method::GET, "/api/v1/api_keys", access).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body = me_ok(&app, access).await;
        assert_eq!(body["actor_type"], "oauth_client", "{body}");
        assert_eq!(body["actor_id"], id.as_str(), "{body}");
        assert_eq!(body["tenant_id"], tenant.id.as_str(), "{body}");
        assert_eq!(body["scopes"], json!(["api_keys:read"]), "{body}");

        let response = app
            .as_key(Method::POST, "/api/v1/api_keys", access)
            .json(&json!({"label": "x", "scopes": ["api_keys:read"]}))
            .send()
            .await
            .unwrap();
        let body = problem(response, 403, "insufficient_scope").await;
        assert_eq!(body["required_scope"], "api_keys:write", "{body}");
    }
}

#[tokio::test]
async fn the_token_endpoint_answers_rfc_6749_errors() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (id, secret) = oauth_client(&app, &tenant, &["api_keys:read"]).await;
    let grant = ("grant_type", "client_credentials");

    // A scope beyond the client's grant, or one that does not exist.
    for scope in ["api_keys:write", "api_keys:read members:read", "*", "nope:read"] {
        let response = token_request(&app, &[grant, ("scope", scope)], Some((&id, &secret))).await;
        oauth_error(response, 400, "invalid_scope").await;
    }

    // A wrong secret: invalid_client, with a Basic challenge only when Basic was used.
    let headers =
        oauth_error(token_request(&app, &[grant], Some((&id, "cs_wrong"))).await, 401, "invalid_client").await;
    assert_eq!(headers["www-authenticate"], r#"Basic realm="payymo""#);
    let response = token_request(&app, &[grant, ("client_id", &id), ("client_secret", "cs_wrong")], None).await;
    let headers = oauth_error(response, 401, "invalid_client").await;
    assert!(headers.get("www-authenticate").is_none(), "{headers:?}");
    // An unknown client, and no client authentication at all.
    let unknown = "cli_0192f3c4d5e6478fa1b2c3d4e5f60718";
    oauth_error(token_request(&app, &[grant], Some((unknown, &secret))).await, 401, "invalid_client").await;
    oauth_error(token_request(&app, &[grant], None).await, 401, "invalid_client").await;

    // Grant types.
    let response = token_request(&app, &[("grant_type", "password")], Some((&id, &secret))).await;
    oauth_error(response, 400, "unsupported_grant_type").await;
    oauth_error(token_request(&app, &[], Some((&id, &secret))).await, 400, "invalid_request").await;

    // Authenticating both ways at once, a broken Basic header, and a body that is not a form.
    let response =
        token_request(&app, &[grant, ("client_id", &id), ("client_secret", &secret)], Some((&id, &secret))).await;
    oauth_error(response, 400, "invalid_request").await;
    let response = app
        .client
        .post(app.url("/api/v1/oauth/token"))
        .header("authorization", "Basic !!!")
        .form(&[grant])
        .send()
        .await
        .unwrap();
    oauth_error(response, 400, "invalid_request").await;
    let response = app
        .client
        .post(app.url("/api/v1/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    oauth_error(response, 400, "invalid_request").await;

    // After all that, the right request still works.
    access_token(token_request(&app, &[grant], Some((&id, &secret))).await).await;
}

#[tokio::test]
async fn a_revoked_oauth_client_loses_its_tokens_and_gets_no_new_ones() {
    let app = TestApp::spawn_with(short_cache_config(), TestCluster::get().await.fresh_database().await).await;
    let tenant = app.tenant().await;
    let (id, secret) = oauth_client(&app, &tenant, &["api_keys:read"]).await;
    let grant = ("grant_type", "client_credentials");
    let token = access_token(token_request(&app, &[grant], Some((&id, &secret))).await).await;
    let access = token["access_token"].as_str().unwrap().to_owned();
    me_ok(&app, &access).await; // cached

    let response =
        app.as_key(Method::POST, &format!("/api/v1/oauth_clients/{id}/revoke"), &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let client: Value = response.json().await.unwrap();
    assert!(client["revoked_at"].is_string(), "{client}");

    let (response, took) = poll_until(Duration::from_secs(3), 401, || me(&app, &access)).await;
    assert!(took <= Duration::from_millis(2500), "a revoked client's token worked for {took:?}");
    refused(response, REVOKED).await;

    oauth_error(token_request(&app, &[grant], Some((&id, &secret))).await, 401, "invalid_client").await;
}

// --- Access tokens (JWT) ----------------------------------------------------------------------

fn sign(claims: &Claims, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[tokio::test]
async fn forged_access_tokens_are_refused_saying_why() {
    let app = TestApp::spawn_with(known_secret_config(), TestCluster::get().await.fresh_database().await).await;
    let tenant = app.tenant().await;
    let (client, _) = oauth_client(&app, &tenant, &["api_keys:read"]).await;
    let now = Utc::now().timestamp() as u64;
    let claims = Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: client.clone(),
        ten: tenant.id.clone(),
        scope: "api_keys:read".into(),
        typ: "client".into(),
        iat: now,
        exp: now + 600,
        jti: "test".into(),
        sid: None,
    };

    // The control: these claims, properly signed, are accepted.
    let body = me_ok(&app, &sign(&claims, JWT_SECRET)).await;
    assert_eq!(body["actor_type"], "oauth_client", "{body}");
    assert_eq!(body["actor_id"], client.as_str(), "{body}");

    let other_secret = sign(&claims, "some-other-secret-0123456789-abcdefghijk");
    refused(me(&app, &other_secret).await, "the access token's signature is invalid").await;

    let wrong_audience = Claims { aud: "someone-else".into(), ..claims.clone() };
    refused(me(&app, &sign(&wrong_audience, JWT_SECRET)).await, "the access token is not for this API (aud)").await;

    let wrong_issuer = Claims { iss: "evil".into(), ..claims.clone() };
    refused(me(&app, &sign(&wrong_issuer, JWT_SECRET)).await, "the access token was not issued by Payymo (iss)").await;

    let expired = Claims { iat: now - 7200, exp: now - 3600, ..claims.clone() };
    refused(me(&app, &sign(&expired, JWT_SECRET)).await, "the access token has expired").await;

    // An unsigned token ("alg": "none") is not a token at all.
    let valid = sign(&claims, JWT_SECRET);
    let payload = valid.split('.').nth(1).unwrap();
    let none = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    refused(me(&app, &format!("{none}.{payload}.")).await, "the access token is malformed").await;

    // A token the server issued with this secret is accepted too.
    let issued = JwtKeys::from_secret("env".into(), JWT_SECRET.as_bytes(), Duration::from_secs(60))
        .issue("client", &client, &tenant.id, "api_keys:read", None)
        .unwrap();
    me_ok(&app, &issued).await;
}

// --- User sessions ----------------------------------------------------------------------------

async fn login_request(app: &TestApp, email: &str, password: &str, tenant_id: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password, "tenant_id": tenant_id}))
        .send()
        .await
        .unwrap()
}

async fn refresh_request(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .unwrap()
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_else(|| panic!("{field} in {value}"))
}

#[tokio::test]
async fn a_user_signs_in_and_me_lists_every_membership() {
    let app = TestApp::spawn().await;
    let first = app.tenant().await;
    let second = app.tenant().await;
    let email = "ada@example.com";
    let user = app.user(&first, email, Role::Owner).await;
    assert_eq!(app.user(&second, email, Role::Viewer).await, user, "the same user in both tenants");

    // Email matching ignores case and surrounding space.
    let response = login_request(&app, " Ada@Example.COM ", PASSWORD, &first.id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["token_type"], "Bearer", "{session}");
    assert_eq!(session["expires_in"], 900, "{session}");
    assert_eq!(session["tenant_id"], first.id.as_str(), "{session}");
    assert_eq!(session["user_id"], user.as_str(), "{session}");
    assert_eq!(session["role"], "owner", "{session}");
    assert!(str_of(&session, "refresh_token").starts_with("rt_"), "{session}");

    let body = me_ok(&app, str_of(&session, "access_token")).await;
    assert_eq!(body["actor_type"], "user", "{body}");
    assert_eq!(body["actor_id"], user.as_str(), "{body}");
    assert_eq!(body["tenant_id"], first.id.as_str(), "{body}");
    assert_eq!(body["scopes"], json!(["*"]), "{body}");
    assert_eq!(body["user"]["id"], user.as_str(), "{body}");
    assert_eq!(body["user"]["email"], email, "{body}");
    let mut memberships: Vec<(String, String)> = body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (str_of(m, "tenant_id").to_owned(), str_of(m, "role").to_owned()))
        .collect();
    memberships.sort();
    let mut expected = vec![(first.id.clone(), "owner".to_owned()), (second.id.clone(), "viewer".to_owned())];
    expected.sort();
    assert_eq!(memberships, expected, "{body}");
    assert!(body["memberships"].as_array().unwrap().iter().all(|m| m["tenant_name"] == "Acme Ltd"), "{body}");

    // Signing in to the second tenant gives that tenant's role.
    let session = app.login(&second, email).await;
    assert_eq!(session["role"], "viewer");
    let body = me_ok(&app, str_of(&session, "access_token")).await;
    assert_eq!(body["tenant_id"], second.id.as_str(), "{body}");
}

#[tokio::test]
async fn every_wrong_sign_in_answers_the_same_401() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let elsewhere = app.tenant().await;
    app.user(&tenant, "grace@example.com", Role::Member).await;
    app.user(&elsewhere, "other@example.com", Role::Member).await;

    let cases = [
        ("grace@example.com", "wrong password, long enough", tenant.id.as_str()),
        ("nobody@example.com", PASSWORD, tenant.id.as_str()),
        ("grace@example.com", PASSWORD, elsewhere.id.as_str()),
        ("grace@example.com", PASSWORD, "ten_0192f3c4d5e6478fa1b2c3d4e5f60718"),
        ("grace@example.com", PASSWORD, "not-a-tenant"),
        ("other@example.com", PASSWORD, tenant.id.as_str()),
    ];
    for (email, password, tenant_id) in cases {
        let response = login_request(&app, email, password, tenant_id).await;
        let body = problem(response, 401, "invalid_credentials").await;
        assert_eq!(body["detail"], INVALID_LOGIN, "{email} {tenant_id}: {body}");
    }
    // The right combination works.
    app.login(&tenant, "grace@example.com").await;
}

#[tokio::test]
async fn a_refresh_rotates_and_a_reused_refresh_token_revokes_the_session() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let user = app.user(&tenant, "linus@example.com", Role::Member).await;
    let first = app.login(&tenant, "linus@example.com").await;
    let first_refresh = str_of(&first, "refresh_token").to_owned();

    let response = refresh_request(&app, &first_refresh).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second: Value = response.json().await.unwrap();
    let second_refresh = str_of(&second, "refresh_token").to_owned();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(second["user_id"], user.as_str());
    assert_eq!(second["role"], "member");
    assert_eq!(me_ok(&app, str_of(&second, "access_token")).await["actor_id"], user.as_str());

    // The first token again: refused, and the whole family with it, newest token included.
    refused(refresh_request(&app, &first_refresh).await, "the refresh token is not valid; sign in again").await;
    refused(refresh_request(&app, &second_refresh).await, "the refresh token is not valid; sign in again").await;

    // A new sign-in is a new session, unaffected.
    let fresh = app.login(&tenant, "linus@example.com").await;
    assert_eq!(refresh_request(&app, str_of(&fresh, "refresh_token")).await.status(), 200);

    // The reuse is a security incident in the tenant's audit log.
    let response =
        app.as_key(Method::GET, "/api/v1/audit_logs?outcome=security_incident", &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    let entries = page["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{page}");
    assert_eq!(entries[0]["action"], "auth.refresh_token_reused", "{page}");
    assert_eq!(entries[0]["actor_type"], "user", "{page}");
    assert_eq!(entries[0]["actor_id"], user.as_str(), "{page}");
    assert_eq!(entries[0]["status"], 401, "{page}");

    // Unknown refresh tokens are simply refused.
    refused(refresh_request(&app, "rt_nonsense").await, "the refresh token is not valid; sign in again").await;
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    app.user(&tenant, "barbara@example.com", Role::Admin).await;
    let session = app.login(&tenant, "barbara@example.com").await;
    let refresh = str_of(&session, "refresh_token");

    let response =
        app.client.post(app.url("/api/v1/auth/logout")).json(&json!({"refresh_token": refresh})).send().await.unwrap();
    assert_eq!(response.status(), 204);
    refused(refresh_request(&app, refresh).await, "the refresh token is not valid; sign in again").await;

    // Signing out with a token that is already invalid is not an error.
    let response =
        app.client.post(app.url("/api/v1/auth/logout")).json(&json!({"refresh_token": refresh})).send().await.unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_account() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    app.user(&tenant, "mallory@example.com", Role::Member).await;
    app.user(&tenant, "alice@example.com", Role::Member).await;

    for attempt in 1..=10 {
        let response = login_request(&app, "mallory@example.com", &format!("guess number {attempt}"), &tenant.id).await;
        problem(response, 401, "invalid_credentials").await;
    }
    // The 11th within 15 minutes is refused before the password is even checked, right or wrong;
    // the email's case does not make it another account.
    for (email, password) in [("mallory@example.com", "guess number 11"), ("MALLORY@example.com", PASSWORD)] {
        let response = login_request(&app, email, password, &tenant.id).await;
        let retry_after: u64 =
            response.headers()["retry-after"].to_str().unwrap().parse().expect("Retry-After in seconds");
        assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
        let body = problem(response, 429, "rate_limited").await;
        assert_eq!(body["retryable"], true, "{body}");
    }

    // Another account on the same tenant is unaffected.
    app.login(&tenant, "alice@example.com").await;
}

#[tokio::test]
async fn a_user_tokens_scopes_follow_the_current_role() {
    let mut config = known_secret_config();
    config.credential_cache_ttl = Duration::from_secs(1);
    let app = TestApp::spawn_with(config, TestCluster::get().await.fresh_database().await).await;
    let tenant = app.tenant().await;
    app.user(&tenant, "owner@example.com", Role::Owner).await;
    let viewer = app.user(&tenant, "viewer@example.com", Role::Viewer).await;
    // The token carries the viewer's scopes, but the server goes by the current membership.
    let owner_token = str_of(&app.login(&tenant, "owner@example.com").await, "access_token").to_owned();
    let viewer_token = str_of(&app.login(&tenant, "viewer@example.com").await, "access_token").to_owned();

    let create = || {
        app.as_key(Method::POST, "/api/v1/api_keys", &viewer_token)
            .json(&json!({"label": "by-viewer", "scopes": ["api_keys:read"]}))
            .send()
    };
    let body = problem(create().await.unwrap(), 403, "insufficient_scope").await;
    assert_eq!(body["required_scope"], "api_keys:write", "{body}");

    let response = app
        .as_key(Method::PATCH, &format!("/api/v1/members/{viewer}"), &owner_token)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let member: Value = response.json().await.unwrap();
    assert_eq!(member["role"], "admin", "{member}");

    // The same access token, now with the admin's scopes (within the 1 s cache lifetime).
    let (response, took) = poll_until(Duration::from_secs(3), 201, || async { create().await.unwrap() }).await;
    assert_eq!(response.status(), 201, "the promoted user still could not create a key after {took:?}");
    assert!(took <= Duration::from_millis(2500), "{took:?}");
    let body = me_ok(&app, &viewer_token).await;
    assert!(body["scopes"].as_array().unwrap().contains(&json!("api_keys:write")), "{body}");
    assert_eq!(body["memberships"][0]["role"], "admin", "{body}");
}
