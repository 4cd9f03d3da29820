//! The typed GoCardless Bank Account Data client.
//!
//! One [`GoCardless`] per (base URL, credentials), sharing one pooled HTTP client. The access
//! token is obtained once, kept sealed in the database (`provider_tokens`) so every instance uses
//! the same one, renewed five minutes before it expires (by refresh token while that lives), and on
//! a 401 renewed once and the call retried. Transient failures (5xx, timeouts, dropped connections,
//! the company rate limit) are retried with exponential backoff and full jitter, waiting at least
//! what `Retry-After` or the rate-limit reset header asks; everything else fails at once. A circuit
//! breaker stops calls to a provider that keeps failing.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::{
    error::ProviderError,
    types::{
        AccountMetadata, Agreement, BalancesResponse, DetailsResponse, ErrorBody, Institution, NewToken,
        RefreshedToken, Requisition, TransactionsResponse,
    },
};
use crate::{
    crypto::KeyRing,
    jobs::Backoff,
    providers::{
        breaker::{Breaker, Permit},
        headers::{RateLimitInfo, retry_after},
    },
};

/// Renew the access token when less than this is left.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The deployment's or a tenant's GoCardless credentials.
#[derive(Clone)]
pub struct Credentials {
    pub secret_id: SecretString,
    pub secret_key: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([REDACTED])")
    }
}

/// How hard the client tries before giving up on a transient failure.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    pub backoff: Backoff,
    /// The longest single wait the client accepts (`Retry-After` beyond it fails the call instead).
    pub max_wait: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(10) },
            max_wait: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A cached access token.
#[derive(Clone)]
struct Token {
    access: SecretString,
    expires_at: DateTime<Utc>,
}

/// A client for one base URL and one set of credentials. Cheap to clone.
#[derive(Clone)]
pub struct GoCardless {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    /// Names this (base URL, secret_id) in `provider_tokens` without revealing the secret_id.
    credential_key: String,
    db: PgPool,
    keys: KeyRing,
    token: Mutex<Option<Token>>,
    breaker: Arc<Breaker>,
    retry: RetryPolicy,
}

/// A successful answer and what it said about rate limits.
#[derive(Debug)]
pub struct Answer<T> {
    pub body: T,
    pub limits: RateLimitInfo,
}

