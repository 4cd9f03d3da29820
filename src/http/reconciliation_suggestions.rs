//! Suggestions (list, get, accept, reject) and runs (start, list, get). The rules live in
//! `reconciliation::suggestions` and `reconciliation::runs`; this module extracts, calls and
//! shapes.

use axum::{Extension, extract::State, http::StatusCode, response::IntoResponse};
use chrono::NaiveDate;
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
        ids::{ReconciliationRunId, SuggestionId, TransactionId},
        validation::FieldError,
    },
    reconciliation::{
        DecidedBy, ReconciliationError,
        matches::Match,
        runs::{self, ReconciliationRun},
        suggestions::{self, Suggestion, SuggestionFilters, SuggestionStatus},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(accept))
        .routes(routes!(reject))
        .routes(routes!(start_run, list_runs))
        .routes(routes!(get_run))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SuggestionParams {
    /// One transaction's suggestions (`txn_…`), best first.
    pub transaction_id: Option<String>,
    /// Suggestions that would pay this invoice (`inv_…`) or payout (`po_…`).
    pub target_id: Option<String>,
    /// Default `open`.
    pub status: Option<SuggestionStatus>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<pagination::Limit>,
    /// `next_cursor` of the previous page, with the same filters.
    pub cursor: Option<String>,
}

impl QueryParams for SuggestionParams {
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.transaction_id.as_deref().is_some_and(|t| TransactionId::parse(t).is_none()) {
            problems.push(FieldError::new("transaction_id", "is not a transaction id (txn_…)"));
        }
        problems
    }
}

/// List suggestions
///
/// What the engine proposes for people to decide, newest first, each transaction's best first:
/// by transaction (`transaction_id`), or by what they would pay (`target_id`: an invoice or a
/// payout). Each carries its score (0 to 1) and every signal's contribution in words and
/// numbers, and the allocations and adjustments accepting it would make.
#[utoipa::path(
    get,
    path = "/reconciliation/suggestions",
    tag = "reconciliation",
    params(SuggestionParams),
    responses((status = 200, body = Page<Suggestion>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    ApiQuery(params): ApiQuery<SuggestionParams>,
) -> Result<ApiJson<Page<Suggestion>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let before = cursors.after(params.cursor.as_deref(), SuggestionId::parse)?;
    let filters =
        SuggestionFilters { transaction_id: params.transaction_id, target_id: params.target_id, status: params.status };
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows =
        suggestions::list(&mut tx, &principal.tenant.id, &filters, before.as_ref(), i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |s| s.id.clone())))
}

/// Get a suggestion
#[utoipa::path(
    get,
    path = "/reconciliation/suggestions/{id}",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The suggestion's id (`sug_…`)")),
    responses((status = 200, body = Suggestion), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    PathId(id): PathId<SuggestionId>,
) -> Result<ApiJson<Suggestion>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let found = suggestions::get(&mut tx, &principal.tenant.id, &id).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::ReconciliationSuggestions, id.as_str()))
}

/// A decided suggestion, and the match accepting it made.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub suggestion: Suggestion,
    #[serde(rename = "match")]
    pub made: Match,
}

/// Accept a suggestion
///
/// Makes the suggested match, checked afresh exactly as a match by hand (a 409 when the
/// transaction or invoice changed meanwhile: matched, paid, excluded). The match records the
/// suggestion, its score and reasons; the transaction's other suggestions are withdrawn.
#[utoipa::path(
    post,
    path = "/reconciliation/suggestions/{id}/accept",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The suggestion's id (`sug_…`)")),
    responses(
        (status = 200, body = Accepted),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not open any more, or the match no longer fits", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn accept(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    PathId(id): PathId<SuggestionId>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let (suggestion, made) = suggestions::accept(&mut tx, tenant, &id, DecidedBy::Caller(principal.actor.clone()))
        .await
        .map_err(|e| not_found(e, &id))?;
    tx.commit().await?;
    Ok((Extension(AuditResource::new("reconciliation_suggestion", &id)), ApiJson(Accepted { suggestion, made })))
}

