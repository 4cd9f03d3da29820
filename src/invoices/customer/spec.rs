//! Customers as data: their fields and bank accounts, and the rules a client's customer must
//! follow. Pure: no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use crate::{
    domain::{checksum, metadata, validation::FieldError},
    invoices::{check_external_id, check_source},
};

/// Most aliases and bank accounts a customer holds.
pub const MAX_ALIASES: usize = 20;
pub const MAX_BANK_ACCOUNTS: usize = 10;

/// A customer: who invoices are addressed to.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "cus_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "name": "Acme Widgets Ltd",
    "email": "accounts@acme.example",
    "source": "hubspot",
    "external_id": "hs-4411",
    "aliases": ["ACME WIDGETS LTD", "ACME W"],
    "bank_accounts": [{"iban": "GB82WEST12345698765432", "account_number": null, "sort_code": null, "routing_number": null}],
    "metadata": {"segment": "wholesale"},
    "created_at": "2026-12-03T09:30:00.000000Z",
    "updated_at": "2026-12-03T09:30:00.000000Z"
}))]
pub struct Customer {
    /// `cus_…`
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// Where the customer comes from (`api` by default; `hubspot`, `xero`, …).
    pub source: String,
    /// The customer's id in its source: unique per tenant and source, the key of batch upserts.
    pub external_id: Option<String>,
    /// The names the customer's payments show on bank statements; matched against a payment's
    /// counterparty name.
    pub aliases: Vec<String>,
    /// The accounts the customer pays from; matched against a payment's counterparty account.
    #[sqlx(json)]
    pub bank_accounts: Vec<CustomerBankAccount>,
    /// Your own string key-value pairs (at most 50 keys; keys up to 40 characters, values up to 500).
    #[sqlx(json)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`Customer`] reads.
pub const CUSTOMER_COLUMNS: &str =
    "id, name, email, source, external_id, aliases, bank_accounts, metadata, created_at, updated_at";

/// An account a customer pays from: an IBAN, or a local account number with its UK sort code or
/// US routing number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerBankAccount {
    /// Checked by its check digits; stored without spaces, uppercase.
    pub iban: Option<String>,
    /// 4 to 17 digits, with `sort_code` or `routing_number`.
    pub account_number: Option<String>,
    /// UK sort code: 6 digits (`12-34-56` is accepted and stored as `123456`).
    pub sort_code: Option<String>,
    /// US ABA routing number: 9 digits, checked by its check digit.
    pub routing_number: Option<String>,
}

impl CustomerBankAccount {
    /// The account in stored form, or the problems with it (fields named under `at`).
    fn normalized(&self, at: &str, errors: &mut Vec<FieldError>) -> CustomerBankAccount {
        let digits = |text: &str| text.chars().filter(|c| !matches!(c, ' ' | '-')).collect::<String>();
        let mut account =
            CustomerBankAccount { iban: None, account_number: None, sort_code: None, routing_number: None };
        match (&self.iban, &self.account_number) {
            (Some(iban), None) => match checksum::iban(iban) {
                Ok(iban) => account.iban = Some(iban),
                Err(message) => errors.push(FieldError::new(format!("{at}.iban"), message)),
            },
            (None, Some(number)) => {
                let number = digits(number);
                if !(4..=17).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
                    errors.push(FieldError::new(format!("{at}.account_number"), "must be 4 to 17 digits"));
                }
                account.account_number = Some(number);
            }
            _ => {
                errors.push(FieldError::new(at, "give either iban, or account_number with sort_code or routing_number"))
            }
        }
        if self.iban.is_some() && (self.sort_code.is_some() || self.routing_number.is_some()) {
            errors.push(FieldError::new(at, "an IBAN takes no sort_code or routing_number"));
        }
        if self.account_number.is_some() {
            match (&self.sort_code, &self.routing_number) {
                (Some(code), None) => {
                    let code = digits(code);
                    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                        errors.push(FieldError::new(format!("{at}.sort_code"), "must be 6 digits"));
                    }
                    account.sort_code = Some(code);
                }
                (None, Some(routing)) => {
                    let routing = digits(routing);
                    if !aba_routing_valid(&routing) {
                        errors.push(FieldError::new(
                            format!("{at}.routing_number"),
                            "is not an ABA routing number: 9 digits whose check digit matches",
                        ));
                    }
                    account.routing_number = Some(routing);
                }
                _ => errors
                    .push(FieldError::new(at, "an account_number needs a sort_code or a routing_number, not both")),
            }
        }
        account
    }
}

