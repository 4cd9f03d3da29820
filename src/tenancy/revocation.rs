//! Revoking a credential (an API key, an OAuth client): one rule for both. The first revocation
//! stamps `revoked_at` and announces it; revoking again changes nothing and announces nothing,
//! and answers the credential as it is.

use serde::Serialize;
use sqlx::{FromRow, PgConnection, postgres::PgRow};

use crate::{domain::ids::TenantId, events};

/// A kind of credential that can be revoked: where it lives and what announces its revocation.
pub struct Revocable {
    pub table: &'static str,
    /// The columns its API shape reads.
    pub columns: &'static str,
    pub event: &'static str,
}

/// Revokes credential `id` of `tenant` inside `conn`'s transaction; `None` when the tenant has
/// no such credential.
pub async fn revoke<T>(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &str,
    kind: &Revocable,
) -> Result<Option<T>, sqlx::Error>
where
    T: for<'r> FromRow<'r, PgRow> + Serialize + Send + Unpin,
{
    let Revocable { table, columns, event } = kind;
    let revoked: Option<T> = sqlx::query_as(&format!(
        "update {table} set revoked_at = now() where tenant_id = $1 and id = $2 and revoked_at is null
         returning {columns}"
    ))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(credential) = &revoked {
        events::record(conn, tenant, event, credential).await?;
        return Ok(revoked);
    }
    // Already revoked, or not this tenant's.
    sqlx::query_as(&format!("select {columns} from {table} where tenant_id = $1 and id = $2"))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(conn)
        .await
}
