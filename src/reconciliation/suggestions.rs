//! Suggestions: the matches the engine proposes for a person to decide, ranked per transaction
//! with the score and the reasons in words and numbers. Accepting one makes its match (checked
//! afresh, as a person's); rejecting one remembers the pair so it is never suggested again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{FromRow, PgConnection, types::Json};
use utoipa::ToSchema;

use super::{
    DecidedBy, ReconciliationError,
    matches::{self, Match, MatchOrigin, NewMatch, Proposal},
    scoring::Reason,
};
use crate::{
    audit,
    domain::ids::{SuggestionId, TenantId},
};

crate::domain::states::states! {
    /// `open` until a person accepts or rejects it, or it is `superseded` (the transaction was
    /// matched, excluded, or looked at again).
    SuggestionStatus {
        Open = "open",
        Accepted = "accepted",
        Rejected = "rejected",
        Superseded = "superseded",
    }
}

/// A match the engine proposes.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "sug_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "transaction_id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "rank": 1,
    "score": 0.8667,
    "target_type": "invoice",
    "target_ids": ["inv_0192f3c4d5e6478fa1b2c3d4e5f60718"],
    "reasons": [
        {"signal": "amount", "strength": 1.0, "weight": 0.3, "detail": "amount equal (1,250.00 GBP)"},
        {"signal": "name", "strength": 0.93, "weight": 0.2, "detail": "customer name similar (0.93): ACME WIDGETS LTD ~ Acme Widgets Limited"},
        {"signal": "date", "strength": 1.0, "weight": 0.1, "detail": "paid 2 days before the due date"}
    ],
    "allocations": [{"target_type": "invoice", "target_id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718", "amount": 125000,
                     "via_payout_id": null, "via_payment_id": null}],
    "adjustments": [],
    "status": "open",
    "decided_by": null,
    "decided_at": null,
    "match_id": null,
    "created_at": "2026-12-04T09:30:00.000000Z"
}))]
pub struct Suggestion {
    /// `sug_…`
    pub id: String,
    pub transaction_id: String,
    /// 1 is the best of the transaction's suggestions.
    pub rank: i32,
    /// 0 to 1.
    pub score: f64,
    /// `invoice`, `invoices` (one credit paying several) or `stripe_payout`.
    pub target_type: String,
    pub target_ids: Vec<String>,
    /// Each signal's contribution, in words and numbers.
    pub reasons: Vec<Reason>,
    /// The match accepting it makes.
    #[schema(value_type = Vec<crate::reconciliation::matches::NewAllocation>)]
    pub allocations: serde_json::Value,
    #[schema(value_type = Vec<crate::reconciliation::matches::NewAdjustment>)]
    pub adjustments: serde_json::Value,
    pub status: SuggestionStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The match accepting it made.
    pub match_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct Row {
    id: String,
    transaction_id: String,
    target_key: String,
    rank: i32,
    score: f64,
    reasons: Json<Vec<Reason>>,
    proposal: Json<NewMatch>,
    status: SuggestionStatus,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    match_id: Option<String>,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, transaction_id, target_key, rank, score::float8 as score, reasons, proposal, status, decided_by,
    decided_at, match_id, created_at";

impl From<Row> for Suggestion {
    fn from(r: Row) -> Self {
        let (kind, ids) = r.target_key.split_once(':').unwrap_or((r.target_key.as_str(), ""));
        Suggestion {
            target_type: kind.to_owned(),
            target_ids: ids.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            allocations: json!(r.proposal.0.allocations),
            adjustments: json!(r.proposal.0.adjustments),
            id: r.id,
            transaction_id: r.transaction_id,
            rank: r.rank,
            score: r.score,
            reasons: r.reasons.0,
            status: r.status,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            match_id: r.match_id,
            created_at: r.created_at,
        }
    }
}

/// One suggestion to store.
pub struct NewSuggestion {
    pub transaction_id: String,
    pub target_key: String,
    pub rank: i32,
    pub score: f64,
    pub reasons: Vec<Reason>,
    pub proposal: NewMatch,
}

/// Stores suggestions in one statement. Ids are generated best rank last, so that the list
/// (newest first) shows each transaction's suggestions best first.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: &TenantId,
    mut new: Vec<NewSuggestion>,
) -> Result<(), sqlx::Error> {
    if new.is_empty() {
        return Ok(());
    }
    new.sort_by(|a, b| a.transaction_id.cmp(&b.transaction_id).then(b.rank.cmp(&a.rank)));
    let ids: Vec<String> = new.iter().map(|_| SuggestionId::generate().to_string()).collect();
    sqlx::query(
        "insert into reconciliation_suggestions (tenant_id, id, transaction_id, target_key, rank, score, reasons, proposal)
         select $1, s.id, s.transaction_id, s.target_key, s.rank, s.score::numeric(5, 4), s.reasons, s.proposal
         from unnest($2::text[], $3::text[], $4::text[], $5::int4[], $6::float8[], $7::jsonb[], $8::jsonb[])
             as s(id, transaction_id, target_key, rank, score, reasons, proposal)",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(new.iter().map(|s| s.transaction_id.as_str()).collect::<Vec<_>>())
    .bind(new.iter().map(|s| s.target_key.as_str()).collect::<Vec<_>>())
    .bind(new.iter().map(|s| s.rank).collect::<Vec<_>>())
    .bind(new.iter().map(|s| s.score).collect::<Vec<_>>())
    .bind(new.iter().map(|s| Json(&s.reasons)).collect::<Vec<_>>())
    .bind(new.iter().map(|s| Json(&s.proposal)).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Withdraws the open suggestions of these transactions (matched, excluded, or looked at again).
pub async fn supersede<S: AsRef<str>>(
    conn: &mut PgConnection,
    tenant: &TenantId,
    transactions: &[S],
) -> Result<(), sqlx::Error> {
    let ids: Vec<&str> = transactions.iter().map(AsRef::as_ref).collect();
    sqlx::query(
        "update reconciliation_suggestions set status = 'superseded'
         where tenant_id = $1 and transaction_id = any($2) and status = 'open'",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which suggestions a list returns.
#[derive(Debug, Clone, Default)]
pub struct SuggestionFilters {
    pub transaction_id: Option<String>,
    /// Suggestions that would pay this invoice or payout.
    pub target_id: Option<String>,
    /// Default `open`.
    pub status: Option<SuggestionStatus>,
}

/// A page of suggestions, newest first (a transaction's best first), after `before` (an id).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &TenantId,
    f: &SuggestionFilters,
    before: Option<&SuggestionId>,
    limit: i64,
) -> Result<Vec<Suggestion>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from reconciliation_suggestions
         where tenant_id = $1 and ($2::text is null or id < $2) and status = $3
           and ($4::text is null or transaction_id = $4)
           and ($5::text is null or string_to_array(split_part(target_key, ':', 2), ',') @> array[$5])
         order by id desc limit $6"
    ))
    .bind(tenant.as_str())
    .bind(before.map(SuggestionId::as_str))
    .bind(f.status.unwrap_or(SuggestionStatus::Open))
    .bind(&f.transaction_id)
    .bind(&f.target_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Suggestion::from).collect())
}

/// One of the tenant's suggestions.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &SuggestionId,
) -> Result<Option<Suggestion>, sqlx::Error> {
    load(conn, tenant, id, false).await.map(|r| r.map(Suggestion::from))
}

