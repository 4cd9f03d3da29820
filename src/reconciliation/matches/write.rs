//! Writing checked matches set by set (one statement per table for the whole batch), marking
//! their transactions matched, paying their invoices, and announcing them: `transaction.matched`
//! and the audit entry of each decision.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;
use sqlx::PgConnection;

use super::{Match, MatchOrigin, TargetType, check::Checked};
use crate::{audit, domain::ids::TenantId, events, invoices::payments};

/// Writes the checked matches set by set, marks their transactions matched, and pays the invoices.
pub(super) async fn write(conn: &mut PgConnection, tenant: &TenantId, checked: &[Checked]) -> Result<(), sqlx::Error> {
    if checked.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = checked.iter().map(|c| c.id.as_str()).collect();
    let origins: Vec<&str> = checked.iter().map(|c| c.proposal.origin.as_str()).collect();
    let by: Vec<String> = checked.iter().map(|c| c.proposal.decided_by.label()).collect();
    let suggestions: Vec<Option<&str>> = checked.iter().map(|c| c.proposal.suggestion_id.as_deref()).collect();
    let scores: Vec<Option<f64>> = checked.iter().map(|c| c.proposal.score).collect();
    let reasons: Vec<&serde_json::Value> = checked.iter().map(|c| &c.proposal.reasons).collect();
    let notes: Vec<Option<&str>> = checked.iter().map(|c| c.proposal.new.note.as_deref()).collect();
    let metadata: Vec<serde_json::Value> = checked.iter().map(|c| json!(c.proposal.new.metadata)).collect();
    sqlx::query(
        "insert into reconciliation_matches (tenant_id, id, origin, created_by, suggestion_id, score, reasons, note, metadata)
         select $1, m.id, m.origin, m.created_by, m.suggestion_id, m.score::numeric(5, 4), m.reasons, m.note, m.metadata
         from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::jsonb[], $8::text[], $9::jsonb[])
             as m(id, origin, created_by, suggestion_id, score, reasons, note, metadata)",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&origins)
    .bind(&by)
    .bind(&suggestions)
    .bind(&scores)
    .bind(&reasons)
    .bind(&notes)
    .bind(&metadata)
    .execute(&mut *conn)
    .await?;

    let (mut m, mut t, mut amounts, mut currencies) = (vec![], vec![], vec![], vec![]);
    for c in checked {
        for x in &c.transactions {
            m.push(c.id.as_str());
            t.push(x.transaction_id.as_str());
            amounts.push(x.amount);
            currencies.push(x.currency.as_str());
        }
    }
    sqlx::query(
        "insert into reconciliation_match_transactions (tenant_id, match_id, transaction_id, amount, currency)
         select $1, * from unnest($2::text[], $3::text[], $4::int8[], $5::text[])",
    )
    .bind(tenant.as_str())
    .bind(&m)
    .bind(&t)
    .bind(&amounts)
    .bind(&currencies)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "update transactions set match_status = 'matched', reconcile_pending = false
         where tenant_id = $1 and id = any($2)",
    )
    .bind(tenant.as_str())
    .bind(&t)
    .execute(&mut *conn)
    .await?;
    // Whatever was still suggested for these transactions is moot now.
    crate::reconciliation::suggestions::supersede(conn, tenant, &t).await?;

    let (mut m, mut pos, mut types, mut targets, mut amounts, mut currencies, mut via_payouts, mut via_payments) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut deltas: BTreeMap<String, i64> = BTreeMap::new();
    for c in checked {
        for (i, a) in c.allocations.iter().enumerate() {
            m.push(c.id.as_str());
            pos.push(i as i32);
            types.push(a.target_type.as_str());
            targets.push(a.target_id.as_str());
            amounts.push(a.amount);
            currencies.push(a.currency.as_str());
            via_payouts.push(a.via_payout_id.as_deref());
            via_payments.push(a.via_payment_id.as_deref());
            if a.target_type == TargetType::Invoice {
                *deltas.entry(a.target_id.clone()).or_default() += a.amount;
            }
        }
    }
    sqlx::query(
        "insert into reconciliation_allocations (tenant_id, match_id, position, target_type, target_id, amount,
                                                 currency, via_payout_id, via_payment_id)
         select $1, * from unnest($2::text[], $3::int4[], $4::text[], $5::text[], $6::int8[], $7::text[],
                                  $8::text[], $9::text[])",
    )
    .bind(tenant.as_str())
    .bind(&m)
    .bind(&pos)
    .bind(&types)
    .bind(&targets)
    .bind(&amounts)
    .bind(&currencies)
    .bind(&via_payouts)
    .bind(&via_payments)
    .execute(&mut *conn)
    .await?;

    let (mut m, mut pos, mut kinds, mut amounts, mut currencies, mut descriptions) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for c in checked {
        for (i, a) in c.adjustments.iter().enumerate() {
            m.push(c.id.as_str());
            pos.push(i as i32);
            kinds.push(a.kind.as_str());
            amounts.push(a.amount);
            currencies.push(a.currency.as_str());
            descriptions.push(a.description.as_deref());
        }
    }
    if !m.is_empty() {
        sqlx::query(
            "insert into reconciliation_adjustments (tenant_id, match_id, position, kind, amount, currency, description)
             select $1, * from unnest($2::text[], $3::int4[], $4::text[], $5::int8[], $6::text[], $7::text[])",
        )
        .bind(tenant.as_str())
        .bind(&m)
        .bind(&pos)
        .bind(&kinds)
        .bind(&amounts)
        .bind(&currencies)
        .bind(&descriptions)
        .execute(&mut *conn)
        .await?;
    }
    payments::apply(conn, tenant, &deltas).await?;
    Ok(())
}

/// `transaction.matched` per match, and the audit entry of each decision with its reasons.
pub(super) async fn announce(
    conn: &mut PgConnection,
    tenant: &TenantId,
    checked: &[Checked],
    made: &HashMap<String, Match>,
) -> Result<(), sqlx::Error> {
    let matches: Vec<&Match> = checked.iter().filter_map(|c| made.get(c.id.as_str())).collect();
    let payloads = matches.iter().map(events::payload).collect::<Result<Vec<_>, _>>()?;
    events::record_many(conn, tenant, "transaction.matched", payloads).await?;
    let entries = checked
        .iter()
        .map(|c| {
            let action = match c.proposal.origin {
                MatchOrigin::Auto => "reconciliation.auto_match",
                MatchOrigin::Suggestion => "reconciliation.suggestion.accept",
                MatchOrigin::Manual => "reconciliation.match.create",
            };
            let detail = json!({
                "origin": c.proposal.origin,
                "suggestion_id": c.proposal.suggestion_id,
                "score": c.proposal.score,
                "reasons": c.proposal.reasons,
                "transactions": c.transactions,
                "allocations": c.allocations,
                "adjustments": c.adjustments,
            });
            c.proposal.decided_by.audit_entry(action, "reconciliation_match", c.id.as_str(), detail)
        })
        .collect();
    audit::append_many_in(conn, tenant, entries).await
}
