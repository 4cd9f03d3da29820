//! Invoices as data: their states, lines and fields, and the rules a client's invoice and a
//! client's change must follow. Pure: no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use crate::{
    domain::{checksum, ids::CustomerId, metadata, money::Currency, validation::FieldError},
    invoices::{InvoiceError, check_external_id, check_source, customer::NewCustomer},
};

/// Most lines an invoice holds.
pub const MAX_LINES: usize = 500;

crate::domain::states::states! {
    /// Where an invoice stands. A client creates `draft` or `open` invoices, finalises a draft
    /// (`open`), writes one off (`uncollectible`, and back to `open`) and voids one that nothing
    /// has paid (`POST /invoices/{id}/void`). `partially_paid` and `paid` are set by
    /// reconciliation alone, as matches pay the invoice.
    InvoiceStatus {
        Draft = "draft",
        Open = "open",
        PartiallyPaid = "partially_paid",
        Paid = "paid",
        Void = "void",
        Uncollectible = "uncollectible",
    }
}

impl InvoiceStatus {
    /// Whether a client may move an invoice from `self` to `to` (voiding has its own endpoint).
    pub fn client_may_move_to(self, to: InvoiceStatus) -> Result<(), String> {
        use InvoiceStatus::*;
        match (self, to) {
            (from, to) if from == to => Ok(()),
            (Draft, Open) | (Open | PartiallyPaid, Uncollectible) | (Uncollectible, Open) => Ok(()),
            (_, PartiallyPaid | Paid) => Err(format!("{to} is set by reconciliation, as matches pay the invoice")),
            (_, Void) => Err("void an invoice with POST /invoices/{id}/void".into()),
            (_, Draft) => Err("an invoice cannot go back to draft once finalised".into()),
            (from, to) => Err(format!("an invoice that is {from} cannot become {to}")),
        }
    }
}

/// One line of an invoice. The line's `amount` is `quantity` × `unit_amount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    /// 1 to 500 characters.
    pub description: String,
    /// A whole number, 1 or more (default 1).
    #[serde(default = "one")]
    pub quantity: i64,
    /// Minor units.
    pub unit_amount: i64,
    /// Minor units: `quantity` × `unit_amount` (computed when absent, checked when given).
    pub amount: Option<i64>,
}

fn one() -> i64 {
    1
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "number": "INV-2026-0104",
    "source": "hubspot",
    "external_id": "hs-inv-88172",
    "customer_id": "cus_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "currency": "GBP",
    "amount_total": 125000,
    "amount_tax": 20833,
    "amount_paid": 0,
    "amount_due": 125000,
    "issue_date": "2026-11-20",
    "due_date": "2026-12-20",
    "status": "open",
    "payment_reference": "INV-2026-0104",
    "rf_reference": "RF18539007547034",
    "lines": [{"description": "Widgets", "quantity": 10, "unit_amount": 10417, "amount": 104170}],
    "metadata": {},
    "voided_at": null,
    "created_at": "2026-12-03T09:30:00.000000Z",
    "updated_at": "2026-12-03T09:30:00.000000Z"
}))]
pub struct Invoice {
    /// `inv_…`
    pub id: String,
    /// Unique per tenant.
    pub number: String,
    /// Where the invoice comes from (`api` by default).
    pub source: String,
    /// The invoice's id in its source: unique per tenant and source, the key of batch upserts.
    pub external_id: Option<String>,
    pub customer_id: Option<String>,
    /// ISO 4217.
    pub currency: String,
    /// Minor units, tax included.
    pub amount_total: i64,
    /// Minor units, the part of `amount_total` that is tax.
    pub amount_tax: Option<i64>,
    /// Minor units paid so far: kept by reconciliation, never written by clients.
    pub amount_paid: i64,
    /// `amount_total` − `amount_paid`.
    pub amount_due: i64,
    #[schema(value_type = Option<String>, format = Date)]
    pub issue_date: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<NaiveDate>,
    pub status: InvoiceStatus,
    /// What the customer is asked to quote when paying (free text).
    pub payment_reference: Option<String>,
    /// An ISO 11649 creditor reference (`RF…`), checked by its check digits.
    pub rf_reference: Option<String>,
    #[sqlx(json)]
    pub lines: Vec<InvoiceLine>,
    /// Your own string key-value pairs (at most 50 keys; keys up to 40 characters, values up to 500).
    #[sqlx(json)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub metadata: BTreeMap<String, String>,
    pub voided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`Invoice`] reads.
