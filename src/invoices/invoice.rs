//! Invoices: an amount a customer owes, under a number and a payment reference, with the states
//! an invoice moves through.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::{
    InvoiceError,
    changes::{self, ChangeKind, Resource},
    check_external_id, check_source,
    customer::NewCustomer,
    unique_violation,
};
use crate::{
    domain::{
        checksum,
        ids::{CustomerId, InvoiceId, TenantId},
        metadata,
        money::Currency,
        validation::FieldError,
    },
    events,
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

/// Refuses a customer that is not one of the tenant's.
pub async fn check_customer(
    conn: &mut PgConnection,
    tenant: &TenantId,
    spec: &InvoiceSpec,
) -> Result<(), InvoiceError> {
    let Some(customer) = &spec.customer_id else { return Ok(()) };
    let known: Option<i32> = sqlx::query_scalar("select 1 from customers where tenant_id = $1 and id = $2")
        .bind(tenant.as_str())
        .bind(customer)
        .fetch_optional(conn)
        .await?;
    match known {
        Some(_) => Ok(()),
        None => Err(InvoiceError::invalid("customer_id", "is not one of this tenant's customers")),
    }
}

/// The 409 for a unique constraint an invoice broke.
fn taken(constraint: &str, spec: &InvoiceSpec) -> InvoiceError {
    if constraint.contains("number") {
        InvoiceError::Conflict(format!("an invoice numbered {:?} already exists", spec.number))
    } else {
        InvoiceError::Conflict(format!(
            "an invoice from source {:?} already has external_id {:?}; update that one, or upsert with the batch endpoint",
            spec.source,
            spec.external_id.as_deref().unwrap_or_default()
        ))
    }
}

/// Creates an invoice (its customer checked), with its change and `invoice.created`.
pub async fn create(conn: &mut PgConnection, tenant: &TenantId, spec: &InvoiceSpec) -> Result<Invoice, InvoiceError> {
    check_customer(conn, tenant, spec).await?;
    let inserted = sqlx::query_as(&format!(
        "insert into invoices (tenant_id, id, number, source, external_id, customer_id, currency, amount_total,
             amount_tax, issue_date, due_date, status, payment_reference, rf_reference, lines, metadata)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         returning {INVOICE_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(InvoiceId::generate().as_str())
    .bind(&spec.number)
    .bind(&spec.source)
    .bind(&spec.external_id)
    .bind(&spec.customer_id)
    .bind(&spec.currency)
    .bind(spec.amount_total)
    .bind(spec.amount_tax)
    .bind(spec.issue_date)
    .bind(spec.due_date)
    .bind(spec.status)
    .bind(&spec.payment_reference)
    .bind(&spec.rf_reference)
    .bind(sqlx::types::Json(&spec.lines))
    .bind(sqlx::types::Json(&spec.metadata))
    .fetch_one(&mut *conn)
    .await;
    let invoice: Invoice = match inserted {
        Ok(invoice) => invoice,
        Err(error) => match unique_violation(&error) {
            Some(constraint) => return Err(taken(&constraint, spec)),
            None => return Err(error.into()),
        },
    };
    announce(conn, tenant, &invoice, ChangeKind::Created, "invoice.created", None).await?;
    Ok(invoice)
}

/// Loads one of the tenant's invoices, optionally locking it for an update.
pub async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &InvoiceId,
    for_update: bool,
) -> Result<Option<Invoice>, sqlx::Error> {
    let lock = if for_update { " for update" } else { "" };
    sqlx::query_as(&format!("select {INVOICE_COLUMNS} from invoices where tenant_id = $1 and id = $2{lock}"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// Which invoices a list returns.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFilters {
    pub status: Option<InvoiceStatus>,
    pub customer_id: Option<CustomerId>,
    pub currency: Option<String>,
    pub source: Option<String>,
    pub external_id: Option<String>,
    pub number: Option<String>,
    pub issue_date_from: Option<NaiveDate>,
    pub issue_date_to: Option<NaiveDate>,
    pub due_date_from: Option<NaiveDate>,
    pub due_date_to: Option<NaiveDate>,
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    /// Open, partially paid or uncollectible, and due before today.
    pub overdue: Option<bool>,
    /// Lowercased text that the number, a reference or the customer's name or email contains.
    pub q: Option<String>,
    pub updated_since: Option<DateTime<Utc>>,
}

/// A page of invoices, newest first, after `before` (an id).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    f: &InvoiceFilters,
    before: Option<&InvoiceId>,
    limit: i64,
) -> Result<Vec<Invoice>, sqlx::Error> {
    let like = f.q.as_deref().map(crate::db::contains_pattern);
    sqlx::query_as(&format!(
        "select {INVOICE_COLUMNS} from invoices i
         where tenant_id = $1 and ($2::text is null or id < $2)
           and ($3::text is null or status = $3) and ($4::text is null or customer_id = $4)
           and ($5::text is null or currency = $5) and ($6::text is null or source = $6)
           and ($7::text is null or external_id = $7) and ($8::text is null or number = $8)
           and ($9::date is null or issue_date >= $9) and ($10::date is null or issue_date <= $10)
           and ($11::date is null or due_date >= $11) and ($12::date is null or due_date <= $12)
           and ($13::int8 is null or amount_total >= $13) and ($14::int8 is null or amount_total <= $14)
           and ($15::bool is null or $15 = (status in ('open', 'partially_paid', 'uncollectible')
                                           and due_date < current_date))
           and ($16::text is null or search_text like $16
                or customer_id in (select c.id from customers c where c.tenant_id = $1 and c.search_text like $16))
           and ($17::timestamptz is null or updated_at >= $17)
         order by id desc limit $18"
    ))
    .bind(tenant.as_str())
    .bind(before.map(InvoiceId::as_str))
    .bind(f.status)
    .bind(f.customer_id.as_ref().map(CustomerId::as_str))
    .bind(&f.currency)
    .bind(&f.source)
    .bind(&f.external_id)
    .bind(&f.number)
    .bind(f.issue_date_from)
    .bind(f.issue_date_to)
    .bind(f.due_date_from)
    .bind(f.due_date_to)
    .bind(f.amount_min)
    .bind(f.amount_max)
    .bind(f.overdue)
    .bind(like)
    .bind(f.updated_since)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Writes `spec` over `current` (locked by the caller): the status must be a move a client may
/// make, and a paid part is never undercut. Records a change and `invoice.updated` with the
/// previous values only when a field changed; returns the invoice and whether it did.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    current: &Invoice,
    spec: &InvoiceSpec,
) -> Result<(Invoice, bool), InvoiceError> {
    let previous = changes_allowed(current, spec)?;
    if previous.is_empty() {
        return Ok((current.clone(), false));
    }
    if spec.customer_id != current.customer_id {
        check_customer(conn, tenant, spec).await?;
    }
    let updated = sqlx::query_as(&format!(
        "update invoices set number = $3, source = $4, external_id = $5, customer_id = $6, currency = $7,
             amount_total = $8, amount_tax = $9, issue_date = $10, due_date = $11, status = $12,
             payment_reference = $13, rf_reference = $14, lines = $15, metadata = $16
         where tenant_id = $1 and id = $2 returning {INVOICE_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(&current.id)
    .bind(&spec.number)
    .bind(&spec.source)
    .bind(&spec.external_id)
    .bind(&spec.customer_id)
    .bind(&spec.currency)
    .bind(spec.amount_total)
    .bind(spec.amount_tax)
    .bind(spec.issue_date)
    .bind(spec.due_date)
    .bind(spec.status)
    .bind(&spec.payment_reference)
    .bind(&spec.rf_reference)
    .bind(sqlx::types::Json(&spec.lines))
    .bind(sqlx::types::Json(&spec.metadata))
    .fetch_one(&mut *conn)
    .await;
    let invoice: Invoice = match updated {
        Ok(invoice) => invoice,
        Err(error) => match unique_violation(&error) {
            Some(constraint) => return Err(taken(&constraint, spec)),
            None => return Err(error.into()),
        },
    };
    announce(conn, tenant, &invoice, ChangeKind::Updated, "invoice.updated", Some(previous)).await?;
    Ok((invoice, true))
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

/// Voids an invoice nothing has paid: it stays, under its number, and stops counting as owed.
/// Voiding a void invoice changes nothing.
pub async fn void(conn: &mut PgConnection, tenant: &TenantId, current: &Invoice) -> Result<Invoice, InvoiceError> {
    match current.status {
        InvoiceStatus::Void => return Ok(current.clone()),
        InvoiceStatus::Paid | InvoiceStatus::PartiallyPaid => {
            return Err(InvoiceError::Conflict(format!(
                "the invoice is {}: unmatch its payments before voiding it",
                current.status
            )));
        }
        InvoiceStatus::Draft | InvoiceStatus::Open | InvoiceStatus::Uncollectible => {}
    }
    let invoice: Invoice = sqlx::query_as(&format!(
        "update invoices set status = 'void', voided_at = now() where tenant_id = $1 and id = $2
         returning {INVOICE_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(&current.id)
    .fetch_one(&mut *conn)
    .await?;
    let previous = serde_json::Map::from_iter([("status".to_owned(), serde_json::json!(current.status))]);
    announce(conn, tenant, &invoice, ChangeKind::Voided, "invoice.voided", Some(previous)).await?;
    Ok(invoice)
}

/// Deletes a draft. Any other invoice has been sent and is voided instead (409 saying so).
pub async fn delete(conn: &mut PgConnection, tenant: &TenantId, current: &Invoice) -> Result<(), InvoiceError> {
    if current.status != InvoiceStatus::Draft {
        return Err(InvoiceError::Conflict(format!(
            "only drafts are deleted; an invoice that is {} is voided instead (POST /invoices/{}/void)",
            current.status, current.id
        )));
    }
    sqlx::query("delete from invoices where tenant_id = $1 and id = $2")
        .bind(tenant.as_str())
        .bind(&current.id)
        .execute(&mut *conn)
        .await?;
    changes::record(
        conn,
        tenant,
        Resource::Invoice,
        &current.id,
        current.external_id.as_deref(),
        ChangeKind::Deleted,
        None,
    )
    .await?;
    events::record(conn, tenant, "invoice.deleted", current).await?;
    Ok(())
}

/// Records an invoice's change in the feed and its event.
async fn announce(
    conn: &mut PgConnection,
    tenant: &TenantId,
    invoice: &Invoice,
    change: ChangeKind,
    event_type: &'static str,
    previous: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<(), sqlx::Error> {
    let data = events::payload(invoice)?;
    changes::record(conn, tenant, Resource::Invoice, &invoice.id, invoice.external_id.as_deref(), change, Some(&data))
        .await?;
    let mut payload = data;
    if let Some(previous) = previous {
        payload["previous_attributes"] = serde_json::Value::Object(previous);
    }
    events::record(conn, tenant, event_type, payload).await?;
    Ok(())
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
