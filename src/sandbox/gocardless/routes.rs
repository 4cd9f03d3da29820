//! The real API under `/api/v2/`: tokens, institutions, agreements, requisitions and accounts.

use axum::{
    Json, Router,
    body::Body,
    body::Bytes,
    extract::{FromRequestParts, Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde_json::{Map, Value, json};

use super::{
    accounts,
    data::{INSTITUTIONS, institution, institution_json},
    error::ApiError,
    limits,
    state::{ACCESS_EXPIRES, Agreement, Inner, REFRESH_EXPIRES, Requisition, SandboxState, TokenKind, timestamp},
};

/// Routes of the real API, behind the fault injector.
pub(crate) fn api_router(state: SandboxState) -> Router<SandboxState> {
    let v2 = Router::new()
        .route("/token/new/", post(token_new))
        .route("/token/refresh/", post(token_refresh))
        .route("/institutions/", get(institutions))
        .route("/institutions", get(institutions))
        .route("/institutions/{id}/", get(institution_one))
        .route("/agreements/enduser/", post(agreement_create).get(agreement_list))
        .route("/agreements/enduser/{id}/", get(agreement_one).delete(agreement_delete))
        .route("/agreements/enduser/{id}", get(agreement_one).delete(agreement_delete))
        .route("/agreements/enduser/{id}/accept/", put(agreement_accept))
        .route("/requisitions/", post(requisition_create).get(requisition_list))
        .route("/requisitions/{id}/", get(requisition_one).delete(requisition_delete))
        .route("/requisitions/{id}", get(requisition_one).delete(requisition_delete))
        .merge(accounts::router())
        .layer(middleware::from_fn_with_state(state.clone(), limits::company_limits))
        .layer(middleware::from_fn_with_state(state, inject_faults));
    Router::new().nest("/api/v2", v2)
}

/// Fails (or delays) the next calls as armed through `POST /_sandbox/faults`.
async fn inject_faults(State(state): State<SandboxState>, request: Request, next: Next) -> Response {
    let fault = {
        let mut inner = state.lock();
        match inner.fault.as_mut() {
            Some(fault) if fault.remaining > 0 => {
                fault.remaining -= 1;
                Some(fault.clone())
            }
            _ => None,
        }
    };
    let Some(fault) = fault else { return next.run(request).await };
    if fault.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(fault.latency_ms)).await;
    }
    if fault.drop_connection {
        return dropped_connection();
    }
    let Some(status) = fault.status.and_then(|s| StatusCode::from_u16(s).ok()) else {
        return next.run(request).await;
    };
    let mut error = ApiError::new(status, "Simulated failure", "Injected by the sandbox fault controller");
    if status == StatusCode::TOO_MANY_REQUESTS {
        let seconds = fault.retry_after_seconds.unwrap_or(60);
        error = ApiError::new(
            status,
            "Rate limit exceeded",
            format!("The rate limit for this resource is 100/minute. Please try again in {seconds} seconds"),
        )
        .with_headers(vec![(header::RETRY_AFTER, HeaderValue::from(seconds))]);
    } else if status.is_server_error() {
        error = error.with_type("ServiceError");
    }
    error.into_response()
}

/// A response whose body fails before its first byte: hyper then aborts the connection without
/// writing anything (the status line is still only buffered), so the client sees the connection
/// close mid-request, as when a proxy or the provider drops it.
fn dropped_connection() -> Response {
    let failure = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "sandbox: connection dropped");
    let body = Body::from_stream(futures_util::stream::once(async move { Err::<Bytes, _>(failure) }));
    Response::new(body)
}

/// A request carrying a live access token.
pub(crate) struct Bearer;

impl FromRequestParts<SandboxState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SandboxState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "Authentication credentials were not provided.",
                    "Authentication credentials were not provided.",
                )
            })?;
        if state.lock().token_valid(token.trim(), TokenKind::Access) {
            Ok(Bearer)
        } else {
            Err(ApiError::invalid_token())
        }
    }
}

/// Parses a JSON or form-encoded body into an object.
fn body_object(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let parsed = if form {
        Ok(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::from(v.into_owned()))).collect())
    } else if body.is_empty() {
        Ok(Map::new())
    } else {
        serde_json::from_slice::<Map<String, Value>>(body)
    };
    parsed.map_err(|e| ApiError::bad_request("Invalid request body", format!("JSON parse error - {e}")))
}

/// A string field of `body`, or the reference's "required" error.
fn required_str<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match body.get(field).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ApiError::bad_request(format!("{field} is required"), "This field is required.")),
    }
}