/// Whether `routing` is 9 digits with a valid ABA check digit (weights 3, 7, 1).
fn aba_routing_valid(routing: &str) -> bool {
    let digits: Vec<u32> = routing.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 9 || routing.len() != 9 {
        return false;
    }
    let sum: u32 = digits.iter().zip([3, 7, 1].iter().cycle()).map(|(d, w)| d * w).sum();
    sum.is_multiple_of(10)
}

/// A customer as a client writes it, before checking.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Widgets Ltd", "email": "accounts@acme.example", "source": "hubspot",
    "external_id": "hs-4411", "aliases": ["ACME WIDGETS LTD"], "bank_accounts": [{"iban": "GB82 WEST 1234 5698 7654 32"}],
    "metadata": {"segment": "wholesale"}}))]
pub struct NewCustomer {
    /// 1 to 500 characters.
    pub name: String,
    pub email: Option<String>,
    /// Lowercase letters, digits, `_`, `-`, `.` (default `api`).
    pub source: Option<String>,
    /// 1 to 255 characters; unique per tenant and source.
    pub external_id: Option<String>,
    /// At most 20, each 1 to 200 characters.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// At most 10.
    #[serde(default)]
    pub bank_accounts: Vec<CustomerBankAccount>,
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub metadata: BTreeMap<String, String>,
}

/// A customer as stored: checked and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSpec {
    pub name: String,
    pub email: Option<String>,
    pub source: String,
    pub external_id: Option<String>,
    pub aliases: Vec<String>,
    pub bank_accounts: Vec<CustomerBankAccount>,
    pub metadata: BTreeMap<String, String>,
}

impl NewCustomer {
    /// The customer in stored form, or every problem with it, each naming its field.
    pub fn check(self) -> Result<CustomerSpec, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = self.name.trim().to_owned();
        if !(1..=500).contains(&name.chars().count()) {
            errors.push(FieldError::new("name", "must be 1 to 500 characters"));
        }
        let email = self.email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
        if let Some(email) = &email
            && !email_plausible(email)
        {
            errors.push(FieldError::new("email", "is not an email address"));
        }
        let source = self.source.unwrap_or_else(|| "api".to_owned());
        check_source(&source, &mut errors);
        check_external_id(self.external_id.as_deref(), &mut errors);
        let mut aliases: Vec<String> = Vec::new();
        for (i, alias) in self.aliases.iter().enumerate() {
            let alias = alias.trim();
            if !(1..=200).contains(&alias.chars().count()) {
                errors.push(FieldError::new(format!("aliases[{i}]"), "must be 1 to 200 characters"));
            } else if !aliases.iter().any(|a| a.eq_ignore_ascii_case(alias)) {
                aliases.push(alias.to_owned());
            }
        }
        if aliases.len() > MAX_ALIASES {
            errors.push(FieldError::new("aliases", format!("holds at most {MAX_ALIASES} names")));
        }
        if self.bank_accounts.len() > MAX_BANK_ACCOUNTS {
            errors.push(FieldError::new("bank_accounts", format!("holds at most {MAX_BANK_ACCOUNTS} accounts")));
        }
        let bank_accounts: Vec<CustomerBankAccount> = self
            .bank_accounts
            .iter()
            .enumerate()
            .map(|(i, account)| account.normalized(&format!("bank_accounts[{i}]"), &mut errors))
            .collect();
        let metadata = metadata::check(self.metadata, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CustomerSpec { name, email, source, external_id: self.external_id, aliases, bank_accounts, metadata })
    }
}

