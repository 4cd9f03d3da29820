//! Categorisation rules: create, list, get, update and delete a tenant's rules, and apply them
//! to existing transactions as a job whose progress is readable as a run.

use super::path_id::PathId;
use axum::{
    Extension,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{TransactionsRead, TransactionsWrite},
    },
    error::{ApiError, ErrorCode, FieldError, Problem},
    json::{ApiJson, OptionalJson},
    pagination::{self, Page, PageParams},
    query::ApiQuery,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::ids::{BankAccountId, CategorizationRuleId, CategorizationRuleRunId, TenantId},
    state::AppState,
    transactions::{
        rule_runs::{self, CategorizationRuleRun},
        rules::{CategorizationRule, MAX_RULES, RULE_COLUMNS, RuleSpec},
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(apply))
        .routes(routes!(get_run))
}

/// Priority given to a rule created without one.
const DEFAULT_PRIORITY: i32 = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Card fees", "priority": 10, "counterparty_contains": "stripe",
    "direction": "debit", "category": "bank_fees"}))]
pub struct CreateCategorizationRule {
    /// What the rule is for (1 to 200 characters).
    pub name: String,
    /// Lower runs first, 0 to 1,000,000 (default 100); ties run in creation order.
    pub priority: Option<i32>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Case-insensitive substring of the description (1 to 200 characters).
    pub description_contains: Option<String>,
    /// Case-insensitive substring of the counterparty's name (1 to 200 characters).
    pub counterparty_contains: Option<String>,
    /// Case-insensitive regular expression searched in the description (Rust `regex` syntax, at
    /// most 500 characters and 256 KiB compiled).
    pub description_regex: Option<String>,
    /// Case-insensitive regular expression searched in the counterparty's name (same limits).
    pub counterparty_regex: Option<String>,
    /// Smallest amount, signed minor units, inclusive.
    pub amount_min: Option<i64>,
    /// Largest amount, signed minor units, inclusive (at least `amount_min`).
    pub amount_max: Option<i64>,
    /// `credit` (amount ≥ 0) or `debit` (amount < 0).
    pub direction: Option<String>,
    /// Only this account's transactions (`ba_…`).
    pub account_id: Option<String>,
    /// The category to set (1 to 100 characters).
    pub category: String,
}

impl From<CreateCategorizationRule> for RuleSpec {
    fn from(body: CreateCategorizationRule) -> Self {
        Self {
            name: body.name,
            priority: body.priority.unwrap_or(DEFAULT_PRIORITY),
            enabled: body.enabled.unwrap_or(true),
            description_contains: body.description_contains,
            counterparty_contains: body.counterparty_contains,
            description_regex: body.description_regex,
            counterparty_regex: body.counterparty_regex,
            amount_min: body.amount_min,
            amount_max: body.amount_max,
            direction: body.direction,
            account_id: body.account_id,
            category: body.category,
        }
    }
}

/// Absent: unchanged; `null`: cleared (conditions only); a value: set.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false, "description_regex": null, "amount_max": -1}))]
pub struct UpdateCategorizationRule {
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<i32>)]
    pub priority: Option<Option<i32>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<bool>)]
    pub enabled: Option<Option<bool>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub description_contains: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub counterparty_contains: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub description_regex: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub counterparty_regex: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<i64>)]
    pub amount_min: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<i64>)]
    pub amount_max: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub direction: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub account_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
}

