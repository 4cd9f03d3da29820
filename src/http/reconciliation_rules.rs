//! Reconciliation rules: create, list, get, update and delete a tenant's rules. The rules and
//! their evaluation live in `reconciliation::rules`; this module extracts, calls and shapes.

use axum::{
    Extension,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{ReconciliationRead, ReconciliationWrite},
    },
    error::{ApiError, Problem},
    json::ApiJson,
    pagination::{self, Page, PageParams},
    path_id::PathId,
    query::ApiQuery,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::ids::ReconciliationRuleId,
    reconciliation::rules::{self, Rule, RuleAction, RuleField, RuleOperator, RulePreference, RuleSpec},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(get, update, delete))
}

/// Position given to a rule created without one.
const DEFAULT_POSITION: i32 = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateReconciliationRule, example = json!({"name": "Acme pays from its parent's account",
    "field": "counterparty_name", "operator": "contains", "pattern": "acme holdings",
    "action": "assign_customer", "customer_id": "cus_0192f3c4d5e6478fa1b2c3d4e5f60718"}))]
pub struct CreateRule {
    /// What the rule is for (1 to 200 characters).
    pub name: String,
    /// Lower runs first, 0 to 1,000,000 (default 100); ties run in creation order.
    pub position: Option<i32>,
    /// Default true.
    pub enabled: Option<bool>,
    /// What the pattern is compared with (default `any`).
    pub field: Option<RuleField>,
    /// How it is compared (default `contains`).
    pub operator: Option<RuleOperator>,
    /// 1 to 500 characters; with `regex`, a regular expression (Rust `regex` syntax, at most
    /// 256 KiB compiled).
    pub pattern: String,
    /// Smallest amount, minor units, inclusive (credits are positive).
    pub amount_min: Option<i64>,
    /// Largest amount, minor units, inclusive (at least `amount_min`).
    pub amount_max: Option<i64>,
    pub action: RuleAction,
    /// With `assign_customer`: one of the tenant's customers (`cus_…`).
    pub customer_id: Option<String>,
    /// With `prefer`: `invoice` or `stripe_payout`.
    pub prefer: Option<RulePreference>,
}

impl From<CreateRule> for RuleSpec {
    fn from(body: CreateRule) -> Self {
        Self {
            name: body.name,
            position: body.position.unwrap_or(DEFAULT_POSITION),
            enabled: body.enabled.unwrap_or(true),
            field: body.field.unwrap_or(RuleField::Any),
            operator: body.operator.unwrap_or(RuleOperator::Contains),
            pattern: body.pattern,
            amount_min: body.amount_min,
            amount_max: body.amount_max,
            action: body.action,
            customer_id: body.customer_id,
            prefer: body.prefer,
        }
    }
}

/// Absent: unchanged; `null`: cleared (`amount_min`, `amount_max`, `customer_id`, `prefer`); a
/// value: set.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateReconciliationRule, example = json!({"enabled": false, "position": 5, "amount_max": null}))]
pub struct UpdateRule {
    pub name: Option<String>,
    pub position: Option<i32>,
    pub enabled: Option<bool>,
    pub field: Option<RuleField>,
    pub operator: Option<RuleOperator>,
    pub pattern: Option<String>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<i64>)]
    pub amount_min: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<i64>)]
    pub amount_max: Option<Option<i64>>,
    pub action: Option<RuleAction>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub customer_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<RulePreference>)]
    pub prefer: Option<Option<RulePreference>>,
}

impl UpdateRule {
    /// The rule with the changes applied, to be checked whole.
    fn apply_to(self, spec: RuleSpec) -> RuleSpec {
        RuleSpec {
            name: self.name.unwrap_or(spec.name),
            position: self.position.unwrap_or(spec.position),
            enabled: self.enabled.unwrap_or(spec.enabled),
            field: self.field.unwrap_or(spec.field),
            operator: self.operator.unwrap_or(spec.operator),
            pattern: self.pattern.unwrap_or(spec.pattern),
            amount_min: self.amount_min.unwrap_or(spec.amount_min),
            amount_max: self.amount_max.unwrap_or(spec.amount_max),
            action: self.action.unwrap_or(spec.action),
            customer_id: self.customer_id.unwrap_or(spec.customer_id),
            prefer: self.prefer.unwrap_or(spec.prefer),
        }
    }
}

