//! `Idempotency-Key` on POST, PATCH, PUT and DELETE, with Stripe's semantics: the first response
//! is stored for 24 hours and replayed to a retry with the same key (`Idempotent-Replayed: true`);
//! the same key with a different request is a 422; a retry while the first request is still
//! running is a 409. Keys are scoped to the tenant and the credential.
//!
//! The key is claimed with a lease before the handler runs: a request that dies mid-way (a
//! killed instance) leaves a lease that expires, after which a retry runs the request again.
//! Server errors (5xx) and 429s are not stored, so the client's retry runs again as well.

use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorCode, PROBLEM_JSON, Problem};
use crate::{auth::Principal, db::tenant::begin_tenant, domain::secret::revealed_while, state::AppState};

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a claimed key stays locked to its first request before a retry may take over.
const LEASE: Duration = Duration::from_secs(60);
/// Response headers stored with the response and replayed.
const KEPT_HEADERS: &[HeaderName] = &[header::CONTENT_TYPE, header::LOCATION];

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::POST | Method::PATCH | Method::PUT | Method::DELETE) {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(&IDEMPOTENCY_KEY).cloned() else {
        return next.run(request).await;
    };
    let Some(principal) = request.extensions().get::<Principal>().cloned() else {
        return next.run(request).await;
    };
    match run(state, principal, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(
    state: AppState,
    principal: Principal,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = match key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => k.to_owned(),
        _ => return Err(invalid("Idempotency-Key must be 1 to 255 visible ASCII characters")),
    };
    let (parts, body) = request.into_parts();
    // CSV uploads may exceed the usual limit (see `http::limit_body`).
    let limit = if super::imports::UPLOAD_PATHS.contains(&parts.uri.path()) {
        state.config.body_limit.max(crate::imports::UPLOAD_LIMIT)
    } else {
        state.config.body_limit
    };
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than this server accepts").into_response()
    })?;
    let fingerprint = fingerprint(&parts.method, parts.uri.path(), parts.uri.query(), &bytes);
    let tenant = principal.tenant.id.clone();
    let credential = principal.credential_id().to_owned();

    match claim(&state, &principal, &key, &fingerprint).await.map_err(db_error)? {
        Claim::Replay(stored) => return Ok(stored),
        Claim::Mismatch => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request; use a new key for a new request",
            )
            .into_response());
        }
        Claim::InFlight => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyInUse,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
            .with_header(header::RETRY_AFTER, "1")
            .into_response());
        }
        Claim::Claimed => {}
    }

    // Every secret the response shows is noted as it is serialized, and never stored.
    let (response, secrets) = revealed_while(next.run(Request::from_parts(parts, Body::from(bytes)))).await;
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(error) => {
            release(&state, &tenant, &credential, &key).await;
            return Err(
                ApiError::Internal(anyhow::anyhow!("reading the response to store it: {error}")).into_response()
            );
        }
    };
    let status = parts.status;
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        release(&state, &tenant, &credential, &key).await;
    } else if let Err(error) = store(
        &state,
        &tenant,
        &credential,
        &key,
        status,
        &parts.headers,
        &stored_body(&parts.extensions, &body, &secrets),
    )
    .await
    {
        // The action happened; failing the request now would invite a duplicate retry.
        tracing::error!(%error, "could not store the idempotent response; the key stays locked until its lease ends");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

enum Claim {
    Claimed,
    Replay(Response),
    Mismatch,
    InFlight,
}

async fn claim(state: &AppState, principal: &Principal, key: &str, fingerprint: &[u8]) -> Result<Claim, sqlx::Error> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    // An expired record is as good as none.
    sqlx::query(
        "delete from idempotency_keys where tenant_id = $1 and credential_id = $2 and key = $3 and expires_at < now()",
    )
    .bind(tenant.as_str())
    .bind(principal.credential_id())
    .bind(key)
    .execute(&mut *tx)
    .await?;
    let inserted = sqlx::query(
        "insert into idempotency_keys (tenant_id, credential_id, key, request_hash, locked_until)
         values ($1, $2, $3, $4, now() + make_interval(secs => $5))
         on conflict do nothing",
    )
    .bind(tenant.as_str())
    .bind(principal.credential_id())
    .bind(key)
    .bind(fingerprint)
    .bind(LEASE.as_secs_f64())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        tx.commit().await?;
        return Ok(Claim::Claimed);
    }
    type Stored = (Vec<u8>, Option<i32>, Option<serde_json::Value>, Option<Vec<u8>>, bool);
    let (request_hash, status, headers, body, lease_over): Stored = sqlx::query_as(
        "select request_hash, response_status, response_headers, response_body, coalesce(locked_until < now(), true)
         from idempotency_keys where tenant_id = $1 and credential_id = $2 and key = $3 for update",
    )
    .bind(tenant.as_str())
    .bind(principal.credential_id())
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    if request_hash != fingerprint {
        tx.commit().await?;
        return Ok(Claim::Mismatch);
    }
    if let Some(status) = status {
        tx.commit().await?;
        return Ok(Claim::Replay(replay(status, headers, body.unwrap_or_default())));
    }
    if !lease_over {
        tx.commit().await?;
        return Ok(Claim::InFlight);
    }
    // The first request died without answering; this one takes over.
    sqlx::query(
        "update idempotency_keys set locked_until = now() + make_interval(secs => $4)
         where tenant_id = $1 and credential_id = $2 and key = $3",
    )
    .bind(tenant.as_str())
    .bind(principal.credential_id())
    .bind(key)
    .bind(LEASE.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Claim::Claimed)
}