pub const INVOICE_COLUMNS: &str = "id, number, source, external_id, customer_id, currency, amount_total, amount_tax,
    amount_paid, amount_total - amount_paid as amount_due, issue_date, due_date, status, payment_reference,
    rf_reference, lines, metadata, voided_at, created_at, updated_at";

/// An invoice as a client writes it, before checking.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"number": "INV-2026-0104", "customer_id": "cus_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "currency": "GBP", "amount_total": 125000, "amount_tax": 20833, "issue_date": "2026-11-20",
    "due_date": "2026-12-20", "payment_reference": "INV-2026-0104", "rf_reference": "RF18 5390 0754 7034"}))]
pub struct NewInvoice {
    /// 1 to 100 characters; unique per tenant.
    pub number: String,
    /// Lowercase letters, digits, `_`, `-`, `.` (default `api`).
    pub source: Option<String>,
    /// 1 to 255 characters; unique per tenant and source.
    pub external_id: Option<String>,
    /// One of the tenant's customers (`cus_…`).
    pub customer_id: Option<String>,
    /// ISO 4217 (`GBP`).
    pub currency: String,
    /// Minor units, 0 or more, tax included.
    pub amount_total: i64,
    /// Minor units, 0 to `amount_total`.
    pub amount_tax: Option<i64>,
    #[schema(value_type = Option<String>, format = Date)]
    pub issue_date: Option<NaiveDate>,
    /// On or after `issue_date`.
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<NaiveDate>,
    /// `draft` or `open` (default).
    pub status: Option<InvoiceStatus>,
    /// 1 to 500 characters.
    pub payment_reference: Option<String>,
    /// An ISO 11649 creditor reference; spaces and case are normalised.
    pub rf_reference: Option<String>,
    /// When given, the lines' amounts plus `amount_tax` add up to `amount_total`.
    #[serde(default)]
    pub lines: Vec<InvoiceLine>,
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub metadata: BTreeMap<String, String>,
    /// The customer inline instead of `customer_id`: created, or updated, by its `external_id`
    /// (required here) under the invoice's `source`, in the same call.
    #[schema(value_type = Option<NewCustomer>)]
    pub customer: Option<Box<NewCustomer>>,
}

/// An invoice as stored: checked and normalised. The customer is checked against the database
/// separately ([`check_customer`]).
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceSpec {
    pub number: String,
    pub source: String,
    pub external_id: Option<String>,
    pub customer_id: Option<String>,
    pub currency: String,
    pub amount_total: i64,
    pub amount_tax: Option<i64>,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub status: InvoiceStatus,
    pub payment_reference: Option<String>,
    pub rf_reference: Option<String>,
    pub lines: Vec<InvoiceLine>,
    pub metadata: BTreeMap<String, String>,
}

impl NewInvoice {
    /// The invoice in stored form, or every problem with it, each naming its field.
    pub fn check(self) -> Result<InvoiceSpec, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: &str| errors.push(FieldError::new(field, message));
        let number = self.number.trim().to_owned();
        if !(1..=100).contains(&number.chars().count()) {
            bad("number", "must be 1 to 100 characters");
        }
        let currency = self.currency.to_ascii_uppercase();
        if !Currency::parse(&currency).is_some_and(|c| c.is_iso4217()) {
            bad("currency", "is not an ISO 4217 currency code such as GBP");
        }
        if self.amount_total < 0 {
            bad("amount_total", "must be 0 or more (minor units)");
        }
        if let Some(tax) = self.amount_tax
            && !(0..=self.amount_total.max(0)).contains(&tax)
        {
            bad("amount_tax", "must be 0 to amount_total");
        }
        if let (Some(issued), Some(due)) = (self.issue_date, self.due_date)
            && due < issued
        {
            bad("due_date", "must be on or after issue_date");
        }
        let status = self.status.unwrap_or(InvoiceStatus::Open);
        if !matches!(status, InvoiceStatus::Draft | InvoiceStatus::Open) {
            bad("status", "a new invoice is draft or open");
        }
        let payment_reference = self.payment_reference.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        if payment_reference.as_ref().is_some_and(|r| r.chars().count() > 500) {
            bad("payment_reference", "must be at most 500 characters");
        }
        if let Some(customer) = &self.customer_id
            && CustomerId::parse(customer).is_none()
        {
            bad("customer_id", "is not a customer id (cus_…)");
        }
        let rf_reference = match self.rf_reference.as_deref().map(checksum::creditor_reference) {
            None => None,
            Some(Ok(reference)) => Some(reference),
            Some(Err(message)) => {
                bad("rf_reference", &message);
                None
            }
        };
        let lines = check_lines(self.lines, self.amount_total, self.amount_tax, &mut errors);
        let source = self.source.unwrap_or_else(|| "api".to_owned());
        check_source(&source, &mut errors);
        check_external_id(self.external_id.as_deref(), &mut errors);
        let metadata = metadata::check(self.metadata, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(InvoiceSpec {
            number,
            source,
            external_id: self.external_id,
            customer_id: self.customer_id,
            currency,
            amount_total: self.amount_total,
            amount_tax: self.amount_tax,
            issue_date: self.issue_date,
            due_date: self.due_date,
            status,
            payment_reference,
            rf_reference,
            lines,
            metadata,
        })
    }
}

