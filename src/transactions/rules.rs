//! Categorisation rules: a tenant's ordered list of conditions on a transaction, each with the
//! category it sets. The first enabled rule (by priority, then id) whose every condition holds
//! wins. Rules set `category_source = 'rule'`; a user's own category (`'user'`) is never touched.
//!
//! Rules are evaluated here, in Rust, not in SQL: they are loaded and their regexes compiled once
//! per request or job ([`RuleSet::load`]), then matched against each row in memory.

use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use crate::domain::ids::TenantId;

/// Most rules one tenant may have.
pub const MAX_RULES: i64 = 500;
/// Longest regex pattern accepted, in characters.
pub const MAX_REGEX_CHARS: usize = 500;
/// Most memory one compiled regex (and its lazy DFA) may take: bounds matching cost per row.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest `…_contains` text, in characters.
pub const MAX_CONTAINS_CHARS: usize = 200;
/// Priorities run from 0 (first) to this.
pub const MAX_PRIORITY: i32 = 1_000_000;

/// A categorisation rule as the API shows it. Conditions left null do not apply; every condition
/// given must hold.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "cr_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "name": "Card fees",
    "priority": 10,
    "enabled": true,
    "description_contains": null,
    "counterparty_contains": "stripe",
    "description_regex": "^fee\\b",
    "counterparty_regex": null,
    "amount_min": null,
    "amount_max": -1,
    "direction": "debit",
    "account_id": null,
    "category": "bank_fees",
    "created_at": "2026-11-21T09:30:00Z",
    "updated_at": "2026-11-21T09:30:00Z"
}))]
pub struct CategorizationRule {
    pub id: String,
    /// For people: what the rule is for.
    pub name: String,
    /// Lower runs first (0 to 1,000,000); rules of equal priority run in creation order.
    pub priority: i32,
    /// Disabled rules are kept but never applied.
    pub enabled: bool,
    /// Case-insensitive substring of the description.
    pub description_contains: Option<String>,
    /// Case-insensitive substring of the counterparty's name.
    pub counterparty_contains: Option<String>,
    /// Case-insensitive regular expression (Rust `regex` syntax) searched in the description.
    pub description_regex: Option<String>,
    /// Case-insensitive regular expression searched in the counterparty's name.
    pub counterparty_regex: Option<String>,
    /// Smallest amount, in signed minor units, inclusive (`-5000` is -50.00).
    pub amount_min: Option<i64>,
    /// Largest amount, in signed minor units, inclusive.
    pub amount_max: Option<i64>,
    /// `credit` (amount ≥ 0) or `debit` (amount < 0).
    pub direction: Option<String>,
    /// Only this account's transactions (`ba_…`).
    pub account_id: Option<String>,
    /// The category the rule sets (1 to 100 characters).
    pub category: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`CategorizationRule`] reads.
pub const RULE_COLUMNS: &str = "id, name, priority, enabled, description_contains, counterparty_contains,
    description_regex, counterparty_regex, amount_min, amount_max, direction, account_id, category,
    created_at, updated_at";

/// What a rule says, as stored: validated by [`RuleSpec::validate`] before every write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSpec {
    pub name: String,
    pub priority: i32,
    pub enabled: bool,
    pub description_contains: Option<String>,
    pub counterparty_contains: Option<String>,
    pub description_regex: Option<String>,
    pub counterparty_regex: Option<String>,
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    pub direction: Option<String>,
    pub account_id: Option<String>,
    pub category: String,
}

impl From<CategorizationRule> for RuleSpec {
    fn from(rule: CategorizationRule) -> Self {
        Self {
            name: rule.name,
            priority: rule.priority,
            enabled: rule.enabled,
            description_contains: rule.description_contains,
            counterparty_contains: rule.counterparty_contains,
            description_regex: rule.description_regex,
            counterparty_regex: rule.counterparty_regex,
            amount_min: rule.amount_min,
            amount_max: rule.amount_max,
            direction: rule.direction,
            account_id: rule.account_id,
            category: rule.category,
        }
    }
}

