//! Stripe payouts and the balance: what the connected account paid out to its bank, each payout
//! with its balance transactions summed and checked, and the balance as Stripe has it now. The
//! rules live in `stripe::payouts` and `stripe::balance`; this module extracts, calls and shapes.

use axum::extract::{Path, State, rejection::PathRejection};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::Probe,
    auth::{Needs, scopes::StripeRead},
    error::{ApiError, Problem},
    json::ApiJson,
    pagination::{self, Page, PageParams},
    query::{ApiQuery, QueryParams},
};
use crate::{
    auth::Principal,
    db::tenant::end_read,
    domain::validation::FieldError,
    http::reads::Reader,
    state::AppState,
    stripe::{
        balance::{self, StripeBalance},
        balance_transactions::{self, StripeBalanceTransaction},
        payouts::{self, PayoutFilters, StripePayout},
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(transactions))
        .routes(routes!(get_balance))
}

/// Whether `id` could be a Stripe id with one of `prefixes` (anything else names nothing).
pub(crate) fn is_stripe_id(id: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| id.starts_with(p))
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PayoutParams {
    /// `pending`, `in_transit`, `paid`, `failed` or `canceled`.
    pub status: Option<String>,
    /// ISO 4217, e.g. `EUR`.
    pub currency: Option<String>,
    /// Arriving on or after this day.
    pub arrival_date_from: Option<NaiveDate>,
    /// Arriving on or before this day.
    pub arrival_date_to: Option<NaiveDate>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// The payout with this bank trace id.
    pub trace_id: Option<String>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<pagination::Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl QueryParams for PayoutParams {
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if let Some(status) = &self.status
            && !matches!(status.as_str(), "pending" | "in_transit" | "paid" | "failed" | "canceled")
        {
            problems.push(FieldError::new("status", "must be one of pending, in_transit, paid, failed, canceled"));
        }
        if let Some(currency) = &self.currency
            && crate::domain::money::Currency::parse(&currency.to_ascii_uppercase()).is_none_or(|c| !c.is_iso4217())
        {
            problems.push(FieldError::new("currency", "must be an ISO 4217 code such as EUR"));
        }
        if let (Some(from), Some(to)) = (self.arrival_date_from, self.arrival_date_to)
            && from > to
        {
            problems.push(FieldError::new("arrival_date_from", "must not be after arrival_date_to"));
        }
        problems
    }
}

/// List Stripe payouts
///
/// The connected account's payouts to its bank, newest first, kept up to date from Stripe's
/// events. Each carries a `summary`: its balance transactions summed into gross charges,
/// refunds, adjustments and fees, with `net` and whether that adds up to the payout's amount
/// (`adds_up`, and the `difference` when it does not: a mismatch is shown, never hidden).
/// `trace_id` and `statement_descriptor` are what the bank statement line quotes.
#[utoipa::path(
    get,
    path = "/stripe/payouts",
    tag = "stripe",
    params(PayoutParams),
    responses((status = 200, body = Page<StripePayout>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["stripe:read"]), ("bearer" = ["stripe:read"]))
)]
async fn list(
    State(state): State<AppState>,
    reader: Reader,
    principal: Principal,
    _: Needs<StripeRead>,
    ApiQuery(params): ApiQuery<PayoutParams>,
) -> Result<ApiJson<Page<StripePayout>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let after = cursors.after(params.cursor.as_deref(), |text| position(text, "payouts|"))?;
    let filters = PayoutFilters {
        status: params.status,
        currency: params.currency,
        arrival_date_from: params.arrival_date_from,
        arrival_date_to: params.arrival_date_to,
        created_from: params.created_from,
        created_to: params.created_to,
        trace_id: params.trace_id,
    };
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let rows = payouts::list(&mut tx, &principal.tenant.id, &filters, after, i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |p| format!("payouts|{}|{}", p.created.to_rfc3339(), p.id))))
}

/// The `(created, id)` position a Stripe list's cursor after `prefix` holds.
pub(crate) fn position(text: &str, prefix: &str) -> Option<(DateTime<Utc>, String)> {
    let (created, id) = text.strip_prefix(prefix)?.split_once('|')?;
    Some((DateTime::parse_from_rfc3339(created).ok()?.with_timezone(&Utc), id.to_owned()))
}

/// The payout named by the path, when it is well formed: anything else is the 404 of a missing one.
fn payout_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    match path {
        Ok(Path(id)) if is_stripe_id(&id, &["po_"]) => Ok(id),
        _ => Err(ApiError::not_found()),
    }
}

/// Get a Stripe payout
///
/// One payout by its Stripe id (`po_…`), with its summary.
#[utoipa::path(
    get,
    path = "/stripe/payouts/{id}",
    tag = "stripe",
    params(("id" = String, Path, description = "The Stripe payout id (`po_…`)")),
    responses((status = 200, body = StripePayout), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["stripe:read"]), ("bearer" = ["stripe:read"]))
)]
async fn get(
    reader: Reader,
    principal: Principal,
    _: Needs<StripeRead>,
    path: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<StripePayout>, ApiError> {
    let id = payout_id(path)?;
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let found = payouts::get(&mut tx, &principal.tenant.id, &id).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::StripePayouts, &id))
}

/// List a payout's balance transactions
///
/// What the payout is made of, line by line, newest first: the charges, refunds, disputes and
/// adjustments it paid out (each with Stripe's fee and net), and its own `payout` transaction.
/// The payout's `summary` is their sum without that last one.
#[utoipa::path(
    get,
    path = "/stripe/payouts/{id}/balance_transactions",
    tag = "stripe",
    params(("id" = String, Path, description = "The Stripe payout id (`po_…`)"), PageParams),
    responses((status = 200, body = Page<StripeBalanceTransaction>), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["stripe:read"]), ("bearer" = ["stripe:read"]))
)]
async fn transactions(
    State(state): State<AppState>,
    reader: Reader,
    principal: Principal,
    _: Needs<StripeRead>,
    path: Result<Path<String>, PathRejection>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<StripeBalanceTransaction>>, ApiError> {
    let id = payout_id(path)?;
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(page.limit);
    let after = cursors.after(page.cursor.as_deref(), |text| position(text, &format!("payout_txns|{id}|")))?;
    let tenant = &principal.tenant.id;
    let mut tx = reader.begin(tenant).await?;
    if payouts::get(&mut tx, tenant, &id).await?.is_none() {
        end_read(tx);
        return Err(ApiError::not_found_in(Probe::StripePayouts, &id));
    }
    let rows = balance_transactions::of_payout(&mut tx, tenant, &id, after, i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |t| format!("payout_txns|{id}|{}|{}", t.created.to_rfc3339(), t.id))))
}

/// Get the Stripe balance
///
/// The connected account's balance per currency, read from Stripe at the moment of the call:
/// `available` (what the next payout can take) and `pending` (card payments not yet settled).
/// A 404 when no account is connected; a 503 `provider_unavailable` when Stripe cannot be
/// reached.
#[utoipa::path(
    get,
    path = "/stripe/balance",
    tag = "stripe",
    responses(
        (status = 200, body = StripeBalance),
        (status = 404, description = "No Stripe account is connected", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe refused the call", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["stripe:read"]), ("bearer" = ["stripe:read"]))
)]
async fn get_balance(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<StripeRead>,
) -> Result<ApiJson<StripeBalance>, ApiError> {
    Ok(ApiJson(balance::current(&state, &principal.tenant.id).await?))
}