impl UpdateCategorizationRule {
    /// The rule with the changes applied. `name`, `priority`, `enabled` and `category` cannot be
    /// cleared.
    fn apply_to(self, mut spec: RuleSpec) -> Result<RuleSpec, ApiError> {
        let mut errors = Vec::new();
        let mut required = |field: &str, present: bool| {
            if !present {
                errors.push(FieldError { field: field.into(), message: "cannot be null".into() });
            }
        };
        if let Some(name) = self.name {
            required("name", name.is_some());
            spec.name = name.unwrap_or_default();
        }
        if let Some(priority) = self.priority {
            required("priority", priority.is_some());
            spec.priority = priority.unwrap_or(spec.priority);
        }
        if let Some(enabled) = self.enabled {
            required("enabled", enabled.is_some());
            spec.enabled = enabled.unwrap_or(spec.enabled);
        }
        if let Some(category) = self.category {
            required("category", category.is_some());
            spec.category = category.unwrap_or_default();
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let set = |slot: &mut Option<String>, change: Option<Option<String>>| {
            if let Some(value) = change {
                *slot = value;
            }
        };
        set(&mut spec.description_contains, self.description_contains);
        set(&mut spec.counterparty_contains, self.counterparty_contains);
        set(&mut spec.description_regex, self.description_regex);
        set(&mut spec.counterparty_regex, self.counterparty_regex);
        set(&mut spec.direction, self.direction);
        set(&mut spec.account_id, self.account_id);
        if let Some(value) = self.amount_min {
            spec.amount_min = value;
        }
        if let Some(value) = self.amount_max {
            spec.amount_max = value;
        }
        Ok(spec)
    }
}

/// Refuses an invalid rule with every field's problem, including an account the tenant lacks.
async fn check(conn: &mut PgConnection, tenant: &TenantId, spec: &RuleSpec) -> Result<(), ApiError> {
    let mut errors: Vec<FieldError> =
        spec.validate().into_iter().map(|e| FieldError { field: e.field.into(), message: e.message }).collect();
    if let Some(account) = spec.account_id.as_deref().filter(|a| BankAccountId::parse(a).is_some()) {
        let known: Option<i32> = sqlx::query_scalar("select 1 from bank_accounts where tenant_id = $1 and id = $2")
            .bind(tenant.as_str())
            .bind(account)
            .fetch_optional(conn)
            .await?;
        if known.is_none() {
            errors.push(FieldError {
                field: "account_id".into(),
                message: "is not one of this tenant's accounts".into(),
            });
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::validation(errors)) }
}

/// Create a categorisation rule
///
/// The rule applies to transactions that arrive from now on (bank feeds and imports); to apply it
/// to existing ones, `POST /categorization_rules/apply`. A rule needs at least one condition, and
/// every condition given must hold. Regexes are checked here: an invalid one, or one longer than
/// 500 characters or compiling to more than 256 KiB, is a 422 naming the field. A tenant may
/// have 500 rules; the 501st is refused with `conflict` (409).
#[utoipa::path(
    post,
    path = "/categorization_rules",
    tag = "transactions",
    request_body = CreateCategorizationRule,
    responses(
        (status = 201, body = CategorizationRule),
        (status = 409, description = "The tenant already has 500 rules", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:write"]), ("bearer" = ["transactions:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsWrite>,
    ApiJson(body): ApiJson<CreateCategorizationRule>,
) -> Result<impl IntoResponse, ApiError> {
    let spec = RuleSpec::from(body);
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    check(&mut tx, tenant, &spec).await?;
    // One creation at a time per tenant, so two concurrent ones cannot both pass the cap.
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('categorization_rules/' || $1, 0))")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    let count: i64 = sqlx::query_scalar("select count(*) from categorization_rules where tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_RULES {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("a tenant may have at most {MAX_RULES} categorisation rules; delete or combine some first"),
        ));
    }
    let rule: CategorizationRule = sqlx::query_as(&format!(
        "insert into categorization_rules (tenant_id, id, name, priority, enabled, description_contains,
             counterparty_contains, description_regex, counterparty_regex, amount_min, amount_max, direction,
             account_id, category)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         returning {RULE_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(CategorizationRuleId::generate().as_str())
    .bind(&spec.name)
    .bind(spec.priority)
    .bind(spec.enabled)
    .bind(&spec.description_contains)
    .bind(&spec.counterparty_contains)
    .bind(&spec.description_regex)
    .bind(&spec.counterparty_regex)
    .bind(spec.amount_min)
    .bind(spec.amount_max)
    .bind(&spec.direction)
    .bind(&spec.account_id)
    .bind(&spec.category)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let audit = AuditResource::new("categorization_rule", &rule.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(rule)))
}

