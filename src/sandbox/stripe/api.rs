//! The `/v1` request pipeline, in Stripe's order: authenticate, merge the query and the form
//! body, meet any injected fault (before anything runs or is stored), honour `Idempotency-Key`,
//! then route to the operation under the simulator's lock and answer in Stripe's shape with a
//! `Request-Id` and the `Stripe-Version`.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde_json::{Map, Value};

use super::{
    StripeSim, balance, endpoints,
    error::StripeError,
    form, objects, payments,
    state::{API_VERSION, Idempotent, Inner},
};

/// What an operation knows of its request.
pub(crate) struct Ctx {
    pub account: String,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub params: Map<String, Value>,
}

impl Ctx {
    /// The request, as events record it.
    pub fn request(&self) -> (Option<&str>, Option<&str>) {
        (Some(self.request_id.as_str()), self.idempotency_key.as_deref())
    }

    /// A string parameter.
    pub fn str(&self, name: &str) -> Result<Option<&str>, StripeError> {
        match self.params.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(StripeError::invalid(name, "parameter_invalid_string", format!("Invalid string: {name}"))),
        }
    }

    pub fn required(&self, name: &str) -> Result<&str, StripeError> {
        self.str(name)?.filter(|s| !s.is_empty()).ok_or_else(|| StripeError::missing(name))
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> Result<Option<i64>, StripeError> {
        match self.str(name)? {
            None => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
                StripeError::invalid(name, "parameter_invalid_integer", format!("Invalid integer: {text}"))
            }),
        }
    }

    /// A boolean parameter (`true` or `false`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, StripeError> {
        match self.str(name)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(text) => {
                Err(StripeError::invalid(name, "parameter_invalid_boolean", format!("Invalid boolean: {text}")))
            }
        }
    }

    /// A currency parameter: three letters, answered lowercase.
    pub fn currency(&self, name: &str) -> Result<String, StripeError> {
        let text = self.required(name)?.to_ascii_lowercase();
        if text.len() == 3 && crate::domain::money::Currency::parse(&text).is_some_and(|c| c.is_iso4217()) {
            Ok(text)
        } else {
            Err(StripeError::invalid(name, "parameter_invalid_string", format!("Invalid currency: {text}.")))
        }
    }

    /// `metadata` applied to `current`: a key with an empty value is removed.
    pub fn metadata(&self, current: &Value) -> Result<Value, StripeError> {
        let mut merged = current.as_object().cloned().unwrap_or_default();
        match self.params.get("metadata") {
            None => {}
            Some(Value::String(s)) if s.is_empty() => merged.clear(),
            Some(Value::Object(given)) => {
                for (key, value) in given {
                    match value {
                        Value::String(v) if v.is_empty() => {
                            merged.remove(key);
                        }
                        Value::String(v) if key.chars().count() <= 40 && v.chars().count() <= 500 => {
                            merged.insert(key.clone(), Value::String(v.clone()));
                        }
                        _ => {
                            return Err(StripeError::invalid(
                                &format!("metadata[{key}]"),
                                "parameter_invalid_string",
                                "Metadata keys are at most 40 characters and values strings of at most 500.",
                            ));
                        }
                    }
                }
                if merged.len() > 50 {
                    return Err(StripeError::invalid(
                        "metadata",
                        "parameter_invalid_string",
                        "At most 50 metadata keys.",
                    ));
                }
            }
            Some(_) => return Err(StripeError::invalid("metadata", "parameter_invalid_string", "Invalid hash")),
        }
        Ok(Value::Object(merged))
    }

    /// The `expand[]` paths.
    pub fn expand(&self) -> Vec<String> {
        match self.params.get("expand") {
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    }
}

/// Every `/v1` request.
pub(crate) async fn handle(
    State(sim): State<StripeSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request_id, version) = {
        let mut inner = sim.lock();
        (inner.id("req"), header(&headers, "stripe-version").unwrap_or(API_VERSION).to_owned())
    };
    let mut response = match run(&sim, &method, &uri, &headers, &body, &request_id).await {
        Ok((status, body, replayed)) => {
            let mut response =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), axum::Json(body)).into_response();
            if replayed {
                response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            response
        }
        Err(error) => error_response(&error),
    };
    sim.wake.notify_one();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(&version) {
        headers.insert("stripe-version", value);
    }
    response
}

