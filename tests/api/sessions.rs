//! A session's access tokens die with it: sign-out and a reused refresh token revoke the access
//! tokens already issued, on every instance within the credential cache lifetime; and each
//! header takes only its own kind of credential. A browser portal keeps its refresh token in an
//! `HttpOnly` cookie, and a session can switch to another of the user's tenants.

use std::time::{Duration, Instant};

use payymo::domain::scope::Role;
use serde_json::{Value, json};

use crate::support::{TestApp, TestCluster, json_of, problem, tenants::PASSWORD, test_config};

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

const INVALID_REFRESH: &str = "the refresh token is not valid; sign in again";

async fn post(app: &TestApp, path: &str, cookie: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).json(&body);
    if let Some(token) = cookie {
        request = request.header("cookie", format!("theme=dark; payymo_refresh={token}"));
    }
    request.send().await.unwrap()
}

async fn login_for_cookie(app: &TestApp, email: &str) -> reqwest::Response {
    let body = json!({"email": email, "password": PASSWORD, "refresh_token_in": "cookie"});
    post(app, "/api/v1/auth/login", None, body).await
}

/// The response's `Set-Cookie` header for the refresh token.
fn set_cookie(response: &reqwest::Response) -> String {
    let values: Vec<&str> = response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(values.len(), 1, "{values:?}");
    assert!(values[0].starts_with("payymo_refresh="), "{values:?}");
    values[0].to_owned()
}

/// The token a `Set-Cookie` value stores.
fn cookie_token(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.strip_prefix("payymo_refresh=").unwrap().to_owned()
}

fn attributes(set_cookie: &str) -> Vec<&str> {
    set_cookie.split(';').skip(1).map(str::trim).collect()
}

#[tokio::test]
async fn signing_in_in_cookie_mode_puts_the_refresh_token_in_an_http_only_cookie_and_not_the_body() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    app.user(&tenant, "portal@example.com", Role::Admin).await;

    let response = login_for_cookie(&app, "portal@example.com").await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookie = set_cookie(&response);
    let session = json_of(response, 200).await;
    assert!(cookie_token(&cookie).starts_with("rt_"), "{cookie}");
    let max_age = format!("Max-Age={}", app.state.config.refresh_token_ttl.as_secs());
    assert_eq!(attributes(&cookie), ["Path=/api/v1/auth", "HttpOnly", "SameSite=Strict", max_age.as_str()]);
    assert!(session.get("refresh_token").is_none(), "{session}");
    assert!(session["refresh_token_expires_at"].is_string(), "{session}");
    assert_eq!(me_status(&app, session["access_token"].as_str().unwrap()).await, 200);

    // In body mode (the default) there is no cookie.
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "portal@example.com", "password": PASSWORD, "refresh_token_in": "body"}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("set-cookie").is_none());
    assert!(json_of(response, 200).await["refresh_token"].as_str().unwrap().starts_with("rt_"));
}

#[tokio::test]
async fn behind_an_https_public_url_the_cookie_is_secure() {
    let mut config = test_config();
    config.public_url = Some("https://pay.example.com".into());
    let app = TestApp::spawn_with(config, TestCluster::get().await.fresh_database().await).await;
    let tenant = app.tenant().await;
    app.user(&tenant, "secure@example.com", Role::Member).await;

    let response = login_for_cookie(&app, "secure@example.com").await;
    let cookie = set_cookie(&response);
    assert_eq!(attributes(&cookie).last(), Some(&"Secure"), "{cookie}");
    let response = post(&app, "/api/v1/auth/logout", Some(&cookie_token(&cookie)), json!({})).await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        set_cookie(&response),
        "payymo_refresh=; Path=/api/v1/auth; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
    );
}

