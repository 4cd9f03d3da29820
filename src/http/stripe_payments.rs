//! Stripe payments: the connected account's card payments, as Payymo keeps them from Stripe's
//! events. The rules live in `stripe::payments`; this module extracts, calls and shapes.

use std::collections::BTreeMap;

use axum::{
    Extension,
    extract::{Path, State, rejection::PathRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{StripeRead, StripeWrite},
    },
    error::{ApiError, ErrorCode, Problem},
    json::ApiJson,
    pagination::{self, Page},
    query::{ApiQuery, QueryParams},
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::validation::FieldError,
    http::reads::Reader,
    state::AppState,
    stripe::{
        charge::{self, NewPayment, StripeRefund},
        payments::{self, PaymentFilters, StripePayment},
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(get)).routes(routes!(refund))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentParams {
    /// `succeeded`, `pending` or `failed`.
    pub status: Option<String>,
    /// ISO 4217, e.g. `EUR`.
    pub currency: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// At least this `amount`, minor units.
    pub amount_min: Option<i64>,
    /// At most this `amount`, minor units.
    pub amount_max: Option<i64>,
    /// Only the payments this payout carried (`po_…`).
    pub payout_id: Option<String>,
    /// Only payments created or changed at or after this instant (RFC 3339).
    pub updated_since: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<pagination::Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl QueryParams for PaymentParams {
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if let Some(status) = &self.status
            && !matches!(status.as_str(), "succeeded" | "pending" | "failed")
        {
            problems.push(FieldError::new("status", "must be one of succeeded, pending, failed"));
        }
        if let Some(currency) = &self.currency
            && crate::domain::money::Currency::parse(&currency.to_ascii_uppercase()).is_none_or(|c| !c.is_iso4217())
        {
            problems.push(FieldError::new("currency", "must be an ISO 4217 code such as EUR"));
        }
        if let (Some(min), Some(max)) = (self.amount_min, self.amount_max)
            && min > max
        {
            problems.push(FieldError::new("amount_min", "must not be greater than amount_max"));
        }
        if let Some(payout) = &self.payout_id
            && !super::stripe_payouts::is_stripe_id(payout, &["po_"])
        {
            problems.push(FieldError::new("payout_id", "must be a Stripe payout id such as po_1PgafuB7WZ01zgkW"));
        }
        problems
    }
}

/// List Stripe payments
///
/// The connected account's card payments (Stripe charges), newest first, kept up to date from
/// Stripe's events: amount, fee and net (from the charge's balance transaction), status, what
/// was refunded, whether it is disputed, the payout that carried it. Filter by `status`,
/// `currency`, creation time, amount, `payout_id` (what one payout carried) and `updated_since`.
#[utoipa::path(
    get,
    path = "/stripe/payments",
    tag = "stripe",
    params(PaymentParams),
    responses((status = 200, body = Page<StripePayment>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["stripe:read"]), ("bearer" = ["stripe:read"]))
)]
async fn list(
    State(state): State<AppState>,
    reader: Reader,
    principal: Principal,
    _: Needs<StripeRead>,
    ApiQuery(params): ApiQuery<PaymentParams>,
) -> Result<ApiJson<Page<StripePayment>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let after = cursors.after(params.cursor.as_deref(), |text| super::stripe_payouts::position(text, "payments|"))?;
    let filters = PaymentFilters {
        status: params.status,
        currency: params.currency,
        created_from: params.created_from,
        created_to: params.created_to,
        amount_min: params.amount_min,
        amount_max: params.amount_max,
        payout_id: params.payout_id,
        updated_since: params.updated_since,
    };
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let rows = payments::list(&mut tx, &principal.tenant.id, &filters, after, i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |p| format!("payments|{}|{}", p.created.to_rfc3339(), p.id))))
}