pub(crate) fn error_response(error: &StripeError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(error.body())).into_response();
    if let Some(retry) = error.should_retry {
        response
            .headers_mut()
            .insert("stripe-should-retry", HeaderValue::from_static(if retry { "true" } else { "false" }));
    }
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The key a request carries: `Authorization: Bearer sk_…` or Basic with the key as the user.
pub(crate) fn key_of(headers: &HeaderMap) -> Option<String> {
    let value = header(headers, "authorization")?.trim();
    if let Some(key) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
        return Some(key.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next().unwrap_or_default().to_owned())
}

/// The status, the body, and whether it is a replay.
async fn run(
    sim: &StripeSim,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> Result<(u16, Value, bool), StripeError> {
    let key = key_of(headers).filter(|k| !k.is_empty()).ok_or_else(StripeError::no_key)?;
    let mut params = form::decode_str(uri.query().unwrap_or("")).map_err(form_error)?;
    if !body.is_empty() {
        let text = std::str::from_utf8(body)
            .map_err(|_| StripeError::invalid("body", "parameter_invalid_string", "The body is not UTF-8."))?;
        params.extend(form::decode_str(text).map_err(form_error)?);
    }
    let path = uri.path().to_owned();
    let idempotency_key = header(headers, "idempotency-key").map(str::to_owned).filter(|_| method == Method::POST);
    let (account, fault) = {
        let mut inner = sim.lock();
        let found = inner.keys.get(&key).cloned().ok_or_else(|| StripeError::bad_key(&key))?;
        if found.revoked {
            return Err(StripeError::bad_key(&key));
        }
        if found.expired {
            return Err(StripeError::expired_key());
        }
        if found.restricted && method != Method::GET {
            return Err(StripeError::forbidden("write access"));
        }
        let resource = path.trim_start_matches("/v1/").split('/').next().unwrap_or_default();
        if found.restricted && found.without.iter().any(|w| w == resource) {
            return Err(StripeError::forbidden(&format!("read access to {resource}")));
        }
        let account = match header(headers, "stripe-account") {
            Some(connected) if inner.accounts.contains_key(connected) => connected.to_owned(),
            Some(connected) => {
                return Err(StripeError::invalid(
                    "Stripe-Account",
                    "account_invalid",
                    format!(
                        "The provided key does not have access to account '{connected}' (or that account does not exist)."
                    ),
                )
                .with_status(403));
            }
            None => found.account,
        };
        (account, take_fault(&mut inner, &path))
    };
    // A failing fault answers before anything runs, so nothing is stored; a slow one delays the
    // operation itself (after the idempotency claim, as a slow Stripe would).
    let latency = std::time::Duration::from_millis(fault.as_ref().map_or(0, |f| f.latency_ms));
    if let Some(fault) = fault.filter(|f| f.status != 0) {
        tokio::time::sleep(latency).await;
        return Err(StripeError::fault(fault.status, fault.should_retry));
    }
    let fingerprint = format!("{method} {path} {}", form::fingerprint(&params));
    if let Some(key) = &idempotency_key {
        let mut inner = sim.lock();
        let acct = inner.account(&account).ok_or_else(|| StripeError::bad_key(key))?;
        let mismatch = || {
            StripeError::idempotency(format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. \
                 Try using a key other than '{key}' if you meant to execute a different request."
            ))
        };
        match acct.idempotency.get(key) {
            Some(Idempotent::InFlight { fingerprint: first }) if *first != fingerprint => return Err(mismatch()),
            Some(Idempotent::InFlight { .. }) => return Err(StripeError::in_flight(key)),
            Some(Idempotent::Done { fingerprint: first, .. }) if *first != fingerprint => return Err(mismatch()),
            Some(Idempotent::Done { status, body, .. }) => return Ok((*status, body.clone(), true)),
            None => {
                acct.idempotency.insert(key.clone(), Idempotent::InFlight { fingerprint: fingerprint.clone() });
            }
        }
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let ctx = Ctx {
        account: account.clone(),
        request_id: request_id.to_owned(),
        idempotency_key: idempotency_key.clone(),
        params,
    };
    let mut inner = sim.lock();
    balance::settle(&mut inner, &account);
    let outcome = route(&mut inner, method, &path, &ctx).and_then(|object| match inner.accounts.get(&account) {
        // Lists expand their `data.` paths themselves.
        Some(acct) if object["object"] != "list" => super::list::expanded(acct, &ctx, object),
        _ => Ok(object),
    });
    let (status, body) = match &outcome {
        Ok(body) => (200, body.clone()),
        Err(error) => (error.status, error.body()),
    };
    if let (Some(key), Some(acct)) = (&idempotency_key, inner.accounts.get_mut(&account)) {
        // Stripe keeps the first answer once the operation ran, errors included.
        acct.idempotency.insert(key.clone(), Idempotent::Done { fingerprint, status, body: body.clone() });
    }
    outcome.map(|body| (200, body, false))
}

fn form_error(error: form::FormError) -> StripeError {
    StripeError::invalid(&error.param, "parameter_unknown", error.message)
}

fn take_fault(inner: &mut Inner, path: &str) -> Option<super::state::Fault> {
    let fault = inner.faults.iter_mut().find(|f| f.remaining > 0 && path.starts_with(f.path.as_str()))?;
    fault.remaining -= 1;
    let taken = fault.clone();
    inner.faults.retain(|f| f.remaining > 0);
    Some(taken)
}

/// Routes `/v1/…` to its operation.
fn route(inner: &mut Inner, method: &Method, path: &str, ctx: &Ctx) -> Result<Value, StripeError> {
    let segments: Vec<&str> = path.trim_start_matches("/v1/").trim_end_matches('/').split('/').collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    let delete = method == Method::DELETE;
    match segments.as_slice() {
        ["account"] if get => objects::account(inner, ctx),
        ["customers"] if post => objects::create_customer(inner, ctx),
        ["customers"] if get => objects::list(inner, ctx, "customer", "/v1/customers"),
        ["customers", id] if get => objects::retrieve(inner, ctx, "customer", id),
        ["customers", id] if post => objects::update_customer(inner, ctx, id),
        ["customers", id] if delete => objects::delete_customer(inner, ctx, id),
        ["payment_intents"] if post => payments::create_payment_intent(inner, ctx),
        ["payment_intents"] if get => objects::list(inner, ctx, "payment_intent", "/v1/payment_intents"),
        ["payment_intents", id] if get => objects::retrieve(inner, ctx, "payment_intent", id),
        ["payment_intents", id, "confirm"] if post => payments::confirm(inner, ctx, id),
        ["payment_intents", id, "capture"] if post => payments::capture(inner, ctx, id),
        ["payment_intents", id, "cancel"] if post => payments::cancel(inner, ctx, id),
        ["charges"] if get => objects::list(inner, ctx, "charge", "/v1/charges"),
        ["charges", id] if get => objects::retrieve(inner, ctx, "charge", id),
        ["refunds"] if post => payments::create_refund(inner, ctx),
        ["refunds"] if get => objects::list(inner, ctx, "refund", "/v1/refunds"),
        ["refunds", id] if get => objects::retrieve(inner, ctx, "refund", id),
        ["disputes"] if get => objects::list(inner, ctx, "dispute", "/v1/disputes"),
        ["disputes", id] if get => objects::retrieve(inner, ctx, "dispute", id),
        ["balance"] if get => balance::balance(inner, ctx),
        ["balance_transactions"] if get => balance::list_transactions(inner, ctx),
        ["balance_transactions", id] if get => objects::retrieve(inner, ctx, "balance_transaction", id),
        ["payouts"] if get => objects::list(inner, ctx, "payout", "/v1/payouts"),
        ["payouts", id] if get => objects::retrieve(inner, ctx, "payout", id),
        ["events"] if get => balance::list_events(inner, ctx),
        ["events", id] if get => objects::retrieve(inner, ctx, "event", id),
        ["webhook_endpoints"] if post => endpoints::create(inner, ctx),
        ["webhook_endpoints"] if get => objects::list(inner, ctx, "webhook_endpoint", "/v1/webhook_endpoints"),
        ["webhook_endpoints", id] if get => objects::retrieve(inner, ctx, "webhook_endpoint", id),
        ["webhook_endpoints", id] if post => endpoints::update(inner, ctx, id),
        ["webhook_endpoints", id] if delete => endpoints::delete(inner, ctx, id),
        _ => Err(StripeError::unknown_route(method.as_str(), path)),
    }
}
