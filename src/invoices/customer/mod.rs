//! Customers: who owes the money, with the names and bank accounts their payments arrive under.
//! This module stores them (create, list, update, delete, each with its change and event); `spec`
//! holds what a customer is and the rules it follows.

mod spec;

pub use spec::*;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{
    InvoiceError,
    changes::{self, ChangeKind, Resource},
    unique_violation,
};
use crate::{
    domain::ids::{CustomerId, TenantId},
    events,
};

/// Binds a customer's fields as `$3` … `$9`, in the order the create and update statements name
/// them (after the tenant and the id).
trait BindSpec<'q> {
    fn bind_spec(self, spec: &'q CustomerSpec) -> Self;
}

impl<'q> BindSpec<'q> for sqlx::query::QueryAs<'q, sqlx::Postgres, Customer, sqlx::postgres::PgArguments> {
    fn bind_spec(self, spec: &'q CustomerSpec) -> Self {
        self.bind(&spec.name)
            .bind(&spec.email)
            .bind(&spec.source)
            .bind(&spec.external_id)
            .bind(&spec.aliases)
            .bind(sqlx::types::Json(&spec.bank_accounts))
            .bind(sqlx::types::Json(&spec.metadata))
    }
}

/// The 409 for an external id another customer of the same source holds.
fn taken(spec: &CustomerSpec) -> InvoiceError {
    InvoiceError::Conflict(format!(
        "a customer from source {:?} already has external_id {:?}; update that one, or upsert with the batch endpoint",
        spec.source,
        spec.external_id.as_deref().unwrap_or_default()
    ))
}

/// Creates a customer, with its change and `customer.created`.
pub async fn create(conn: &mut PgConnection, tenant: &TenantId, spec: &CustomerSpec) -> Result<Customer, InvoiceError> {
    let id = CustomerId::generate();
    let inserted = sqlx::query_as(&format!(
        "insert into customers (tenant_id, id, name, email, source, external_id, aliases, bank_accounts, metadata)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning {CUSTOMER_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind_spec(spec)
    .fetch_one(&mut *conn)
    .await;
    let customer: Customer = match inserted {
        Ok(customer) => customer,
        Err(error) if unique_violation(&error).is_some() => return Err(taken(spec)),
        Err(error) => return Err(error.into()),
    };
    announce(conn, tenant, &customer, ChangeKind::Created, None).await?;
    Ok(customer)
}

/// Loads one of the tenant's customers, optionally locking it for an update.
pub async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &CustomerId,
    for_update: bool,
) -> Result<Option<Customer>, sqlx::Error> {
    let lock = if for_update { " for update" } else { "" };
    sqlx::query_as(&format!("select {CUSTOMER_COLUMNS} from customers where tenant_id = $1 and id = $2{lock}"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// Which customers a list returns.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilters {
    pub source: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
    /// Lowercased text that name or email contains (trigram-indexed).
    pub q: Option<String>,
    pub updated_since: Option<DateTime<Utc>>,
}

/// A page of customers, newest first, after `before` (an id).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    filters: &CustomerFilters,
    before: Option<&CustomerId>,
    limit: i64,
) -> Result<Vec<Customer>, sqlx::Error> {
    let like = filters.q.as_deref().map(crate::db::contains_pattern);
    sqlx::query_as(&format!(
        "select {CUSTOMER_COLUMNS} from customers
         where tenant_id = $1 and ($2::text is null or id < $2) and ($3::text is null or source = $3)
           and ($4::text is null or external_id = $4) and ($5::text is null or lower(email) = lower($5))
           and ($6::text is null or search_text like $6) and ($7::timestamptz is null or updated_at >= $7)
         order by id desc limit $8"
    ))
    .bind(tenant.as_str())
    .bind(before.map(CustomerId::as_str))
    .bind(&filters.source)
    .bind(&filters.external_id)
    .bind(&filters.email)
    .bind(like)
    .bind(filters.updated_since)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Writes `spec` over `current` (locked by the caller). Records a change and `customer.updated`
/// with the previous values only when a field changed; returns the customer and whether it did.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    current: &Customer,
    spec: &CustomerSpec,
) -> Result<(Customer, bool), InvoiceError> {
    let previous = previous_attributes(current, spec);
    if previous.is_empty() {
        return Ok((current.clone(), false));
    }
    let updated = sqlx::query_as(&format!(
        "update customers set name = $3, email = $4, source = $5, external_id = $6, aliases = $7,
             bank_accounts = $8, metadata = $9
         where tenant_id = $1 and id = $2 returning {CUSTOMER_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(&current.id)
    .bind_spec(spec)
    .fetch_one(&mut *conn)
    .await;
    let customer: Customer = match updated {
        Ok(customer) => customer,
        Err(error) if unique_violation(&error).is_some() => return Err(taken(spec)),
        Err(error) => return Err(error.into()),
    };
    announce(conn, tenant, &customer, ChangeKind::Updated, Some(previous)).await?;
    Ok((customer, true))
}

/// Deletes a customer no live invoice points at (a voided one keeps its number and loses the
/// link). Refused with a 409 naming how many invoices are in the way.
pub async fn delete(conn: &mut PgConnection, tenant: &TenantId, current: &Customer) -> Result<(), InvoiceError> {
    let blocking: i64 = sqlx::query_scalar(
        "select count(*) from invoices where tenant_id = $1 and customer_id = $2 and status <> 'void'",
    )
    .bind(tenant.as_str())
    .bind(&current.id)
    .fetch_one(&mut *conn)
    .await?;
    if blocking > 0 {
        return Err(InvoiceError::Conflict(format!(
            "{blocking} invoice{} not voided point{} at this customer; void or reassign {} first",
            if blocking == 1 { "" } else { "s" },
            if blocking == 1 { "s" } else { "" },
            if blocking == 1 { "it" } else { "them" },
        )));
    }
    let data = events::payload(current)?;
    changes::delete(conn, tenant, Resource::Customer, &current.id, current.external_id.as_deref(), data).await?;
    Ok(())
}

/// Records a customer's change in the feed and its event.
async fn announce(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customer: &Customer,
    change: ChangeKind,
    previous: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<(), sqlx::Error> {
    let event_type = if change == ChangeKind::Created { "customer.created" } else { "customer.updated" };
    let write = changes::Announcement {
        resource: Resource::Customer,
        id: &customer.id,
        external_id: customer.external_id.as_deref(),
        change,
        event_type,
        data: events::payload(customer)?,
        previous,
    };
    changes::announce(conn, tenant, write).await
}