/// An integer field of `body` (ints or digit strings), or `default` when absent.
fn int_field(body: &Map<String, Value>, field: &str, default: i64) -> Result<i64, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| ApiError::bad_request(format!("Incorrect {field}"), "A valid integer is required.")),
    }
}

async fn token_new(State(state): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let body = body_object(&headers, &body)?;
    let id = required_str(&body, "secret_id")?;
    let key = required_str(&body, "secret_key")?;
    if id != state.config.secret_id || key != state.config.secret_key {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Authentication failed",
            "No active account found with the given credentials",
        ));
    }
    let mut inner = state.lock();
    let access = inner.issue(TokenKind::Access, ACCESS_EXPIRES);
    let refresh = inner.issue(TokenKind::Refresh, REFRESH_EXPIRES);
    Ok(Json(json!({"access": access, "access_expires": ACCESS_EXPIRES, "refresh": refresh,
        "refresh_expires": REFRESH_EXPIRES}))
    .into_response())
}

async fn token_refresh(
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = body_object(&headers, &body)?;
    let refresh = required_str(&body, "refresh")?;
    let mut inner = state.lock();
    if !inner.token_valid(refresh, TokenKind::Refresh) {
        return Err(ApiError::invalid_token());
    }
    let access = inner.issue(TokenKind::Access, ACCESS_EXPIRES);
    Ok(Json(json!({"access": access, "access_expires": ACCESS_EXPIRES})).into_response())
}

#[derive(serde::Deserialize)]
struct CountryQuery {
    country: Option<String>,
}

async fn institutions(_: Bearer, Query(query): Query<CountryQuery>) -> Result<Json<Value>, ApiError> {
    let country = query.country.map(|c| c.to_uppercase());
    if let Some(c) = &country
        && (c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()))
    {
        return Err(ApiError::bad_request("Invalid country choice.", format!("{c} is not a valid choice.")));
    }
    let list: Vec<Value> = INSTITUTIONS
        .iter()
        .filter(|i| country.as_ref().is_none_or(|c| i.countries.contains(&c.as_str())))
        .map(|i| institution_json(i, false))
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn institution_one(_: Bearer, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    institution(&id)
        .map(|i| Json(institution_json(i, true)))
        .ok_or_else(|| ApiError::not_found("Not found.", format!("Institution {id} not found")))
}

fn agreement_json(agreement: &Agreement) -> Value {
    json!({
        "id": agreement.id,
        "created": timestamp(agreement.created),
        "institution_id": agreement.institution_id,
        "max_historical_days": agreement.max_historical_days,
        "access_valid_for_days": agreement.access_valid_for_days,
        "access_scope": agreement.access_scope,
        "accepted": agreement.accepted.map(timestamp),
    })
}

/// Validates and stores a new agreement.
fn create_agreement(inner: &mut Inner, body: &Map<String, Value>) -> Result<Agreement, ApiError> {
    let institution_id = required_str(body, "institution_id")?;
    let bank = institution(institution_id).ok_or_else(|| {
        ApiError::bad_request(
            format!("Unknown Institution ID {institution_id}"),
            "Get Institution IDs from /institutions/?country={$COUNTRY_CODE}",
        )
    })?;
    let max_historical_days = int_field(body, "max_historical_days", 90)?;
    if !(1..=bank.transaction_total_days).contains(&max_historical_days) {
        return Err(ApiError::bad_request(
            "Incorrect max_historical_days",
            format!("max_historical_days must be > 0 and <= {}", bank.transaction_total_days),
        ));
    }
    let access_valid_for_days = int_field(body, "access_valid_for_days", 90)?;
    if !(1..=bank.max_access_valid_for_days).contains(&access_valid_for_days) {
        return Err(ApiError::bad_request(
            "Incorrect access_valid_for_days",
            format!("access_valid_for_days must be > 0 and <= {}", bank.max_access_valid_for_days),
        ));
    }
    let scopes = ["balances", "details", "transactions"];
    let access_scope: Vec<String> = match body.get("access_scope") {
        None | Some(Value::Null) => scopes.iter().map(|s| (*s).to_owned()).collect(),
        Some(Value::Array(items)) => {
            let names: Vec<String> = items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
            if names.len() != items.len() || names.is_empty() || names.iter().any(|n| !scopes.contains(&n.as_str())) {
                return Err(ApiError::bad_request(
                    "Unknown value in access_scope",
                    "Choose one or several of ['balances', 'details', 'transactions']",
                ));
            }
            names
        }
        Some(_) => return Err(ApiError::bad_request("Incorrect access_scope", "Expected a list of items.")),
    };
    let agreement = Agreement {
        id: inner.uuid(),
        created: inner.now(),
        institution_id: institution_id.to_owned(),
        max_historical_days,
        access_valid_for_days,
        access_scope,
        accepted: None,
    };
    inner.agreements.push(agreement.clone());
    Ok(agreement)
}

