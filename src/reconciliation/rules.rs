//! Reconciliation rules: a tenant's ordered patterns on a transaction's text, each with what to
//! do when it matches: assign a customer (a hint the engine scores with), exclude the
//! transaction from reconciliation, or prefer one kind of counterpart (invoices or Stripe
//! payouts). Enabled rules are evaluated by `position`, then id; the first that matches applies.
//!
//! Storage (create, list, update, delete) is here; evaluation is pure: the engine loads the rules
//! once ([`list_all`]), compiles them once ([`CompiledRules::compile`]) and asks
//! [`CompiledRules::first_match`] for each transaction.

use std::cell::OnceCell;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::ReconciliationError;
use crate::{
    domain::{
        ids::{CustomerId, ReconciliationRuleId, TenantId},
        validation::FieldError,
    },
    transactions::rules::compile,
};

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

impl RuleSpec {
    /// Every problem with the rule, each naming its field; empty when it may be stored.
    /// (Whether `customer_id` is one of the tenant's customers is checked on write.)
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut error = |field: &str, message: String| errors.push(FieldError::new(field, message));
        let chars = |s: &str| s.chars().count();
        if self.name.trim().is_empty() || chars(&self.name) > 200 {
            error("name", "must be 1 to 200 characters, not blank".into());
        }
        if !(0..=MAX_POSITION).contains(&self.position) {
            error("position", format!("must be from 0 to {MAX_POSITION}"));
        }
        if self.operator == RuleOperator::Regex {
            if let Err(why) = compile(&self.pattern) {
                error("pattern", why);
            }
        } else if self.pattern.trim().is_empty() || chars(&self.pattern) > MAX_PATTERN_CHARS {
            error("pattern", format!("must be 1 to {MAX_PATTERN_CHARS} characters, not blank"));
        } else if self.field == RuleField::CounterpartyAccount && account_key(&self.pattern).is_empty() {
            error("pattern", "must contain the account's letters and digits".into());
        }
        if let (Some(min), Some(max)) = (self.amount_min, self.amount_max)
            && min > max
        {
            error("amount_max", "must be greater than or equal to amount_min".into());
        }
        match self.action {
            RuleAction::AssignCustomer => match &self.customer_id {
                None => error("customer_id", "is required when action is assign_customer".into()),
                Some(id) if CustomerId::parse(id).is_none() => {
                    error("customer_id", "is not a customer id (cus_…)".into())
                }
                Some(_) => {}
            },
            _ if self.customer_id.is_some() => {
                error("customer_id", "must be null unless action is assign_customer".into());
            }
            _ => {}
        }
        match self.action {
            RuleAction::Prefer if self.prefer.is_none() => {
                error("prefer", "is required when action is prefer: invoice or stripe_payout".into());
            }
            RuleAction::AssignCustomer | RuleAction::Exclude if self.prefer.is_some() => {
                error("prefer", "must be null unless action is prefer".into());
            }
            _ => {}
        }
        errors
    }
}

/// Refuses an invalid rule with every field's problem, a customer the tenant lacks included.
async fn check(conn: &mut PgConnection, tenant: &TenantId, spec: &RuleSpec) -> Result<(), ReconciliationError> {
    let mut errors = spec.check();
    if let Some(customer) = spec.customer_id.as_deref().filter(|c| CustomerId::parse(c).is_some()) {
        let known: Option<i32> = sqlx::query_scalar("select 1 from customers where tenant_id = $1 and id = $2")
            .bind(tenant.as_str())
            .bind(customer)
            .fetch_optional(conn)
            .await?;
        if known.is_none() {
            errors.push(FieldError::new("customer_id", "is not one of this tenant's customers"));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ReconciliationError::Invalid(errors)) }
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

/// A transaction as rules see it: its text as received, and its signed amount in minor units.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleSubject<'a> {
    pub description: Option<&'a str>,
    pub counterparty_name: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub counterparty_account: Option<&'a str>,
    pub amount: i64,
}

/// Text as the plain operators compare it: lowercase, whitespace runs as one space, trimmed.
fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !folded.is_empty() {
            folded.push(' ');
        }
        folded.extend(word.chars().flat_map(char::to_lowercase));
    }
    folded
}

