//! Taking a transaction out of reconciliation (an internal transfer, a loan, a refund paid out)
//! and putting it back. An excluded transaction is never suggested or matched; including it
//! again makes it `unmatched`, and the engine looks at it afresh.

use serde_json::json;
use sqlx::PgConnection;

use super::{DecidedBy, ReconciliationError};
use crate::{
    audit,
    domain::{ids::TenantId, states::MatchStatus},
};

/// Longest reason an exclusion records.
pub const MAX_REASON: usize = 500;

/// Excludes an unmatched or suggested transaction with a reason. Excluding an excluded one
/// changes nothing; a matched one must be unmatched first (409).
pub async fn exclude(
    conn: &mut PgConnection,
    tenant: &TenantId,
    transaction_id: &str,
    reason: Option<String>,
    decided_by: &DecidedBy,
) -> Result<bool, ReconciliationError> {
    if reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON) {
        return Err(ReconciliationError::invalid("reason", format!("must be at most {MAX_REASON} characters")));
    }
    match lock(conn, tenant, transaction_id).await? {
        MatchStatus::Excluded => return Ok(false),
        MatchStatus::Matched => {
            return Err(ReconciliationError::Conflict(format!(
                "transaction {transaction_id} is matched; unmatch it before excluding it"
            )));
        }
        MatchStatus::Unmatched | MatchStatus::Suggested => {}
    }
    sqlx::query(
        "update transactions set match_status = 'excluded', excluded_reason = $3, excluded_by = $4,
             reconcile_pending = false
         where tenant_id = $1 and id = $2",
    )
    .bind(tenant.as_str())
    .bind(transaction_id)
    .bind(&reason)
    .bind(decided_by.label())
    .execute(&mut *conn)
    .await?;
    super::suggestions::supersede(conn, tenant, &[transaction_id]).await?;
    record(conn, tenant, transaction_id, "reconciliation.transaction.exclude", json!({"reason": reason}), decided_by)
        .await?;
    Ok(true)
}

/// Puts an excluded transaction back: `unmatched`, and due for the engine. Including one that is
/// not excluded changes nothing. Returns where it stands, and whether that changed.
pub async fn include(
    conn: &mut PgConnection,
    tenant: &TenantId,
    transaction_id: &str,
    decided_by: &DecidedBy,
) -> Result<(MatchStatus, bool), ReconciliationError> {
    let current = lock(conn, tenant, transaction_id).await?;
    if current != MatchStatus::Excluded {
        return Ok((current, false));
    }
    sqlx::query(
        "update transactions set match_status = 'unmatched', excluded_reason = null, excluded_by = null,
             reconcile_pending = true
         where tenant_id = $1 and id = $2",
    )
    .bind(tenant.as_str())
    .bind(transaction_id)
    .execute(&mut *conn)
    .await?;
    record(conn, tenant, transaction_id, "reconciliation.transaction.include", json!({}), decided_by).await?;
    Ok((MatchStatus::Unmatched, true))
}

async fn lock(
    conn: &mut PgConnection,
    tenant: &TenantId,
    transaction_id: &str,
) -> Result<MatchStatus, ReconciliationError> {
    sqlx::query_scalar("select match_status from transactions where tenant_id = $1 and id = $2 for update")
        .bind(tenant.as_str())
        .bind(transaction_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(ReconciliationError::NotFound("transaction"))
}

async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    transaction_id: &str,
    action: &str,
    detail: serde_json::Value,
    decided_by: &DecidedBy,
) -> Result<(), sqlx::Error> {
    let entry = decided_by.audit_entry(action, "transaction", transaction_id, detail);
    audit::append_in(conn, tenant, entry).await?;
    Ok(())
}