/// Lines with their amounts, checked: each amount is quantity × unit amount, and together with
/// the tax they add up to the total.
fn check_lines(
    lines: Vec<InvoiceLine>,
    total: i64,
    tax: Option<i64>,
    errors: &mut Vec<FieldError>,
) -> Vec<InvoiceLine> {
    if lines.len() > MAX_LINES {
        errors.push(FieldError::new("lines", format!("holds at most {MAX_LINES} lines")));
        return lines;
    }
    let mut sum: i128 = 0;
    let checked: Vec<InvoiceLine> = lines
        .into_iter()
        .enumerate()
        .map(|(i, mut line)| {
            line.description = line.description.trim().to_owned();
            if !(1..=500).contains(&line.description.chars().count()) {
                errors.push(FieldError::new(format!("lines[{i}].description"), "must be 1 to 500 characters"));
            }
            if line.quantity < 1 {
                errors.push(FieldError::new(format!("lines[{i}].quantity"), "must be a whole number, 1 or more"));
            }
            match line.quantity.checked_mul(line.unit_amount) {
                None => errors.push(FieldError::new(format!("lines[{i}].unit_amount"), "is too large")),
                Some(product) if line.amount.is_some_and(|amount| amount != product) => {
                    errors.push(FieldError::new(
                        format!("lines[{i}].amount"),
                        format!("must be quantity × unit_amount = {product}"),
                    ));
                }
                Some(product) => line.amount = Some(product),
            }
            sum += i128::from(line.amount.unwrap_or(0));
            line
        })
        .collect();
    if !checked.is_empty() && sum + i128::from(tax.unwrap_or(0)) != i128::from(total) {
        errors.push(FieldError::new(
            "lines",
            format!(
                "the lines add up to {sum}{}, but amount_total is {total}",
                tax.map(|t| format!(" and amount_tax to {t}")).unwrap_or_default()
            ),
        ));
    }
    checked
}

impl From<&Invoice> for NewInvoice {
    fn from(invoice: &Invoice) -> Self {
        Self {
            number: invoice.number.clone(),
            source: Some(invoice.source.clone()),
            external_id: invoice.external_id.clone(),
            customer_id: invoice.customer_id.clone(),
            currency: invoice.currency.clone(),
            amount_total: invoice.amount_total,
            amount_tax: invoice.amount_tax,
            issue_date: invoice.issue_date,
            due_date: invoice.due_date,
            status: Some(invoice.status),
            payment_reference: invoice.payment_reference.clone(),
            rf_reference: invoice.rf_reference.clone(),
            lines: invoice.lines.clone(),
            metadata: invoice.metadata.clone(),
            customer: None,
        }
    }
}

/// What writing `spec` over `current` would change (the previous values of the fields that
/// differ; empty for nothing), or why a client may not: a void invoice, a status move only
/// reconciliation makes, a total below what is paid, a currency change after a payment.
pub fn changes_allowed(
    current: &Invoice,
    spec: &InvoiceSpec,
) -> Result<serde_json::Map<String, serde_json::Value>, InvoiceError> {
    if current.status == InvoiceStatus::Void {
        return Err(InvoiceError::Conflict("the invoice is void: a void invoice does not change".into()));
    }
    let mut errors = Vec::new();
    if let Err(message) = current.status.client_may_move_to(spec.status) {
        errors.push(FieldError::new("status", message));
    }
    if spec.amount_total < current.amount_paid {
        errors.push(FieldError::new(
            "amount_total",
            format!("cannot be less than what has been paid ({})", current.amount_paid),
        ));
    }
    if current.amount_paid > 0 && spec.currency != current.currency {
        errors.push(FieldError::new("currency", "cannot change once part of the invoice is paid"));
    }
    if !errors.is_empty() {
        return Err(InvoiceError::Invalid(errors));
    }
    Ok(previous_attributes(current, spec))
}

