//! The match a candidate would make: how a credit's amount is allocated to the invoices it pays
//! (in order of due date, a short payment within tolerance written off, an overpayment booked),
//! or to a payout and the invoices its charges name.

use std::collections::{BTreeMap, HashMap};

use super::{
    candidates::{Credit, OpenInvoice, OpenPayout, PayoutCharge},
    pool::Pool,
};
use crate::reconciliation::{
    matches::{AdjustmentKind, NewAdjustment, NewAllocation, NewMatch, TargetType},
    scoring::Tuning,
    text,
};

/// The difference still counted as the amount: the larger of the fixed and the relative one.
pub fn tolerance(amount: i64, tuning: &Tuning) -> i64 {
    tuning.amount_tolerance.max(amount.saturating_mul(tuning.amount_tolerance_permille) / 1000)
}

/// The match a credit paying these invoices makes. The credit pays them in order of due date;
/// what it lacks is a short payment when within tolerance (else the last invoice is paid in
/// part), and what it has over is an overpayment.
pub fn invoice_proposal(credit: &Credit, invoices: &[&OpenInvoice], tuning: &Tuning) -> NewMatch {
    let mut ordered = invoices.to_vec();
    ordered.sort_by(|a, b| a.due_date.cmp(&b.due_date).then_with(|| a.id.cmp(&b.id)));
    let due: i64 = ordered.iter().map(|i| i.amount_due).sum();
    let mut allocations = Vec::new();
    let mut adjustments = Vec::new();
    let short = due - credit.amount;
    let mut left = credit.amount;
    for (k, invoice) in ordered.iter().enumerate() {
        let last = k + 1 == ordered.len();
        // Paid in full: a short payment within tolerance (written off), or an overpayment (the
        // last invoice takes its due, the rest is booked). Otherwise what is left of the credit.
        let in_full = (short > 0 && short <= tolerance(credit.amount, tuning)) || (last && short < 0);
        let amount = if in_full { invoice.amount_due } else { invoice.amount_due.min(left) };
        if amount <= 0 {
            continue;
        }
        left -= amount;
        allocations.push(allocation(TargetType::Invoice, &invoice.id, Some(amount)));
    }
    let allocated: i64 = allocations.iter().filter_map(|a| a.amount).sum();
    let difference = credit.amount - allocated;
    if difference != 0 {
        let kind = if difference > 0 { AdjustmentKind::Overpayment } else { AdjustmentKind::ShortPayment };
        adjustments.push(NewAdjustment {
            kind,
            amount: difference,
            currency: Some(credit.currency.clone()),
            description: Some(match kind {
                AdjustmentKind::Overpayment => "Paid more than was due".into(),
                _ => "Short payment within the tenant's tolerance, written off".into(),
            }),
        });
    }
    NewMatch {
        transaction_ids: vec![credit.id.clone()],
        allocations,
        adjustments,
        note: None,
        metadata: BTreeMap::new(),
    }
}

/// The match a credit that is a payout makes: the payout at its gross (its refunds, fees and
/// adjustments booked as `stripe_*` adjustments by the match), and every invoice its charges
/// name, paid through it.
pub fn payout_proposal(credit: &Credit, payout: &OpenPayout, pool: &Pool) -> NewMatch {
    let mut allocations = vec![allocation(TargetType::StripePayout, &payout.id, None)];
    let mut paid: HashMap<&str, i64> = HashMap::new();
    for charge in pool.charges.get(&payout.id).into_iter().flatten() {
        let Some(invoice) = charge_invoice(charge, pool) else { continue };
        let left = invoice.amount_due - paid.get(invoice.id.as_str()).copied().unwrap_or(0);
        let amount = charge.amount.min(left);
        if amount <= 0 || invoice.currency != payout.currency {
            continue;
        }
        *paid.entry(&invoice.id).or_default() += amount;
        allocations.push(NewAllocation {
            target_type: TargetType::Invoice,
            target_id: invoice.id.clone(),
            amount: Some(amount),
            via_payout_id: Some(payout.id.clone()),
            via_payment_id: Some(charge.id.clone()),
        });
    }
    NewMatch {
        transaction_ids: vec![credit.id.clone()],
        allocations,
        adjustments: Vec::new(),
        note: None,
        metadata: BTreeMap::new(),
    }
}

/// The open invoice a charge names: its metadata `invoice_id`, else `invoice_number`, else an
/// invoice number in its description.
fn charge_invoice<'p>(charge: &PayoutCharge, pool: &'p Pool) -> Option<&'p OpenInvoice> {
    if let Some(invoice) = charge.invoice_id.as_ref().and_then(|id| pool.invoices.get(id)) {
        return Some(invoice);
    }
    let mut keys: Vec<String> = charge.invoice_number.iter().map(|n| text::ref_key(n)).collect();
    keys.extend(charge.description.iter().flat_map(|d| text::candidate_keys(d)));
    keys.iter()
        .flat_map(|k| pool.by_key.get(k).into_iter().flatten())
        .filter_map(|id| pool.invoices.get(id))
        .find(|i| i.number_key.as_deref().is_some_and(|n| keys.iter().any(|k| k == n)))
}

fn allocation(target_type: TargetType, id: &str, amount: Option<i64>) -> NewAllocation {
    NewAllocation { target_type, target_id: id.to_owned(), amount, via_payout_id: None, via_payment_id: None }
}