/// One invalid field of a rule, named as in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

impl RuleSpec {
    /// Every problem with the rule, each naming its field; empty when the rule may be stored.
    /// (Whether `account_id` names one of the tenant's accounts is for the caller to check.)
    pub fn validate(&self) -> Vec<RuleError> {
        let mut errors = Vec::new();
        let mut error = |field, message: String| errors.push(RuleError { field, message });
        let chars = |s: &str| s.chars().count();
        if self.name.trim().is_empty() || chars(&self.name) > 200 {
            error("name", "must be 1 to 200 characters, not blank".into());
        }
        if !(0..=MAX_PRIORITY).contains(&self.priority) {
            error("priority", format!("must be between 0 and {MAX_PRIORITY}"));
        }
        if self.category.trim().is_empty() || chars(&self.category) > 100 {
            error("category", "must be 1 to 100 characters, not blank".into());
        }
        for (field, value) in [
            ("description_contains", &self.description_contains),
            ("counterparty_contains", &self.counterparty_contains),
        ] {
            if value.as_deref().is_some_and(|v| v.is_empty() || chars(v) > MAX_CONTAINS_CHARS) {
                error(field, format!("must be 1 to {MAX_CONTAINS_CHARS} characters (or null)"));
            }
        }
        for (field, value) in
            [("description_regex", &self.description_regex), ("counterparty_regex", &self.counterparty_regex)]
        {
            if let Some(pattern) = value
                && let Err(why) = compile(pattern)
            {
                error(field, why);
            }
        }
        if let (Some(min), Some(max)) = (self.amount_min, self.amount_max)
            && min > max
        {
            error("amount_max", "must be greater than or equal to amount_min".into());
        }
        if let Some(direction) = &self.direction
            && Direction::parse(direction).is_none()
        {
            error("direction", "must be credit or debit (or null)".into());
        }
        if let Some(account) = &self.account_id
            && crate::domain::ids::BankAccountId::parse(account).is_none()
        {
            error("account_id", "is not an account id (ba_…)".into());
        }
        let conditions = [
            self.description_contains.is_some(),
            self.counterparty_contains.is_some(),
            self.description_regex.is_some(),
            self.counterparty_regex.is_some(),
            self.amount_min.is_some(),
            self.amount_max.is_some(),
            self.direction.is_some(),
            self.account_id.is_some(),
        ];
        if !conditions.contains(&true) {
            error(
                "conditions",
                "a rule needs at least one condition: description_contains, counterparty_contains, description_regex, counterparty_regex, amount_min, amount_max, direction or account_id".into(),
            );
        }
        errors
    }
}

/// Compiles a rule's pattern: case-insensitive, at most [`MAX_REGEX_CHARS`] characters and
/// [`REGEX_SIZE_LIMIT`] bytes compiled. The error says why, for the person who wrote it.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.is_empty() {
        return Err("must not be empty (or null)".into());
    }
    if pattern.chars().count() > MAX_REGEX_CHARS {
        return Err(format!("must be at most {MAX_REGEX_CHARS} characters"));
    }
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(limit) => format!(
                "compiles to more than {} KiB (the limit is {limit} bytes): use fewer or smaller repetitions and classes",
                limit / 1024
            ),
            regex::Error::Syntax(text) => {
                // The crate's message spans lines (the pattern, a caret, then `error: …`).
                let why = text.lines().find_map(|l| l.strip_prefix("error: ")).unwrap_or(text.trim());
                format!("is not a valid regular expression: {why}")
            }
            other => format!("is not a valid regular expression: {other}"),
        })
}

/// Money in or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Amount ≥ 0.
    Credit,
    /// Amount < 0.
    Debit,
}

impl Direction {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "credit" => Some(Self::Credit),
            "debit" => Some(Self::Debit),
            _ => None,
        }
    }

    fn holds(self, amount: i64) -> bool {
        match self {
            Self::Credit => amount >= 0,
            Self::Debit => amount < 0,
        }
    }
}

