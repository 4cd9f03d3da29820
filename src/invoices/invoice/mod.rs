//! Invoices: an amount a customer owes, under a number and a payment reference. This module
//! stores them (create, list, update, void, delete, each with its change and event); `spec`
//! holds what an invoice is and the rules it follows.

mod spec;

pub use spec::*;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use super::{
    InvoiceError,
    changes::{self, ChangeKind, Resource},
    unique_violation,
};
use crate::{
    domain::ids::{CustomerId, InvoiceId, TenantId},
    events,
};

/// Binds an invoice's fields as `$3` … `$16`, in the order the create and update statements
/// name them (after the tenant and the id).
trait BindSpec<'q> {
    fn bind_spec(self, spec: &'q InvoiceSpec) -> Self;
}

impl<'q> BindSpec<'q> for sqlx::query::QueryAs<'q, sqlx::Postgres, Invoice, sqlx::postgres::PgArguments> {
    fn bind_spec(self, spec: &'q InvoiceSpec) -> Self {
        self.bind(&spec.number)
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
    .bind_spec(spec)
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
    .bind_spec(spec)
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
    let data = events::payload(current)?;
    changes::delete(conn, tenant, Resource::Invoice, &current.id, current.external_id.as_deref(), data).await?;
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
    let write = changes::Announcement {
        resource: Resource::Invoice,
        id: &invoice.id,
        external_id: invoice.external_id.as_deref(),
        change,
        event_type,
        data: events::payload(invoice)?,
        previous,
    };
    changes::announce(conn, tenant, write).await
}
