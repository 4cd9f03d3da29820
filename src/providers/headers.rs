//! Reading providers' rate-limit headers. GoCardless documents `HTTP_X_RATELIMIT_*` names while
//! clients in the wild read `X-RateLimit-*`; both are accepted, in any case.

use std::time::Duration;

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};

/// What a response said about the limits it was counted against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// Seconds until the window resets.
    pub reset: Option<u64>,
    /// The bank's per-account budget of successful calls for this endpoint.
    pub account_limit: Option<u32>,
    pub account_remaining: Option<u32>,
    pub account_reset: Option<u64>,
}

impl RateLimitInfo {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            limit: number(headers, "limit"),
            remaining: number(headers, "remaining"),
            reset: number(headers, "reset"),
            account_limit: number(headers, "account_success_limit"),
            account_remaining: number(headers, "account_success_remaining"),
            account_reset: number(headers, "account_success_reset"),
        }
    }
}

/// The value of `HTTP_X_RATELIMIT_<suffix>` or `X-RateLimit-<suffix>` (suffix in snake case;
/// the dashed form is tried too). Header names are case-insensitive on the wire.
fn number<T: std::str::FromStr>(headers: &HeaderMap, suffix: &str) -> Option<T> {
    let dashed = suffix.replace('_', "-");
    [format!("http_x_ratelimit_{suffix}"), format!("x-ratelimit-{dashed}"), format!("x_ratelimit_{suffix}")]
        .iter()
        .find_map(|name| headers.get(name.as_str()))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// `Retry-After` as a delay: delta-seconds, or an HTTP date relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn both_spellings_are_read_in_any_case() {
        let documented = headers(&[
            ("HTTP_X_RATELIMIT_LIMIT", "100"),
            ("Http_X_RateLimit_Remaining", "99"),
            ("HTTP_X_RATELIMIT_RESET", "60"),
            ("HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_LIMIT", "4"),
            ("HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_REMAINING", "3"),
            ("HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_RESET", "86395"),
        ]);
        let dashed = headers(&[
            ("X-RateLimit-Limit", "100"),
            ("x-ratelimit-remaining", "99"),
            ("X-RATELIMIT-RESET", "60"),
            ("X-RateLimit-Account-Success-Limit", "4"),
            ("X-RateLimit-Account-Success-Remaining", "3"),
            ("X-RateLimit-Account-Success-Reset", "86395"),
        ]);
        let expected = RateLimitInfo {
            limit: Some(100),
            remaining: Some(99),
            reset: Some(60),
            account_limit: Some(4),
            account_remaining: Some(3),
            account_reset: Some(86_395),
        };
        assert_eq!(RateLimitInfo::from_headers(&documented), expected);
        assert_eq!(RateLimitInfo::from_headers(&dashed), expected);
        assert_eq!(RateLimitInfo::from_headers(&headers(&[("x-ratelimit-limit", "many")])), RateLimitInfo::default());
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(retry_after(&headers(&[("retry-after", "7")]), now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", "Sat, 21 Nov 2026 10:00:30 GMT")]), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
