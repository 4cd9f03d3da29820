//! The changes feed: every change to a tenant's customers or invoices, in an order no later
//! commit can slip behind, for CRMs that poll "what changed since my last call".
//!
//! Each write adds a row in its own transaction, stamped with that transaction's id (`xid`). A
//! read returns only rows whose transaction finished before the oldest transaction still running
//! began (`xid < pg_snapshot_xmin(pg_current_snapshot())`), in `(xid, seq)` order, from after the
//! cursor's position. A transaction still running holds the feed back at its own id rather than
//! being passed: when it commits, its changes sort after the cursor that stopped before it.
//! Transaction ids are the database cluster's, so any long writing transaction delays every
//! feed until it ends (it never makes one skip).
//! Timestamps (`updated_since`) cannot promise that: two writes can commit in the other order
//! than their clocks say.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection, types::Json};
use utoipa::ToSchema;

use super::invoice::Invoice;
use crate::domain::ids::{EventId, TenantId};

/// What the feed is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Customer,
    Invoice,
}

impl Resource {
    fn as_str(self) -> &'static str {
        match self {
            Resource::Customer => "customer",
            Resource::Invoice => "invoice",
        }
    }

    /// The table the resource is stored in.
    fn table(self) -> &'static str {
        match self {
            Resource::Customer => "customers",
            Resource::Invoice => "invoices",
        }
    }

    /// The event announcing a deletion.
    fn deleted_event(self) -> &'static str {
        match self {
            Resource::Customer => "customer.deleted",
            Resource::Invoice => "invoice.deleted",
        }
    }
}

/// A write to announce: the object's change in the feed and its event.
pub struct Announcement<'a> {
    pub resource: Resource,
    pub id: &'a str,
    pub external_id: Option<&'a str>,
    pub change: ChangeKind,
    pub event_type: &'static str,
    /// The object after the change.
    pub data: serde_json::Value,
    /// The previous values of the fields that changed, added to the event when given.
    pub previous: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Records a write's change in the feed and its event, inside the transaction that makes it.
pub async fn announce(conn: &mut PgConnection, tenant: &TenantId, write: Announcement<'_>) -> Result<(), sqlx::Error> {
    record(conn, tenant, write.resource, write.id, write.external_id, write.change, Some(&write.data)).await?;
    let mut payload = write.data;
    if let Some(previous) = write.previous {
        payload["previous_attributes"] = serde_json::Value::Object(previous);
    }
    crate::events::record(conn, tenant, write.event_type, payload).await?;
    Ok(())
}

