//! Matches: make one by hand, list them, read one, undo one; and take a transaction out of
//! reconciliation and back. The rules live in `reconciliation::matches` and
//! `reconciliation::exclusion`; this module extracts, calls and shapes.

use axum::{Extension, extract::State, http::StatusCode, response::IntoResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{ReconciliationRead, ReconciliationWrite},
    },
    error::{ApiError, Problem},
    json::{ApiJson, OptionalJson},
    pagination::{self, Page},
    path_id::PathId,
    query::{ApiQuery, QueryParams},
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{MatchId, TransactionId},
        states::MatchStatus,
        validation::FieldError,
    },
    http::reads::Reader,
    reconciliation::{
        DecidedBy, ReconciliationError, exclusion,
        matches::{self, Match, MatchFilters, MatchOrigin, MatchState, NewMatch, Proposal},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, unmatch))
        .routes(routes!(exclude))
        .routes(routes!(include))
}

/// Match transactions by hand
///
/// Ties one or more bank credits (each whole, `unmatched` or `suggested`) to the invoices and
/// Stripe payouts they pay. Per currency the match must balance to the cent:
/// Σ transactions = Σ allocations + Σ adjustments (422 naming the difference otherwise; book it
/// as an adjustment: `bank_charge`, `short_payment`, `overpayment`, `fx_difference`, …).
///
/// An invoice's allocation defaults to what it still owes and may not exceed it (409); its
/// `amount_paid` grows, and it becomes `partially_paid` or `paid` with `invoice.partially_paid`
/// or `invoice.paid`. A payout's allocation defaults to its gross, with its refunds, fees and
/// adjustments added as `stripe_*` adjustments; invoices its charges paid can ride in the same
/// match with `via_payout_id`. The transactions become `matched` and `transaction.matched` is
/// sent. A transaction already matched or excluded, or an invoice not open, is a 409.
#[utoipa::path(
    post,
    path = "/reconciliation/matches",
    tag = "reconciliation",
    request_body = NewMatch,
    responses(
        (status = 201, body = Match),
        (status = 409, description = "Already matched, excluded, paid, or not payable", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid, or does not balance", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    ApiJson(body): ApiJson<NewMatch>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let proposal = Proposal {
        new: body,
        origin: MatchOrigin::Manual,
        decided_by: DecidedBy::Caller(principal.actor.clone()),
        suggestion_id: None,
        score: None,
        reasons: serde_json::json!([]),
    };
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let made = matches::create(&mut tx, tenant, proposal).await?;
    tx.commit().await?;
    let audit = AuditResource::new("reconciliation_match", &made.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(made)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MatchParams {
    pub status: Option<MatchState>,
    pub origin: Option<MatchOrigin>,
    /// Matches holding this transaction (`txn_…`).
    pub transaction_id: Option<String>,
    /// Matches paying this invoice (`inv_…`) or payout (`po_…`).
    pub target_id: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<pagination::Limit>,
    /// `next_cursor` of the previous page, with the same filters.
    pub cursor: Option<String>,
}

impl QueryParams for MatchParams {
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.transaction_id.as_deref().is_some_and(|t| TransactionId::parse(t).is_none()) {
            problems.push(FieldError::new("transaction_id", "is not a transaction id (txn_…)"));
        }
        if let (Some(from), Some(to)) = (self.created_from, self.created_to)
            && from > to
        {
            problems.push(FieldError::new("created_to", "must be after created_from"));
        }
        problems
    }
}

/// List matches
///
/// Newest first, unmatched ones included (filter `status=active` for the standing ones).
#[utoipa::path(
    get,
    path = "/reconciliation/matches",
    tag = "reconciliation",
    params(MatchParams),
    responses((status = 200, body = Page<Match>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn list(
    State(state): State<AppState>,
    reader: Reader,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    ApiQuery(params): ApiQuery<MatchParams>,
) -> Result<ApiJson<Page<Match>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let before = cursors.after(params.cursor.as_deref(), MatchId::parse)?;
    let filters = MatchFilters {
        status: params.status,
        origin: params.origin,
        transaction_id: params.transaction_id,
        target_id: params.target_id,
        created_from: params.created_from,
        created_to: params.created_to,
    };
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let rows = matches::list(&mut tx, &principal.tenant.id, &filters, before.as_ref(), i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |m| m.id.clone())))
}

