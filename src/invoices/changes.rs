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
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use crate::domain::ids::TenantId;

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