async fn store(
    state: &AppState,
    tenant: &crate::domain::ids::TenantId,
    credential: &str,
    key: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(), sqlx::Error> {
    let mut kept: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| Some((name.to_string(), serde_json::Value::from(headers.get(name)?.to_str().ok()?))))
        .collect();
    if !status.is_success() {
        kept.insert(header::CONTENT_TYPE.to_string(), serde_json::Value::from(PROBLEM_JSON));
    }
    let mut tx = begin_tenant(&state.db, tenant).await?;
    sqlx::query(
        "update idempotency_keys set response_status = $4, response_headers = $5, response_body = $6, locked_until = null
         where tenant_id = $1 and credential_id = $2 and key = $3",
    )
    .bind(tenant.as_str())
    .bind(credential)
    .bind(key)
    .bind(i32::from(status.as_u16()))
    .bind(serde_json::Value::Object(kept))
    .bind(body.to_vec())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Forgets the key, so that a retry runs the request again.
async fn release(state: &AppState, tenant: &crate::domain::ids::TenantId, credential: &str, key: &str) {
    let result = async {
        let mut tx = begin_tenant(&state.db, tenant).await?;
        sqlx::query("delete from idempotency_keys where tenant_id = $1 and credential_id = $2 and key = $3")
            .bind(tenant.as_str())
            .bind(credential)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, "could not release an idempotency key; it frees itself when its lease ends");
    }
}

fn replay(status: i32, headers: Option<serde_json::Value>, body: Vec<u8>) -> Response {
    let status = u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
    let problem = (!status.is_success()).then(|| serde_json::from_slice::<Problem>(&body).ok()).flatten();
    let mut response = match problem {
        // Rendered by the problem middleware, stamped with this request's id.
        Some(problem) => {
            let mut response = status.into_response();
            response.extensions_mut().insert(problem);
            response
        }
        None => (status, body).into_response(),
    };
    if let Some(serde_json::Value::Object(headers)) = headers {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (HeaderName::try_from(name), value.as_str().map(HeaderValue::from_str))
            {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response.headers_mut().insert(IDEMPOTENT_REPLAYED.clone(), HeaderValue::from_static("true"));
    response
}

/// What to store as the body: an error's [`Problem`] (rendered later, with the request id of
/// whichever request is answered), or the body with every secret it shows set to `null`.
fn stored_body(extensions: &axum::http::Extensions, body: &Bytes, secrets: &[String]) -> Bytes {
    match extensions.get::<Problem>() {
        Some(problem) => Bytes::from(serde_json::to_vec(problem).unwrap_or_default()),
        None => without_secrets(body, secrets),
    }
}

/// `body` with every string that is one of `secrets` replaced by `null`, wherever it stands.
fn without_secrets(body: &Bytes, secrets: &[String]) -> Bytes {
    fn strip(value: &mut serde_json::Value, secrets: &[String]) {
        match value {
            serde_json::Value::String(text) if secrets.contains(text) => *value = serde_json::Value::Null,
            serde_json::Value::Array(items) => items.iter_mut().for_each(|item| strip(item, secrets)),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(|item| strip(item, secrets)),
            _ => {}
        }
    }
    if secrets.is_empty() {
        return body.clone();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            strip(&mut value, secrets);
            Bytes::from(value.to_string())
        }
        // Not JSON: store nothing rather than risk a secret.
        Err(_) => Bytes::from_static(b"{}"),
    }
}

fn fingerprint(method: &Method, path: &str, query: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in [method.as_str().as_bytes(), b"\n", path.as_bytes(), b"?", query.unwrap_or("").as_bytes(), b"\n"] {
        hasher.update(part);
    }
    // The same JSON with different spacing or key order is the same request.
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => hasher.update(crate::domain::canonical_json::canonical_json(&json).as_bytes()),
        Err(_) => hasher.update(body),
    }
    hasher.finalize().to_vec()
}

fn invalid(detail: &str) -> Response {
    ApiError::new(ErrorCode::InvalidRequest, detail).into_response()
}

fn db_error(error: sqlx::Error) -> Response {
    ApiError::from(error).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_nulled_wherever_they_stand_before_storing() {
        let body = Bytes::from_static(br#"{"id":"key_1","secret":"sk_test_abc","nested":[{"s":"sk_test_abc"}]}"#);
        assert_eq!(without_secrets(&body, &[]), body);
        let stored: serde_json::Value =
            serde_json::from_slice(&without_secrets(&body, &["sk_test_abc".to_owned()])).unwrap();
        assert_eq!(stored, serde_json::json!({"id": "key_1", "secret": null, "nested": [{"s": null}]}));
        assert_eq!(without_secrets(&Bytes::from_static(b"sk_test_abc"), &["sk_test_abc".to_owned()]), "{}");
    }

    #[test]
    fn fingerprints_ignore_json_formatting_but_not_content() {
        let a = fingerprint(&Method::POST, "/api/v1/api_keys", None, br#"{"label":"a","scopes":["*"]}"#);
        let b = fingerprint(&Method::POST, "/api/v1/api_keys", None, b"{ \"scopes\": [\"*\"],\n \"label\": \"a\" }");
        let c = fingerprint(&Method::POST, "/api/v1/api_keys", None, br#"{"label":"b","scopes":["*"]}"#);
        let d = fingerprint(&Method::PATCH, "/api/v1/api_keys", None, br#"{"label":"a","scopes":["*"]}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
