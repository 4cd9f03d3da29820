//! The hosted consent page and the control API under `/_sandbox/`: clock, expiry, suspension and
//! faults (adding transactions lives in `added`).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::{
    data::{account_identity, institution, mix},
    error::ApiError,
    routes::{origin, requisition_json, requisition_missing},
    state::{Account, Fault, SandboxState, timestamp},
};

/// The consent page and control routes.
pub(crate) fn router() -> Router<SandboxState> {
    Router::new()
        .route("/_sandbox/consent/{id}", get(consent_page))
        .route("/_sandbox/consent/{id}/approve", post(approve))
        .route("/_sandbox/consent/{id}/reject", post(reject))
        .route("/_sandbox/clock", get(clock))
        .route("/_sandbox/clock/advance", post(advance))
        .route("/_sandbox/requisitions/{id}/expire", post(expire))
        .route("/_sandbox/requisitions/{id}/suspend", post(suspend))
        .route("/_sandbox/faults", post(arm_faults))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn link_expired() -> Response {
    (StatusCode::GONE, Html("<!doctype html><title>Link expired</title><p>Link Expired</p>")).into_response()
}

async fn consent_page(State(state): State<SandboxState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let inner = state.lock();
    let requisition =
        inner.requisitions.iter().find(|r| r.id == id && !r.deleted).ok_or_else(|| requisition_missing(&id))?;
    if requisition.status != "CR" {
        return Ok(link_expired());
    }
    let bank = institution(&requisition.institution_id).map_or("your bank", |i| i.name);
    let id = escape(&requisition.id);
    Ok(Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sandbox consent</title></head><body>\
         <h1>Connect {bank}</h1><p>Requisition <code>{id}</code> asks to read your accounts.</p>\
         <form method=\"post\" action=\"/_sandbox/consent/{id}/approve\"><button type=\"submit\">Approve</button></form>\
         <form method=\"post\" action=\"/_sandbox/consent/{id}/reject\"><button type=\"submit\">Reject</button></form>\
         </body></html>",
        bank = escape(bank),
    ))
    .into_response())
}

/// `{redirect}?ref={reference}` plus any extra query pairs.
fn callback(redirect: &str, reference: &str, extra: &[(&str, &str)]) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("ref", reference);
    for (key, value) in extra {
        query.append_pair(key, value);
    }
    let separator = if redirect.contains('?') { '&' } else { '?' };
    let location = format!("{redirect}{separator}{}", query.finish());
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn approve(State(state): State<SandboxState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut inner = state.lock();
    let index =
        inner.requisitions.iter().position(|r| r.id == id && !r.deleted).ok_or_else(|| requisition_missing(&id))?;
    if inner.requisitions[index].status != "CR" {
        return Ok(link_expired());
    }
    let now = inner.now();
    let institution_id = inner.requisitions[index].institution_id.clone();
    let Some(bank) = institution(&institution_id) else {
        return Err(ApiError::bad_request("Unknown Institution ID", institution_id));
    };
    let count = 1 + inner.rng.range(0, 2);
    let mut ids = Vec::new();
    for _ in 0..count {
        let key = mix(&[inner.seed, inner.rng.next()]);
        let (owner_name, iban) = account_identity(inner.seed, key, bank);
        let account = Account {
            id: inner.uuid(),
            key,
            created: now,
            requisition: id.clone(),
            institution_id: institution_id.clone(),
            owner_name,
            iban,
            currency: bank.currency,
        };
        ids.push(account.id.clone());
        inner.accounts.push(account);
    }
    let agreement = inner.requisitions[index].agreement.clone();
    if let Some(a) = inner.agreements.iter_mut().find(|a| a.id == agreement) {
        a.accepted.get_or_insert(now);
    }
    let requisition = &mut inner.requisitions[index];
    requisition.status = "LN";
    requisition.accounts = ids;
    Ok(callback(&requisition.redirect, &requisition.reference, &[]))
}

async fn reject(State(state): State<SandboxState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let mut inner = state.lock();
    let requisition =
        inner.requisitions.iter_mut().find(|r| r.id == id && !r.deleted).ok_or_else(|| requisition_missing(&id))?;
    if requisition.status != "CR" {
        return Ok(link_expired());
    }
    requisition.status = "RJ";
    Ok(callback(
        &requisition.redirect,
        &requisition.reference,
        &[("error", "UserCancelledSession"), ("details", "User cancelled the session.")],
    ))
}

async fn clock(State(state): State<SandboxState>) -> Json<Value> {
    Json(json!({"now": timestamp(state.now())}))
}

#[derive(serde::Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance(State(state): State<SandboxState>, Json(body): Json<Advance>) -> Json<Value> {
    let mut inner = state.lock();
    inner.clock.advance(body.seconds);
    Json(json!({"now": timestamp(inner.now())}))
}

/// Moves a requisition to `status` now.
fn set_status(
    state: &SandboxState,
    headers: &HeaderMap,
    id: &str,
    status: &'static str,
) -> Result<Json<Value>, ApiError> {
    let mut inner = state.lock();
    let requisition =
        inner.requisitions.iter_mut().find(|r| r.id == id && !r.deleted).ok_or_else(|| requisition_missing(id))?;
    requisition.status = status;
    Ok(Json(requisition_json(requisition, &origin(headers))))
}

async fn expire(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &headers, &id, "EX")
}

/// Suspends a requisition (`SU`, as after many consecutive failures): its accounts turn
/// `SUSPENDED` and their data endpoints answer 409.
async fn suspend(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &headers, &id, "SU")
}

#[derive(serde::Deserialize)]
struct FaultRequest {
    status: Option<u16>,
    count: u32,
    retry_after_seconds: Option<u64>,
    latency_ms: Option<u64>,
    drop_connection: Option<bool>,
}

async fn arm_faults(
    State(state): State<SandboxState>,
    Json(body): Json<FaultRequest>,
) -> Result<Json<Value>, ApiError> {
    if body.status.is_some_and(|s| !(400..=599).contains(&s)) {
        return Err(ApiError::bad_request("Invalid status", "status must be between 400 and 599"));
    }
    state.lock().fault = Some(Fault {
        status: body.status,
        remaining: body.count,
        retry_after_seconds: body.retry_after_seconds,
        latency_ms: body.latency_ms.unwrap_or(0),
        drop_connection: body.drop_connection.unwrap_or(false),
    });
    Ok(Json(json!({"status": body.status, "count": body.count, "retry_after_seconds": body.retry_after_seconds,
        "latency_ms": body.latency_ms.unwrap_or(0), "drop_connection": body.drop_connection.unwrap_or(false)})))
}
