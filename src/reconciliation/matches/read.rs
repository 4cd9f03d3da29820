//! Reading matches: one, a page, or a batch by id, each with its transactions, allocations and
//! adjustments (three queries per batch, never one per match).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, types::Json};

use super::{Adjustment, Allocation, Match, MatchOrigin, MatchState, MatchTransaction};
use crate::domain::ids::{MatchId, TenantId};

#[derive(FromRow)]
struct MatchRow {
    id: String,
    status: MatchState,
    origin: MatchOrigin,
    created_by: String,
    suggestion_id: Option<String>,
    score: Option<f64>,
    reasons: serde_json::Value,
    note: Option<String>,
    metadata: Json<BTreeMap<String, String>>,
    unmatched_at: Option<DateTime<Utc>>,
    unmatched_by: Option<String>,
    unmatch_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "m.id, m.status, m.origin, m.created_by, m.suggestion_id, m.score::float8 as score, m.reasons,
    m.note, m.metadata, m.unmatched_at, m.unmatched_by, m.unmatch_reason, m.created_at, m.updated_at";

/// Which matches a list returns.
#[derive(Debug, Clone, Default)]
pub struct MatchFilters {
    pub status: Option<MatchState>,
    pub origin: Option<MatchOrigin>,
    pub transaction_id: Option<String>,
    /// Matches that allocate to this invoice or payout.
    pub target_id: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
}

/// A page of matches, newest first, after `before` (an id).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    f: &MatchFilters,
    before: Option<&MatchId>,
    limit: i64,
) -> Result<Vec<Match>, sqlx::Error> {
    let rows: Vec<MatchRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from reconciliation_matches m
         where m.tenant_id = $1 and ($2::text is null or m.id < $2)
           and ($3::text is null or m.status = $3) and ($4::text is null or m.origin = $4)
           and ($5::text is null or exists (select 1 from reconciliation_match_transactions t
                where t.tenant_id = m.tenant_id and t.match_id = m.id and t.transaction_id = $5))
           and ($6::text is null or exists (select 1 from reconciliation_allocations a
                where a.tenant_id = m.tenant_id and a.match_id = m.id and a.target_id = $6))
           and ($7::timestamptz is null or m.created_at >= $7) and ($8::timestamptz is null or m.created_at < $8)
         order by m.id desc limit $9"
    ))
    .bind(tenant.as_str())
    .bind(before.map(MatchId::as_str))
    .bind(f.status)
    .bind(f.origin)
    .bind(&f.transaction_id)
    .bind(&f.target_id)
    .bind(f.created_from)
    .bind(f.created_to)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    assemble(conn, tenant, rows).await
}

/// One of the tenant's matches, optionally locked for a change.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &MatchId,
    for_update: bool,
) -> Result<Option<Match>, sqlx::Error> {
    let lock = if for_update { " for update" } else { "" };
    let rows: Vec<MatchRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from reconciliation_matches m where m.tenant_id = $1 and m.id = $2{lock}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(assemble(conn, tenant, rows).await?.pop())
}

/// The matches with these ids, in no particular order.
pub(super) async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[String],
) -> Result<Vec<Match>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<MatchRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from reconciliation_matches m where m.tenant_id = $1 and m.id = any($2)"
    ))
    .bind(tenant.as_str())
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    assemble(conn, tenant, rows).await
}

/// Adds each match's transactions, allocations and adjustments, in their positions.
async fn assemble(conn: &mut PgConnection, tenant: &TenantId, rows: Vec<MatchRow>) -> Result<Vec<Match>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    #[derive(FromRow)]
    struct Part<T> {
        match_id: String,
        #[sqlx(flatten)]
        part: T,
    }
    let transactions: Vec<Part<MatchTransaction>> = sqlx::query_as(
        "select match_id, transaction_id, amount, currency from reconciliation_match_transactions
         where tenant_id = $1 and match_id = any($2) order by match_id, transaction_id",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let allocations: Vec<Part<Allocation>> = sqlx::query_as(
        "select match_id, target_type, target_id, amount, currency, via_payout_id, via_payment_id
         from reconciliation_allocations where tenant_id = $1 and match_id = any($2) order by match_id, position",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let adjustments: Vec<Part<Adjustment>> = sqlx::query_as(
        "select match_id, kind, amount, currency, description
         from reconciliation_adjustments where tenant_id = $1 and match_id = any($2) order by match_id, position",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    fn group<T>(parts: Vec<Part<T>>) -> HashMap<String, Vec<T>> {
        let mut by: HashMap<String, Vec<T>> = HashMap::new();
        for p in parts {
            by.entry(p.match_id).or_default().push(p.part);
        }
        by
    }
    let (mut transactions, mut allocations, mut adjustments) =
        (group(transactions), group(allocations), group(adjustments));
    Ok(rows
        .into_iter()
        .map(|r| Match {
            transactions: transactions.remove(&r.id).unwrap_or_default(),
            allocations: allocations.remove(&r.id).unwrap_or_default(),
            adjustments: adjustments.remove(&r.id).unwrap_or_default(),
            id: r.id,
            status: r.status,
            origin: r.origin,
            created_by: r.created_by,
            suggestion_id: r.suggestion_id,
            score: r.score,
            reasons: r.reasons,
            note: r.note,
            metadata: r.metadata.0,
            unmatched_at: r.unmatched_at,
            unmatched_by: r.unmatched_by,
            unmatch_reason: r.unmatch_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}
