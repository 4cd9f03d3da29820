//! Scoring a bank credit against a set of one customer's open invoices it pays together.

use super::evidence::{
    DATE, ONE_EDIT, REFERENCE, RF_REFERENCE, Referenced, add_amount, add_customer, date_fit, referenced, tolerance,
};
use super::invoice::quotes_exactly_seen;
use super::subset::sole_set_with;
use super::{CustomerFacts, InvoiceFacts, Scorecard, Scored, Signal, Target, Tuning, TxFacts, same_currency, seen};
use crate::reconciliation::text::ref_key;

/// The most invoices one credit is taken to pay together: beyond it chance sums abound and the
/// subset search grows.
pub const MAX_SET: usize = 6;

/// Scores 2 to [`MAX_SET`] open invoices of one known customer whose amounts due sum to the
/// credit within tolerance (found with `subset_sums`): one credit paying several invoices. The
/// reference strength is the share of the invoices the text refers to, and the set is strong
/// from references only when it refers to every one of them exactly. None when the invoices are
/// not one customer's, repeat, differ in currency, or do not sum to the credit.
pub fn score_invoice_set(
    tx: &TxFacts,
    invoices: &[&InvoiceFacts],
    customer: Option<&CustomerFacts>,
    tuning: &Tuning,
) -> Option<Scored> {
    score_set(tx, invoices, customer, false, tuning)
}

/// The only set of one customer's open invoices that the credit can pay and that holds an
/// invoice the text quotes exactly, scored: strong from that quote even when the text names only
/// some of the set's invoices ("INV-0104, INV-0105 ETC"), as no other set can be meant.
///
/// `open` must be *all* the customer's open invoices (the caller knows no cap cut them), and the
/// text must quote no open invoice outside them. The set is the one when exactly one set of 2 to
/// [`MAX_SET`] of them sums to the credit within tolerance and holds a quoted invoice, and it sums
/// to the credit exactly and holds every quoted one. Returns its indexes into `open` and its
/// score; None when there is no such set, or it scores below the suggest threshold.
pub fn score_sole_quoted_set(
    tx: &TxFacts,
    open: &[InvoiceFacts],
    customer: Option<&CustomerFacts>,
    tuning: &Tuning,
) -> Option<(Vec<usize>, Scored)> {
    let first = open.first()?;
    let one_customer = first.customer_id.is_some() && open.iter().all(|i| i.customer_id == first.customer_id);
    if tx.amount <= 0 || !one_customer || !tuning.signals.is_on(Signal::Amount) {
        return None;
    }
    let payable = |i: &InvoiceFacts| i.amount_due > 0 && same_currency(i.currency, tx.currency);
    let amounts: Vec<i64> = open.iter().map(|i| if payable(i) { i.amount_due } else { 0 }).collect();
    let mut slot = None;
    let seen = seen(tx, &mut slot);
    let quoted: Vec<usize> = (0..open.len()).filter(|&k| quotes_exactly_seen(seen, &open[k])).collect();
    let set = sole_set_with(tx.amount, &amounts, tolerance(tx.amount, tuning), &quoted)?;
    let sum = set.iter().try_fold(0_i64, |sum, &k| sum.checked_add(amounts[k]))?;
    if sum != tx.amount || !quoted.iter().all(|k| set.contains(k)) {
        return None;
    }
    let invoices: Vec<&InvoiceFacts> = set.iter().map(|&k| &open[k]).collect();
    let scored = score_set(tx, &invoices, customer, true, tuning)?;
    Some((set, scored))
}

/// A set's score; `sole`: no other set of the customer's open invoices can be meant.
fn score_set(
    tx: &TxFacts,
    invoices: &[&InvoiceFacts],
    customer: Option<&CustomerFacts>,
    sole: bool,
    tuning: &Tuning,
) -> Option<Scored> {
    let first = invoices.first()?;
    let fits = |i: &&InvoiceFacts| {
        i.customer_id == first.customer_id && i.amount_due > 0 && same_currency(i.currency, tx.currency)
    };
    let mut ids: Vec<String> = invoices.iter().map(|i| i.id.to_owned()).collect();
    ids.sort();
    ids.dedup();
    let due = invoices.iter().try_fold(0_i64, |sum, i| sum.checked_add(i.amount_due))?;
    if !(2..=MAX_SET).contains(&invoices.len())
        || ids.len() != invoices.len()
        || tx.amount <= 0
        || first.customer_id.is_none()
        || !invoices.iter().all(fits)
        || tx.amount.abs_diff(due) > tolerance(due, tuning).unsigned_abs()
    {
        return None;
    }
    let mut slot = None;
    let seen = seen(tx, &mut slot);
    let mut card = Scorecard::default();
    let keys: Vec<String> =
        invoices.iter().flat_map(|i| std::iter::once(i.number).chain(i.payment_reference)).map(ref_key).collect();
    let hits = invoices.iter().map(|i| referenced(&seen.text, &seen.rfs, i, &keys, tuning)).collect();
    add_set_references(&mut card, hits, sole);
    add_customer(&mut card, tx, first.customer_id, customer, tuning);
    add_amount(&mut card, tx.amount, due, tx.currency, invoices.len(), tuning);
    if tuning.signals.is_on(Signal::Date) {
        add_set_date(&mut card, tx, invoices, tuning);
    }
    card.finish(Target::Invoices(ids), tuning)
}

