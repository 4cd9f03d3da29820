//! What reconciliation pays on invoices: `amount_paid` moves through matches only, and the status
//! follows it (`open` → `partially_paid` → `paid`, and back when a match is undone).

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::PgConnection;

use super::{
    changes::{self, ChangeKind},
    invoice::{INVOICE_COLUMNS, Invoice, InvoiceStatus},
};
use crate::domain::ids::TenantId;

/// Adds each `(invoice id, delta)` to the invoice's `amount_paid` (a negative delta undoes a
/// payment), moves its status to match, and records each invoice's change with its event:
/// `invoice.paid` when it is now paid in full, `invoice.partially_paid` when partly, and
/// `invoice.updated` when an unmatch leaves it unpaid (`open`). `previous_attributes` carries
/// the amount and status before. The caller has locked the invoices and checked that the new
/// amounts stay within `0 ..= amount_total` (the table refuses anything else).
pub async fn apply(
    conn: &mut PgConnection,
    tenant: &TenantId,
    deltas: &BTreeMap<String, i64>,
) -> Result<Vec<Invoice>, sqlx::Error> {
    let deltas: Vec<(&String, i64)> = deltas.iter().map(|(id, delta)| (id, *delta)).filter(|(_, d)| *d != 0).collect();
    if deltas.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = deltas.iter().map(|(id, _)| id.as_str()).collect();
    let amounts: Vec<i64> = deltas.iter().map(|(_, delta)| *delta).collect();
    #[derive(sqlx::FromRow)]
    struct Paid {
        #[sqlx(flatten)]
        invoice: Invoice,
        previous_paid: i64,
        previous_status: InvoiceStatus,
    }
    let rows: Vec<Paid> = sqlx::query_as(&format!(
        "with d as (select * from unnest($2::text[], $3::int8[]) as d(id, delta)),
              old as (select i.id, i.amount_paid, i.status from invoices i join d using (id) where i.tenant_id = $1),
              paid as (
                  update invoices i
                  set amount_paid = i.amount_paid + d.delta,
                      status = case when i.amount_paid + d.delta = 0 then 'open'
                                    when i.amount_paid + d.delta >= i.amount_total then 'paid'
                                    else 'partially_paid' end
                  from d, old
                  where i.tenant_id = $1 and i.id = d.id and old.id = d.id
                  returning i.*, old.amount_paid as previous_paid, old.status as previous_status)
         select {INVOICE_COLUMNS}, previous_paid, previous_status from paid order by id"
    ))
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&amounts)
    .fetch_all(&mut *conn)
    .await?;
    let previous: Vec<serde_json::Map<String, serde_json::Value>> = rows
        .iter()
        .map(|row| {
            serde_json::Map::from_iter([
                ("amount_paid".to_owned(), json!(row.previous_paid)),
                ("amount_due".to_owned(), json!(row.invoice.amount_total - row.previous_paid)),
                ("status".to_owned(), json!(row.previous_status)),
            ])
        })
        .collect();
    let announced = rows
        .iter()
        .zip(&previous)
        .map(|(row, previous)| {
            let event = match row.invoice.status {
                InvoiceStatus::Paid => "invoice.paid",
                InvoiceStatus::PartiallyPaid => "invoice.partially_paid",
                _ => "invoice.updated",
            };
            (&row.invoice, ChangeKind::Updated, event, Some(previous))
        })
        .collect();
    changes::announce_invoices(conn, tenant, announced).await?;
    Ok(rows.into_iter().map(|row| row.invoice).collect())
}