/// An account number as compared: its letters (lowercase) and digits only, so
/// `GB33 BUKB 2020…` and `gb33bukb2020…` are one account.
fn account_key(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// How one rule tests one text.
#[derive(Debug, Clone)]
enum Test {
    Plain {
        operator: RuleOperator,
        /// The pattern folded, for text fields.
        text: String,
        /// The pattern as an account key, for `counterparty_account`.
        account: String,
    },
    Regex(Regex),
}

impl Test {
    fn new(rule: &Rule) -> Result<Self, String> {
        match rule.operator {
            RuleOperator::Regex => compile(&rule.pattern).map(Test::Regex),
            operator => Ok(Test::Plain { operator, text: fold(&rule.pattern), account: account_key(&rule.pattern) }),
        }
    }

    /// Whether the test holds on `field` of the subject. A test never holds on absent text, nor
    /// a plain one on an empty pattern.
    fn holds(&self, field: RuleField, subject: &Folded<'_>) -> bool {
        let raw = match field {
            RuleField::Any => {
                use RuleField::*;
                return [Description, CounterpartyName, Reference, CounterpartyAccount]
                    .into_iter()
                    .any(|f| self.holds(f, subject));
            }
            RuleField::Description => subject.raw.description,
            RuleField::CounterpartyName => subject.raw.counterparty_name,
            RuleField::Reference => subject.raw.reference,
            RuleField::CounterpartyAccount => subject.raw.counterparty_account,
        };
        let Some(raw) = raw else { return false };
        match self {
            Test::Regex(regex) => regex.is_match(raw),
            Test::Plain { operator, text, account } => {
                let (needle, haystack) = match field {
                    RuleField::CounterpartyAccount => (account, subject.account(raw)),
                    _ => (text, subject.folded(field, raw)),
                };
                !needle.is_empty()
                    && match operator {
                        RuleOperator::Equals => haystack == needle,
                        RuleOperator::StartsWith => haystack.starts_with(needle.as_str()),
                        _ => haystack.contains(needle.as_str()),
                    }
            }
        }
    }
}

/// A subject with its texts folded on first use, once however many rules look at them.
struct Folded<'a> {
    raw: &'a RuleSubject<'a>,
    description: OnceCell<String>,
    counterparty_name: OnceCell<String>,
    reference: OnceCell<String>,
    counterparty_account: OnceCell<String>,
}

impl<'a> Folded<'a> {
    fn new(raw: &'a RuleSubject<'a>) -> Self {
        Self {
            raw,
            description: OnceCell::new(),
            counterparty_name: OnceCell::new(),
            reference: OnceCell::new(),
            counterparty_account: OnceCell::new(),
        }
    }

    fn folded(&self, field: RuleField, raw: &str) -> &str {
        let cell = match field {
            RuleField::CounterpartyName => &self.counterparty_name,
            RuleField::Reference => &self.reference,
            _ => &self.description,
        };
        cell.get_or_init(|| fold(raw))
    }

    fn account(&self, raw: &str) -> &str {
        self.counterparty_account.get_or_init(|| account_key(raw))
    }
}

/// One rule ready to evaluate: its pattern folded or compiled.
#[derive(Debug, Clone)]
struct CompiledRule {
    rule: Rule,
    test: Test,
}

/// Whether `rule`, its pattern ready as `test`, matches the subject: the amount within its
/// bounds, then the text.
fn matches(rule: &Rule, test: &Test, subject: &Folded<'_>) -> bool {
    let amount = subject.raw.amount;
    rule.amount_min.is_none_or(|min| amount >= min)
        && rule.amount_max.is_none_or(|max| amount <= max)
        && test.holds(rule.field, subject)
}

/// A tenant's enabled rules in evaluation order, patterns compiled: build once per run, then
/// evaluate as many transactions as needed.
#[derive(Debug, Clone, Default)]
pub struct CompiledRules {
    rules: Vec<CompiledRule>,
}

impl CompiledRules {
    /// Keeps the enabled rules, in evaluation order (position, then id), each compiled once. A
    /// stored regex that no longer compiles (it was checked on write, so only if the limits were
    /// lowered since) is skipped with a warning rather than failing every run.
    pub fn compile(mut rules: Vec<Rule>) -> Self {
        rules.retain(|rule| rule.enabled);
        rules.sort_by(|a, b| (a.position, &a.id).cmp(&(b.position, &b.id)));
        let rules = rules
            .into_iter()
            .filter_map(|rule| match Test::new(&rule) {
                Ok(test) => Some(CompiledRule { rule, test }),
                Err(why) => {
                    tracing::warn!(rule = %rule.id, why, "skipping a reconciliation rule whose pattern no longer compiles");
                    None
                }
            })
            .collect();
        Self { rules }
    }

    /// The rule that applies to `subject`: the first that matches, if any.
    pub fn first_match(&self, subject: &RuleSubject<'_>) -> Option<&Rule> {
        let folded = Folded::new(subject);
        self.rules.iter().find(|c| matches(&c.rule, &c.test, &folded)).map(|c| &c.rule)
    }

