//! A session's access tokens die with it: sign-out and a reused refresh token revoke the access
//! tokens already issued, on every instance within the credential cache lifetime; and each
//! header takes only its own kind of credential.

use std::time::{Duration, Instant};

use payymo::domain::scope::Role;
use serde_json::{Value, json};

use crate::support::{TestApp, TestCluster, problem, test_config};

fn short_cache() -> payymo::config::Config {
    let mut config = test_config();
    config.credential_cache_ttl = Duration::from_secs(1);
    config
}

/// Two instances of the service on one database, each caching credentials for 1 s.
async fn two_instances() -> (TestApp, TestApp) {
    let options = TestCluster::get().await.fresh_database().await;
    let a = TestApp::spawn_with(short_cache(), options.clone()).await;
    (a, TestApp::spawn_with(short_cache(), options).await)
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.client.get(app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

/// Polls until `app` refuses `token`, failing if that takes longer than `within`.
async fn refused_within(app: &TestApp, token: &str, within: Duration) {
    let started = Instant::now();
    while me_status(app, token).await != 401 {
        assert!(started.elapsed() < within, "the access token still worked after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client.post(app.url("/api/v1/auth/refresh")).json(&json!({"refresh_token": token})).send().await.unwrap()
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_access_tokens_of_its_session_on_every_instance() {
    let (a, b) = two_instances().await;
    let tenant = a.tenant().await;
    a.user(&tenant, "thief@example.com", Role::Admin).await;
    let first = a.login(&tenant, "thief@example.com").await;
    let first_refresh = first["refresh_token"].as_str().unwrap();
    // The thief refreshes first and holds the newest access token.
    let second: Value = refresh(&a, first_refresh).await.json().await.unwrap();
    let stolen = second["access_token"].as_str().unwrap();
    assert_eq!(me_status(&a, stolen).await, 200);
    assert_eq!(me_status(&b, stolen).await, 200, "cached on B");
    let other = a.login(&tenant, "thief@example.com").await;

    // The rightful user's retry reuses the first refresh token: the session is revoked.
    assert_eq!(refresh(&a, first_refresh).await.status(), 401);
    let body =
        problem(a.client.get(a.url("/api/v1/me")).bearer_auth(stolen).send().await.unwrap(), 401, "unauthenticated")
            .await;
    assert_eq!(body["detail"], "the credential has been revoked", "{body}");
    assert_eq!(me_status(&a, first["access_token"].as_str().unwrap()).await, 401, "older tokens too");
    refused_within(&b, stolen, Duration::from_millis(2500)).await;
    // Another sign-in of the same user is another session, unaffected.
    assert_eq!(me_status(&b, other["access_token"].as_str().unwrap()).await, 200);
}

#[tokio::test]
async fn signing_out_revokes_the_sessions_access_tokens() {
    let (a, b) = two_instances().await;
    let tenant = a.tenant().await;
    a.user(&tenant, "leaving@example.com", Role::Member).await;
    let session = a.login(&tenant, "leaving@example.com").await;
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(me_status(&b, access).await, 200);

    let response = a
        .client
        .post(a.url("/api/v1/auth/logout"))
        .json(&json!({"refresh_token": session["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(me_status(&a, access).await, 401, "at once on the instance that signed out");
    refused_within(&b, access, Duration::from_millis(2500)).await;
}

#[tokio::test]
async fn x_api_key_takes_only_api_keys_and_two_different_credentials_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    app.user(&tenant, "dual@example.com", Role::Admin).await;
    let session = app.login(&tenant, "dual@example.com").await;
    let access = session["access_token"].as_str().unwrap();
    let me = || app.client.get(app.url("/api/v1/me"));

    let body = problem(me().header("x-api-key", access).send().await.unwrap(), 401, "unauthenticated").await;
    assert!(body["detail"].as_str().unwrap().contains("X-API-Key takes an API key"), "{body}");

    let both = me().bearer_auth(access).header("x-api-key", &tenant.key).send().await.unwrap();
    let body = problem(both, 401, "unauthenticated").await;
    assert!(body["detail"].as_str().unwrap().contains("different credentials"), "{body}");

    let same = me().bearer_auth(&tenant.key).header("x-api-key", &tenant.key).send().await.unwrap();
    assert_eq!(same.status(), 200, "the same key in both headers is one credential");
}
