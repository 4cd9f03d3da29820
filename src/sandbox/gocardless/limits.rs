//! The company-wide limits GoCardless applies across all of a customer's secrets (wire-formats
//! §1.9(a)): fixed windows of the simulator's clock per group of endpoints, with the general
//! `HTTP_X_RATELIMIT_*` headers; and the spelling of every rate-limit header this simulator emits.

use std::collections::HashMap;

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};

use super::{
    error::ApiError,
    state::{SandboxConfig, SandboxState},
};

/// Calls allowed per window for each group of endpoints. The defaults are the documented ones;
/// tests set lower values to reach them quickly.
#[derive(Debug, Clone)]
pub struct CompanyLimits {
    /// `GET /accounts/{id}/` and its details, balances and transactions, together, per minute.
    pub accounts_per_minute: u32,
    /// `GET /institutions/` and `/institutions/{id}/`, per minute.
    pub institutions_per_minute: u32,
    /// `POST /agreements/enduser/` and `POST /requisitions/`, per minute.
    pub create_per_minute: u32,
    /// `GET` of agreements and requisitions (lists and single ones), per minute.
    pub read_per_minute: u32,
    /// `PUT /agreements/enduser/{id}/accept/`, per minute.
    pub accept_per_minute: u32,
    /// `DELETE` of agreements and requisitions, per minute.
    pub delete_per_minute: u32,
    /// `POST /token/new/`, per hour.
    pub token_new_per_hour: u32,
    /// `POST /token/refresh/`, per minute.
    pub token_refresh_per_minute: u32,
}

impl Default for CompanyLimits {
    fn default() -> Self {
        Self {
            accounts_per_minute: 100,
            institutions_per_minute: 300,
            create_per_minute: 100,
            read_per_minute: 300,
            accept_per_minute: 100,
            delete_per_minute: 100,
            token_new_per_hour: 100,
            token_refresh_per_minute: 100,
        }
    }
}

/// A group of endpoints sharing one company-wide budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Bucket {
    Accounts,
    Institutions,
    Create,
    Read,
    Accept,
    Delete,
    TokenNew,
    TokenRefresh,
}

impl Bucket {
    /// The budget a call to `path` (with or without its `/api/v2` prefix) draws on, if any.
    fn of(method: &Method, path: &str) -> Option<Self> {
        let path = path.strip_prefix("/api/v2").unwrap_or(path);
        if path.starts_with("/accounts/") {
            Some(Self::Accounts)
        } else if path.starts_with("/institutions") {
            Some(Self::Institutions)
        } else if path.starts_with("/token/new") {
            Some(Self::TokenNew)
        } else if path.starts_with("/token/refresh") {
            Some(Self::TokenRefresh)
        } else if !(path.starts_with("/agreements/") || path.starts_with("/requisitions/")) {
            None
        } else if path.contains("/accept") {
            Some(Self::Accept)
        } else {
            match *method {
                Method::POST => Some(Self::Create),
                Method::GET => Some(Self::Read),
                Method::DELETE => Some(Self::Delete),
                _ => None,
            }
        }
    }

    /// Calls allowed per window.
    fn limit(self, limits: &CompanyLimits) -> u32 {
        match self {
            Self::Accounts => limits.accounts_per_minute,
            Self::Institutions => limits.institutions_per_minute,
            Self::Create => limits.create_per_minute,
            Self::Read => limits.read_per_minute,
            Self::Accept => limits.accept_per_minute,
            Self::Delete => limits.delete_per_minute,
            Self::TokenNew => limits.token_new_per_hour,
            Self::TokenRefresh => limits.token_refresh_per_minute,
        }
    }

    /// The window's length in seconds, and its name in the 429 detail.
    fn window(self) -> (i64, &'static str) {
        if self == Self::TokenNew { (3600, "hour") } else { (60, "minute") }
    }
}

/// Calls counted per budget: the current window's number and the calls made in it.
pub(crate) type CompanyUsage = HashMap<Bucket, (i64, u32)>;

/// The outcome of counting one call.
#[derive(Debug, PartialEq, Eq)]
struct Window {
    limit: u32,
    remaining: u32,
    reset: i64,
    allowed: bool,
}

/// Counts one call against `bucket` at `now`; a refused call is not counted.
fn count_call(usage: &mut CompanyUsage, bucket: Bucket, limit: u32, now: DateTime<Utc>) -> Window {
    let (length, _) = bucket.window();
    let seconds = now.timestamp();
    let (index, reset) = (seconds.div_euclid(length), length - seconds.rem_euclid(length));
    let entry = usage.entry(bucket).or_insert((index, 0));
    if entry.0 != index {
        *entry = (index, 0);
    }
    let allowed = entry.1 < limit;
    if allowed {
        entry.1 += 1;
    }
    Window { limit, remaining: limit.saturating_sub(entry.1), reset, allowed }
}