#[tokio::test]
async fn the_cookie_alone_refreshes_and_rotates_and_the_old_cookie_again_revokes_the_session() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    app.user(&tenant, "rotate@example.com", Role::Member).await;
    let first = cookie_token(&set_cookie(&login_for_cookie(&app, "rotate@example.com").await));

    let response = post(&app, "/api/v1/auth/refresh", Some(&first), json!({})).await;
    let cookie = set_cookie(&response);
    let session = json_of(response, 200).await;
    let second = cookie_token(&cookie);
    assert_ne!(second, first);
    assert!(attributes(&cookie).contains(&"HttpOnly"), "{cookie}");
    assert!(session.get("refresh_token").is_none(), "{session}");
    assert_eq!(session["tenant_id"], tenant.id.as_str(), "{session}");
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(me_status(&app, access).await, 200);

    // Without a token in the body or a cookie there is nothing to refresh.
    let body = problem(post(&app, "/api/v1/auth/refresh", None, json!({})).await, 401, "unauthenticated").await;
    assert_eq!(body["detail"], INVALID_REFRESH, "{body}");
    // The cookie alone, without a JSON body, is refused: the defence against cross-site forms.
    let form = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .header("cookie", format!("payymo_refresh={second}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("x=1")
        .send()
        .await
        .unwrap();
    problem(form, 415, "unsupported_media_type").await;

    // The first cookie again: refused, and the whole session with it.
    let body = problem(post(&app, "/api/v1/auth/refresh", Some(&first), json!({})).await, 401, "unauthenticated").await;
    assert_eq!(body["detail"], INVALID_REFRESH, "{body}");
    problem(post(&app, "/api/v1/auth/refresh", Some(&second), json!({})).await, 401, "unauthenticated").await;
    assert_eq!(me_status(&app, access).await, 401);
}

#[tokio::test]
async fn signing_in_without_a_tenant_picks_the_users_first_tenant_by_name() {
    let app = TestApp::spawn().await;
    let zulu = app.tenant_named("Zulu Ltd").await;
    let alpha = app.tenant_named("Alpha Ltd").await;
    let user = app.user(&zulu, "many@example.com", Role::Owner).await;
    app.user(&alpha, "many@example.com", Role::Viewer).await;

    let body = json!({"email": "Many@Example.com", "password": PASSWORD});
    let session = json_of(post(&app, "/api/v1/auth/login", None, body).await, 200).await;
    assert_eq!(session["tenant_id"], alpha.id.as_str(), "{session}");
    assert_eq!(session["role"], "viewer", "{session}");
    assert_eq!(session["user_id"], user.as_str(), "{session}");
    assert!(session["refresh_token"].as_str().unwrap().starts_with("rt_"), "{session}");

    // Wrong credentials answer the same 401 as with a tenant.
    for (email, password) in [("many@example.com", "not the password at all"), ("nobody@example.com", PASSWORD)] {
        let response = post(&app, "/api/v1/auth/login", None, json!({"email": email, "password": password})).await;
        let body = problem(response, 401, "invalid_credentials").await;
        assert_eq!(body["detail"], "the email, password or tenant is not right", "{body}");
    }
}

#[tokio::test]
async fn a_refresh_with_a_tenant_id_switches_the_session_to_that_tenant_with_the_role_there() {
    let app = TestApp::spawn().await;
    let home = app.tenant().await;
    let other = app.tenant().await;
    app.user(&home, "switch@example.com", Role::Owner).await;
    app.user(&other, "switch@example.com", Role::Viewer).await;
    let first = app.login(&home, "switch@example.com").await;
    let first_refresh = first["refresh_token"].as_str().unwrap();

    let body = json!({"refresh_token": first_refresh, "tenant_id": other.id});
    let switched = json_of(post(&app, "/api/v1/auth/refresh", None, body).await, 200).await;
    assert_eq!(switched["tenant_id"], other.id.as_str(), "{switched}");
    assert_eq!(switched["role"], "viewer", "{switched}");
    let access = switched["access_token"].as_str().unwrap();
    let me = json_of(app.client.get(app.url("/api/v1/me")).bearer_auth(access).send().await.unwrap(), 200).await;
    assert_eq!(me["tenant_id"], other.id.as_str(), "{me}");
    assert!(!me["scopes"].as_array().unwrap().contains(&json!("*")), "a viewer there: {me}");
    let audit = app.as_key(reqwest::Method::GET, "/api/v1/audit_logs?action=auth.switch_tenant", &other.key);
    let page = json_of(audit.send().await.unwrap(), 200).await;
    assert_eq!(page["data"][0]["outcome"], "success", "the tenant switched to records it: {page}");

    // The new refresh token stays in the new tenant.
    let next = json_of(refresh(&app, switched["refresh_token"].as_str().unwrap()).await, 200).await;
    assert_eq!(next["tenant_id"], other.id.as_str(), "{next}");
    assert_eq!(next["role"], "viewer", "{next}");

    // The token from before the switch was used up: presenting it again ends the switched session too.
    problem(refresh(&app, first_refresh).await, 401, "unauthenticated").await;
    assert_eq!(me_status(&app, next["access_token"].as_str().unwrap()).await, 401);
    problem(refresh(&app, next["refresh_token"].as_str().unwrap()).await, 401, "unauthenticated").await;
}

#[tokio::test]
async fn switching_to_a_tenant_the_user_is_not_a_member_of_is_refused_and_leaves_the_token_usable() {
    let app = TestApp::spawn().await;
    let home = app.tenant().await;
    let stranger = app.tenant().await;
    app.user(&home, "stay@example.com", Role::Member).await;
    app.user(&stranger, "someone@example.com", Role::Owner).await;
    let cookie = cookie_token(&set_cookie(&login_for_cookie(&app, "stay@example.com").await));

    for tenant_id in [stranger.id.as_str(), "ten_0192f3c4d5e6478fa1b2c3d4e5f60718", "not-a-tenant"] {
        let response = post(&app, "/api/v1/auth/refresh", Some(&cookie), json!({"tenant_id": tenant_id})).await;
        assert!(response.headers().get("set-cookie").is_none());
        let body = problem(response, 403, "not_a_member").await;
        assert_eq!(body["detail"], "you are not a member of that tenant", "{body}");
    }
    // The same cookie still refreshes, in the tenant it was for.
    let response = post(&app, "/api/v1/auth/refresh", Some(&cookie), json!({"tenant_id": home.id})).await;
    assert_ne!(cookie_token(&set_cookie(&response)), cookie);
    assert_eq!(json_of(response, 200).await["tenant_id"], home.id.as_str());
}

#[tokio::test]
async fn signing_out_with_the_cookie_clears_it_and_ends_the_session() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    app.user(&tenant, "bye@example.com", Role::Member).await;
    let response = login_for_cookie(&app, "bye@example.com").await;
    let cookie = cookie_token(&set_cookie(&response));
    let access = json_of(response, 200).await["access_token"].as_str().unwrap().to_owned();

    let response = post(&app, "/api/v1/auth/logout", Some(&cookie), json!({})).await;
    assert_eq!(response.status(), 204);
    assert_eq!(set_cookie(&response), "payymo_refresh=; Path=/api/v1/auth; HttpOnly; SameSite=Strict; Max-Age=0");
    assert_eq!(me_status(&app, &access).await, 401);
    let body =
        problem(post(&app, "/api/v1/auth/refresh", Some(&cookie), json!({})).await, 401, "unauthenticated").await;
    assert_eq!(body["detail"], INVALID_REFRESH, "{body}");

    // Signing out again, or with no session at all, is still a 204 that clears the cookie.
    let response = post(&app, "/api/v1/auth/logout", None, json!({})).await;
    assert_eq!(response.status(), 204);
    assert!(set_cookie(&response).ends_with("Max-Age=0"));
}
