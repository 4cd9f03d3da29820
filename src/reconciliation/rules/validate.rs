//! Checking what a rule says before it is stored: every field's problem at once
//! ([`RuleSpec::check`]), and on write whether its customer is one of the tenant's.

use sqlx::PgConnection;

use super::{
    super::ReconciliationError, MAX_PATTERN_CHARS, MAX_POSITION, RuleAction, RuleField, RuleOperator, RuleSpec,
    matching::account_key,
};
use crate::{
    domain::{
        ids::{CustomerId, TenantId},
        validation::FieldError,
    },
    transactions::rules::compile,
};

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
pub(super) async fn check(
    conn: &mut PgConnection,
    tenant: &TenantId,
    spec: &RuleSpec,
) -> Result<(), ReconciliationError> {
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

#[cfg(test)]
mod tests {
    use super::{super::RulePreference, *};

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
}