/// Get a match
///
/// With its transactions, allocations, adjustments, and the engine's score and reasons.
#[utoipa::path(
    get,
    path = "/reconciliation/matches/{id}",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The match's id (`match_…`)")),
    responses((status = 200, body = Match), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn get(
    reader: Reader,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    PathId(id): PathId<MatchId>,
) -> Result<ApiJson<Match>, ApiError> {
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let found = matches::get(&mut tx, &principal.tenant.id, &id, false).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::ReconciliationMatches, id.as_str()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UnmatchParams {
    /// Why (up to 2,000 characters), kept on the match and in the audit log.
    pub reason: Option<String>,
}

impl QueryParams for UnmatchParams {
    fn problems(&self) -> Vec<FieldError> {
        Vec::new()
    }
}

/// Unmatch
///
/// Undoes a match: its transactions go back to `unmatched`, the invoices it paid get their
/// amounts back (and their status: `open` or `partially_paid`, with `invoice.updated` or
/// `invoice.partially_paid`), and `transaction.unmatched` is sent. The match is kept, `unmatched`,
/// with who undid it and why. What it paid is remembered as rejected for its transactions: the
/// engine will suggest it again never, and match it automatically never. Already unmatched: 409.
#[utoipa::path(
    delete,
    path = "/reconciliation/matches/{id}",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The match's id (`match_…`)"), UnmatchParams),
    responses(
        (status = 200, body = Match),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already unmatched", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn unmatch(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    PathId(id): PathId<MatchId>,
    ApiQuery(params): ApiQuery<UnmatchParams>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let undone = matches::unmatch(&mut tx, tenant, &id, params.reason, DecidedBy::Caller(principal.actor.clone()))
        .await
        .map_err(|e| match e {
            ReconciliationError::NotFound(_) => ApiError::not_found_in(Probe::ReconciliationMatches, id.as_str()),
            e => e.into(),
        })?;
    tx.commit().await?;
    Ok((Extension(AuditResource::new("reconciliation_match", &undone.id)), ApiJson(undone)))
}

/// Why a transaction is taken out of reconciliation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Transfer between our own accounts"}))]
pub struct Exclusion {
    /// Up to 500 characters.
    pub reason: Option<String>,
}

/// Where a transaction stands after an exclusion or inclusion.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"transaction_id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718", "match_status": "excluded", "changed": true}))]
pub struct ExclusionResult {
    pub transaction_id: String,
    pub match_status: MatchStatus,
    /// `false` when it already stood so.
    pub changed: bool,
}

/// Exclude a transaction from reconciliation
///
/// For money that pays no invoice: a transfer between your own accounts, a loan, a tax refund.
/// The transaction becomes `excluded` (its open suggestions are withdrawn) and is never suggested
/// or matched until included again. A matched transaction must be unmatched first (409).
#[utoipa::path(
    post,
    path = "/transactions/{id}/exclude",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The transaction's id (`txn_…`)")),
    request_body(content = Exclusion, description = "Optional: the reason"),
    responses(
        (status = 200, body = ExclusionResult),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The transaction is matched", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn exclude(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    PathId(id): PathId<TransactionId>,
    OptionalJson(body): OptionalJson<Exclusion>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let reason = body.reason;
    let by = DecidedBy::Caller(principal.actor.clone());
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let changed = exclusion::exclude(&mut tx, tenant, id.as_str(), reason, &by).await.map_err(|e| not_found(e, &id))?;
    tx.commit().await?;
    let result = ExclusionResult { transaction_id: id.to_string(), match_status: MatchStatus::Excluded, changed };
    Ok((Extension(AuditResource::new("transaction", &id)), ApiJson(result)))
}

/// Include an excluded transaction again
///
/// The reverse of exclude: the transaction becomes `unmatched` and the engine looks at it
/// afresh. Including one that is not excluded changes nothing (`changed: false`).
#[utoipa::path(
    post,
    path = "/transactions/{id}/include",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The transaction's id (`txn_…`)")),
    responses((status = 200, body = ExclusionResult), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn include(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    PathId(id): PathId<TransactionId>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let by = DecidedBy::Caller(principal.actor.clone());
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let (status, changed) =
        exclusion::include(&mut tx, tenant, id.as_str(), &by).await.map_err(|e| not_found(e, &id))?;
    tx.commit().await?;
    let result = ExclusionResult { transaction_id: id.to_string(), match_status: status, changed };
    Ok((Extension(AuditResource::new("transaction", &id)), ApiJson(result)))
}

/// A transaction that is not the tenant's is a 404 that records the probe.
fn not_found(error: ReconciliationError, id: &TransactionId) -> ApiError {
    match error {
        ReconciliationError::NotFound(_) => ApiError::not_found_in(Probe::Transactions, id.as_str()),
        e => e.into(),
    }
}