/// Create a reconciliation rule
///
/// Rules run before the engine scores a transaction, in `position` order (then creation); the
/// first enabled rule whose pattern (and amount bounds, when given) matches applies:
/// `assign_customer` attributes the payment to `customer_id` (one of this tenant's customers),
/// `exclude` takes the transaction out of reconciliation, `prefer` looks for an `invoice` or a
/// `stripe_payout` first. `contains`, `equals` and `starts_with` ignore case and spacing;
/// `regex` is checked here, and an invalid one, or one longer than 500 characters or compiling
/// to more than 256 KiB, is a 422 naming `pattern`. A tenant may have 500 rules; the 501st is a
/// `conflict` (409). Rules apply to what the engine looks at from now on.
#[utoipa::path(
    post,
    path = "/reconciliation/rules",
    tag = "reconciliation",
    request_body = CreateRule,
    responses(
        (status = 201, body = Rule),
        (status = 409, description = "The tenant already has 500 rules", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    ApiJson(body): ApiJson<CreateRule>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let rule = rules::create(&mut tx, tenant, &RuleSpec::from(body)).await?;
    tx.commit().await?;
    let audit = AuditResource::new("reconciliation_rule", &rule.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(rule)))
}

/// List reconciliation rules
///
/// In evaluation order: by `position` (lowest first), then creation. Disabled rules are listed
/// too.
#[utoipa::path(
    get,
    path = "/reconciliation/rules",
    tag = "reconciliation",
    params(PageParams),
    responses((status = 200, body = Page<Rule>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<Rule>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let after = cursors.after(params.cursor.as_deref(), parse_position)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows = rules::list(&mut tx, &principal.tenant.id, after.as_ref(), i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |r| format!("{}|{}", r.position, r.id))))
}

/// A cursor's position: (position, id).
fn parse_position(text: &str) -> Option<(i32, ReconciliationRuleId)> {
    let (position, id) = text.split_once('|')?;
    Some((position.parse().ok()?, ReconciliationRuleId::parse(id)?))
}

/// Get a reconciliation rule
#[utoipa::path(
    get,
    path = "/reconciliation/rules/{id}",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The rule's id (`rrule_…`)")),
    responses((status = 200, body = Rule), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    PathId(id): PathId<ReconciliationRuleId>,
) -> Result<ApiJson<Rule>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let found = rules::load(&mut tx, &principal.tenant.id, &id, false).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::ReconciliationRules, id.as_str()))
}

/// Update a reconciliation rule
///
/// Changes only the fields sent; `null` clears `amount_min`, `amount_max`, `customer_id` or
/// `prefer`. The rule must still be valid afterwards, checked as on create: changing `action`
/// usually means sending its argument (`customer_id` or `prefer`) and clearing the other's.
#[utoipa::path(
    patch,
    path = "/reconciliation/rules/{id}",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The rule's id (`rrule_…`)")),
    request_body = UpdateRule,
    responses(
        (status = 200, body = Rule),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    PathId(id): PathId<ReconciliationRuleId>,
    ApiJson(body): ApiJson<UpdateRule>,
) -> Result<Response, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let Some(current) = rules::load(&mut tx, tenant, &id, true).await? else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::ReconciliationRules, id.as_str()));
    };
    let spec = body.apply_to(RuleSpec::from(current));
    let rule = rules::update(&mut tx, tenant, &id, &spec)
        .await?
        .ok_or_else(|| ApiError::not_found_in(Probe::ReconciliationRules, id.as_str()))?;
    tx.commit().await?;
    Ok((Extension(AuditResource::new("reconciliation_rule", &rule.id)), ApiJson(rule)).into_response())
}

/// Delete a reconciliation rule
///
/// Answers with the rule as it was. What it did to transactions already reconciled stays.
#[utoipa::path(
    delete,
    path = "/reconciliation/rules/{id}",
    tag = "reconciliation",
    params(("id" = String, Path, description = "The rule's id (`rrule_…`)")),
    responses((status = 200, body = Rule), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    PathId(id): PathId<ReconciliationRuleId>,
) -> Result<Response, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let Some(rule) = rules::delete(&mut tx, &principal.tenant.id, &id).await? else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::ReconciliationRules, id.as_str()));
    };
    tx.commit().await?;
    Ok((Extension(AuditResource::new("reconciliation_rule", &rule.id)), ApiJson(rule)).into_response())
}
