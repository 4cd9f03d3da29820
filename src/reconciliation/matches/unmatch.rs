//! Undoing a match: its transactions go back to `unmatched`, the invoices it paid get their
//! amounts back, and the match is kept, `unmatched`, with who undid it and why.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sqlx::PgConnection;

use super::{
    super::{DecidedBy, ReconciliationError},
    Match, MatchState, TargetType, read,
};
use crate::{
    audit,
    domain::ids::{MatchId, TenantId},
    events,
    invoices::payments,
};

/// Longest reason an unmatch records.
pub const MAX_REASON: usize = 2000;

/// Undoes an active match. When a person undoes it, what it paid becomes a rejected pair for
/// each of its transactions, so the engine never makes the same match again on its own.
pub async fn unmatch(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &MatchId,
    reason: Option<String>,
    decided_by: DecidedBy,
) -> Result<Match, ReconciliationError> {
    if reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON) {
        return Err(ReconciliationError::invalid("reason", format!("must be at most {MAX_REASON} characters")));
    }
    let Some(current) = read::get(conn, tenant, id, true).await? else {
        return Err(ReconciliationError::NotFound("match"));
    };
    if current.status == MatchState::Unmatched {
        return Err(ReconciliationError::Conflict(format!("match {id} is already unmatched")));
    }
    // The same lock order as creating: transactions, then invoices.
    let tx_ids: Vec<&str> = current.transactions.iter().map(|t| t.transaction_id.as_str()).collect();
    sqlx::query("select id from transactions where tenant_id = $1 and id = any($2) order by id for update")
        .bind(tenant.as_str())
        .bind(&tx_ids)
        .execute(&mut *conn)
        .await?;
    let mut deltas: BTreeMap<String, i64> = BTreeMap::new();
    for a in current.allocations.iter().filter(|a| a.target_type == TargetType::Invoice) {
        *deltas.entry(a.target_id.clone()).or_default() -= a.amount;
    }
    let invoice_ids: Vec<&String> = deltas.keys().collect();
    sqlx::query("select id from invoices where tenant_id = $1 and id = any($2) order by id for update")
        .bind(tenant.as_str())
        .bind(&invoice_ids)
        .execute(&mut *conn)
        .await?;

    sqlx::query(
        "update reconciliation_matches set status = 'unmatched', unmatched_at = now(), unmatched_by = $3,
             unmatch_reason = $4
         where tenant_id = $1 and id = $2",
    )
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(decided_by.label())
    .bind(&reason)
    .execute(&mut *conn)
    .await?;
    for table in ["reconciliation_match_transactions", "reconciliation_allocations"] {
        sqlx::query(&format!("update {table} set active = false where tenant_id = $1 and match_id = $2"))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "update transactions set match_status = 'unmatched', reconcile_pending = true
         where tenant_id = $1 and id = any($2)",
    )
    .bind(tenant.as_str())
    .bind(&tx_ids)
    .execute(&mut *conn)
    .await?;
    if decided_by != DecidedBy::Engine {
        let key = target_key(&current);
        sqlx::query(
            "insert into reconciliation_rejections (tenant_id, transaction_id, target_key, rejected_by)
             select $1, t, $3, $4 from unnest($2::text[]) as t
             on conflict do nothing",
        )
        .bind(tenant.as_str())
        .bind(&tx_ids)
        .bind(&key)
        .bind(decided_by.label())
        .execute(&mut *conn)
        .await?;
    }
    payments::apply(conn, tenant, &deltas).await?;

    let undone = read::get(conn, tenant, id, false).await?.ok_or(ReconciliationError::NotFound("match"))?;
    events::record(conn, tenant, "transaction.unmatched", &undone).await?;
    let detail = json!({"reason": reason, "origin": undone.origin, "score": undone.score,
                        "transactions": undone.transactions, "allocations": undone.allocations,
                        "adjustments": undone.adjustments});
    let entry = decided_by.audit_entry("reconciliation.match.unmatch", "reconciliation_match", id.as_str(), detail);
    audit::append_in(conn, tenant, entry).await?;
    Ok(undone)
}

/// What a match paid, as a rejection names it: `invoice:inv_…`, `invoices:inv_a,inv_b` (sorted),
/// or `stripe_payout:po_…` (a payout match names its payout alone).
pub fn target_key(m: &Match) -> String {
    if let Some(payout) = m.allocations.iter().find(|a| a.target_type == TargetType::StripePayout) {
        return format!("stripe_payout:{}", payout.target_id);
    }
    let invoices: BTreeSet<&str> = m.allocations.iter().map(|a| a.target_id.as_str()).collect();
    match invoices.len() {
        1 => format!("invoice:{}", invoices.into_iter().next().unwrap_or_default()),
        _ => format!("invoices:{}", invoices.into_iter().collect::<Vec<_>>().join(",")),
    }
}