/// Get a Stripe payment
///
/// One payment by its Stripe charge id (`ch_…`).
#[utoipa::path(
    get,
    path = "/stripe/payments/{id}",
    tag = "stripe",
    params(("id" = String, Path, description = "The Stripe charge id (`ch_…`)")),
    responses((status = 200, body = StripePayment), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["stripe:read"]), ("bearer" = ["stripe:read"]))
)]
async fn get(
    reader: Reader,
    principal: Principal,
    _: Needs<StripeRead>,
    path: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<StripePayment>, ApiError> {
    // A path that is not even text names nothing: the same 404 as a missing id.
    let id = payment_id(path)?;
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let found = payments::get(&mut tx, &principal.tenant.id, &id).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::StripePayments, &id))
}

/// The payment named by the path, when it is well formed: anything else is the 404 of a missing one.
fn payment_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    match path {
        Ok(Path(id)) if super::stripe_payouts::is_stripe_id(&id, &["ch_", "py_"]) => Ok(id),
        _ => Err(ApiError::not_found()),
    }
}

/// The caller's `Idempotency-Key`, which taking money requires.
fn required_key(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(&super::idempotency::IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                "Idempotency-Key is required: a retry with the same key never charges or refunds twice",
            )
        })
}

/// A card payment to take at the connected Stripe account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "amount": 2000, "currency": "EUR", "payment_method": "pm_card_visa", "customer": "cus_QXg1o8vcGmoR32",
    "description": "Invoice INV-2026-0104", "metadata": {"invoice_number": "INV-2026-0104"}
}))]
pub struct CreatePayment {
    /// Minor units, 1 to 99,999,999 (JPY has none: 1000 is ¥1,000).
    pub amount: i64,
    /// ISO 4217, e.g. `EUR`.
    pub currency: String,
    /// A Stripe PaymentMethod id (`pm_…`) of the card, collected with Stripe.js or Stripe's
    /// test cards (`pm_card_visa`).
    pub payment_method: String,
    /// Stripe's customer id (`cus_…`), if any.
    pub customer: Option<String>,
    /// Up to 1,000 characters.
    pub description: Option<String>,
    /// Up to 50 keys (40 characters each) with values of up to 500; naming an invoice
    /// (`invoice_number`, `invoice_id`) lets reconciliation tie the payment to it.
    pub metadata: Option<BTreeMap<String, String>>,
}

impl CreatePayment {
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if !(1..=99_999_999).contains(&self.amount) {
            problems.push(FieldError::new("amount", "must be 1 to 99,999,999 minor units"));
        }
        if crate::domain::money::Currency::parse(&self.currency.to_ascii_uppercase()).is_none_or(|c| !c.is_iso4217()) {
            problems.push(FieldError::new("currency", "must be an ISO 4217 code such as EUR"));
        }
        if !self.payment_method.starts_with("pm_") || self.payment_method.len() > 255 {
            problems.push(FieldError::new("payment_method", "must be a Stripe PaymentMethod id such as pm_card_visa"));
        }
        if let Some(customer) = &self.customer
            && !super::stripe_payouts::is_stripe_id(customer, &["cus_"])
        {
            problems.push(FieldError::new("customer", "must be a Stripe customer id such as cus_QXg1o8vcGmoR32"));
        }
        if self.description.as_ref().is_some_and(|d| d.chars().count() > 1000) {
            problems.push(FieldError::new("description", "must be at most 1,000 characters"));
        }
        let metadata = self.metadata.iter().flatten();
        if self.metadata.as_ref().is_some_and(|m| m.len() > 50)
            || metadata.clone().any(|(k, v)| {
                k.is_empty() || k.chars().count() > 40 || k.contains(['[', ']']) || v.chars().count() > 500
            })
        {
            problems.push(FieldError::new(
                "metadata",
                "at most 50 keys of 1 to 40 characters (no brackets), values of at most 500",
            ));
        }
        problems
    }
}

