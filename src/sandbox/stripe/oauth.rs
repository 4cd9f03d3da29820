//! Stripe Connect OAuth for Standard accounts, as `connect.stripe.com` serves it: a platform
//! (an account with a `ca_…` client id) sends a Stripe user to `GET /oauth/authorize`; the
//! simulator approves at once (there is no one to click) and redirects to `redirect_uri` with a
//! single-use `ac_…` code, which the platform exchanges at `POST /oauth/token` for an access
//! token that works as the connected account's key. `POST /oauth/deauthorize` ends the grant.
//!
//! The sandbox's own knobs on `/oauth/authorize`: `sandbox_consent=deny` (the user refuses) and
//! `sandbox_account=acct_…` (connect an existing simulated account instead of a new one); and
//! `POST /_stripe/oauth/refuse` `{"count": 1}` refuses the next authorizations whatever the URL.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Map, Value, json};

use super::{
    StripeSim, form,
    state::{Inner, Key},
};

/// The client id of the platform every simulator starts with: its default account, whose secret
/// key ([`super::DEFAULT_SECRET_KEY`]) authenticates the token and deauthorize calls.
pub const DEFAULT_CLIENT_ID: &str = "ca_sandbox_payymo";
/// Seconds an authorization code can be exchanged for, on the simulated clock.
pub const CODE_LIFETIME: i64 = 300;

/// What the simulator keeps of Connect OAuth.
#[derive(Debug, Default)]
pub(crate) struct OAuth {
    /// Platforms by client id: the platform's account.
    pub platforms: HashMap<String, String>,
    pub codes: HashMap<String, Code>,
    /// Refresh tokens: the grant they renew.
    pub refresh_tokens: HashMap<String, Grant>,
    /// Access tokens issued per (client id, connected account), revoked on deauthorize.
    pub tokens: HashMap<(String, String), Vec<String>>,
    /// Authorizations still to refuse, whatever their URL says.
    pub refuse: u32,
}

/// A platform's access to a connected account.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub client_id: String,
    pub account: String,
    pub scope: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub grant: Grant,
    pub expires_at: i64,
    /// The access tokens it was exchanged for, once it was.
    pub redeemed: Option<Vec<String>>,
}

pub fn router() -> Router<StripeSim> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/oauth/deauthorize", post(deauthorize))
        .route("/_stripe/oauth/refuse", post(refuse))
}

/// An OAuth error: `{"error", "error_description"}`, as Stripe's OAuth endpoints answer.
fn oauth_error(status: StatusCode, error: &'static str, description: impl Into<String>) -> Response {
    Refusal { status, error, description: description.into() }.into_response()
}

/// An OAuth error not yet rendered.
struct Refusal {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.error, "error_description": self.description}))).into_response()
    }
}

fn text<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `redirect_uri` with `pairs` added to its query.
fn redirect(uri: &url::Url, pairs: &[(&str, &str)]) -> Response {
    let mut to = uri.clone();
    to.query_pairs_mut().extend_pairs(pairs);
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response()
}

/// `GET /oauth/authorize`.
async fn authorize(State(sim): State<StripeSim>, uri: Uri) -> Response {
    let params = match form::decode_str(uri.query().unwrap_or("")) {
        Ok(params) => params,
        Err(error) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", error.message),
    };
    let mut inner = sim.lock();
    let Some(client_id) = text(&params, "client_id") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "No client_id provided.");
    };
    if !inner.oauth.platforms.contains_key(client_id) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", format!("No such application: '{client_id}'"));
    }
    // Stripe falls back on the platform's configured redirect URIs; the sandbox has none.
    let redirect_uri = match text(&params, "redirect_uri").map(url::Url::parse) {
        Some(Ok(uri)) if matches!(uri.scheme(), "http" | "https") && uri.host_str().is_some() => uri,
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", "Invalid redirect URI."),
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "No redirect_uri provided (the sandbox has no default redirect URIs).",
            );
        }
    };
    let state = text(&params, "state").unwrap_or("");
    let refuse = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            pairs.push(("state", state));
        }
        redirect(&redirect_uri, &pairs)
    };
    if text(&params, "response_type") != Some("code") {
        return refuse("unsupported_response_type", "Only response_type=code is supported.");
    }
    let scope = match text(&params, "scope").unwrap_or("read_only") {
        "read_only" => "read_only",
        "read_write" => "read_write",
        other => return refuse("invalid_scope", &format!("Invalid scope: {other}; use read_only or read_write.")),
    };
    let refused_by_control = inner.oauth.refuse > 0;
    if refused_by_control {
        inner.oauth.refuse -= 1;
    }
    if refused_by_control || text(&params, "sandbox_consent") == Some("deny") {
        return refuse("access_denied", "The user denied your request");
    }
    let account = match text(&params, "sandbox_account") {
        Some(id) if inner.accounts.contains_key(id) => id.to_owned(),
        Some(id) => return refuse("invalid_request", &format!("No such sandbox account: {id}")),
        None => new_account(&mut inner, &params),
    };
    let code = inner.id("ac");
    let expires_at = inner.now() + CODE_LIFETIME;
    let grant = Grant { client_id: client_id.to_owned(), account, scope };
    inner.oauth.codes.insert(code.clone(), Code { grant, expires_at, redeemed: None });
    let mut pairs = vec![("code", code.as_str()), ("scope", scope)];
    if !state.is_empty() {
        pairs.push(("state", state));
    }
    redirect(&redirect_uri, &pairs)
}