async fn agreement_create(
    _: Bearer,
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = body_object(&headers, &body)?;
    let agreement = create_agreement(&mut state.lock(), &body)?;
    Ok((StatusCode::CREATED, Json(agreement_json(&agreement))).into_response())
}

#[derive(serde::Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    offset: Option<usize>,
}

fn page(items: Vec<Value>, query: &PageQuery) -> Value {
    let (limit, offset) = (query.limit.unwrap_or(100).max(1), query.offset.unwrap_or(0));
    let count = items.len();
    let results: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset + limit < count).then(|| format!("?limit={limit}&offset={}", offset + limit));
    let previous = (offset > 0).then(|| format!("?limit={limit}&offset={}", offset.saturating_sub(limit)));
    json!({"count": count, "next": next, "previous": previous, "results": results})
}

async fn agreement_list(_: Bearer, State(state): State<SandboxState>, Query(q): Query<PageQuery>) -> Json<Value> {
    let items = state.lock().agreements.iter().rev().map(agreement_json).collect();
    Json(page(items, &q))
}

fn agreement_missing(id: &str) -> ApiError {
    match uuid::Uuid::parse_str(id) {
        Ok(_) => ApiError::not_found("Not found.", "Not found."),
        Err(_) => ApiError::bad_request("Invalid EndUserAgreement ID", format!("{id} is not a valid UUID. ")),
    }
}

async fn agreement_one(
    _: Bearer,
    State(state): State<SandboxState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inner = state.lock();
    inner.agreements.iter().find(|a| a.id == id).map(|a| Json(agreement_json(a))).ok_or_else(|| agreement_missing(&id))
}

async fn agreement_delete(
    _: Bearer,
    State(state): State<SandboxState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut inner = state.lock();
    let index = inner.agreements.iter().position(|a| a.id == id).ok_or_else(|| agreement_missing(&id))?;
    if inner.agreements[index].accepted.is_some() {
        return Err(ApiError::bad_request(
            "EUA cannot be deleted",
            "End User Agreements cannot be deleted after they have been accepted",
        ));
    }
    inner.agreements.remove(index);
    Ok(Json(json!({"summary": "End User Agreement deleted",
        "detail": format!("End User Agreement {id} deleted")})))
}

#[derive(serde::Deserialize)]
struct Acceptance {
    user_agent: Option<String>,
    ip_address: Option<String>,
}

/// Records the end user's acceptance of an agreement (the flow for customers that collect consent
/// themselves); an agreement is accepted once.
async fn agreement_accept(
    _: Bearer,
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Acceptance = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("Invalid request body", format!("JSON parse error - {e}")))?;
    let required = |field: &str, value: Option<String>| {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("{field} is required"), "This field is required."))
    };
    required("user_agent", body.user_agent)?;
    let ip_address = required("ip_address", body.ip_address)?;
    if ip_address.parse::<std::net::IpAddr>().is_err() {
        return Err(ApiError::bad_request("Incorrect ip_address", "Enter a valid IPv4 or IPv6 address."));
    }
    let mut inner = state.lock();
    let now = inner.now();
    let agreement = inner.agreements.iter_mut().find(|a| a.id == id).ok_or_else(|| agreement_missing(&id))?;
    if agreement.accepted.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "EUA cannot be accepted more than once",
            format!("End User Agreement {id} has already been accepted"),
        ));
    }
    agreement.accepted = Some(now);
    Ok(Json(agreement_json(agreement)))
}

/// A requisition as the API shows it; `base` is this simulator's own origin.
pub(crate) fn requisition_json(requisition: &Requisition, base: &str) -> Value {
    json!({
        "id": requisition.id,
        "created": timestamp(requisition.created),
        "redirect": requisition.redirect,
        "status": requisition.status,
        "institution_id": requisition.institution_id,
        "agreement": requisition.agreement,
        "reference": requisition.reference,
        "accounts": requisition.accounts,
        "user_language": requisition.user_language,
        "link": format!("{base}/_sandbox/consent/{}", requisition.id),
        "ssn": null,
        "account_selection": requisition.account_selection,
        "redirect_immediate": requisition.redirect_immediate,
    })
}

