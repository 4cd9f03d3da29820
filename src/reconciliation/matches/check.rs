//! Checking one proposal of a batch against the rows `create::lock` read and locked: its shape,
//! each transaction, invoice and payout it names, and that it balances to the cent per currency.
//! A proposal that passes takes its rows in the `Ledger`, so a later proposal of the batch
//! cannot take them again.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    super::ReconciliationError,
    Adjustment, AdjustmentKind, Allocation, MatchTransaction, NewMatch, TargetType,
    create::{Ledger, MAX_ADJUSTMENTS, MAX_ALLOCATIONS, MAX_TRANSACTIONS, Proposal},
};
use crate::{
    domain::{
        ids::MatchId,
        money::{Currency, format_minor_units},
        states::MatchStatus,
        validation::FieldError,
    },
    invoices::invoice::InvoiceStatus,
};

/// A proposal that passed its checks, completed (default amounts and payout adjustments filled in).
pub(super) struct Checked {
    pub(super) id: MatchId,
    pub(super) proposal: Proposal,
    pub(super) transactions: Vec<MatchTransaction>,
    pub(super) allocations: Vec<Allocation>,
    pub(super) adjustments: Vec<Adjustment>,
}

/// Checks a proposal against the ledger and, when it passes, takes its rows in the ledger so a
/// later proposal of the batch cannot take them again.
pub(super) fn check(ledger: &mut Ledger, proposal: Proposal) -> Result<Checked, ReconciliationError> {
    let new = &proposal.new;
    let mut errors = Vec::new();
    shape(new, &mut errors);
    if !errors.is_empty() {
        return Err(ReconciliationError::Invalid(errors));
    }

    let mut transactions = Vec::with_capacity(new.transaction_ids.len());
    for (i, id) in new.transaction_ids.iter().enumerate() {
        let field = format!("transaction_ids[{i}]");
        let Some(t) = ledger.transactions.get(id) else {
            errors.push(FieldError::new(field, "is not one of this tenant's transactions"));
            continue;
        };
        if t.amount <= 0 {
            errors.push(FieldError::new(field, "is a debit; only credits are matched (exclude debits instead)"));
        } else if t.match_status == MatchStatus::Matched {
            return Err(ReconciliationError::Conflict(format!(
                "transaction {id} is already matched; unmatch it first (DELETE /reconciliation/matches/{{id}})"
            )));
        } else if t.match_status == MatchStatus::Excluded {
            return Err(ReconciliationError::Conflict(format!(
                "transaction {id} is excluded from reconciliation; include it first (POST /transactions/{id}/include)"
            )));
        }
        transactions.push(MatchTransaction {
            transaction_id: id.clone(),
            amount: t.amount,
            currency: t.currency.clone(),
        });
    }
    if !errors.is_empty() {
        return Err(ReconciliationError::Invalid(errors));
    }
    let single_currency = {
        let set: BTreeSet<&str> = transactions.iter().map(|t| t.currency.as_str()).collect();
        (set.len() == 1).then(|| set.into_iter().next().unwrap_or_default().to_owned())
    };

    let mut allocations = Vec::with_capacity(new.allocations.len());
    let mut adjustments: Vec<Adjustment> = Vec::new();
    let mut invoice_paid: BTreeMap<&str, i64> = BTreeMap::new();
    let mut payout_gross: BTreeMap<&str, i64> = BTreeMap::new();
    let wants_payout_adjustments = !new.adjustments.iter().any(|a| {
        matches!(a.kind, AdjustmentKind::StripeFee | AdjustmentKind::StripeRefund | AdjustmentKind::StripeAdjustment)
    });
    for (i, a) in new.allocations.iter().enumerate() {
        let field = format!("allocations[{i}].target_id");
        match a.target_type {
            TargetType::Invoice => {
                let Some(inv) = ledger.invoices.get(&a.target_id) else {
                    errors.push(FieldError::new(field, "is not one of this tenant's invoices"));
                    continue;
                };
                if !matches!(inv.status, InvoiceStatus::Open | InvoiceStatus::PartiallyPaid) {
                    return Err(ReconciliationError::Conflict(format!(
                        "invoice {} is {}; only open and partially paid invoices can be paid",
                        inv.id, inv.status
                    )));
                }
                let already = invoice_paid.get(a.target_id.as_str()).copied().unwrap_or(0);
                let due = inv.amount_total - inv.amount_paid - already;
                let amount = a.amount.unwrap_or(due);
                if amount > due {
                    return Err(ReconciliationError::Conflict(format!(
                        "invoice {} has {} {} left to pay, less than the {} allocated; book the rest as an overpayment adjustment",
                        inv.id,
                        money(due, &inv.currency),
                        inv.currency,
                        money(amount, &inv.currency)
                    )));
                }
                if amount <= 0 {
                    errors.push(FieldError::new(format!("allocations[{i}].amount"), "must be positive"));
                    continue;
                }
                *invoice_paid.entry(a.target_id.as_str()).or_default() += amount;
                allocations.push(Allocation {
                    target_type: TargetType::Invoice,
                    target_id: a.target_id.clone(),
                    amount,
                    currency: inv.currency.clone(),
                    via_payout_id: a.via_payout_id.clone(),
                    via_payment_id: a.via_payment_id.clone(),
                });
            }
            TargetType::StripePayout => {
                let Some(p) = ledger.payouts.get(&a.target_id) else {
                    errors.push(FieldError::new(field, "is not one of this tenant's Stripe payouts"));
                    continue;
                };
                if p.status != "paid" {
                    return Err(ReconciliationError::Conflict(format!(
                        "payout {} is {}; only paid payouts arrive in the bank",
                        p.id, p.status
                    )));
                }
                if p.matched {
                    return Err(ReconciliationError::Conflict(format!("payout {} is already matched", p.id)));
                }
                let Some(gross) = p.gross else {
                    return Err(ReconciliationError::Conflict(format!(
                        "payout {}'s balance transactions have not been read yet; try again in a minute",
                        p.id
                    )));
                };
                let amount = a.amount.unwrap_or(gross);
                if amount <= 0 {
                    errors.push(FieldError::new(format!("allocations[{i}].amount"), "must be positive"));
                    continue;
                }
                payout_gross.insert(a.target_id.as_str(), amount);
                if a.amount.is_none() && wants_payout_adjustments {
                    let parts = [
                        (AdjustmentKind::StripeRefund, p.refunds.unwrap_or(0), "refunds"),
                        (AdjustmentKind::StripeAdjustment, p.adjustments.unwrap_or(0), "disputes and adjustments"),
                        (AdjustmentKind::StripeFee, -p.fees.unwrap_or(0), "fees"),
                    ];
                    for (kind, amount, what) in parts {
                        if amount != 0 {
                            adjustments.push(Adjustment {
                                kind,
                                amount,
                                currency: p.currency.clone(),
                                description: Some(format!("Stripe {what} in payout {}", p.id)),
                            });
                        }
                    }
                }
                allocations.push(Allocation {
                    target_type: TargetType::StripePayout,
                    target_id: a.target_id.clone(),
                    amount,
                    currency: p.currency.clone(),
                    via_payout_id: None,
                    via_payment_id: None,
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(ReconciliationError::Invalid(errors));
    }
    // An invoice paid through a payout's charge: that payout is in this match, and what its
    // charges pay never exceeds its gross.
    let mut through: BTreeMap<&str, i64> = BTreeMap::new();
    for (i, a) in allocations.iter().enumerate() {
        let Some(payout) = &a.via_payout_id else { continue };
        match payout_gross.get(payout.as_str()) {
            Some(_) => *through.entry(payout.as_str()).or_default() += a.amount,
            None => errors.push(FieldError::new(
                format!("allocations[{i}].via_payout_id"),
                "must be a Stripe payout allocated in this match",
            )),
        }
    }
    for (payout, paid) in &through {
        if *paid > payout_gross[payout] {
            errors.push(FieldError::new(
                "allocations",
                format!("invoices paid through payout {payout} add up to more than its gross"),
            ));
        }
    }

    for (i, a) in new.adjustments.iter().enumerate() {
        let currency = match (&a.currency, &single_currency) {
            (Some(c), _) => match Currency::parse(c).filter(Currency::is_iso4217) {
                Some(c) => c.as_str().to_owned(),
                None => {
                    errors.push(FieldError::new(format!("adjustments[{i}].currency"), "must be an ISO 4217 code"));
                    continue;
                }
            },
            (None, Some(c)) => c.clone(),
            (None, None) => {
                errors.push(FieldError::new(
                    format!("adjustments[{i}].currency"),
                    "is required when the transactions are in more than one currency",
                ));
                continue;
            }
        };
        adjustments.push(Adjustment { kind: a.kind, amount: a.amount, currency, description: a.description.clone() });
    }
    if !errors.is_empty() {
        return Err(ReconciliationError::Invalid(errors));
    }
    balance(&transactions, &allocations, &adjustments)?;

    for t in &transactions {
        if let Some(row) = ledger.transactions.get_mut(&t.transaction_id) {
            row.match_status = MatchStatus::Matched;
        }
    }
    for (id, paid) in invoice_paid {
        if let Some(row) = ledger.invoices.get_mut(id) {
            row.amount_paid += paid;
            row.status =
                if row.amount_paid >= row.amount_total { InvoiceStatus::Paid } else { InvoiceStatus::PartiallyPaid };
        }
    }
    for id in payout_gross.keys() {
        if let Some(row) = ledger.payouts.get_mut(*id) {
            row.matched = true;
        }
    }
    Ok(Checked { id: MatchId::generate(), proposal, transactions, allocations, adjustments })
}

/// The checks that need no rows: sizes, duplicates, signs, lengths.
fn shape(new: &NewMatch, errors: &mut Vec<FieldError>) {
    if new.transaction_ids.is_empty() || new.transaction_ids.len() > MAX_TRANSACTIONS {
        errors.push(FieldError::new("transaction_ids", format!("must hold 1 to {MAX_TRANSACTIONS} transactions")));
    }
    let distinct: BTreeSet<&String> = new.transaction_ids.iter().collect();
    if distinct.len() != new.transaction_ids.len() {
        errors.push(FieldError::new("transaction_ids", "names a transaction twice"));
    }
    if new.allocations.is_empty() || new.allocations.len() > MAX_ALLOCATIONS {
        errors.push(FieldError::new("allocations", format!("must hold 1 to {MAX_ALLOCATIONS} allocations")));
    }
    if new.adjustments.len() > MAX_ADJUSTMENTS {
        errors.push(FieldError::new("adjustments", format!("must hold at most {MAX_ADJUSTMENTS} adjustments")));
    }
    let mut payouts = BTreeSet::new();
    for (i, a) in new.allocations.iter().enumerate() {
        if a.amount.is_some_and(|amount| amount <= 0) {
            errors.push(FieldError::new(format!("allocations[{i}].amount"), "must be positive"));
        }
        if a.target_type == TargetType::StripePayout && !payouts.insert(&a.target_id) {
            errors.push(FieldError::new(format!("allocations[{i}].target_id"), "names the payout twice"));
        }
        if a.target_type == TargetType::StripePayout && (a.via_payout_id.is_some() || a.via_payment_id.is_some()) {
            errors.push(FieldError::new(format!("allocations[{i}].via_payout_id"), "applies to invoices only"));
        }
    }
    for (i, a) in new.adjustments.iter().enumerate() {
        if a.amount == 0 {
            errors.push(FieldError::new(format!("adjustments[{i}].amount"), "must not be zero"));
        }
        if a.description.as_ref().is_some_and(|d| d.chars().count() > 500) {
            errors.push(FieldError::new(format!("adjustments[{i}].description"), "must be at most 500 characters"));
        }
    }
    if new.note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        errors.push(FieldError::new("note", "must be at most 2000 characters"));
    }
    crate::domain::metadata::check(new.metadata.clone(), errors);
}

/// Σ transactions = Σ direct allocations + Σ adjustments, per currency, to the cent.
fn balance(
    transactions: &[MatchTransaction],
    allocations: &[Allocation],
    adjustments: &[Adjustment],
) -> Result<(), ReconciliationError> {
    let mut sums: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for t in transactions {
        sums.entry(&t.currency).or_default().0 += t.amount;
    }
    for a in allocations.iter().filter(|a| a.via_payout_id.is_none()) {
        sums.entry(&a.currency).or_default().1 += a.amount;
    }
    for a in adjustments {
        sums.entry(&a.currency).or_default().2 += a.amount;
    }
    let unbalanced: Vec<String> = sums
        .iter()
        .filter(|(_, (t, a, j))| t != &(a + j))
        .map(|(c, (t, a, j))| {
            format!(
                "{c}: transactions {} ≠ allocations {} + adjustments {} (difference {})",
                money(*t, c),
                money(*a, c),
                money(*j, c),
                money(t - a - j, c)
            )
        })
        .collect();
    if unbalanced.is_empty() {
        return Ok(());
    }
    Err(ReconciliationError::Invalid(vec![FieldError::new(
        "allocations",
        format!("the match does not balance; book the difference as an adjustment: {}", unbalanced.join("; ")),
    )]))
}

/// Minor units in major units with the currency's decimals.
fn money(minor: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Some(c) => format_minor_units(minor, c),
        None => minor.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(amount: i64) -> MatchTransaction {
        MatchTransaction { transaction_id: "txn_a".into(), amount, currency: "GBP".into() }
    }

    fn alloc(amount: i64, via: Option<&str>) -> Allocation {
        Allocation {
            target_type: TargetType::Invoice,
            target_id: "inv_a".into(),
            amount,
            currency: "GBP".into(),
            via_payout_id: via.map(str::to_owned),
            via_payment_id: None,
        }
    }

    fn adj(kind: AdjustmentKind, amount: i64) -> Adjustment {
        Adjustment { kind, amount, currency: "GBP".into(), description: None }
    }

    #[test]
    fn a_match_balances_to_the_cent_or_is_refused() {
        assert!(balance(&[tx(1000)], &[alloc(1000, None)], &[]).is_ok());
        assert!(balance(&[tx(980)], &[alloc(1000, None)], &[adj(AdjustmentKind::BankCharge, -20)]).is_ok());
        assert!(balance(&[tx(1100)], &[alloc(1000, None)], &[adj(AdjustmentKind::Overpayment, 100)]).is_ok());
        let Err(ReconciliationError::Invalid(errors)) = balance(&[tx(999)], &[alloc(1000, None)], &[]) else {
            panic!("one cent off is refused")
        };
        assert!(errors[0].message.contains("GBP: transactions 9.99 ≠ allocations 10.00"), "{}", errors[0].message);
        assert!(errors[0].message.contains("difference -0.01"), "{}", errors[0].message);
    }

    #[test]
    fn invoices_paid_through_a_payout_are_not_counted_twice() {
        let payout =
            Allocation { target_type: TargetType::StripePayout, target_id: "po_1".into(), ..alloc(10_000, None) };
        let through = alloc(6_000, Some("po_1"));
        let fees = adj(AdjustmentKind::StripeFee, -464);
        assert!(balance(&[tx(9_536)], &[payout, through], &[fees]).is_ok());
    }

    #[test]
    fn each_currency_balances_on_its_own() {
        let eur = MatchTransaction { currency: "EUR".into(), ..tx(500) };
        let eur_alloc = Allocation { currency: "EUR".into(), ..alloc(400, None) };
        assert!(balance(&[tx(1000), eur.clone()], &[alloc(1000, None), eur_alloc.clone()], &[]).is_err());
        let fx = Adjustment { currency: "EUR".into(), ..adj(AdjustmentKind::FxDifference, 100) };
        assert!(balance(&[tx(1000), eur], &[alloc(1000, None), eur_alloc], &[fx]).is_ok());
    }
}
