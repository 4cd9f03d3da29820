//! `POST /reconciliation/simulate`: a proposed change of settings or rules, evaluated against
//! the tenant's recent credits without writing anything. The work is in
//! `reconciliation::simulate`.

use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Needs, scopes::ReconciliationRead},
    error::{ApiError, Problem},
    json::ApiJson,
    reconciliation_rules::CreateRule,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    reconciliation::{
        rules::RuleSpec,
        settings::SettingsPatch,
        simulate::{self, MAX_CREDITS, Proposed, Simulation},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(simulate_change))
}

/// A change to try.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "settings": {"auto_match_threshold": 0.85, "amount_tolerance": 50},
    "rules": [{"name": "Own transfers", "field": "description", "pattern": "from savings", "action": "exclude"}],
    "date_from": "2026-09-01",
    "limit": 5000
}))]
pub struct SimulationRequest {
    /// Settings to change, as `PATCH /reconciliation/settings` takes them (left out: as they are).
    pub settings: Option<SettingsPatch>,
    /// The whole rule set as it would be, in the shape `POST /reconciliation/rules` takes
    /// (left out: the rules as they are; `[]`: no rules).
    pub rules: Option<Vec<CreateRule>>,
    /// Credits booked from this day.
    pub date_from: Option<NaiveDate>,
    /// Credits booked up to this day.
    pub date_to: Option<NaiveDate>,
    /// The most recent credits looked at, 1 to 10,000 (default 2,000).
    pub limit: Option<i64>,
}

/// Simulate a change of settings or rules
///
/// Evaluates the tenant's most recent credits (excluded ones left out) twice, under the current
/// settings and rules and under the proposed ones, and writes nothing. Credits already matched
/// are judged as if they were not, with what their match paid put back. The answer says how many
/// automatic matches would appear, disappear or change, how each configuration agrees with the
/// matches people made by hand (`disagree`: the engine would have matched something else on its
/// own, the figure to watch), and shows up to 25 credits decided differently, with their text.
/// The settings and rules are validated as their own endpoints validate them (422 naming
/// `settings.…` or `rules[i].…`).
#[utoipa::path(
    post,
    path = "/reconciliation/simulate",
    tag = "reconciliation",
    request_body = SimulationRequest,
    responses((status = 200, body = Simulation), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn simulate_change(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    ApiJson(body): ApiJson<SimulationRequest>,
) -> Result<ApiJson<Simulation>, ApiError> {
    let limit = body.limit.unwrap_or(2_000);
    if !(1..=MAX_CREDITS).contains(&limit) {
        return Err(ApiError::validation(vec![crate::domain::validation::FieldError::new(
            "limit",
            format!("must be 1 to {MAX_CREDITS}"),
        )]));
    }
    let proposed = Proposed {
        settings: body.settings,
        rules: body.rules.map(|rules| rules.into_iter().map(RuleSpec::from).collect()),
        date_from: body.date_from,
        date_to: body.date_to,
        limit,
    };
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let simulation = simulate::simulate(&mut tx, &principal.tenant.id, proposed).await?;
    end_read(tx);
    Ok(ApiJson(simulation))
}