/// Enforces the company-wide limits and adds the general rate-limit headers to every answer of a
/// limited endpoint.
pub(crate) async fn company_limits(State(state): State<SandboxState>, request: Request, next: Next) -> Response {
    let Some(bucket) = Bucket::of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let limit = bucket.limit(&state.config.company_limits);
    let window = {
        let mut inner = state.lock();
        let now = inner.now();
        count_call(&mut inner.company_usage, bucket, limit, now)
    };
    let headers = general_headers(&state.config, window.limit, window.remaining, window.reset);
    if !window.allowed {
        let (_, period) = bucket.window();
        let reset = window.reset;
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded",
            format!("The rate limit for this resource is {limit}/{period}. Please try again in {reset} seconds"),
        )
        .with_headers(headers)
        .with_headers(vec![(header::RETRY_AFTER, HeaderValue::from(reset))])
        .into_response();
    }
    let mut response = next.run(request).await;
    response.headers_mut().extend(headers);
    response
}

/// The general window headers, in the documented spelling and optionally the `X-RateLimit-*` one.
pub(crate) fn general_headers(
    config: &SandboxConfig,
    limit: u32,
    remaining: u32,
    reset: i64,
) -> Vec<(HeaderName, HeaderValue)> {
    spelled(
        config,
        [
            ("http_x_ratelimit_limit", "x-ratelimit-limit"),
            ("http_x_ratelimit_remaining", "x-ratelimit-remaining"),
            ("http_x_ratelimit_reset", "x-ratelimit-reset"),
        ],
        [i64::from(limit), i64::from(remaining), reset],
    )
}

/// The per-account success budget headers, in the documented spelling and optionally the
/// `X-RateLimit-Account-Success-*` one.
pub(crate) fn account_success_headers(
    config: &SandboxConfig,
    limit: u32,
    remaining: u32,
    reset: i64,
) -> Vec<(HeaderName, HeaderValue)> {
    spelled(
        config,
        [
            ("http_x_ratelimit_account_success_limit", "x-ratelimit-account-success-limit"),
            ("http_x_ratelimit_account_success_remaining", "x-ratelimit-account-success-remaining"),
            ("http_x_ratelimit_account_success_reset", "x-ratelimit-account-success-reset"),
        ],
        [i64::from(limit), i64::from(remaining), reset],
    )
}

/// Each value under its documented name and, when configured, its alternative name too.
/// (HTTP/1 header names go out lowercase; clients compare them case-insensitively.)
fn spelled(
    config: &SandboxConfig,
    names: [(&'static str, &'static str); 3],
    values: [i64; 3],
) -> Vec<(HeaderName, HeaderValue)> {
    names
        .into_iter()
        .zip(values)
        .flat_map(|((documented, alternative), value)| {
            let value = HeaderValue::from(value);
            let also = config.x_ratelimit_headers.then(|| (HeaderName::from_static(alternative), value.clone()));
            std::iter::once((HeaderName::from_static(documented), value)).chain(also)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn calls_are_grouped_as_documented() {
        let of = |method: Method, path| Bucket::of(&method, path);
        assert_eq!(of(Method::GET, "/api/v2/accounts/x/transactions/"), Some(Bucket::Accounts));
        assert_eq!(of(Method::GET, "/accounts/x/"), Some(Bucket::Accounts));
        assert_eq!(of(Method::GET, "/institutions/"), Some(Bucket::Institutions));
        assert_eq!(of(Method::POST, "/requisitions/"), Some(Bucket::Create));
        assert_eq!(of(Method::GET, "/agreements/enduser/x/"), Some(Bucket::Read));
        assert_eq!(of(Method::PUT, "/agreements/enduser/x/accept/"), Some(Bucket::Accept));
        assert_eq!(of(Method::DELETE, "/requisitions/x/"), Some(Bucket::Delete));
        assert_eq!(of(Method::POST, "/token/new/"), Some(Bucket::TokenNew));
        assert_eq!(of(Method::POST, "/token/refresh/"), Some(Bucket::TokenRefresh));
        assert_eq!(of(Method::GET, "/nowhere/"), None);
    }

    #[test]
    fn fixed_windows_of_the_clock() {
        let mut usage = CompanyUsage::new();
        let at = |s| Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, s).single().unwrap_or_default();
        let first = count_call(&mut usage, Bucket::Read, 2, at(10));
        assert_eq!(first, Window { limit: 2, remaining: 1, reset: 50, allowed: true });
        assert!(count_call(&mut usage, Bucket::Read, 2, at(20)).allowed);
        let refused = count_call(&mut usage, Bucket::Read, 2, at(30));
        assert_eq!(refused, Window { limit: 2, remaining: 0, reset: 30, allowed: false });
        assert!(count_call(&mut usage, Bucket::Create, 2, at(30)).allowed, "budgets are separate");
        let next_minute = Utc.with_ymd_and_hms(2026, 3, 2, 9, 1, 0).single().unwrap_or_default();
        assert_eq!(count_call(&mut usage, Bucket::Read, 2, next_minute).remaining, 1);
    }
}