/// Reject a suggestion
///
/// The transaction and what the suggestion would pay are remembered as a rejected pair: never
/// suggested again, never matched automatically. A transaction left without open suggestions is
/// `unmatched` again.
#[utoipa::path(
    post,
    path = "/reconciliation/suggestions/{id}/reject",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The suggestion's id (`sug_…`)")),
    responses(
        (status = 200, body = Suggestion),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not open any more", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn reject(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    PathId(id): PathId<SuggestionId>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let rejected = suggestions::reject(&mut tx, tenant, &id, DecidedBy::Caller(principal.actor.clone()))
        .await
        .map_err(|e| not_found(e, &id))?;
    tx.commit().await?;
    Ok((Extension(AuditResource::new("reconciliation_suggestion", &id)), ApiJson(rejected)))
}

fn not_found(error: ReconciliationError, id: &SuggestionId) -> ApiError {
    match error {
        ReconciliationError::NotFound("suggestion") => {
            ApiError::not_found_in(Probe::ReconciliationSuggestions, id.as_str())
        }
        e => e.into(),
    }
}

/// What a run covers.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"date_from": "2026-11-01", "date_to": "2026-11-30"}))]
pub struct NewRun {
    /// Credits booked from this day (default: the first).
    pub date_from: Option<NaiveDate>,
    /// Credits booked up to this day (default: the last).
    pub date_to: Option<NaiveDate>,
}

/// Start a reconciliation run
///
/// Looks again at every unmatched or suggested credit booked in the range, on the job queue:
/// auto-matches what is certain, refreshes suggestions, applies the rules. Poll
/// `GET /reconciliation/runs/{id}` for its progress; `reconciliation.run.completed` is sent at
/// the end. Work goes in short batches that never wait for a lock a request holds, and a crash
/// resumes where it stopped. One run per tenant at a time (409 naming the one in progress). The
/// engine also runs by itself after every sync, import, invoice change and Stripe payout.
#[utoipa::path(
    post,
    path = "/reconciliation/runs",
    tag = "reconciliation",
    request_body(content = NewRun, description = "Optional: the date range"),
    responses(
        (status = 202, body = ReconciliationRun),
        (status = 409, description = "A run is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn start_run(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    OptionalJson(body): OptionalJson<NewRun>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let by = DecidedBy::Caller(principal.actor.clone());
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let run = runs::start(&mut tx, tenant, body.date_from, body.date_to, &by).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Extension(AuditResource::new("reconciliation_run", &run.id)), ApiJson(run)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<pagination::Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl QueryParams for RunParams {
    fn problems(&self) -> Vec<FieldError> {
        Vec::new()
    }
}

/// List reconciliation runs
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/reconciliation/runs",
    tag = "reconciliation",
    params(RunParams),
    responses((status = 200, body = Page<ReconciliationRun>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn list_runs(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    ApiQuery(params): ApiQuery<RunParams>,
) -> Result<ApiJson<Page<ReconciliationRun>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let before = cursors.after(params.cursor.as_deref(), ReconciliationRunId::parse)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows = runs::list(&mut tx, &principal.tenant.id, before.as_ref(), i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |r| r.id.clone())))
}

/// Get a reconciliation run
///
/// Its status and counts so far: `examined` of `total`, `auto_matched`, `suggested`,
/// `unmatched`, `excluded`.
#[utoipa::path(
    get,
    path = "/reconciliation/runs/{id}",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The run's id (`rrun_…`)")),
    responses((status = 200, body = ReconciliationRun), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn get_run(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    PathId(id): PathId<ReconciliationRunId>,
) -> Result<ApiJson<ReconciliationRun>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let found = runs::get(&mut tx, &principal.tenant.id, &id).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::ReconciliationRuns, id.as_str()))
}
