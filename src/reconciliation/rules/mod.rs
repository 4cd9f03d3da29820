//! Reconciliation rules: a tenant's ordered patterns on a transaction's text, each with what to
//! do when it matches: assign a customer (a hint the engine scores with), exclude the
//! transaction from reconciliation, or prefer one kind of counterpart (invoices or Stripe
//! payouts). Enabled rules are evaluated by `position`, then id; the first that matches applies.
//!
//! Storage (create, list, update, delete) is here, with the public types; what a rule may say is
//! checked in `validate`. Evaluation is pure and lives in `matching`: the engine loads the rules
//! once ([`list_all`]), compiles them once ([`CompiledRules::compile`]) and asks
//! [`CompiledRules::first_match`] for each transaction.

mod matching;
mod validate;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::ReconciliationError;
use crate::domain::ids::{ReconciliationRuleId, TenantId};

pub use matching::{CompiledRules, RuleSubject, first_match};
use validate::check;

/// Most rules one tenant may have.
pub const MAX_RULES: i64 = 500;
/// Positions run from 0 (first) to this.
pub const MAX_POSITION: i32 = 1_000_000;
/// Longest pattern, in characters (a regex is bounded by its compiled size too).
pub const MAX_PATTERN_CHARS: usize = crate::transactions::rules::MAX_REGEX_CHARS;

crate::domain::states::states! {
    /// What a rule's pattern is compared with.
    RuleField {
        /// Any of the four below: the rule matches when one of them does.
        Any = "any",
        /// The bank's description (remittance information).
        Description = "description",
        /// The payer's (or payee's) name as the bank reports it.
        CounterpartyName = "counterparty_name",
        /// The structured reference the payer gave.
        Reference = "reference",
        /// The payer's (or payee's) IBAN or account number; spaces and punctuation never matter.
        CounterpartyAccount = "counterparty_account",
    }

    /// How a rule's pattern is compared. All are case-insensitive; the first three also ignore
    /// how whitespace is spaced.
    RuleOperator {
        Contains = "contains",
        Equals = "equals",
        StartsWith = "starts_with",
        /// A regular expression (Rust `regex` syntax) searched in the text as received.
        Regex = "regex",
    }

    /// What a rule does to a transaction it matches.
    RuleAction {
        /// Attribute the payment to `customer_id`: the engine prefers that customer's invoices.
        AssignCustomer = "assign_customer",
        /// Take the transaction out of reconciliation (an internal transfer, a loan, a refund).
        Exclude = "exclude",
        /// Look for counterparts of the kind `prefer` names first.
        Prefer = "prefer",
    }

    /// The kind of counterpart a `prefer` rule favours.
    RulePreference {
        Invoice = "invoice",
        StripePayout = "stripe_payout",
    }
}

/// A reconciliation rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, FromRow)]
#[schema(as = ReconciliationRule, example = json!({
    "id": "rrule_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "name": "Transfers from our savings account",
    "position": 10,
    "enabled": true,
    "field": "counterparty_account",
    "operator": "equals",
    "pattern": "GB33 BUKB 2020 1555 5555 55",
    "amount_min": null,
    "amount_max": null,
    "action": "exclude",
    "customer_id": null,
    "prefer": null,
    "created_at": "2026-12-05T09:30:00Z",
    "updated_at": "2026-12-05T09:30:00Z"
}))]
pub struct Rule {
    pub id: String,
    /// For people: what the rule is for.
    pub name: String,
    /// Lower runs first (0 to 1,000,000); rules at the same position run in creation order.
    pub position: i32,
    /// Disabled rules are kept but never applied.
    pub enabled: bool,
    pub field: RuleField,
    pub operator: RuleOperator,
    /// The text (or regular expression) to look for, 1 to 500 characters.
    pub pattern: String,
    /// Smallest amount, in minor units, inclusive (credits are positive).
    pub amount_min: Option<i64>,
    /// Largest amount, in minor units, inclusive.
    pub amount_max: Option<i64>,
    pub action: RuleAction,
    /// The customer an `assign_customer` rule assigns (`cus_…`); null otherwise.
    pub customer_id: Option<String>,
    /// The kind of counterpart a `prefer` rule favours; null otherwise.
    pub prefer: Option<RulePreference>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`Rule`] reads.
const RULE_COLUMNS: &str = "id, name, position, enabled, field, operator, pattern, amount_min, amount_max, action,
    customer_id, prefer, created_at, updated_at";

/// What a rule says, as stored: checked by [`RuleSpec::check`] (and the customer by [`create`]
/// and [`update`]) before every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub name: String,
    pub position: i32,
    pub enabled: bool,
    pub field: RuleField,
    pub operator: RuleOperator,
    pub pattern: String,
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    pub action: RuleAction,
    pub customer_id: Option<String>,
    pub prefer: Option<RulePreference>,
}

impl From<Rule> for RuleSpec {
    fn from(rule: Rule) -> Self {
        Self {
            name: rule.name,
            position: rule.position,
            enabled: rule.enabled,
            field: rule.field,
            operator: rule.operator,
            pattern: rule.pattern,
            amount_min: rule.amount_min,
            amount_max: rule.amount_max,
            action: rule.action,
            customer_id: rule.customer_id,
            prefer: rule.prefer,
        }
    }
}

