//! Scoring a bank credit against one open invoice, or against a set of one customer's open
//! invoices it pays together.

use super::evidence::{
    DATE, ONE_EDIT, REFERENCE, RF_REFERENCE, Referenced, add_amount, add_customer, add_date, add_reference, date_fit,
    referenced, tolerance,
};
use super::{CustomerFacts, InvoiceFacts, Scorecard, Scored, Signal, Target, Tuning, TxFacts, same_currency};
use crate::reconciliation::text::{RemittanceText, ref_key, rf_references};

/// The most invoices one credit is taken to pay together: beyond it chance sums abound and the
/// subset search grows.
pub const MAX_SET: usize = 6;

/// Scores one open invoice as what the transaction pays (`customer` is the invoice's customer if
/// known). None when the currency differs, the transaction is not a credit, nothing is due, or
/// the score is below the suggest threshold.
pub fn score_invoice(
    tx: &TxFacts,
    invoice: &InvoiceFacts,
    customer: Option<&CustomerFacts>,
    tuning: &Tuning,
) -> Option<Scored> {
    if tx.amount <= 0 || invoice.amount_due <= 0 || !same_currency(tx.currency, invoice.currency) {
        return None;
    }
    let text = RemittanceText::new(tx.text);
    let rfs = if invoice.rf_reference.is_some() { rf_references(tx.text) } else { Vec::new() };
    let mut card = Scorecard::default();
    add_reference(&mut card, referenced(&text, &rfs, invoice, &[], tuning));
    add_customer(&mut card, tx, invoice.customer_id, customer, tuning);
    add_amount(&mut card, tx.amount, invoice.amount_due, tx.currency, 1, tuning);
    add_date(&mut card, tx.date, invoice, tuning);
    card.finish(Target::Invoices(vec![invoice.id.to_owned()]), tuning)
}

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
    let text = RemittanceText::new(tx.text);
    let any_rf = invoices.iter().any(|i| i.rf_reference.is_some());
    let rfs = if any_rf { rf_references(tx.text) } else { Vec::new() };
    let mut card = Scorecard::default();
    let keys: Vec<String> =
        invoices.iter().flat_map(|i| std::iter::once(i.number).chain(i.payment_reference)).map(ref_key).collect();
    add_set_references(&mut card, invoices.iter().map(|i| referenced(&text, &rfs, i, &keys, tuning)).collect());
    add_customer(&mut card, tx, first.customer_id, customer, tuning);
    add_amount(&mut card, tx.amount, due, tx.currency, invoices.len(), tuning);
    if tuning.signals.is_on(Signal::Date) {
        add_set_date(&mut card, tx, invoices, tuning);
    }
    card.finish(Target::Invoices(ids), tuning)
}

/// One reason for the references a set's invoices have in the text.
fn add_set_references(card: &mut Scorecard, hits: Vec<Referenced>) {
    let count = hits.len();
    let (mut found, mut near, mut by_rf) = (Vec::new(), Vec::new(), 0);
    for hit in hits {
        match hit {
            Referenced::Rf(rf) => {
                by_rf += 1;
                found.push(rf);
            }
            Referenced::Exact(reference) => found.push(reference),
            Referenced::OneEdit { found: key, shown } => {
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
    let detail = parts.join("; ");
    if found.len() == count {
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

    #[test]
    fn a_credit_in_another_currency_or_a_debit_is_no_candidate() {
        let tuning = Tuning { suggest_threshold: 0.0, ..Tuning::default() };
        let inv = invoice("inv_a", "INV-2026-0104", 10_000);
        assert!(score_invoice(&tx("INV-2026-0104", 10_000), &inv, None, &tuning).is_some());
        let euros = TxFacts { currency: "EUR", ..tx("INV-2026-0104", 10_000) };
        assert_eq!(score_invoice(&euros, &inv, None, &tuning), None);
        assert_eq!(score_invoice(&tx("INV-2026-0104", -10_000), &inv, None, &tuning), None);
        let paid = InvoiceFacts { amount_due: 0, ..inv };
        assert_eq!(score_invoice(&tx("INV-2026-0104", 10_000), &paid, None, &tuning), None);
        let lower = TxFacts { currency: "gbp", ..tx("INV-2026-0104", 10_000) };
        assert!(score_invoice(&lower, &inv, None, &tuning).is_some(), "currency case does not matter");
    }

    #[test]
    fn candidates_below_the_suggest_threshold_are_dropped() {
        let tuning = Tuning::default();
        let inv = invoice("inv_a", "INV-2026-0104", 10_000);
        assert_eq!(score_invoice(&tx("hello", 5_000), &inv, None, &tuning), None, "only the date fits");
        let partial = score_invoice(&tx("INV-2026-0104", 5_000), &inv, None, &tuning).unwrap();
        assert_eq!(partial.score, 0.8533, "reference, partial amount and date: 0.64 of 0.75");
        assert!(partial.strong);
        assert_eq!(super::super::decide(&[partial], &[], &tuning), super::super::Decision::Suggest(vec![0]));
    }

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