/// Take a card payment
///
/// Creates and confirms a payment intent at the connected Stripe account, and answers the
/// payment (`ch_…`) as Stripe has it, fee and net included; `stripe_payment.succeeded` follows.
/// **`Idempotency-Key` is required**: it is passed on to Stripe (derived per tenant and
/// credential, so no two tenants collide there), so a retried request never charges twice, even
/// when Payymo crashed between Stripe's answer and its own commit. A declined card is a 402
/// `payment_declined` with Stripe's message and decline code (the failed attempt appears in the
/// list as a `failed` payment once Stripe's events arrive).
#[utoipa::path(
    post,
    path = "/stripe/payments",
    tag = "stripe",
    request_body = CreatePayment,
    params(("Idempotency-Key" = String, Header, description = "Required: 1 to 255 visible ASCII characters")),
    responses(
        (status = 201, body = StripePayment),
        (status = 400, description = "No `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "The card was declined", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No Stripe account is connected", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe is unavailable; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["stripe:write"]), ("bearer" = ["stripe:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<StripeWrite>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreatePayment>,
) -> Result<Response, ApiError> {
    let key = required_key(&headers)?;
    let problems = body.problems();
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let tenant = &principal.tenant.id;
    let stripe_key = charge::stripe_key(tenant, principal.credential_id(), "payment", &key);
    let new = NewPayment {
        amount: body.amount,
        currency: body.currency,
        payment_method: body.payment_method,
        customer: body.customer,
        description: body.description,
        metadata: body.metadata.unwrap_or_default(),
    };
    let payment = charge::create(&state, tenant, &stripe_key, &new).await?;
    let audit = AuditResource::new("stripe_payment", &payment.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(payment)).into_response())
}

/// A refund of a payment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 500, "reason": "requested_by_customer"}))]
pub struct CreateRefund {
    /// Minor units; all that is not yet refunded when left out.
    pub amount: Option<i64>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
}

/// Refund a Stripe payment
///
/// Refunds all or part of a payment at the connected Stripe account; the payment's
/// `amount_refunded` grows and `stripe_payment.refunded` follows. **`Idempotency-Key` is
/// required** and passed on to Stripe, as for taking a payment: a retry never refunds twice.
/// More than is left to refund is a 422 naming `amount`.
#[utoipa::path(
    post,
    path = "/stripe/payments/{id}/refunds",
    tag = "stripe",
    request_body = CreateRefund,
    params(("id" = String, Path, description = "The Stripe charge id (`ch_…`)"),
           ("Idempotency-Key" = String, Header, description = "Required: 1 to 255 visible ASCII characters")),
    responses(
        (status = 201, body = StripeRefund),
        (status = 400, description = "No `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe is unavailable; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["stripe:write"]), ("bearer" = ["stripe:write"]))
)]
async fn refund(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<StripeWrite>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateRefund>,
) -> Result<Response, ApiError> {
    let id = payment_id(path)?;
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let known = payments::get(&mut tx, tenant, &id).await?;
    end_read(tx);
    if known.is_none() {
        return Err(ApiError::not_found_in(Probe::StripePayments, &id));
    }
    let key = required_key(&headers)?;
    let mut problems = Vec::new();
    if body.amount.is_some_and(|a| !(1..=99_999_999).contains(&a)) {
        problems.push(FieldError::new("amount", "must be 1 to 99,999,999 minor units"));
    }
    if body.reason.as_deref().is_some_and(|r| !matches!(r, "duplicate" | "fraudulent" | "requested_by_customer")) {
        problems.push(FieldError::new("reason", "must be one of duplicate, fraudulent, requested_by_customer"));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let stripe_key = charge::stripe_key(tenant, principal.credential_id(), &format!("refund {id}"), &key);
    let made = charge::refund(&state, tenant, &stripe_key, &id, body.amount, body.reason.as_deref())
        .await?
        .ok_or_else(|| ApiError::not_found_in(Probe::StripePayments, &id))?;
    let audit = AuditResource::new("stripe_refund", &made.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(made)).into_response())
}
