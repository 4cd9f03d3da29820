//! Making matches, one or thousands at a time: every proposal is checked against the rows it
//! touches, locked in one order (transactions, then invoices, then payouts, each sorted by id)
//! so two writers never deadlock, and the ones that pass are written set by set.
//!
//! Two writers racing for the same transaction or invoice serialise on those row locks; the one
//! that comes second sees the first one's result and is refused. The unique index on active
//! match transactions (and on active payout allocations) holds even if a caller forgot to lock.
//!
//! Locking and writing are here; the per-proposal checks are in `check`.

use std::collections::{BTreeSet, HashMap};

use sqlx::PgConnection;

use super::{
    super::{DecidedBy, ReconciliationError},
    Match, MatchOrigin, NewMatch, TargetType,
    check::check,
    read,
};
use crate::{
    domain::{
        ids::{MatchId, TenantId},
        states::MatchStatus,
    },
    invoices::invoice::InvoiceStatus,
};

/// Most transactions, allocations and adjustments one match holds.
pub const MAX_TRANSACTIONS: usize = 100;
pub const MAX_ALLOCATIONS: usize = 500;
pub const MAX_ADJUSTMENTS: usize = 50;

/// A match to make, and who decided it on what grounds.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub new: NewMatch,
    pub origin: MatchOrigin,
    pub decided_by: DecidedBy,
    pub suggestion_id: Option<String>,
    pub score: Option<f64>,
    /// The engine's reasons, as the API shows them.
    pub reasons: serde_json::Value,
}

/// How a batch takes the invoices and payouts it pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    /// Wait for rows another writer holds (a person's request).
    Wait,
    /// Skip them (the engine): a proposal naming a skipped row is refused, never waited for.
    SkipLocked,
}

/// A transaction as a match needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct TxRow {
    pub(super) id: String,
    pub(super) amount: i64,
    pub(super) currency: String,
    pub(super) match_status: MatchStatus,
}

/// An invoice as a match needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct InvoiceRow {
    pub(super) id: String,
    pub(super) currency: String,
    pub(super) amount_total: i64,
    pub(super) amount_paid: i64,
    pub(super) status: InvoiceStatus,
}

/// A payout as a match needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct PayoutRow {
    pub(super) id: String,
    pub(super) currency: String,
    pub(super) status: String,
    pub(super) gross: Option<i64>,
    pub(super) refunds: Option<i64>,
    pub(super) adjustments: Option<i64>,
    pub(super) fees: Option<i64>,
    pub(super) matched: bool,
}

/// The rows a batch touches, locked, with what earlier proposals of the batch took.
pub(super) struct Ledger {
    pub(super) transactions: HashMap<String, TxRow>,
    pub(super) invoices: HashMap<String, InvoiceRow>,
    pub(super) payouts: HashMap<String, PayoutRow>,
}

/// Makes one match (a person's, or an accepted suggestion).
pub async fn create(
    conn: &mut PgConnection,
    tenant: &TenantId,
    proposal: Proposal,
) -> Result<Match, ReconciliationError> {
    create_many(conn, tenant, vec![proposal], Locking::Wait).await?.pop().expect("one outcome per proposal")
}

/// Makes the proposals that pass their checks, in order (a later one sees what earlier ones
/// took), and returns one outcome per proposal. The caller's transaction is bound to `tenant`;
/// a database error fails the whole batch.
pub async fn create_many(
    conn: &mut PgConnection,
    tenant: &TenantId,
    proposals: Vec<Proposal>,
    locking: Locking,
) -> Result<Vec<Result<Match, ReconciliationError>>, ReconciliationError> {
    let mut ledger = lock(conn, tenant, &proposals, locking).await?;
    let mut outcomes: Vec<Result<MatchId, ReconciliationError>> = Vec::with_capacity(proposals.len());
    let mut checked = Vec::new();
    for proposal in proposals {
        match check(&mut ledger, proposal) {
            Ok(c) => {
                outcomes.push(Ok(c.id.clone()));
                checked.push(c);
            }
            Err(error) => outcomes.push(Err(error)),
        }
    }
    super::write::write(conn, tenant, &checked).await?;
    let made: HashMap<String, Match> =
        read::load(conn, tenant, &checked.iter().map(|c| c.id.as_str().to_owned()).collect::<Vec<_>>())
            .await?
            .into_iter()
            .map(|m| (m.id.clone(), m))
            .collect();
    super::write::announce(conn, tenant, &checked, &made).await?;
    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.map(|id| made.get(id.as_str()).cloned().expect("a written match reads back")))
        .collect())
}

/// Locks every row the proposals name, in one order, and reads what the checks need.
async fn lock(
    conn: &mut PgConnection,
    tenant: &TenantId,
    proposals: &[Proposal],
    locking: Locking,
) -> Result<Ledger, sqlx::Error> {
    let skip = if locking == Locking::SkipLocked { " skip locked" } else { "" };
    let mut tx_ids = BTreeSet::new();
    let mut invoice_ids = BTreeSet::new();
    let mut payout_ids = BTreeSet::new();
    for p in proposals {
        tx_ids.extend(p.new.transaction_ids.iter().cloned());
        for a in &p.new.allocations {
            match a.target_type {
                TargetType::Invoice => invoice_ids.insert(a.target_id.clone()),
                TargetType::StripePayout => payout_ids.insert(a.target_id.clone()),
            };
        }
    }
    let tx_ids: Vec<String> = tx_ids.into_iter().collect();
    let invoice_ids: Vec<String> = invoice_ids.into_iter().collect();
    let payout_ids: Vec<String> = payout_ids.into_iter().collect();
    let transactions: Vec<TxRow> = sqlx::query_as(&format!(
        "select id, amount, currency, match_status from transactions
         where tenant_id = $1 and id = any($2) order by id for update{skip}"
    ))
    .bind(tenant.as_str())
    .bind(&tx_ids)
    .fetch_all(&mut *conn)
    .await?;
    let invoices: Vec<InvoiceRow> = sqlx::query_as(&format!(
        "select id, currency, amount_total, amount_paid, status from invoices
         where tenant_id = $1 and id = any($2) order by id for update{skip}"
    ))
    .bind(tenant.as_str())
    .bind(&invoice_ids)
    .fetch_all(&mut *conn)
    .await?;
    let payouts: Vec<PayoutRow> = sqlx::query_as(&format!(
        "select p.id, p.currency, p.status, p.gross, p.refunds, p.adjustments, p.fees,
                exists (select 1 from reconciliation_allocations a
                        where a.tenant_id = p.tenant_id and a.target_type = 'stripe_payout'
                          and a.target_id = p.id and a.active) as matched
         from stripe_payouts p where p.tenant_id = $1 and p.id = any($2) order by p.id for update of p{skip}"
    ))
    .bind(tenant.as_str())
    .bind(&payout_ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Ledger {
        transactions: transactions.into_iter().map(|t| (t.id.clone(), t)).collect(),
        invoices: invoices.into_iter().map(|i| (i.id.clone(), i)).collect(),
        payouts: payouts.into_iter().map(|p| (p.id.clone(), p)).collect(),
    })
}