/// The open suggestions of these transactions.
pub async fn open_for(
    conn: &mut PgConnection,
    tenant: &TenantId,
    transactions: &[String],
) -> Result<Vec<Suggestion>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from reconciliation_suggestions
         where tenant_id = $1 and transaction_id = any($2) and status = 'open' order by transaction_id, rank"
    ))
    .bind(tenant.as_str())
    .bind(transactions)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Suggestion::from).collect())
}

async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &SuggestionId,
    for_update: bool,
) -> Result<Option<Row>, sqlx::Error> {
    let lock = if for_update { " for update" } else { "" };
    sqlx::query_as(&format!("select {COLUMNS} from reconciliation_suggestions where tenant_id = $1 and id = $2{lock}"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// Locks an open suggestion, or says why it cannot be decided.
async fn open(conn: &mut PgConnection, tenant: &TenantId, id: &SuggestionId) -> Result<Row, ReconciliationError> {
    let row = load(conn, tenant, id, true).await?.ok_or(ReconciliationError::NotFound("suggestion"))?;
    if row.status != SuggestionStatus::Open {
        return Err(ReconciliationError::Conflict(format!(
            "suggestion {id} is {}; only open ones are decided",
            row.status
        )));
    }
    Ok(row)
}

/// Accepts an open suggestion: its match is made (checked afresh, as a person's: a 409 when the
/// invoice was paid meanwhile), and the suggestion records it.
pub async fn accept(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &SuggestionId,
    decided_by: DecidedBy,
) -> Result<(Suggestion, Match), ReconciliationError> {
    let row = open(conn, tenant, id).await?;
    let proposal = Proposal {
        new: row.proposal.0.clone(),
        origin: MatchOrigin::Suggestion,
        decided_by: decided_by.clone(),
        suggestion_id: Some(row.id.clone()),
        score: Some(row.score),
        reasons: json!(row.reasons.0),
    };
    let made = matches::create(conn, tenant, proposal).await?;
    let row: Row = sqlx::query_as(&format!(
        "update reconciliation_suggestions set status = 'accepted', decided_by = $3, decided_at = now(), match_id = $4
         where tenant_id = $1 and id = $2 returning {COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(decided_by.label())
    .bind(&made.id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.into(), made))
}

/// Rejects an open suggestion: the pair is never suggested again, nor matched automatically.
/// A transaction left without open suggestions is `unmatched` again.
pub async fn reject(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &SuggestionId,
    decided_by: DecidedBy,
) -> Result<Suggestion, ReconciliationError> {
    let row = open(conn, tenant, id).await?;
    let updated: Row = sqlx::query_as(&format!(
        "update reconciliation_suggestions set status = 'rejected', decided_by = $3, decided_at = now()
         where tenant_id = $1 and id = $2 returning {COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id.as_str())
    .bind(decided_by.label())
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "insert into reconciliation_rejections (tenant_id, transaction_id, target_key, rejected_by)
         values ($1, $2, $3, $4) on conflict do nothing",
    )
    .bind(tenant.as_str())
    .bind(&row.transaction_id)
    .bind(&row.target_key)
    .bind(decided_by.label())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "update transactions t set match_status = 'unmatched'
         where t.tenant_id = $1 and t.id = $2 and t.match_status = 'suggested'
           and not exists (select 1 from reconciliation_suggestions s
                           where s.tenant_id = t.tenant_id and s.transaction_id = t.id and s.status = 'open')",
    )
    .bind(tenant.as_str())
    .bind(&row.transaction_id)
    .execute(&mut *conn)
    .await?;
    let detail = json!({"transaction_id": row.transaction_id, "target": row.target_key, "score": row.score,
                        "reasons": row.reasons.0});
    let entry =
        decided_by.audit_entry("reconciliation.suggestion.reject", "reconciliation_suggestion", &row.id, detail);
    audit::append_in(conn, tenant, entry).await?;
    Ok(updated.into())
}
