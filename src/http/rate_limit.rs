//! Per-credential rate limits, sized by the tenant's plan. Every authenticated response carries
//! `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining`, `X-Rate-Limit-Reset` and the IETF
//! `RateLimit-Policy` / `RateLimit` headers; over the limit the answer is 429 with `Retry-After`.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::error::{ApiError, ErrorCode};
use crate::{
    auth::{Plan, Principal},
    config::RateLimits,
    ratelimit::{Decision, Quota},
    state::AppState,
};

pub fn quota(limits: &RateLimits, plan: Plan) -> Quota {
    match plan {
        Plan::Free => limits.free,
        Plan::Standard => limits.standard,
        Plan::Premium => limits.premium,
    }
}

pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(principal) = request.extensions().get::<Principal>() else {
        return next.run(request).await;
    };
    let quota = quota(&state.config.rate_limits, principal.tenant.plan);
    let key = format!("cred:{}:{}", principal.tenant.id, principal.credential_id());
    let decision = state.limiter.check(&key, quota).await;
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        let detail = format!(
            "this credential may make {} requests per {}; retry in {} s",
            quota.limit,
            humantime::format_duration(quota.period),
            retry_after_secs(&decision)
        );
        refusal(&decision, detail).into_response()
    };
    set_headers(response.headers_mut(), quota, &decision);
    response
}

/// The 429 for a refused `decision`, with `Retry-After`; every rate limit answers with this.
pub fn refusal(decision: &Decision, detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::RateLimited, detail)
        .with_header(header::RETRY_AFTER, &retry_after_secs(decision).to_string())
}

/// Whole seconds until one more request is allowed, rounded up so a client never retries early.
fn retry_after_secs(decision: &Decision) -> u64 {
    decision.retry_after.map_or(1, |d| d.as_secs_f64().ceil().max(1.0) as u64)
}

fn set_headers(headers: &mut HeaderMap, quota: Quota, decision: &Decision) {
    let reset = decision.reset_after.as_secs_f64().ceil() as u64;
    let window = quota.period.as_secs().max(1);
    let pairs = [
        ("x-rate-limit-limit", decision.limit.to_string()),
        ("x-rate-limit-remaining", decision.remaining.to_string()),
        ("x-rate-limit-reset", reset.to_string()),
        ("ratelimit-policy", format!("\"default\";q={};w={window}", quota.limit)),
        ("ratelimit", format!("\"default\";r={};t={reset}", decision.remaining)),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}