    /// How many rules are enabled.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The rule that applies to one subject. Compiles every rule's pattern on each call: to
/// evaluate more than a handful of transactions, compile once with [`CompiledRules::compile`].
pub fn first_match<'r>(rules: &'r [Rule], subject: &RuleSubject<'_>) -> Option<&'r Rule> {
    let mut order: Vec<&Rule> = rules.iter().filter(|rule| rule.enabled).collect();
    order.sort_by(|a, b| (a.position, &a.id).cmp(&(b.position, &b.id)));
    let folded = Folded::new(subject);
    order.into_iter().find(|rule| Test::new(rule).is_ok_and(|test| matches(rule, &test, &folded)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RuleSpec {
        RuleSpec {
            name: "r".into(),
            position: 0,
            enabled: true,
            field: RuleField::Any,
            operator: RuleOperator::Contains,
            pattern: "acme".into(),
            amount_min: None,
            amount_max: None,
            action: RuleAction::Exclude,
            customer_id: None,
            prefer: None,
        }
    }

    fn fields(spec: &RuleSpec) -> Vec<String> {
        spec.check().into_iter().map(|e| e.field).collect()
    }

    fn rule(id: &str, position: i32, field: RuleField, operator: RuleOperator, pattern: &str) -> Rule {
        Rule {
            id: id.into(),
            name: id.into(),
            position,
            enabled: true,
            field,
            operator,
            pattern: pattern.into(),
            amount_min: None,
            amount_max: None,
            action: RuleAction::Exclude,
            customer_id: None,
            prefer: None,
            created_at: DateTime::<Utc>::MIN_UTC,
            updated_at: DateTime::<Utc>::MIN_UTC,
        }
    }

    fn subject(description: &str) -> RuleSubject<'_> {
        RuleSubject { description: Some(description), amount: 100, ..RuleSubject::default() }
    }

    fn hits(rule: Rule, subject: &RuleSubject<'_>) -> bool {
        CompiledRules::compile(vec![rule]).first_match(subject).is_some()
    }

    #[test]
    fn a_valid_rule_passes_and_each_problem_is_named() {
        assert!(spec().check().is_empty());
        let bad = RuleSpec {
            name: " ".into(),
            position: -1,
            pattern: "  ".into(),
            amount_min: Some(10),
            amount_max: Some(5),
            customer_id: Some("cus_0192f3c4d5e6478fa1b2c3d4e5f60718".into()),
            prefer: Some(RulePreference::Invoice),
            ..spec()
        };
        assert_eq!(fields(&bad), ["name", "position", "pattern", "amount_max", "customer_id", "prefer"]);
    }

    #[test]
    fn each_action_needs_its_own_argument() {
        let assign = RuleSpec { action: RuleAction::AssignCustomer, ..spec() };
        assert_eq!(fields(&assign), ["customer_id"]);
        let wrong_kind =
            RuleSpec { customer_id: Some("inv_0192f3c4d5e6478fa1b2c3d4e5f60718".into()), ..assign.clone() };
        assert_eq!(fields(&wrong_kind), ["customer_id"]);
        let ok = RuleSpec { customer_id: Some("cus_0192f3c4d5e6478fa1b2c3d4e5f60718".into()), ..assign };
        assert!(ok.check().is_empty());
        let prefer = RuleSpec { action: RuleAction::Prefer, ..spec() };
        assert_eq!(fields(&prefer), ["prefer"]);
        assert!(RuleSpec { prefer: Some(RulePreference::StripePayout), ..prefer }.check().is_empty());
    }

    #[test]
    fn regexes_are_checked_and_bounded_on_pattern() {
        let regex = |pattern: &str| RuleSpec { operator: RuleOperator::Regex, pattern: pattern.into(), ..spec() };
        assert!(regex(r"^inv-\d+$").check().is_empty());
        let unclosed = regex("(inv").check();
        assert_eq!(unclosed[0].field, "pattern");
        assert_eq!(unclosed[0].message, "is not a valid regular expression: unclosed group");
        assert_eq!(regex(&"a".repeat(501)).check()[0].message, "must be at most 500 characters");
        assert!(regex(r"\w{200}\w{200}").check()[0].message.starts_with("compiles to more than 256 KiB"));
        let long = RuleSpec { pattern: "a".repeat(501), ..spec() };
        assert_eq!(fields(&long), ["pattern"]);
        let no_account = RuleSpec { field: RuleField::CounterpartyAccount, pattern: "- -".into(), ..spec() };
        assert_eq!(fields(&no_account), ["pattern"]);
    }

    #[test]
    fn plain_operators_ignore_case_and_spacing() {
        use RuleOperator::*;
        let text = "  Payment   from ACME\tWidgets  Ltd ";
        assert!(hits(rule("r", 0, RuleField::Description, Contains, "acme  widgets"), &subject(text)));
        assert!(hits(rule("r", 0, RuleField::Description, Equals, "PAYMENT FROM acme widgets ltd"), &subject(text)));
        assert!(!hits(rule("r", 0, RuleField::Description, Equals, "payment from acme"), &subject(text)));
        assert!(hits(rule("r", 0, RuleField::Description, StartsWith, "payment from"), &subject(text)));
        assert!(!hits(rule("r", 0, RuleField::Description, StartsWith, "from"), &subject(text)));
    }

    #[test]
    fn a_regex_is_searched_in_the_text_as_received_without_case() {
        let r = rule("r", 0, RuleField::Description, RuleOperator::Regex, r"^loan\s+\d{4}$");
        assert!(hits(r.clone(), &subject("LOAN  2026")));
        assert!(!hits(r, &subject("a loan 2026")));
    }

    #[test]
    fn each_field_reads_its_own_text_and_any_reads_all() {
        let s = RuleSubject {
            description: Some("Rent"),
            counterparty_name: Some("Acme Ltd"),
            reference: Some("INV-42"),
            counterparty_account: Some("GB33BUKB20201555555555"),
            amount: 100,
        };
        let contains = |field, pattern| hits(rule("r", 0, field, RuleOperator::Contains, pattern), &s);
        assert!(contains(RuleField::CounterpartyName, "acme"));
        assert!(!contains(RuleField::Description, "acme"));
        assert!(contains(RuleField::Reference, "inv-42"));
        assert!(contains(RuleField::Any, "inv-42"));
        assert!(contains(RuleField::Any, "acme"));
        assert!(!contains(RuleField::Any, "globex"));
        // Accounts compare by letters and digits, however they are spaced.
        let account = rule("r", 0, RuleField::CounterpartyAccount, RuleOperator::Equals, "gb33 bukb 2020 1555 5555 55");
        assert!(hits(account, &s));
        assert!(contains(RuleField::Any, "GB33 BUKB"));
        // Absent text never matches.
        assert!(!hits(rule("r", 0, RuleField::Reference, RuleOperator::Contains, "x"), &RuleSubject::default()));
    }

    #[test]
    fn amounts_bound_the_rule_inclusively() {
        let bounded = Rule {
            amount_min: Some(100),
            amount_max: Some(200),
            ..rule("r", 0, RuleField::Any, RuleOperator::Contains, "acme")
        };
        let at = |amount| RuleSubject { description: Some("acme"), amount, ..RuleSubject::default() };
        assert!(hits(bounded.clone(), &at(100)));
        assert!(hits(bounded.clone(), &at(200)));
        assert!(!hits(bounded.clone(), &at(99)));
        assert!(!hits(bounded, &at(201)));
    }

    #[test]
    fn enabled_rules_run_by_position_then_id_and_the_first_match_wins() {
        use RuleOperator::Contains;
        let rules = vec![
            rule("rrule_c", 5, RuleField::Any, Contains, "acme"),
            rule("rrule_b", 1, RuleField::Any, Contains, "acme"),
            rule("rrule_a", 1, RuleField::Any, Contains, "acme"),
            Rule { enabled: false, ..rule("rrule_0", 0, RuleField::Any, Contains, "acme") },
            rule("rrule_z", 0, RuleField::Any, Contains, "globex"),
        ];
        let s = subject("ACME");
        assert_eq!(first_match(&rules, &s).unwrap().id, "rrule_a");
        let compiled = CompiledRules::compile(rules.clone());
        assert_eq!(compiled.len(), 4);
        assert_eq!(compiled.first_match(&s).unwrap().id, "rrule_a");
        assert_eq!(compiled.first_match(&subject("globex")).unwrap().id, "rrule_z");
        assert!(compiled.first_match(&subject("initech")).is_none());
        assert!(first_match(&rules, &subject("initech")).is_none());
    }

    #[test]
    fn a_stored_regex_that_no_longer_compiles_is_skipped() {
        let broken = rule("rrule_a", 0, RuleField::Any, RuleOperator::Regex, "(");
        let fallback = rule("rrule_b", 1, RuleField::Any, RuleOperator::Contains, "acme");
        let compiled = CompiledRules::compile(vec![broken, fallback]);
        assert_eq!(compiled.first_match(&subject("acme")).unwrap().id, "rrule_b");
    }

    #[test]
    fn states_read_back_as_written() {
        for field in RuleField::ALL {
            assert_eq!(RuleField::parse(field.as_str()), Some(*field));
        }
        assert_eq!(serde_json::to_value(RuleOperator::StartsWith).unwrap(), "starts_with");
        assert_eq!(serde_json::to_value(RulePreference::StripePayout).unwrap(), "stripe_payout");
    }
}