/// This simulator's origin as the client reached it.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1:8081");
    format!("http://{host}")
}

async fn requisition_create(
    _: Bearer,
    State(state): State<SandboxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = body_object(&headers, &body)?;
    let redirect = required_str(&body, "redirect")?.to_owned();
    let institution_id = required_str(&body, "institution_id")?.to_owned();
    if institution(&institution_id).is_none() {
        return Err(ApiError::bad_request(
            format!("Unknown Institution ID {institution_id}"),
            "Get Institution IDs from /institutions/?country={$COUNTRY_CODE}",
        ));
    }
    let user_language = body.get("user_language").and_then(Value::as_str).unwrap_or("EN").to_owned();
    if user_language.len() > 5 {
        return Err(ApiError::bad_request(
            "Incorrect user_language",
            "Ensure this field has no more than 5 characters.",
        ));
    }
    let mut inner = state.lock();
    let agreement = match body.get("agreement").and_then(Value::as_str) {
        Some(id) => {
            let agreement = inner.agreements.iter().find(|a| a.id == id).ok_or_else(|| agreement_missing(id))?;
            if agreement.institution_id != institution_id {
                return Err(ApiError::bad_request(
                    "Incorrect Institution ID",
                    format!(
                        "Provided Institution ID: '{institution_id}' for requisition does not match EUA institution ID '{}'. Please provide correct institution ID: '{}'",
                        agreement.institution_id, agreement.institution_id
                    ),
                ));
            }
            id.to_owned()
        }
        None => {
            let mut defaults = Map::new();
            defaults.insert("institution_id".into(), Value::from(institution_id.clone()));
            create_agreement(&mut inner, &defaults)?.id
        }
    };
    let id = inner.uuid();
    let reference = body.get("reference").and_then(Value::as_str).unwrap_or(&id).to_owned();
    if reference.len() > 256 {
        return Err(ApiError::bad_request("Incorrect reference", "Ensure this field has no more than 256 characters."));
    }
    if inner.requisitions.iter().any(|r| r.reference == reference) {
        return Err(ApiError::bad_request("Client reference must be unique", "Client reference must be unique"));
    }
    let requisition = Requisition {
        id,
        created: inner.now(),
        redirect,
        status: "CR",
        institution_id,
        agreement,
        reference,
        accounts: Vec::new(),
        user_language,
        account_selection: body.get("account_selection").and_then(Value::as_bool).unwrap_or(false),
        redirect_immediate: body.get("redirect_immediate").and_then(Value::as_bool).unwrap_or(false),
        deleted: false,
    };
    inner.requisitions.push(requisition.clone());
    Ok((StatusCode::CREATED, Json(requisition_json(&requisition, &origin(&headers)))).into_response())
}

async fn requisition_list(
    _: Bearer,
    State(state): State<SandboxState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Json<Value> {
    let base = origin(&headers);
    let inner = state.lock();
    let items = inner.requisitions.iter().rev().filter(|r| !r.deleted).map(|r| requisition_json(r, &base)).collect();
    Json(page(items, &q))
}

/// The 404 or 400 for a requisition id that is not there.
pub(crate) fn requisition_missing(id: &str) -> ApiError {
    match uuid::Uuid::parse_str(id) {
        Ok(_) => ApiError::not_found("Not found.", "Not found."),
        Err(_) => ApiError::bad_request("Invalid Requisition ID", format!("{id} is not a valid UUID. ")),
    }
}

async fn requisition_one(
    _: Bearer,
    State(state): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inner = state.lock();
    let requisition =
        inner.requisitions.iter().find(|r| r.id == id && !r.deleted).ok_or_else(|| requisition_missing(&id))?;
    Ok(Json(requisition_json(requisition, &origin(&headers))))
}

async fn requisition_delete(
    _: Bearer,
    State(state): State<SandboxState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut inner = state.lock();
    let requisition =
        inner.requisitions.iter_mut().find(|r| r.id == id && !r.deleted).ok_or_else(|| requisition_missing(&id))?;
    requisition.deleted = true;
    let agreement = requisition.agreement.clone();
    inner.agreements.retain(|a| a.id != agreement);
    Ok(Json(json!({"summary": "Requisition deleted",
        "detail": format!("Requisition '{id}' deleted with all its End User Agreements")})))
}