/// One reason for the references a set's invoices have in the text: strong when they are all
/// quoted, or when some are and the set is the `sole` one that can be meant.
fn add_set_references(card: &mut Scorecard, hits: Vec<Referenced>, sole: bool) {
    let count = hits.len();
    let (mut found, mut near, mut by_rf) = (Vec::new(), Vec::new(), 0);
    for hit in hits {
        match hit {
            Referenced::Rf(rf) => {
                by_rf += 1;
                found.push(rf);
            }
            Referenced::Exact(reference) => found.push(reference),
            Referenced::OneEdit { found: key, shown } | Referenced::OneEditOnly { found: key, shown, .. } => {
                near.push(format!("{key} differs by one character from {shown}"));
            }
            Referenced::Not => {}
        }
    }
    if found.is_empty() && near.is_empty() {
        return;
    }
    let strength = (found.len() as f64 + ONE_EDIT * near.len() as f64) / count as f64;
    let only_rf = by_rf == found.len() && near.is_empty();
    let (signal, weight) = if only_rf { (Signal::RfReference, RF_REFERENCE) } else { (Signal::Reference, REFERENCE) };
    let mut parts = Vec::with_capacity(near.len() + 1);
    if !found.is_empty() {
        let (list, n) = (found.join(", "), found.len());
        parts.push(format!("references {list} found in the remittance text ({n} of the {count} invoices)"));
    }
    parts.extend(near);
    let sole = sole && !found.is_empty();
    if sole && found.len() < count {
        parts.push("no other set of the customer's open invoices pays the credit with a quoted one".into());
    }
    let detail = parts.join("; ");
    if found.len() == count || sole {
        card.add_strong(signal, strength, weight, detail);
    } else {
        card.add(signal, strength, weight, detail);
    }
}