/// Something, an `@`, something with a dot: the shape of an address, not proof it receives mail.
fn email_plausible(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    (3..=320).contains(&email.len())
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

impl From<&Customer> for CustomerSpec {
    fn from(customer: &Customer) -> Self {
        Self {
            name: customer.name.clone(),
            email: customer.email.clone(),
            source: customer.source.clone(),
            external_id: customer.external_id.clone(),
            aliases: customer.aliases.clone(),
            bank_accounts: customer.bank_accounts.clone(),
            metadata: customer.metadata.clone(),
        }
    }
}

impl From<CustomerSpec> for NewCustomer {
    fn from(spec: CustomerSpec) -> Self {
        Self {
            name: spec.name,
            email: spec.email,
            source: Some(spec.source),
            external_id: spec.external_id,
            aliases: spec.aliases,
            bank_accounts: spec.bank_accounts,
            metadata: spec.metadata,
        }
    }
}

/// The fields `spec` changes in `current`, with their previous values.
pub(super) fn previous_attributes(
    current: &Customer,
    spec: &CustomerSpec,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let mut previous = serde_json::Map::new();
    let mut changed = |field: &str, differs: bool, value: serde_json::Value| {
        if differs {
            previous.insert(field.to_owned(), value);
        }
    };
    changed("name", current.name != spec.name, json!(current.name));
    changed("email", current.email != spec.email, json!(current.email));
    changed("source", current.source != spec.source, json!(current.source));
    changed("external_id", current.external_id != spec.external_id, json!(current.external_id));
    changed("aliases", current.aliases != spec.aliases, json!(current.aliases));
    changed("bank_accounts", current.bank_accounts != spec.bank_accounts, json!(current.bank_accounts));
    changed("metadata", current.metadata != spec.metadata, json!(current.metadata));
    previous
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(
        iban: Option<&str>,
        number: Option<&str>,
        sort: Option<&str>,
        routing: Option<&str>,
    ) -> CustomerBankAccount {
        CustomerBankAccount {
            iban: iban.map(str::to_owned),
            account_number: number.map(str::to_owned),
            sort_code: sort.map(str::to_owned),
            routing_number: routing.map(str::to_owned),
        }
    }

    #[test]
    fn bank_accounts_are_an_iban_or_a_local_number_with_its_bank_code() {
        let mut errors = Vec::new();
        let iban = account(Some("gb82 west 1234 5698 7654 32"), None, None, None).normalized("a", &mut errors);
        assert_eq!(iban.iban.as_deref(), Some("GB82WEST12345698765432"));
        let uk = account(None, Some("31926819"), Some("60-16-13"), None).normalized("b", &mut errors);
        assert_eq!(uk.sort_code.as_deref(), Some("601613"));
        let us = account(None, Some("000123456789"), None, Some("021000021")).normalized("c", &mut errors);
        assert_eq!(us.routing_number.as_deref(), Some("021000021"));
        assert!(errors.is_empty(), "{errors:?}");

        for (bad, field) in [
            (account(Some("GB82WEST12345698765433"), None, None, None), "d.iban"),
            (account(None, Some("31926819"), None, Some("021000022")), "d.routing_number"),
            (account(None, Some("31926819"), Some("6016"), None), "d.sort_code"),
            (account(None, Some("12"), Some("601613"), None), "d.account_number"),
            (account(None, Some("31926819"), None, None), "d"),
            (account(None, None, None, None), "d"),
        ] {
            let mut errors = Vec::new();
            bad.normalized("d", &mut errors);
            assert!(errors.iter().any(|e| e.field == field), "{bad:?}: {errors:?}");
        }
    }

    #[test]
    fn a_new_customer_is_checked_field_by_field_and_normalised() {
        let spec = NewCustomer {
            name: "  Acme Widgets Ltd ".into(),
            email: Some("accounts@acme.example".into()),
            aliases: vec!["ACME WIDGETS LTD".into(), "acme widgets ltd".into(), "Acme W".into()],
            ..NewCustomer::default()
        }
        .check()
        .unwrap();
        assert_eq!(spec.name, "Acme Widgets Ltd");
        assert_eq!(spec.source, "api");
        assert_eq!(spec.aliases, vec!["ACME WIDGETS LTD", "Acme W"], "case-insensitive duplicates dropped");

        let errors = NewCustomer {
            name: String::new(),
            email: Some("not an email".into()),
            source: Some("Hub Spot".into()),
            aliases: vec![String::new()],
            ..NewCustomer::default()
        }
        .check()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["name", "email", "source", "aliases[0]"]);
    }
}