impl GoCardless {
    /// A client for the API at `base` (e.g. `https://bankaccountdata.gocardless.com/api/v2`).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        credentials: Credentials,
        db: PgPool,
        keys: KeyRing,
        breaker: Arc<Breaker>,
        retry: RetryPolicy,
    ) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        let credential_key = hex(&Sha256::digest(format!("{base}\n{}", credentials.secret_id.expose_secret())));
        Self {
            inner: Arc::new(Inner {
                http,
                base,
                credentials,
                credential_key,
                db,
                keys,
                token: Mutex::new(None),
                breaker,
                retry,
            }),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Proves both halves of the credentials work by obtaining a new access token (a stored one
    /// proves only the secret_id), which the calls that follow then use.
    pub async fn verify(&self) -> Result<(), ProviderError> {
        let token = self.new_tokens().await?;
        *self.inner.token.lock().await = Some(token);
        Ok(())
    }

    /// Banks in `country` (ISO 3166 alpha-2).
    pub async fn institutions(&self, country: &str) -> Result<Vec<Institution>, ProviderError> {
        let path = format!("/institutions/?country={}", urlencode(country));
        Ok(self.call(Method::GET, &path, None::<()>).await?.body)
    }

    pub async fn institution(&self, id: &str) -> Result<Institution, ProviderError> {
        Ok(self.call(Method::GET, &format!("/institutions/{}/", urlencode(id)), None::<()>).await?.body)
    }

    pub async fn create_agreement(
        &self,
        institution_id: &str,
        max_historical_days: i32,
        access_valid_for_days: i32,
    ) -> Result<Agreement, ProviderError> {
        let body = json!({
            "institution_id": institution_id,
            "max_historical_days": max_historical_days,
            "access_valid_for_days": access_valid_for_days,
            "access_scope": ["balances", "details", "transactions"],
        });
        Ok(self.call(Method::POST, "/agreements/enduser/", Some(body)).await?.body)
    }

    pub async fn create_requisition(
        &self,
        redirect: &str,
        institution_id: &str,
        reference: &str,
        agreement: &str,
    ) -> Result<Requisition, ProviderError> {
        let body = json!({
            "redirect": redirect,
            "institution_id": institution_id,
            "reference": reference,
            "agreement": agreement,
            "user_language": "EN",
        });
        Ok(self.call(Method::POST, "/requisitions/", Some(body)).await?.body)
    }

    pub async fn requisition(&self, id: &str) -> Result<Requisition, ProviderError> {
        Ok(self.call(Method::GET, &format!("/requisitions/{}/", urlencode(id)), None::<()>).await?.body)
    }

    /// Deletes a requisition (and its agreement) upstream. Already gone counts as done.
    pub async fn delete_requisition(&self, id: &str) -> Result<(), ProviderError> {
        match self
            .call::<serde_json::Value>(Method::DELETE, &format!("/requisitions/{}/", urlencode(id)), None::<()>)
            .await
        {
            Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    pub async fn account(&self, id: &str) -> Result<AccountMetadata, ProviderError> {
        Ok(self.call(Method::GET, &format!("/accounts/{}/", urlencode(id)), None::<()>).await?.body)
    }

    pub async fn details(&self, id: &str) -> Result<Answer<DetailsResponse>, ProviderError> {
        self.call(Method::GET, &format!("/accounts/{}/details/", urlencode(id)), None::<()>).await
    }

    pub async fn balances(&self, id: &str) -> Result<Answer<BalancesResponse>, ProviderError> {
        self.call(Method::GET, &format!("/accounts/{}/balances/", urlencode(id)), None::<()>).await
    }

    /// Booked and pending transactions from `date_from` (inclusive) on.
    pub async fn transactions(
        &self,
        id: &str,
        date_from: Option<chrono::NaiveDate>,
    ) -> Result<Answer<TransactionsResponse>, ProviderError> {
        let mut path = format!("/accounts/{}/transactions/", urlencode(id));
        if let Some(from) = date_from {
            path.push_str(&format!("?date_from={}", from.format("%Y-%m-%d")));
        }
        self.call(Method::GET, &path, None::<()>).await
    }

    /// One API call with authentication, retries and the breaker.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<impl Serialize>,
    ) -> Result<Answer<T>, ProviderError> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ProviderError::Malformed(format!("the request body does not serialize: {e}")))?;
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.access_token().await?;
            let request = self
                .inner
                .http
                .request(method.clone(), format!("{}{path}", self.inner.base))
                .bearer_auth(token.access.expose_secret());
            let request = match &body {
                Some(body) => request.json(body),
                None => request,
            };
            let outcome = self.send(request).await;
            let wait = match outcome {
                Sent::Ok(response) => {
                    let limits = RateLimitInfo::from_headers(response.headers());
                    let bytes = response.bytes().await.map_err(|e| self.transient(e.to_string(), None))?;
                    return serde_json::from_slice(&bytes)
                        .map(|body| Answer { body, limits })
                        .map_err(|e| ProviderError::Malformed(format!("{path}: {e}")));
                }
                Sent::Failed(error) => return Err(error),
                Sent::Unauthorized(body) => {
                    if body.kind.as_deref() == Some("AccessExpiredError")
                        || body.kind.as_deref() == Some("AccountInactiveError")
                    {
                        return Err(ProviderError::AccessExpired);
                    }
                    if renewed {
                        return Err(ProviderError::Credentials(body.describe()));
                    }
                    renewed = true;
                    self.forget_token(&token).await;
                    attempt -= 1;
                    continue;
                }
                Sent::Retry { error, wait } => self.retry_wait(attempt, wait).ok_or(error)?,
            };
            tracing::debug!(path, attempt, ?wait, "retrying GoCardless call");
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends one request through the breaker and sorts the outcome.
    async fn send(&self, request: reqwest::RequestBuilder) -> Sent {
        if let Permit::Refused(wait) = self.inner.breaker.permit(Instant::now()) {
            return Sent::Failed(ProviderError::Unavailable {
                detail: "too many recent failures; calls are paused (circuit open)".to_owned(),
                retry_after: Some(wait),
            });
        }
        let response = match request.timeout(self.inner.retry.timeout).send().await {
            Ok(response) => response,
            Err(error) => {
                self.inner.breaker.failure(Instant::now());
                let error = self.transient(describe_reqwest(error), None);
                return Sent::Retry { error, wait: None };
            }
        };
        let status = response.status();
        if status.is_success() {
            self.inner.breaker.success();
            return Sent::Ok(response);
        }
        let headers = response.headers().clone();
        let waited = retry_after(&headers, Utc::now());
        let limits = RateLimitInfo::from_headers(&headers);
        let body: ErrorBody = response.json().await.unwrap_or_default();
        if status.is_server_error() {
            self.inner.breaker.failure(Instant::now());
            return Sent::Retry {
                error: self.transient(format!("{status}: {}", body.describe()), waited),
                wait: waited,
            };
        }
        // A 4xx proves the provider is up.
        self.inner.breaker.success();
        match status {
            StatusCode::UNAUTHORIZED => Sent::Unauthorized(body),
            StatusCode::TOO_MANY_REQUESTS => {
                let daily = body.kind.as_deref() == Some("RateLimitError") || limits.account_remaining == Some(0);
                if daily {
                    let resets_in = Duration::from_secs(limits.account_reset.unwrap_or(86_400));
                    return Sent::Failed(ProviderError::BudgetSpent { resets_in });
                }
                let wait = waited.or(limits.reset.map(Duration::from_secs)).unwrap_or(Duration::from_secs(60));
                Sent::Retry { error: ProviderError::RateLimited { retry_after: wait }, wait: Some(wait) }
            }
            StatusCode::CONFLICT => Sent::Failed(ProviderError::Suspended),
            StatusCode::NOT_FOUND => Sent::Failed(ProviderError::NotFound(body.describe())),
            StatusCode::FORBIDDEN if body.kind.as_deref() == Some("AccountAccessForbidden") => {
                Sent::Failed(ProviderError::AccessExpired)
            }
            _ => Sent::Failed(ProviderError::Rejected { status: status.as_u16(), detail: body.describe() }),
        }
    }

    fn transient(&self, detail: String, retry_after: Option<Duration>) -> ProviderError {
        ProviderError::Unavailable { detail, retry_after }
    }

    /// A live access token: this process's copy, the fleet's copy in the database, a refreshed
    /// one, or a brand-new one, in that order of preference.
    async fn access_token(&self) -> Result<Token, ProviderError> {
        let fresh =
            |t: &Token| t.expires_at - Utc::now() > chrono::Duration::from_std(RENEW_BEFORE).unwrap_or_default();
        let mut cached = self.inner.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| fresh(t)) {
            return Ok(token.clone());
        }
        let stored = self.load_tokens().await;
        if let Some((access, _)) = stored.as_ref()
            && fresh(access)
        {
            *cached = Some(access.clone());
            return Ok(access.clone());
        }
        let now = Utc::now();
        let token = match stored.and_then(|(_, refresh)| refresh.filter(|(_, expires)| *expires > now)) {
            Some((refresh, _)) => match self.refresh(&refresh).await {
                Ok(token) => token,
                Err(ProviderError::Credentials(_)) => self.new_tokens().await?,
                Err(error) => return Err(error),
            },
            None => self.new_tokens().await?,
        };
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Drops a token the provider refused, here and (if still the same) in the database.
    async fn forget_token(&self, token: &Token) {
        let mut cached = self.inner.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.access.expose_secret() == token.access.expose_secret()) {
            *cached = None;
        }
        let expired = sqlx::query(
            "update provider_tokens set access_expires_at = now() - interval '1 second'
             where credential_key = $1 and access_expires_at = $2",
        )
        .bind(&self.inner.credential_key)
        .bind(token.expires_at)
        .execute(&self.inner.db)
        .await;
        if let Err(error) = expired {
            tracing::warn!(%error, "could not mark the refused GoCardless token as expired");
        }
    }

    /// The stored access token and refresh token, if any and readable.
    async fn load_tokens(&self) -> Option<(Token, Option<(SecretString, DateTime<Utc>)>)> {
        #[derive(sqlx::FromRow)]
        struct Stored {
            access_sealed: String,
            access_expires_at: DateTime<Utc>,
            refresh_sealed: String,
            refresh_expires_at: DateTime<Utc>,
        }
        let row: Stored = sqlx::query_as(
            "select access_sealed, access_expires_at, refresh_sealed, refresh_expires_at
             from provider_tokens where credential_key = $1",
        )
        .bind(&self.inner.credential_key)
        .fetch_optional(&self.inner.db)
        .await
        .inspect_err(|error| tracing::warn!(%error, "cannot read the shared GoCardless token"))
        .ok()??;
        let Stored {
            access_sealed: access,
            access_expires_at: access_expires,
            refresh_sealed: refresh,
            refresh_expires_at: refresh_expires,
        } = row;
        let open = |sealed: &str, what: &str| {
            self.inner
                .keys
                .open(&self.token_context(what), sealed)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .map(SecretString::from)
        };
        let access = Token { access: open(&access, "access")?, expires_at: access_expires };
        Some((access, open(&refresh, "refresh").map(|r| (r, refresh_expires))))
    }

    fn token_context(&self, what: &str) -> String {
        format!("provider_tokens/{}/{what}", self.inner.credential_key)
    }

    async fn new_tokens(&self) -> Result<Token, ProviderError> {
        let body = json!({
            "secret_id": self.inner.credentials.secret_id.expose_secret(),
            "secret_key": self.inner.credentials.secret_key.expose_secret(),
        });
        let issued: NewToken = self.token_call("/token/new/", body).await?;
        let now = Utc::now();
        let access = Token {
            access: SecretString::from(issued.access),
            expires_at: now + chrono::Duration::seconds(issued.access_expires),
        };
        let refresh_expires = now + chrono::Duration::seconds(issued.refresh_expires);
        let seal = |what: &str, value: &str| self.inner.keys.seal(&self.token_context(what), value.as_bytes());
        let (Ok(access_sealed), Ok(refresh_sealed)) =
            (seal("access", access.access.expose_secret()), seal("refresh", &issued.refresh))
        else {
            return Ok(access);
        };
        let stored = sqlx::query(
            "insert into provider_tokens (credential_key, access_sealed, access_expires_at, refresh_sealed, refresh_expires_at)
             values ($1, $2, $3, $4, $5)
             on conflict (credential_key) do update set access_sealed = excluded.access_sealed,
                 access_expires_at = excluded.access_expires_at, refresh_sealed = excluded.refresh_sealed,
                 refresh_expires_at = excluded.refresh_expires_at",
        )
        .bind(&self.inner.credential_key)
        .bind(access_sealed)
        .bind(access.expires_at)
        .bind(refresh_sealed)
        .bind(refresh_expires)
        .execute(&self.inner.db)
        .await;
        if let Err(error) = stored {
            tracing::warn!(%error, "could not share the new GoCardless token; this instance keeps its own copy");
        }
        Ok(access)
    }

    async fn refresh(&self, refresh: &SecretString) -> Result<Token, ProviderError> {
        let refreshed: RefreshedToken =
            self.token_call("/token/refresh/", json!({"refresh": refresh.expose_secret()})).await?;
        let access = Token {
            access: SecretString::from(refreshed.access),
            expires_at: Utc::now() + chrono::Duration::seconds(refreshed.access_expires),
        };
        if let Ok(sealed) =
            self.inner.keys.seal(&self.token_context("access"), access.access.expose_secret().as_bytes())
        {
            let stored = sqlx::query(
                "update provider_tokens set access_sealed = $2, access_expires_at = $3 where credential_key = $1",
            )
            .bind(&self.inner.credential_key)
            .bind(sealed)
            .bind(access.expires_at)
            .execute(&self.inner.db)
            .await;
            if let Err(error) = stored {
                tracing::warn!(%error, "could not share the refreshed GoCardless token");
            }
        }
        Ok(access)
    }

    /// A token endpoint call: retried like any other, but without a bearer token.
    async fn token_call<T: DeserializeOwned>(&self, path: &str, body: serde_json::Value) -> Result<T, ProviderError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self.inner.http.post(format!("{}{path}", self.inner.base)).json(&body);
            let (error, wait) = match self.send(request).await {
                Sent::Ok(response) => {
                    return response.json().await.map_err(|e| ProviderError::Malformed(format!("{path}: {e}")));
                }
                Sent::Unauthorized(body) => return Err(ProviderError::Credentials(body.describe())),
                Sent::Failed(error) => return Err(error),
                Sent::Retry { error, wait } => (error, wait),
            };
            tokio::time::sleep(self.retry_wait(attempt, wait).ok_or(error)?).await;
        }
    }

    /// How long to wait before retrying after failed `attempt`: full jitter, but never less than
    /// the provider asked (`asked`). `None` when attempts are used up or the wait is too long.
    fn retry_wait(&self, attempt: u32, asked: Option<Duration>) -> Option<Duration> {
        if attempt >= self.inner.retry.attempts {
            return None;
        }
        let jitter = self.inner.retry.backoff.sample(attempt as i32);
        let wait = asked.map_or(jitter, |w| w.max(jitter));
        (wait <= self.inner.retry.max_wait).then_some(wait)
    }
}

/// The outcome of one attempt.
enum Sent {
    Ok(reqwest::Response),
    Unauthorized(ErrorBody),
    Retry { error: ProviderError, wait: Option<Duration> },
    Failed(ProviderError),
}

fn describe_reqwest(error: reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        // No URL: it may carry query parameters.
        error.without_url().to_string()
    }
}

fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
