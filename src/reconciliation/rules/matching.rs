//! Evaluating rules, purely: a transaction as rules see it ([`RuleSubject`]), each rule's
//! pattern folded or compiled once ([`CompiledRules`]), and the first enabled rule that matches.

use std::cell::OnceCell;

use regex::Regex;

use super::{Rule, RuleField, RuleOperator};
use crate::transactions::rules::compile;

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
pub(super) fn account_key(text: &str) -> String {
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
    use chrono::{DateTime, Utc};

    use super::{super::RuleAction, *};

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
}