/// A new account for the Stripe user, from `stripe_user[business_name|country|currency]`, with
/// its own keys (which the user, not the platform, holds).
fn new_account(inner: &mut Inner, params: &Map<String, Value>) -> String {
    let user = params.get("stripe_user").and_then(Value::as_object).cloned().unwrap_or_default();
    let country = text(&user, "country").filter(|c| c.len() == 2).unwrap_or("GB").to_ascii_uppercase();
    let currency = text(&user, "currency").filter(|c| c.len() == 3).unwrap_or("gbp").to_ascii_lowercase();
    let suffix = inner.id("key");
    let name = match text(&user, "business_name") {
        Some(name) => name.chars().take(100).collect(),
        None => format!("Connected Sandbox {}", &suffix[4..10]),
    };
    let keys = (format!("sk_test_{}", &suffix[4..]), format!("rk_test_{}", &suffix[4..]));
    inner.create_account(&name, &country, &currency, (&keys.0, &keys.1))
}

/// The platform a request authenticates as: its secret key in `client_secret`, or as the API
/// authenticates (Bearer, or Basic with the key as the user). Returns its client ids.
fn platform_of(inner: &Inner, headers: &HeaderMap, params: &Map<String, Value>) -> Result<Vec<String>, Refusal> {
    let invalid_client =
        |description: String| Refusal { status: StatusCode::UNAUTHORIZED, error: "invalid_client", description };
    let key = text(params, "client_secret").map(str::to_owned).or_else(|| super::api::key_of(headers));
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Err(invalid_client("No API key provided.".into()));
    };
    let shown: String = key.chars().take(12).collect();
    let account = match inner.keys.get(&key) {
        Some(found) if !found.revoked && !found.expired && !found.restricted => found.account.clone(),
        _ => {
            return Err(invalid_client(format!("Invalid API Key provided: {shown}****")));
        }
    };
    let clients: Vec<String> =
        inner.oauth.platforms.iter().filter(|(_, platform)| **platform == account).map(|(id, _)| id.clone()).collect();
    if clients.is_empty() {
        return Err(invalid_client("The API key provided is not that of a Connect platform.".into()));
    }
    Ok(clients)
}

/// The request's form body merged over its query, as Stripe reads them.
fn params_of(uri: &Uri, body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let bad = |description: String| Refusal { status: StatusCode::BAD_REQUEST, error: "invalid_request", description };
    let mut params = form::decode_str(uri.query().unwrap_or("")).map_err(|e| bad(e.message))?;
    let body = std::str::from_utf8(body).map_err(|_| bad("The body is not UTF-8.".into()))?;
    params.extend(form::decode_str(body).map_err(|e| bad(e.message))?);
    Ok(params)
}

