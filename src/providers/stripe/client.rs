//! A defended Stripe client: every call has a timeout; connection failures, 409s, 429s and 5xx
//! are retried with exponential backoff and jitter (as Stripe's own clients do), honouring
//! `Stripe-Should-Retry` and `Retry-After`, with the same `Idempotency-Key` on every attempt of a
//! POST; Stripe's `Request-Id` is logged; an account that keeps failing trips its breaker.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{
    jobs::Backoff,
    providers::{
        breaker::{Breaker, Permit},
        headers::retry_after,
    },
};

/// The API version Payymo is written against, sent on every call.
pub const API_VERSION: &str = "2025-09-30.clover";
/// Attempts per call, the first included.
pub(super) const ATTEMPTS: u32 = 3;
/// Per-attempt timeout.
pub(super) const TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured; beyond it the call fails instead.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(30);
pub(super) const BACKOFF: Backoff = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(8) };

/// A failed Stripe call, after the client's retries.
#[derive(Debug, thiserror::Error)]
pub enum StripeCallError {
    /// Stripe could not be reached, kept failing, or the breaker is open: try again later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// The key was refused (401): invalid, revoked or expired.
    #[error("Stripe refused the key: {0}")]
    Unauthorized(String),
    /// The key may not do this (403).
    #[error("the key lacks a permission: {0}")]
    Forbidden(String),
    /// Any other refusal: `status`, Stripe's error `type`, `code`, `param` and `message`.
    #[error("Stripe refused the request ({status}): {message}")]
    Rejected { status: u16, kind: String, code: Option<String>, param: Option<String>, message: String },
    /// The answer was not the JSON Stripe sends.
    #[error("Stripe sent an unexpected response: {0}")]
    Malformed(String),
}

/// A client for one key. Cheap to clone.
#[derive(Clone)]
pub struct Stripe {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    breaker: Arc<Breaker>,
}

impl Stripe {
    pub(super) fn new(http: reqwest::Client, base: &str, key: SecretString, breaker: Arc<Breaker>) -> Self {
        Self { inner: Arc::new(Inner { http, base: base.to_owned(), key, breaker }) }
    }

    /// `GET /v1/{path}` with the query `query`.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, StripeCallError> {
        self.call(Method::GET, path, query, None).await
    }

    /// `POST /v1/{path}` with a form body and an idempotency key sent on every attempt.
    pub async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<Value, StripeCallError> {
        self.call(Method::POST, path, form, Some(idempotency_key)).await
    }

    /// `DELETE /v1/{path}`; already gone counts as done.
    pub async fn delete(&self, path: &str) -> Result<(), StripeCallError> {
        match self.call(Method::DELETE, path, &[], None).await {
            Ok(_) | Err(StripeCallError::Rejected { status: 404, .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Result<Value, StripeCallError> {
        let url = format!("{}/v1/{}", self.inner.base, path.trim_start_matches('/'));
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if let Permit::Refused(wait) = self.inner.breaker.permit(Instant::now()) {
                return Err(StripeCallError::Unavailable(format!(
                    "calls to this Stripe account are paused for {}s after repeated failures",
                    wait.as_secs().max(1)
                )));
            }
            let mut request = self
                .inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.inner.key.expose_secret())
                .header("Stripe-Version", API_VERSION)
                .timeout(TIMEOUT);
            request = if method == Method::GET { request.query(params) } else { request.form(params) };
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    self.inner.breaker.failure(Instant::now());
                    last = format!("{method} {path}: {error}");
                    tracing::warn!(%last, attempt, "Stripe call failed");
                    tokio::time::sleep(BACKOFF.sample(i32::try_from(attempt + 1).unwrap_or(1))).await;
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let should_retry = headers.get("stripe-should-retry").and_then(|v| v.to_str().ok()).map(|v| v == "true");
            let body: Value = response.json().await.map_err(|e| StripeCallError::Malformed(e.to_string()))?;
            tracing::debug!(%method, path, status = status.as_u16(), request_id, "Stripe call");
            if status.is_success() {
                self.inner.breaker.success();
                return Ok(body);
            }
            let transient = should_retry.unwrap_or(
                status == StatusCode::CONFLICT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
            );
            let message = body["error"]["message"].as_str().unwrap_or("no message").to_owned();
            if status.is_server_error() {
                self.inner.breaker.failure(Instant::now());
            } else {
                self.inner.breaker.success();
            }
            if !transient {
                return Err(refusal(status, &body, message));
            }
            last = format!("{method} {path}: {} {message} (request {request_id})", status.as_u16());
            tracing::warn!(%last, attempt, "Stripe call failed, retrying");
            let wait = retry_after(&headers, chrono::Utc::now())
                .unwrap_or_else(|| BACKOFF.sample(i32::try_from(attempt + 1).unwrap_or(1)));
            if wait > MAX_WAIT {
                break;
            }
            if attempt + 1 < ATTEMPTS {
                tokio::time::sleep(wait).await;
            }
        }
        Err(StripeCallError::Unavailable(last))
    }
}

fn refusal(status: StatusCode, body: &Value, message: String) -> StripeCallError {
    let text = |name: &str| body["error"][name].as_str().map(str::to_owned);
    match status {
        StatusCode::UNAUTHORIZED => StripeCallError::Unauthorized(message),
        StatusCode::FORBIDDEN => StripeCallError::Forbidden(message),
        _ => StripeCallError::Rejected {
            status: status.as_u16(),
            kind: text("type").unwrap_or_default(),
            code: text("code"),
            param: text("param"),
            message,
        },
    }
}