/// One reason for how the payment date fits the set's invoices: against if it came before any
/// of them was issued, else their mean fit.
fn add_set_date(card: &mut Scorecard, tx: &TxFacts, invoices: &[&InvoiceFacts], tuning: &Tuning) {
    let fits: Vec<_> = invoices
        .iter()
        .filter_map(|i| date_fit(tx.date, i.issue_date, i.due_date, tuning).map(|fit| (fit, i.number)))
        .collect();
    if let Some(((strength, weight, detail), number)) = fits.iter().find(|((_, weight, _), _)| *weight < 0.0) {
        card.add(Signal::Date, *strength, *weight, format!("{number}: {detail}"));
        return;
    }
    let Some(((_, _, detail), number)) = fits.iter().min_by(|a, b| a.0.0.total_cmp(&b.0.0)) else { return };
    let n = fits.len();
    let mean = fits.iter().map(|((strength, _, _), _)| strength).sum::<f64>() / n as f64;
    let detail = if mean >= 1.0 {
        format!("paid within the terms of all {n} invoices")
    } else {
        format!("dates fit the {n} invoices {mean:.2} on average (least: {number}, {detail})")
    };
    card.add(Signal::Date, mean, DATE, detail);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciliation::scoring::properties::{acme, day, invoice, tx};
    use crate::reconciliation::scoring::score_invoice;

    fn pair<'a>() -> [InvoiceFacts<'a>; 2] {
        [invoice("inv_b", "INV-2026-0105", 30_000), invoice("inv_a", "INV-2026-0104", 20_000)]
    }

    #[test]
    fn a_set_referenced_in_full_is_strong() {
        let tuning = Tuning::default();
        let [b, a] = pair();
        let tx = tx("INV-2026-0104 + INV-2026-0105", 50_000);
        let scored = score_invoice_set(&tx, &[&b, &a], None, &tuning).unwrap();
        assert_eq!(scored.target.key(), "invoices:inv_a,inv_b");
        assert!(scored.strong && scored.score >= 0.9, "{scored:?}");
        let details: Vec<&str> = scored.reasons.iter().map(|r| r.detail.as_str()).collect();
        assert_eq!(
            details,
            [
                "references INV-2026-0105, INV-2026-0104 found in the remittance text (2 of the 2 invoices)",
                "the 2 invoices' amounts due sum to the credit (500.00 GBP)",
                "paid within the terms of all 2 invoices",
            ]
        );
        assert_eq!(scored.reasons[1].strength, 0.95, "a set is a little less sure than one invoice");
    }

    #[test]
    fn a_set_referenced_in_part_is_suggested_not_proved() {
        let tuning = Tuning::default();
        let [b, a] = pair();
        let scored = score_invoice_set(&tx("INV-2026-0104 INV20260106", 50_000), &[&a, &b], None, &tuning).unwrap();
        assert!(!scored.strong);
        assert_eq!(scored.reasons[0].strength, 0.75);
        let detail = "references INV-2026-0104 found in the remittance text (1 of the 2 invoices); \
                      INV20260106 differs by one character from INV-2026-0105";
        assert_eq!(scored.reasons[0].detail, detail);
    }

    /// A's number quoted, A and B paying 500.00, C too large to be in a set.
    fn quoted_in_part<'a>() -> (TxFacts<'a>, Vec<InvoiceFacts<'a>>) {
        let mut tx = tx("PAYMENT INV-2026-0104 ETC", 50_000);
        tx.counterparty_name = Some("ACME WIDGETS LTD");
        let open = vec![
            invoice("inv_a", "INV-2026-0104", 30_000),
            invoice("inv_b", "INV-2026-0105", 20_000),
            invoice("inv_c", "INV-2026-0300", 70_000),
        ];
        (tx, open)
    }

    fn sole(tx: &TxFacts, open: &[InvoiceFacts], tuning: &Tuning) -> Option<Vec<usize>> {
        score_sole_quoted_set(tx, open, Some(&acme(&[], &[])), tuning).map(|(set, _)| set)
    }

    #[test]
    fn the_only_set_holding_a_quoted_invoice_is_strong_though_quoted_in_part() {
        let tuning = Tuning::default();
        let (tx, open) = quoted_in_part();
        let (set, scored) = score_sole_quoted_set(&tx, &open, Some(&acme(&[], &[])), &tuning).unwrap();
        assert_eq!(set, [0, 1]);
        assert_eq!(scored.target.key(), "invoices:inv_a,inv_b");
        assert!(scored.strong && scored.score >= 0.9, "{scored:?}");
        let detail = "references INV-2026-0104 found in the remittance text (1 of the 2 invoices); \
                      no other set of the customer's open invoices pays the credit with a quoted one";
        assert_eq!(scored.reasons[0].detail, detail);
        assert_eq!(scored.reasons[0].strength, 0.5, "the share quoted, as for any set");

        let one = score_invoice(&tx, &open[0], Some(&acme(&[], &[])), &tuning).unwrap();
        let decision = super::super::decide(&[scored, one], &[], &tuning);
        assert_eq!(decision, super::super::Decision::AutoMatch(0), "A alone is overpaid");

        let plain = score_invoice_set(&tx, &[&open[0], &open[1]], Some(&acme(&[], &[])), &tuning).unwrap();
        assert!(!plain.strong, "without knowing it is the only one, a set quoted in part proves nothing");
        let mut unquoted = open.clone();
        unquoted.extend([invoice("inv_e", "E-1", 25_000), invoice("inv_f", "F-1", 25_000)]);
        assert_eq!(sole(&tx, &unquoted, &tuning), Some(vec![0, 1]), "a set without a quote is no rival here");
    }

    #[test]
    fn no_set_is_proved_when_another_could_be_meant_or_a_quote_is_left_out() {
        let tuning = Tuning::default();
        let (tx, open) = quoted_in_part();
        let mut twin = open.clone();
        twin.push(invoice("inv_d", "INV-2026-0400", 20_000));
        assert_eq!(sole(&tx, &twin, &tuning), None, "A + B and A + D both pay it");
        let both = TxFacts { text: "PAYMENT INV-2026-0104 INV-2026-0300 ETC", ..tx };
        assert_eq!(sole(&both, &open, &tuning), None, "C is quoted but in no set");
        let typo = TxFacts { text: "PAYMENT INV-2026-0140 ETC", ..tx };
        assert_eq!(sole(&typo, &open, &tuning), None, "one edit away is no quote");
        let loose = Tuning { amount_tolerance: 10, ..Tuning::default() };
        assert_eq!(sole(&TxFacts { amount: 50_005, ..tx }, &open, &loose), None, "within tolerance, not exact");
        let mut mixed = open.clone();
        mixed[1].customer_id = Some("cus_other");
        assert_eq!(sole(&tx, &mixed, &tuning), None, "not one customer's invoices");
        let mut euros = open.clone();
        euros[0].currency = "EUR";
        assert_eq!(sole(&tx, &euros, &tuning), None, "the quoted invoice is in another currency");
        let mut blind = Tuning::default();
        blind.signals.set(Signal::Amount, false);
        assert_eq!(sole(&tx, &open, &blind), None, "the amount signal is off");
        let mut unread = Tuning::default();
        unread.signals.set(Signal::Reference, false);
        let (_, scored) = score_sole_quoted_set(&tx, &open, Some(&acme(&[], &[])), &unread).unwrap();
        assert!(!scored.strong, "the reference signal is off: {scored:?}");
        assert_eq!(sole(&tx, &[], &tuning), None);
    }

    #[test]
    fn a_set_by_a_known_account_is_strong_and_dates_combine() {
        let tuning = Tuning::default();
        let [mut b, a] = pair();
        b.due_date = Some(day(1, 1));
        let accounts = ["GB29NWBK60161331926819".to_owned()];
        let mut tx = tx("thanks", 50_000);
        tx.counterparty_account = Some("GB29NWBK60161331926819");
        tx.date = day(2, 20);
        let scored = score_invoice_set(&tx, &[&a, &b], Some(&acme(&[], &accounts)), &tuning).unwrap();
        assert!(scored.strong);
        let date = scored.reasons.last().unwrap();
        assert_eq!(date.signal, Signal::Date);
        assert!(date.strength < 1.0 && date.strength > 0.5, "{date:?}");
        assert!(date.detail.starts_with("dates fit the 2 invoices 0."), "{}", date.detail);
        assert!(date.detail.ends_with("(least: INV-2026-0105, paid 50 days after the due date (2026-01-01))"));
        tx.date = day(1, 1) - chrono::Days::new(30);
        let scored = score_invoice_set(&tx, &[&a, &b], Some(&acme(&[], &accounts)), &tuning).unwrap();
        assert_eq!(scored.reasons.last().unwrap().weight, -DATE);
    }

    #[test]
    fn a_set_must_be_one_customers_distinct_invoices_summing_to_the_credit() {
        let tuning = Tuning { amount_tolerance: 10, ..Tuning::default() };
        let [b, a] = pair();
        let tx = tx("INV-2026-0104 INV-2026-0105", 50_000);
        assert!(score_invoice_set(&tx, &[&a, &b], None, &tuning).is_some());
        let near = TxFacts { amount: 50_010, ..tx };
        assert_eq!(score_invoice_set(&near, &[&a, &b], None, &tuning).unwrap().reasons[1].strength, 0.665);
        assert_eq!(score_invoice_set(&TxFacts { amount: 50_011, ..tx }, &[&a, &b], None, &tuning), None);
        assert_eq!(score_invoice_set(&tx, &[&a], None, &tuning), None, "one invoice is not a set");
        assert_eq!(score_invoice_set(&tx, &[&a, &a], None, &tuning), None, "no invoice twice");
        let other = InvoiceFacts { customer_id: Some("cus_other"), ..b };
        assert_eq!(score_invoice_set(&tx, &[&a, &other], None, &tuning), None);
        let (a_none, b_none) = (InvoiceFacts { customer_id: None, ..a }, InvoiceFacts { customer_id: None, ..b });
        assert_eq!(score_invoice_set(&tx, &[&a_none, &b_none], None, &tuning), None, "unknown customers");
        let euros = InvoiceFacts { currency: "EUR", ..b };
        assert_eq!(score_invoice_set(&tx, &[&a, &euros], None, &tuning), None);
        let seven: Vec<InvoiceFacts> = (0..7).map(|_| invoice("inv_x", "X", 1)).collect();
        let refs: Vec<&InvoiceFacts> = seven.iter().collect();
        assert_eq!(score_invoice_set(&TxFacts { amount: 7, ..tx }, &refs, None, &tuning), None);
    }
}