/// A transaction as rules see it. Text is lowercased once per row, not once per rule.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub account_id: &'a str,
    pub amount: i64,
    pub description: Option<&'a str>,
    pub counterparty: Option<&'a str>,
    description_lower: Option<String>,
    counterparty_lower: Option<String>,
}

impl<'a> Candidate<'a> {
    pub fn new(account_id: &'a str, amount: i64, description: Option<&'a str>, counterparty: Option<&'a str>) -> Self {
        Self {
            account_id,
            amount,
            description,
            counterparty,
            description_lower: description.map(str::to_lowercase),
            counterparty_lower: counterparty.map(str::to_lowercase),
        }
    }
}

/// A rule ready to match: needles lowercased, regexes compiled.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub id: String,
    pub category: String,
    description_contains: Option<String>,
    counterparty_contains: Option<String>,
    description_regex: Option<Regex>,
    counterparty_regex: Option<Regex>,
    amount_min: Option<i64>,
    amount_max: Option<i64>,
    direction: Option<Direction>,
    account_id: Option<String>,
}

impl CompiledRule {
    /// `None` when a stored pattern no longer compiles (it was validated on write, so only if the
    /// limits were lowered since): such a rule is skipped rather than failing every sync.
    pub fn new(id: String, spec: &RuleSpec) -> Option<Self> {
        let regex = |p: &Option<String>| p.as_deref().map(compile).transpose();
        let direction = match spec.direction.as_deref() {
            Some(d) => Some(Direction::parse(d)?),
            None => None,
        };
        Some(Self {
            id,
            category: spec.category.clone(),
            description_contains: spec.description_contains.as_deref().map(str::to_lowercase),
            counterparty_contains: spec.counterparty_contains.as_deref().map(str::to_lowercase),
            description_regex: regex(&spec.description_regex).ok()?,
            counterparty_regex: regex(&spec.counterparty_regex).ok()?,
            amount_min: spec.amount_min,
            amount_max: spec.amount_max,
            direction,
            account_id: spec.account_id.clone(),
        })
    }

    /// Whether every condition holds. A text condition never holds on absent text.
    pub fn matches(&self, t: &Candidate<'_>) -> bool {
        fn contains(needle: &Option<String>, haystack: &Option<String>) -> bool {
            needle.as_deref().is_none_or(|n| haystack.as_deref().is_some_and(|h| h.contains(n)))
        }
        fn found(regex: &Option<Regex>, haystack: Option<&str>) -> bool {
            regex.as_ref().is_none_or(|r| haystack.is_some_and(|h| r.is_match(h)))
        }
        self.account_id.as_deref().is_none_or(|a| a == t.account_id)
            && self.amount_min.is_none_or(|min| t.amount >= min)
            && self.amount_max.is_none_or(|max| t.amount <= max)
            && self.direction.is_none_or(|d| d.holds(t.amount))
            && contains(&self.description_contains, &t.description_lower)
            && contains(&self.counterparty_contains, &t.counterparty_lower)
            && found(&self.description_regex, t.description)
            && found(&self.counterparty_regex, t.counterparty)
    }
}

/// A tenant's enabled rules in evaluation order, compiled: load once per request or job.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
}

/// A newly written transaction, as [`RuleSet::categorize`] reads it.
#[derive(Debug, FromRow)]
struct NewRow {
    id: String,
    account_id: String,
    amount: i64,
    description: Option<String>,
    counterparty_name: Option<String>,
}

/// A category a rule set on a transaction.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Categorized {
    pub transaction_id: String,
    pub category: String,
    pub rule_id: String,
}

impl RuleSet {
    pub fn new(rules: Vec<CompiledRule>) -> Self {
        Self { rules }
    }