/// The fields `spec` changes in `current`, with their previous values.
fn previous_attributes(current: &Invoice, spec: &InvoiceSpec) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let mut previous = serde_json::Map::new();
    let mut changed = |field: &str, differs: bool, value: serde_json::Value| {
        if differs {
            previous.insert(field.to_owned(), value);
        }
    };
    changed("number", current.number != spec.number, json!(current.number));
    changed("source", current.source != spec.source, json!(current.source));
    changed("external_id", current.external_id != spec.external_id, json!(current.external_id));
    changed("customer_id", current.customer_id != spec.customer_id, json!(current.customer_id));
    changed("currency", current.currency != spec.currency, json!(current.currency));
    changed("amount_total", current.amount_total != spec.amount_total, json!(current.amount_total));
    changed("amount_tax", current.amount_tax != spec.amount_tax, json!(current.amount_tax));
    changed("issue_date", current.issue_date != spec.issue_date, json!(current.issue_date));
    changed("due_date", current.due_date != spec.due_date, json!(current.due_date));
    changed("status", current.status != spec.status, json!(current.status));
    changed("payment_reference", current.payment_reference != spec.payment_reference, json!(current.payment_reference));
    changed("rf_reference", current.rf_reference != spec.rf_reference, json!(current.rf_reference));
    changed("lines", current.lines != spec.lines, json!(current.lines));
    changed("metadata", current.metadata != spec.metadata, json!(current.metadata));
    previous
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(total: i64) -> NewInvoice {
        NewInvoice { number: "INV-1".into(), currency: "gbp".into(), amount_total: total, ..NewInvoice::default() }
    }

    #[test]
    fn lines_and_tax_must_add_up_to_the_total() {
        let line =
            |quantity, unit, amount| InvoiceLine { description: "Widgets".into(), quantity, unit_amount: unit, amount };
        let spec = NewInvoice {
            lines: vec![line(10, 1000, None), line(1, 500, Some(500))],
            amount_tax: Some(2100),
            ..new(12600)
        }
        .check()
        .unwrap();
        assert_eq!(spec.lines[0].amount, Some(10_000), "computed");
        assert_eq!(spec.currency, "GBP");
        assert_eq!(spec.status, InvoiceStatus::Open);

        let errors = NewInvoice { lines: vec![line(10, 1000, Some(9_999))], ..new(10_000) }.check().unwrap_err();
        assert_eq!(errors[0].field, "lines[0].amount");
        let errors = NewInvoice { lines: vec![line(10, 1000, None)], ..new(10_001) }.check().unwrap_err();
        assert_eq!(errors[0].field, "lines");
        assert!(errors[0].message.contains("10000"), "{errors:?}");
        let errors = NewInvoice { lines: vec![line(0, 1000, None)], ..new(0) }.check().unwrap_err();
        assert_eq!(errors[0].field, "lines[0].quantity");
    }

    #[test]
    fn a_new_invoice_names_every_bad_field() {
        let errors = NewInvoice {
            number: String::new(),
            currency: "GBX".into(),
            amount_total: -1,
            amount_tax: Some(5),
            issue_date: NaiveDate::from_ymd_opt(2026, 12, 2),
            due_date: NaiveDate::from_ymd_opt(2026, 12, 1),
            status: Some(InvoiceStatus::Paid),
            rf_reference: Some("RF19539007547034".into()),
            customer_id: Some("inv_1".into()),
            ..NewInvoice::default()
        }
        .check()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "number",
                "currency",
                "amount_total",
                "amount_tax",
                "due_date",
                "status",
                "customer_id",
                "rf_reference"
            ]
        );
    }

    #[test]
    fn clients_move_invoices_only_along_the_allowed_transitions() {
        use InvoiceStatus::*;
        for (from, to) in
            [(Draft, Open), (Open, Uncollectible), (PartiallyPaid, Uncollectible), (Uncollectible, Open), (Open, Open)]
        {
            assert_eq!(from.client_may_move_to(to), Ok(()), "{from} → {to}");
        }
        for (from, to) in [
            (Open, Paid),
            (Open, PartiallyPaid),
            (Open, Void),
            (Open, Draft),
            (Paid, Open),
            (Void, Open),
            (Draft, Uncollectible),
        ] {
            assert!(from.client_may_move_to(to).is_err(), "{from} → {to}");
        }
    }
}
