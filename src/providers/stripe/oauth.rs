//! Stripe Connect OAuth, the platform's side: the authorize URL a Stripe user is sent to, the
//! exchange of the code Stripe sends back for the connected account's access token, and the
//! deauthorization of an account. Calls are defended like the API client's (timeout, breaker,
//! backoff with jitter, `Retry-After`), but an exchange is retried only when Stripe cannot have
//! seen it (no connection, or a 429): a code is single use, and Stripe revokes whatever a code
//! gave when it is used twice.

use std::{sync::Arc, time::Instant};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::client::{ATTEMPTS, BACKOFF, MAX_WAIT, TIMEOUT};
use crate::providers::{
    breaker::{Breaker, Permit},
    headers::retry_after,
};

/// A failed OAuth call, after the retries that were safe.
#[derive(Debug, thiserror::Error)]
pub enum OAuthCallError {
    /// Stripe refused: its OAuth `error` (`invalid_grant`, `invalid_client`, …) and description.
    #[error("Stripe refused ({error}): {description}")]
    Refused { error: String, description: String },
    /// Stripe could not be reached, kept failing, or the breaker is open.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// The answer was not what Stripe sends.
    #[error("Stripe sent an unexpected response: {0}")]
    Malformed(String),
}

/// What an exchanged code gives: the connected account and a key for it.
pub struct Token {
    /// Works as the connected account's secret key (a restricted one for `read_only`).
    pub access_token: SecretString,
    pub scope: String,
    /// The connected account (`acct_…`).
    pub stripe_user_id: String,
    pub livemode: bool,
}

/// A Connect platform: its client id, the key that acts for it, and where Stripe serves OAuth.
#[derive(Clone)]
pub struct ConnectPlatform {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) client_id: String,
    pub(super) secret: SecretString,
    pub(super) breaker: Arc<Breaker>,
}

impl ConnectPlatform {
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The page a Stripe user approves the connection on; Stripe sends them on to
    /// `redirect_uri` with `code`, `scope` and `state` (or `error` and `error_description`).
    pub fn authorize_url(&self, scope: &str, state: &str, redirect_uri: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", scope)
            .append_pair("state", state)
            .append_pair("redirect_uri", redirect_uri)
            .finish();
        format!("{}/oauth/authorize?{query}", self.base)
    }

    /// Exchanges an authorization code (`POST /oauth/token`).
    pub async fn exchange(&self, code: &str) -> Result<Token, OAuthCallError> {
        let form = [("grant_type", "authorization_code"), ("code", code)];
        let body = self.call("oauth/token", &form, false).await?;
        let text = |name: &str| body[name].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let (Some(access_token), Some(stripe_user_id)) = (text("access_token"), text("stripe_user_id")) else {
            return Err(OAuthCallError::Malformed("a token answer without access_token or stripe_user_id".into()));
        };
        Ok(Token {
            access_token: SecretString::from(access_token),
            scope: text("scope").unwrap_or_default(),
            stripe_user_id,
            livemode: body["livemode"].as_bool().unwrap_or(false),
        })
    }

    /// Ends the platform's access to `account` (`POST /oauth/deauthorize`); an account that is
    /// no longer connected counts as done.
    pub async fn deauthorize(&self, account: &str) -> Result<(), OAuthCallError> {
        let form = [("client_id", self.client_id.as_str()), ("stripe_user_id", account)];
        match self.call("oauth/deauthorize", &form, true).await {
            Ok(_) => Ok(()),
            Err(OAuthCallError::Refused { error, description })
                if error == "invalid_client" && description.contains("not connected") =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// One call; `idempotent` calls are also retried on 5xx.
    async fn call(&self, path: &str, form: &[(&str, &str)], idempotent: bool) -> Result<Value, OAuthCallError> {
        let url = format!("{}/{path}", self.base);
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let backoff = BACKOFF.sample(i32::try_from(attempt).unwrap_or(1));
            if let Permit::Refused(wait) = self.breaker.permit(Instant::now()) {
                return Err(OAuthCallError::Unavailable(format!(
                    "calls to Stripe Connect are paused for {}s after repeated failures",
                    wait.as_secs().max(1)
                )));
            }
            let sent =
                self.http.post(&url).bearer_auth(self.secret.expose_secret()).form(form).timeout(TIMEOUT).send().await;
            let response = match sent {
                Ok(response) => response,
                Err(error) => {
                    self.breaker.failure(Instant::now());
                    last = format!("POST /{path}: {error}");
                    tracing::warn!(%last, attempt, "Stripe Connect call failed");
                    // A request that may have reached Stripe is not sent again unless it is idempotent.
                    if !(error.is_connect() || idempotent) {
                        return Err(OAuthCallError::Unavailable(last));
                    }
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(backoff).await;
                    }
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let body: Value = response.json().await.map_err(|e| OAuthCallError::Malformed(e.to_string()))?;
            tracing::debug!(path, status = status.as_u16(), "Stripe Connect call");
            if status.is_server_error() {
                self.breaker.failure(Instant::now());
            } else {
                self.breaker.success();
            }
            if status.is_success() {
                return Ok(body);
            }
            last = format!("POST /{path}: {}", status.as_u16());
            let retry = status == StatusCode::TOO_MANY_REQUESTS || (idempotent && status.is_server_error());
            if !retry {
                return Err(refusal(status, &body));
            }
            let wait = retry_after(&headers, chrono::Utc::now()).unwrap_or(backoff);
            if wait > MAX_WAIT {
                break;
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
            }
        }
        Err(OAuthCallError::Unavailable(last))
    }
}

/// Stripe's OAuth error (`{"error": "invalid_grant", "error_description"}`), or an API-style one
/// (`{"error": {"type", "message"}}`) from its key check.
fn refusal(status: StatusCode, body: &Value) -> OAuthCallError {
    if status.is_server_error() {
        return OAuthCallError::Unavailable(format!("Stripe answered {}", status.as_u16()));
    }
    let (error, description) = match &body["error"] {
        Value::String(error) => (error.clone(), body["error_description"].as_str().unwrap_or("").to_owned()),
        Value::Object(api) => (
            api.get("code").or_else(|| api.get("type")).and_then(Value::as_str).unwrap_or("invalid_request").to_owned(),
            api.get("message").and_then(Value::as_str).unwrap_or("").to_owned(),
        ),
        _ => return OAuthCallError::Malformed(format!("a {} without an OAuth error", status.as_u16())),
    };
    OAuthCallError::Refused { error, description }
}