    /// The tenant's enabled rules, by priority then id. Call inside a tenant-bound transaction.
    pub async fn load(conn: &mut PgConnection, tenant: &TenantId) -> Result<Self, sqlx::Error> {
        let rows: Vec<CategorizationRule> = sqlx::query_as(&format!(
            "select {RULE_COLUMNS} from categorization_rules where tenant_id = $1 and enabled order by priority, id"
        ))
        .bind(tenant.as_str())
        .fetch_all(conn)
        .await?;
        let rules = rows
            .into_iter()
            .filter_map(|rule| {
                let id = rule.id.clone();
                let compiled = CompiledRule::new(id.clone(), &RuleSpec::from(rule));
                if compiled.is_none() {
                    tracing::warn!(rule = %id, "skipping a categorisation rule whose pattern no longer compiles");
                }
                compiled
            })
            .collect();
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule that categorises `t`: the first that matches.
    pub fn first_match(&self, t: &Candidate<'_>) -> Option<&CompiledRule> {
        self.rules.iter().find(|rule| rule.matches(t))
    }

    /// Categorises the given transactions with these rules; see [`categorize`]. For callers
    /// that categorise several batches with the same rules (the bank sync).
    pub async fn categorize(
        &self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<Categorized>, sqlx::Error> {
        if self.is_empty() || ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<NewRow> = sqlx::query_as(
            "select id, account_id, amount, description, counterparty_name from transactions
             where tenant_id = $1 and id = any($2) and category_source is null",
        )
        .bind(tenant.as_str())
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
        let (mut ids, mut categories, mut rules) = (Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let candidate = Candidate::new(
                &row.account_id,
                row.amount,
                row.description.as_deref(),
                row.counterparty_name.as_deref(),
            );
            if let Some(rule) = self.first_match(&candidate) {
                ids.push(row.id.as_str());
                categories.push(rule.category.as_str());
                rules.push(rule.id.as_str());
            }
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // The guard repeats the read's: a row a user categorised meanwhile keeps the user's category.
        sqlx::query_as(
            "update transactions t set category = u.u_category, category_source = 'rule', category_rule_id = u.u_rule
             from unnest($2::text[], $3::text[], $4::text[]) as u(u_id, u_category, u_rule)
             where t.tenant_id = $1 and t.id = u.u_id and t.category_source is null
             returning t.id as transaction_id, u.u_category as category, u.u_rule as rule_id",
        )
        .bind(tenant.as_str())
        .bind(&ids)
        .bind(&categories)
        .bind(&rules)
        .fetch_all(conn)
        .await
    }
}

/// Applies the tenant's categorisation rules to transactions just written (by the bank sync or
/// the import), inside the caller's tenant-bound transaction, so the rows and their
/// `transaction.created` events commit together and the events can carry the category.
///
/// Contract:
/// - `ids` are transaction ids of `tenant`; ids of other tenants or unknown ids are ignored.
/// - Only rows with no category yet (`category_source is null`) are considered: a category a user
///   (or the importing client) already set is never changed.
/// - Each such row gets the category of the first enabled rule that matches it, with
///   `category_source = 'rule'` and `category_rule_id`; rows no rule matches are left alone.
/// - Costs one query to load the rules (none else when the tenant has no enabled rules), one to
///   read the rows and one to update the matched ones, whatever the number of ids: call it once
///   per batch, never per row. To categorise several batches with the same rules, load a
///   [`RuleSet`] once and call [`RuleSet::categorize`] per batch.
/// - Records no event: the caller's `transaction.created` payloads should carry the returned
///   categories (with `category_source: "rule"`).
/// - A writer that has the rows in memory before inserting them can do better: evaluate
///   [`RuleSet::first_match`] per row and insert the category with the row, as the bank sync does;
///   each row is then written once instead of twice (an update re-indexes the row, its trigram
///   index included, which halved the sync's throughput with 50 rules).
///
/// Returns what it set, one entry per categorised row.
pub async fn categorize(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[String],
) -> Result<Vec<Categorized>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    RuleSet::load(&mut *conn, tenant).await?.categorize(conn, tenant, ids).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RuleSpec {
        RuleSpec { name: "r".into(), priority: 0, enabled: true, category: "c".into(), ..RuleSpec::default() }
    }

    fn fields(spec: &RuleSpec) -> Vec<&'static str> {
        spec.validate().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_rule_needs_a_condition_and_sane_fields() {
        assert_eq!(fields(&spec()), ["conditions"]);
        let ok = RuleSpec { direction: Some("debit".into()), ..spec() };
        assert!(ok.validate().is_empty());
        let bad = RuleSpec {
            name: " ".into(),
            priority: -1,
            category: "x".repeat(101),
            direction: Some("out".into()),
            amount_min: Some(10),
            amount_max: Some(-10),
            account_id: Some("txn_0192f3c4d5e6478fa1b2c3d4e5f60718".into()),
            description_contains: Some(String::new()),
            ..spec()
        };
        assert_eq!(
            fields(&bad),
            ["name", "priority", "category", "description_contains", "amount_max", "direction", "account_id"]
        );
    }

    #[test]
    fn regexes_are_checked_and_bounded() {
        assert!(compile("^fee").is_ok());
        let unclosed = compile("(fee").unwrap_err();
        assert_eq!(unclosed, "is not a valid regular expression: unclosed group");
        assert_eq!(compile(&"a".repeat(501)).unwrap_err(), "must be at most 500 characters");
        assert!(compile(&"a".repeat(500)).is_ok());
        let huge = compile(r"\w{200}\w{200}").unwrap_err();
        assert!(huge.starts_with("compiles to more than 256 KiB"), "{huge}");
        let bad = RuleSpec { counterparty_regex: Some("[z-a]".into()), ..spec() };
        assert_eq!(fields(&bad), ["counterparty_regex"]);
    }

    fn rule(id: &str, spec: RuleSpec) -> CompiledRule {
        CompiledRule::new(id.into(), &spec).unwrap()
    }

    #[test]
    fn every_condition_must_hold_and_text_is_case_insensitive() {
        let r = rule(
            "cr_1",
            RuleSpec {
                description_contains: Some("INVOICE".into()),
                counterparty_regex: Some("^acme\\b".into()),
                amount_min: Some(100),
                amount_max: Some(1000),
                direction: Some("credit".into()),
                account_id: Some("ba_1".into()),
                ..spec()
            },
        );
        let t = |account, amount, description, counterparty| Candidate::new(account, amount, description, counterparty);
        assert!(r.matches(&t("ba_1", 100, Some("Invoice 42"), Some("ACME Ltd"))));
        assert!(r.matches(&t("ba_1", 1000, Some("paid invoice"), Some("Acme"))));
        assert!(!r.matches(&t("ba_2", 100, Some("Invoice 42"), Some("ACME Ltd"))), "account");
        assert!(!r.matches(&t("ba_1", 99, Some("Invoice 42"), Some("ACME Ltd"))), "amount_min");
        assert!(!r.matches(&t("ba_1", 1001, Some("Invoice 42"), Some("ACME Ltd"))), "amount_max");
        assert!(!r.matches(&t("ba_1", 100, None, Some("ACME Ltd"))), "no description");
        assert!(!r.matches(&t("ba_1", 100, Some("Invoice"), Some("Not Acme"))), "regex anchored");
    }

    #[test]
    fn direction_splits_at_zero() {
        let debit = rule("cr_1", RuleSpec { direction: Some("debit".into()), ..spec() });
        assert!(debit.matches(&Candidate::new("ba", -1, None, None)));
        assert!(!debit.matches(&Candidate::new("ba", 0, None, None)));
        let credit = rule("cr_2", RuleSpec { direction: Some("credit".into()), ..spec() });
        assert!(credit.matches(&Candidate::new("ba", 0, None, None)));
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let set = RuleSet::new(vec![
            rule("cr_1", RuleSpec { amount_min: Some(1_000), category: "big".into(), ..spec() }),
            rule("cr_2", RuleSpec { direction: Some("credit".into()), category: "income".into(), ..spec() }),
        ]);
        assert_eq!(set.first_match(&Candidate::new("ba", 5_000, None, None)).unwrap().category, "big");
        assert_eq!(set.first_match(&Candidate::new("ba", 5, None, None)).unwrap().category, "income");
        assert!(set.first_match(&Candidate::new("ba", -5, None, None)).is_none());
    }
}