impl Rule {
    /// A rule that is only proposed (a simulation): never stored, named by its place in the
    /// proposed list.
    pub fn proposed(index: usize, spec: RuleSpec) -> Rule {
        let now = Utc::now();
        Rule {
            id: format!("proposed_{index}"),
            name: spec.name,
            position: spec.position,
            enabled: spec.enabled,
            field: spec.field,
            operator: spec.operator,
            pattern: spec.pattern,
            amount_min: spec.amount_min,
            amount_max: spec.amount_max,
            action: spec.action,
            customer_id: spec.customer_id,
            prefer: spec.prefer,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Creates a rule. A tenant may have [`MAX_RULES`]; one more is a conflict.
pub async fn create(conn: &mut PgConnection, tenant: &TenantId, spec: &RuleSpec) -> Result<Rule, ReconciliationError> {
    check(conn, tenant, spec).await?;
    // One creation at a time per tenant, so two concurrent ones cannot both pass the cap.
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('reconciliation_rules/' || $1, 0))")
        .bind(tenant.as_str())
        .execute(&mut *conn)
        .await?;
    let count: i64 = sqlx::query_scalar("select count(*) from reconciliation_rules where tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_one(&mut *conn)
        .await?;
    if count >= MAX_RULES {
        return Err(ReconciliationError::Conflict(format!(
            "a tenant may have at most {MAX_RULES} reconciliation rules; delete or combine some first"
        )));
    }
    let rule = sqlx::query_as(&format!(
        "insert into reconciliation_rules (tenant_id, id, name, position, enabled, field, operator, pattern,
             amount_min, amount_max, action, customer_id, prefer)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         returning {RULE_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(ReconciliationRuleId::generate().as_str())
    .bind(&spec.name)
    .bind(spec.position)
    .bind(spec.enabled)
    .bind(spec.field)
    .bind(spec.operator)
    .bind(&spec.pattern)
    .bind(spec.amount_min)
    .bind(spec.amount_max)
    .bind(spec.action)
    .bind(&spec.customer_id)
    .bind(spec.prefer)
    .fetch_one(conn)
    .await?;
    Ok(rule)
}

/// One of the tenant's rules, optionally locked for an update.
pub async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &ReconciliationRuleId,
    for_update: bool,
) -> Result<Option<Rule>, sqlx::Error> {
    let lock = if for_update { " for update" } else { "" };
    sqlx::query_as(&format!("select {RULE_COLUMNS} from reconciliation_rules where tenant_id = $1 and id = $2{lock}"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// A page of the tenant's rules in evaluation order (position, then id), after `after`.
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    after: Option<&(i32, ReconciliationRuleId)>,
    limit: i64,
) -> Result<Vec<Rule>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {RULE_COLUMNS} from reconciliation_rules
         where tenant_id = $1 and ($2::integer is null or (position, id) > ($2, $3))
         order by position, id limit $4"
    ))
    .bind(tenant.as_str())
    .bind(after.map(|(position, _)| *position))
    .bind(after.map(|(_, id)| id.as_str()))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Every rule of the tenant, disabled ones included, in evaluation order: what the engine
/// compiles once per run ([`CompiledRules::compile`] drops the disabled ones).
pub async fn list_all(conn: &mut PgConnection, tenant: &TenantId) -> Result<Vec<Rule>, ReconciliationError> {
    let rules = sqlx::query_as(&format!(
        "select {RULE_COLUMNS} from reconciliation_rules where tenant_id = $1 order by position, id"
    ))
    .bind(tenant.as_str())
    .fetch_all(conn)
    .await?;
    Ok(rules)
}

/// Writes `spec` over rule `id` (the caller loaded and locked it with [`load`]), checked like a
/// new one. `None` when there is no such rule.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &ReconciliationRuleId,
    spec: &RuleSpec,
) -> Result<Option<Rule>, ReconciliationError> {
    check(conn, tenant, spec).await?;
    let rule = sqlx::query_as(&format!(
        "update reconciliation_rules set name = $3, position = $4, enabled = $5, field = $6, operator = $7,
             pattern = $8, amount_min = $9, amount_max = $10, action = $11, customer_id = $12, prefer = $13
         where tenant_id = $1 and id = $2
         returning {RULE_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(&spec.name)
    .bind(spec.position)
    .bind(spec.enabled)
    .bind(spec.field)
    .bind(spec.operator)
    .bind(&spec.pattern)
    .bind(spec.amount_min)
    .bind(spec.amount_max)
    .bind(spec.action)
    .bind(&spec.customer_id)
    .bind(spec.prefer)
    .fetch_optional(conn)
    .await?;
    Ok(rule)
}

/// Deletes rule `id`, answering it as it was; `None` when there is no such rule. What it did
/// to transactions already reconciled stays.
pub async fn delete(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &ReconciliationRuleId,
) -> Result<Option<Rule>, sqlx::Error> {
    sqlx::query_as(&format!(
        "delete from reconciliation_rules where tenant_id = $1 and id = $2 returning {RULE_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .fetch_optional(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written() {
        for field in RuleField::ALL {
            assert_eq!(RuleField::parse(field.as_str()), Some(*field));
        }
        assert_eq!(serde_json::to_value(RuleOperator::StartsWith).unwrap(), "starts_with");
        assert_eq!(serde_json::to_value(RulePreference::StripePayout).unwrap(), "stripe_payout");
    }
}