/// List categorisation rules
///
/// In evaluation order: by `priority` (lowest first), then creation. Disabled rules are listed
/// too.
#[utoipa::path(
    get,
    path = "/categorization_rules",
    tag = "transactions",
    params(PageParams),
    responses((status = 200, body = Page<CategorizationRule>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsRead>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<CategorizationRule>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let after = cursors.after(params.cursor.as_deref(), parse_position)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows: Vec<CategorizationRule> = sqlx::query_as(&format!(
        "select {RULE_COLUMNS} from categorization_rules
         where tenant_id = $1 and ($2::integer is null or (priority, id) > ($2, $3))
         order by priority, id limit $4"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(after.as_ref().map(|(priority, _)| *priority))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |r| format!("{}|{}", r.priority, r.id))))
}

/// A cursor's position: (priority, id).
fn parse_position(text: &str) -> Option<(i32, CategorizationRuleId)> {
    let (priority, id) = text.split_once('|')?;
    Some((priority.parse().ok()?, CategorizationRuleId::parse(id)?))
}

/// Get a categorisation rule
#[utoipa::path(
    get,
    path = "/categorization_rules/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "The rule's id (`cr_…`)")),
    responses((status = 200, body = CategorizationRule), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsRead>,
    PathId(parsed): PathId<CategorizationRuleId>,
) -> Result<ApiJson<CategorizationRule>, ApiError> {
    let id = parsed.as_str();
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rule = load(&mut tx, &principal.tenant.id, &parsed, false).await?;
    end_read(tx);
    match rule {
        Some(rule) => Ok(ApiJson(rule)),
        None => Err(ApiError::not_found_in(Probe::CategorizationRules, id)),
    }
}

async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &CategorizationRuleId,
    for_update: bool,
) -> Result<Option<CategorizationRule>, sqlx::Error> {
    let lock = if for_update { " for update" } else { "" };
    sqlx::query_as(&format!("select {RULE_COLUMNS} from categorization_rules where tenant_id = $1 and id = $2{lock}"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// Update a categorisation rule
///
/// Changes only the fields sent; `null` clears a condition. The rule must still be valid
/// afterwards (at least one condition, a valid regex, `amount_min` ≤ `amount_max`). Transactions
/// already categorised keep their category until the rules are applied again
/// (`POST /categorization_rules/apply`).
#[utoipa::path(
    patch,
    path = "/categorization_rules/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "The rule's id (`cr_…`)")),
    request_body = UpdateCategorizationRule,
    responses(
        (status = 200, body = CategorizationRule),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:write"]), ("bearer" = ["transactions:write"]))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsWrite>,
    PathId(parsed): PathId<CategorizationRuleId>,
    ApiJson(body): ApiJson<UpdateCategorizationRule>,
) -> Result<Response, ApiError> {
    let id = parsed.as_str();
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let Some(current) = load(&mut tx, tenant, &parsed, true).await? else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::CategorizationRules, id));
    };
    let spec = body.apply_to(RuleSpec::from(current))?;
    check(&mut tx, tenant, &spec).await?;
    let rule: CategorizationRule = sqlx::query_as(&format!(
        "update categorization_rules set name = $3, priority = $4, enabled = $5, description_contains = $6,
             counterparty_contains = $7, description_regex = $8, counterparty_regex = $9, amount_min = $10,
             amount_max = $11, direction = $12, account_id = $13, category = $14
         where tenant_id = $1 and id = $2
         returning {RULE_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(parsed.as_str())
    .bind(&spec.name)
    .bind(spec.priority)
    .bind(spec.enabled)
    .bind(&spec.description_contains)
    .bind(&spec.counterparty_contains)
    .bind(&spec.description_regex)
    .bind(&spec.counterparty_regex)
    .bind(spec.amount_min)
    .bind(spec.amount_max)
    .bind(&spec.direction)
    .bind(&spec.account_id)
    .bind(&spec.category)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((Extension(AuditResource::new("categorization_rule", &rule.id)), ApiJson(rule)).into_response())
}

/// Delete a categorisation rule
///
/// Answers with the rule as it was. Transactions it categorised keep their category until the
/// rules are applied again.
#[utoipa::path(
    delete,
    path = "/categorization_rules/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "The rule's id (`cr_…`)")),
    responses((status = 200, body = CategorizationRule), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:write"]), ("bearer" = ["transactions:write"]))
)]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsWrite>,
    PathId(parsed): PathId<CategorizationRuleId>,
) -> Result<Response, ApiError> {
    let id = parsed.as_str();
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rule: Option<CategorizationRule> = sqlx::query_as(&format!(
        "delete from categorization_rules where tenant_id = $1 and id = $2 returning {RULE_COLUMNS}"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(parsed.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(rule) = rule else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::CategorizationRules, id));
    };
    tx.commit().await?;
    Ok((Extension(AuditResource::new("categorization_rule", &rule.id)), ApiJson(rule)).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718"}))]
pub struct ApplyCategorizationRules {
    /// Only this account's transactions (`ba_…`); all of them when absent.
    pub account_id: Option<String>,
}

/// Apply categorisation rules
///
/// Starts a run that re-evaluates the tenant's existing transactions (or one account's) against
/// the enabled rules, in the background, and answers 202 with the run; follow its progress at
/// `GET /categorization_rules/runs/{id}`. Every transaction categorised by a rule, or not
/// categorised, gets the first matching rule's category; one a rule had categorised that no rule
/// matches any more loses it. A category set by a user is never changed. Each change emits
/// `transaction.updated` with `previous_attributes` (`category`, `category_source`). The body is
/// optional.
#[utoipa::path(
    post,
    path = "/categorization_rules/apply",
    tag = "transactions",
    request_body(content = Option<ApplyCategorizationRules>, description = "Optional"),
    responses(
        (status = 202, body = CategorizationRuleRun),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:write"]), ("bearer" = ["transactions:write"]))
)]
async fn apply(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsWrite>,
    OptionalJson(body): OptionalJson<ApplyCategorizationRules>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    if let Some(account) = &body.account_id {
        let known: Option<i32> = match BankAccountId::parse(account) {
            Some(id) => {
                sqlx::query_scalar("select 1 from bank_accounts where tenant_id = $1 and id = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
            }
            None => None,
        };
        if known.is_none() {
            return Err(ApiError::invalid_field("account_id", "is not one of this tenant's accounts (ba_…)"));
        }
    }
    let run = rule_runs::create(&mut tx, tenant, body.account_id.as_deref()).await?;
    tx.commit().await?;
    let audit = AuditResource::new("categorization_rule_run", &run.id);
    Ok((StatusCode::ACCEPTED, Extension(audit), ApiJson(run)))
}

/// Get a categorisation run
///
/// Its status (`queued`, `running`, `succeeded`, `failed`) and progress: `processed` of `total`
/// transactions walked, `changed` recategorised.
#[utoipa::path(
    get,
    path = "/categorization_rules/runs/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "The run's id (`crr_…`)")),
    responses((status = 200, body = CategorizationRuleRun), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn get_run(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsRead>,
    PathId(parsed): PathId<CategorizationRuleRunId>,
) -> Result<ApiJson<CategorizationRuleRun>, ApiError> {
    let id = parsed.as_str();
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let run = rule_runs::load(&mut tx, &principal.tenant.id, &parsed).await?;
    end_read(tx);
    match run {
        Some(run) => Ok(ApiJson(run)),
        None => Err(ApiError::not_found_in(Probe::CategorizationRuleRuns, id)),
    }
}
