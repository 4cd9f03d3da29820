//! Writing what the engine decided for a batch: certain matches through `matches::create_many`
//! (rows another writer holds are skipped, and such a match becomes a suggestion), ranked
//! suggestions for the rest, each credit's new `match_status`, `reconciliation.suggested` when
//! what a credit is suggested changed, and `transaction.needs_review` the first time a credit is
//! left for a person.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;
use sqlx::PgConnection;

use super::{
    Counts,
    candidates::Credit,
    evaluate::{Candidate, Verdict},
};
use crate::{
    bank::model::{TRANSACTION_COLUMNS, Transaction},
    domain::ids::TenantId,
    events,
    reconciliation::{
        DecidedBy, ReconciliationError,
        matches::{self, Locking, MatchOrigin, Proposal},
        suggestions::{self, NewSuggestion},
    },
};

/// Writes the verdicts of a batch of claimed credits.
pub async fn write(
    conn: &mut PgConnection,
    tenant: &TenantId,
    verdicts: Vec<(Credit, Verdict)>,
) -> Result<Counts, ReconciliationError> {
    let mut counts = Counts { examined: verdicts.len() as u64, ..Counts::default() };
    let mut autos: Vec<(String, Candidate)> = Vec::new();
    let mut suggested: HashMap<String, Vec<Candidate>> = HashMap::new();
    let mut nothing: Vec<String> = Vec::new();
    for (credit, verdict) in verdicts {
        match verdict {
            Verdict::Auto(candidate) => autos.push((credit.id, candidate)),
            Verdict::Suggest(candidates) => {
                suggested.insert(credit.id, candidates);
            }
            Verdict::Nothing => nothing.push(credit.id),
        }
    }

    let proposals = autos
        .iter()
        .map(|(_, c)| Proposal {
            new: c.proposal.clone(),
            origin: MatchOrigin::Auto,
            decided_by: DecidedBy::Engine,
            suggestion_id: None,
            score: Some(c.scored.score),
            reasons: json!(c.scored.reasons),
        })
        .collect();
    let outcomes = matches::create_many(conn, tenant, proposals, Locking::SkipLocked).await?;
    for ((credit, candidate), outcome) in autos.into_iter().zip(outcomes) {
        match outcome {
            Ok(_) => counts.auto_matched += 1,
            // Paid or taken meanwhile, or held by a person's request: a person decides.
            Err(_) => {
                suggested.insert(credit, vec![candidate]);
            }
        }
    }

    let open: Vec<String> = suggested.keys().chain(&nothing).cloned().collect();
    let before: HashMap<String, BTreeSet<String>> = {
        let mut by: HashMap<String, BTreeSet<String>> = HashMap::new();
        for s in suggestions::open_for(conn, tenant, &open).await? {
            by.entry(s.transaction_id.clone()).or_default().insert(target_key(&s.target_type, &s.target_ids));
        }
        by
    };
    suggestions::supersede(conn, tenant, &open).await?;
    let mut new = Vec::new();
    let mut changed = Vec::new();
    for (credit, candidates) in &suggested {
        let keys: BTreeSet<String> = candidates.iter().map(|c| c.scored.target.key()).collect();
        if before.get(credit) != Some(&keys) {
            changed.push(credit.clone());
        }
        for (rank, c) in candidates.iter().enumerate() {
            new.push(NewSuggestion {
                transaction_id: credit.clone(),
                target_key: c.scored.target.key(),
                rank: rank as i32 + 1,
                score: c.scored.score,
                reasons: c.scored.reasons.clone(),
                proposal: c.proposal.clone(),
            });
        }
    }
    suggestions::insert(conn, tenant, new).await?;
    let suggested_ids: Vec<&String> = suggested.keys().collect();
    counts.suggested = suggested_ids.len() as u64;
    counts.unmatched = nothing.len() as u64;
    sqlx::query(
        "update transactions set match_status = case when id = any($2) then 'suggested' else 'unmatched' end,
             reconcile_pending = false
         where tenant_id = $1 and (id = any($2) or id = any($3)) and match_status in ('unmatched', 'suggested')",
    )
    .bind(tenant.as_str())
    .bind(&suggested_ids)
    .bind(&nothing)
    .execute(&mut *conn)
    .await?;

    let needing_review = request_review(conn, tenant, &open).await?;

    if changed.is_empty() && needing_review.is_empty() {
        return Ok(counts);
    }
    let announced: Vec<String> = changed.iter().chain(needing_review.iter().map(|t| &t.id)).cloned().collect();
    let mut by: HashMap<String, Vec<suggestions::Suggestion>> = HashMap::new();
    for s in suggestions::open_for(conn, tenant, &announced).await? {
        by.entry(s.transaction_id.clone()).or_default().push(s);
    }
    let payloads = needing_review
        .into_iter()
        .map(|transaction| {
            let open_suggestions = by.get(&transaction.id).cloned().unwrap_or_default();
            let mut data = events::payload(transaction)?;
            data["suggestions"] = events::payload(open_suggestions)?;
            Ok(data)
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    events::record_many(conn, tenant, "transaction.needs_review", payloads).await?;
    changed.sort();
    let payloads =
        changed.iter().map(|t| json!({"transaction_id": t, "suggestions": by.remove(t).unwrap_or_default()})).collect();
    events::record_many(conn, tenant, "reconciliation.suggested", payloads).await?;
    Ok(counts)
}

/// Excludes credits a rule excludes: `(transaction id, rule name)`.
pub async fn exclude(
    conn: &mut PgConnection,
    tenant: &TenantId,
    excluded: &[(String, String)],
) -> Result<u64, ReconciliationError> {
    if excluded.is_empty() {
        return Ok(0);
    }
    let (ids, reasons): (Vec<&str>, Vec<String>) =
        excluded.iter().map(|(id, rule)| (id.as_str(), format!("excluded by the rule \"{rule}\""))).unzip();
    sqlx::query(
        "update transactions t set match_status = 'excluded', excluded_reason = e.reason, excluded_by = 'engine',
             reconcile_pending = false
         from unnest($2::text[], $3::text[]) as e(id, reason)
         where t.tenant_id = $1 and t.id = e.id",
    )
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&reasons)
    .execute(&mut *conn)
    .await?;
    suggestions::supersede(conn, tenant, &ids).await?;
    Ok(excluded.len() as u64)
}

/// Marks the credits among `left` (just left `suggested` or `unmatched`) that were never left for
/// a person before, in one statement for the batch, and returns them as the API shows them: each
/// is announced with `transaction.needs_review` once in its life. `review_requested_at` is never
/// cleared, so looking again (an invoice upsert, a run) announces nothing, nor does a person
/// unmatching a credit that was left for review before. (One the engine matched at once has none:
/// if a person unmatches it and the engine then leaves it, that is its first time.)
async fn request_review(
    conn: &mut PgConnection,
    tenant: &TenantId,
    left: &[String],
) -> Result<Vec<Transaction>, sqlx::Error> {
    if left.is_empty() {
        return Ok(Vec::new());
    }
    let mut marked: Vec<Transaction> = sqlx::query_as(&format!(
        "update transactions set review_requested_at = now()
         where tenant_id = $1 and id = any($2) and match_status in ('unmatched', 'suggested')
           and review_requested_at is null
         returning {TRANSACTION_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(left)
    .fetch_all(conn)
    .await?;
    marked.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(marked)
}

fn target_key(kind: &str, ids: &[String]) -> String {
    format!("{kind}:{}", ids.join(","))
}