/// `POST /oauth/token`: `grant_type=authorization_code` with `code`, or `refresh_token` with
/// `refresh_token` (and optionally a narrower `scope`).
async fn token(State(sim): State<StripeSim>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = match params_of(&uri, &body) {
        Ok(params) => params,
        Err(refusal) => return refusal.into_response(),
    };
    let mut inner = sim.lock();
    let clients = match platform_of(&inner, &headers, &params) {
        Ok(clients) => clients,
        Err(refusal) => return refusal.into_response(),
    };
    let invalid_grant = |description: String| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description);
    let (grant, refresh_token, code) = match text(&params, "grant_type") {
        Some("authorization_code") => {
            let Some(code) = text(&params, "code") else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "No authorization code provided.");
            };
            let now = inner.now();
            let Some(found) = inner.oauth.codes.get(code).cloned() else {
                return invalid_grant(format!("Authorization code does not exist: {code}"));
            };
            if !clients.contains(&found.grant.client_id) {
                return invalid_grant(format!("Authorization code provided does not belong to you: {code}"));
            }
            if let Some(issued) = found.redeemed {
                // As OAuth asks of a code used twice: what it gave is taken back.
                revoke(&mut inner, &issued);
                return invalid_grant(
                    "This authorization code has already been used. All tokens issued with this code have been revoked."
                        .into(),
                );
            }
            if now >= found.expires_at {
                return invalid_grant(format!("Authorization code expired: {code}"));
            }
            (found.grant, inner.id("rt"), Some(code.to_owned()))
        }
        Some("refresh_token") => {
            let Some(refresh) = text(&params, "refresh_token") else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "No refresh_token provided.");
            };
            let Some(mut grant) = inner.oauth.refresh_tokens.get(refresh).cloned() else {
                return invalid_grant(format!("Refresh token does not exist: {refresh}"));
            };
            if !clients.contains(&grant.client_id) {
                return invalid_grant(format!("Refresh token provided does not belong to you: {refresh}"));
            }
            match text(&params, "scope") {
                None => {}
                Some(scope) if scope == grant.scope => {}
                Some("read_only") => grant.scope = "read_only",
                Some(other) => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        format!("Invalid scope: {other}; a refresh token can keep or narrow its grant's scope."),
                    );
                }
            }
            (grant, refresh.to_owned(), None)
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("Unsupported grant type: {other}"),
            );
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "No grant_type provided."),
    };
    let issued = issue(&mut inner, &grant, &refresh_token);
    if let Some(found) = code.and_then(|code| inner.oauth.codes.get_mut(&code)) {
        found.redeemed = Some(vec![issued.clone()]);
    }
    let publishable = format!("pk_test_{}", &inner.id("key")[4..]);
    Json(json!({
        "access_token": issued, "livemode": false, "refresh_token": refresh_token, "scope": grant.scope,
        "stripe_publishable_key": publishable, "stripe_user_id": grant.account, "token_type": "bearer",
    }))
    .into_response()
}

/// A new access token for `grant`: a key of the connected account, read-only (`rk_test_…`) for
/// `read_only`.
fn issue(inner: &mut Inner, grant: &Grant, refresh_token: &str) -> String {
    let suffix = inner.id("key");
    let read_only = grant.scope == "read_only";
    let token = format!("{}{}", if read_only { "rk_test_" } else { "sk_test_" }, &suffix[4..]);
    let key = Key {
        account: grant.account.clone(),
        restricted: read_only,
        without: Vec::new(),
        revoked: false,
        expired: false,
    };
    inner.keys.insert(token.clone(), key);
    inner.oauth.tokens.entry((grant.client_id.clone(), grant.account.clone())).or_default().push(token.clone());
    inner.oauth.refresh_tokens.insert(refresh_token.to_owned(), grant.clone());
    token
}

fn revoke(inner: &mut Inner, tokens: &[String]) {
    for token in tokens {
        if let Some(key) = inner.keys.get_mut(token) {
            key.revoked = true;
        }
    }
}

/// `POST /oauth/deauthorize`: `client_id` and `stripe_user_id`; every token the platform holds
/// for the account stops working.
async fn deauthorize(State(sim): State<StripeSim>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = match params_of(&uri, &body) {
        Ok(params) => params,
        Err(refusal) => return refusal.into_response(),
    };
    let mut inner = sim.lock();
    let clients = match platform_of(&inner, &headers, &params) {
        Ok(clients) => clients,
        Err(refusal) => return refusal.into_response(),
    };
    let (Some(client_id), Some(account)) = (text(&params, "client_id"), text(&params, "stripe_user_id")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client_id and stripe_user_id are required.");
    };
    if !clients.iter().any(|c| c == client_id) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", format!("No such application: '{client_id}'"));
    }
    let Some(tokens) = inner.oauth.tokens.remove(&(client_id.to_owned(), account.to_owned())) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!("This application is not connected to stripe account {account}, or that account does not exist."),
        );
    };
    revoke(&mut inner, &tokens);
    inner.oauth.refresh_tokens.retain(|_, grant| !(grant.client_id == client_id && grant.account == account));
    let application = json!({"id": client_id, "object": "application", "name": "Sandbox platform"});
    inner.record_event(account, "account.application.deauthorized", &application, None, (None, None));
    sim.wake.notify_one();
    Json(json!({"stripe_user_id": account})).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Refuse {
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// `POST /_stripe/oauth/refuse`: the next `count` authorizations are refused (`access_denied`).
async fn refuse(State(sim): State<StripeSim>, Json(body): Json<Refuse>) -> Response {
    sim.lock().oauth.refuse = body.count;
    Json(json!({"refuse": body.count})).into_response()
}