/// One invoice to announce: the invoice after the change, the kind of change, its event type and
/// the previous values of the fields that changed.
pub type InvoiceAnnouncement<'a> =
    (&'a Invoice, ChangeKind, &'static str, Option<&'a serde_json::Map<String, serde_json::Value>>);

/// Records the changes and events of many invoices in one statement, in the order given. Each
/// invoice's JSON is written once, straight from the row into the statement's parameters, and
/// parsed once by the database for both tables: the event is that same JSON with
/// `previous_attributes` added when given.
pub async fn announce_invoices(
    conn: &mut PgConnection,
    tenant: &TenantId,
    announced: Vec<InvoiceAnnouncement<'_>>,
) -> Result<(), sqlx::Error> {
    let count = announced.len();
    if count == 0 {
        return Ok(());
    }
    let mut object_ids = Vec::with_capacity(count);
    let mut external_ids = Vec::with_capacity(count);
    let mut kinds = Vec::with_capacity(count);
    let mut data = Vec::with_capacity(count);
    let mut event_ids = Vec::with_capacity(count);
    let mut event_types = Vec::with_capacity(count);
    let mut previous = Vec::with_capacity(count);
    for (invoice, kind, event_type, changed) in announced {
        debug_assert!(crate::events::EVENT_TYPES.contains(&event_type), "{event_type} is not in EVENT_TYPES");
        object_ids.push(invoice.id.as_str());
        external_ids.push(invoice.external_id.as_deref());
        kinds.push(kind.as_str());
        data.push(Json(invoice));
        event_ids.push(EventId::generate().as_str().to_owned());
        event_types.push(event_type);
        previous.push(changed.map(Json));
    }
    sqlx::query(
        "with changes as (
             insert into resource_changes (tenant_id, resource, object_id, external_id, change, data)
             select $1, 'invoice', c.object_id, c.external_id, c.change, c.data
             from unnest($2::text[], $3::text[], $4::text[], $5::jsonb[]) with ordinality
                 as c(object_id, external_id, change, data, ordinal)
             order by c.ordinal
         )
         insert into events (tenant_id, id, event_type, data)
         select $1, e.id, e.event_type,
                case when e.previous is null then e.data
                     else e.data || jsonb_build_object('previous_attributes', e.previous) end
         from unnest($6::text[], $7::text[], $5::jsonb[], $8::jsonb[]) with ordinality
             as e(id, event_type, data, previous, ordinal)
         order by e.ordinal",
    )
    .bind(tenant.as_str())
    .bind(&object_ids)
    .bind(&external_ids)
    .bind(&kinds)
    .bind(&data)
    .bind(&event_ids)
    .bind(&event_types)
    .bind(&previous)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes an object of `resource` (the caller checked that it may go), and records its
/// tombstone in the feed and its `….deleted` event with `data`, the object as it was.
pub async fn delete(
    conn: &mut PgConnection,
    tenant: &TenantId,
    resource: Resource,
    id: &str,
    external_id: Option<&str>,
    data: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("delete from {} where tenant_id = $1 and id = $2", resource.table()))
        .bind(tenant.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    record(conn, tenant, resource, id, external_id, ChangeKind::Deleted, None).await?;
    crate::events::record(conn, tenant, resource.deleted_event(), data).await?;
    Ok(())
}

crate::domain::states::states! {
    /// What happened to the object.
    ChangeKind {
        Created = "created",
        Updated = "updated",
        Voided = "voided",
        /// A tombstone: the object is gone; `data` is null.
        Deleted = "deleted",
    }
}

/// One change, as the feed returns it.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "change": "updated", "object_id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "external_id": "hubspot-88172", "changed_at": "2026-12-03T09:30:00.000000Z",
    "data": {"id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718", "number": "INV-2026-0104", "status": "open"}
}))]
pub struct Change {
    pub change: ChangeKind,
    /// The customer's or invoice's id.
    pub object_id: String,
    pub external_id: Option<String>,
    pub changed_at: DateTime<Utc>,
    /// The object as the change left it; null for `deleted`.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// The feed position after this change (the cursor's content, before signing).
    #[serde(skip)]
    #[sqlx(rename = "position")]
    pub position: String,
}

/// Records a change inside the transaction (bound to `tenant`) that makes it.
pub async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    resource: Resource,
    object_id: &str,
    external_id: Option<&str>,
    change: ChangeKind,
    data: Option<&serde_json::Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into resource_changes (tenant_id, resource, object_id, external_id, change, data)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.as_str())
    .bind(resource.as_str())
    .bind(object_id)
    .bind(external_id)
    .bind(change)
    .bind(data)
    .execute(conn)
    .await?;
    Ok(())
}

/// A position in the feed: after the change `(xid, seq)`; `(0, 0)` is the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub xid: u64,
    pub seq: i64,
}

impl Position {
    pub fn parse(text: &str) -> Option<Self> {
        let (xid, seq) = text.split_once(':')?;
        Some(Self { xid: xid.parse().ok()?, seq: seq.parse().ok()? })
    }
}

/// Up to `limit` changes after `after`, oldest first (see the module's docs for the order).
pub async fn read(
    conn: &mut PgConnection,
    tenant: &TenantId,
    resource: Resource,
    after: Position,
    limit: i64,
) -> Result<Vec<Change>, sqlx::Error> {
    sqlx::query_as(
        "select change, object_id, external_id, changed_at, data, xid::text || ':' || seq as position
         from resource_changes
         where tenant_id = $1 and resource = $2
           and (xid, seq) > ($3::text::xid8, $4)
           and xid < pg_snapshot_xmin(pg_current_snapshot())
         order by xid, seq
         limit $5",
    )
    .bind(tenant.as_str())
    .bind(resource.as_str())
    .bind(after.xid.to_string())
    .bind(after.seq)
    .bind(limit)
    .fetch_all(conn)
    .await
}
