//! Stripe payments: the connected account's card payments, as Payymo keeps them from Stripe's
//! events. The rules live in `stripe::payments`; this module extracts, calls and shapes.

use axum::extract::{Path, State, rejection::PathRejection};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::Probe,
    auth::{Needs, scopes::StripeRead},
    error::{ApiError, Problem},
    json::ApiJson,
    pagination::{self, Page},
    query::{ApiQuery, QueryParams},
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::validation::FieldError,
    state::AppState,
    stripe::payments::{self, PaymentFilters, StripePayment},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(get))
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
    principal: Principal,
    _: Needs<StripeRead>,
    ApiQuery(params): ApiQuery<PaymentParams>,
) -> Result<ApiJson<Page<StripePayment>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let after = cursors.after(params.cursor.as_deref(), |text| {
        let (created, id) = text.strip_prefix("payments|")?.split_once('|')?;
        Some((DateTime::parse_from_rfc3339(created).ok()?.with_timezone(&Utc), id.to_owned()))
    })?;
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
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
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
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<StripeRead>,
    path: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<StripePayment>, ApiError> {
    // A path that is not even text names nothing: the same 404 as a missing id.
    let Ok(Path(id)) = path else { return Err(ApiError::not_found()) };
    if !super::stripe_payouts::is_stripe_id(&id, &["ch_", "py_"]) {
        return Err(ApiError::not_found());
    }
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let found = payments::get(&mut tx, &principal.tenant.id, &id).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::StripePayments, &id))
}
