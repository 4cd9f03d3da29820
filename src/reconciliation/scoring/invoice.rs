//! Scoring a bank credit against one open invoice, or against a set of one customer's open
//! invoices it pays together.

use super::evidence::{
    DATE, ONE_EDIT, REFERENCE, RF_REFERENCE, Referenced, add_amount, add_customer, add_date, add_reference, date_fit,
    referenced, tolerance,
};
use super::subset::sole_set_with;
use super::{
    CustomerFacts, InvoiceFacts, Scorecard, Scored, Seen, Signal, Target, Tuning, TxFacts, money, same_currency, seen,
};
use crate::reconciliation::text::{RemittanceText, ref_key};

/// The most invoices one credit is taken to pay together: beyond it chance sums abound and the
/// subset search grows.
pub const MAX_SET: usize = 6;

/// What the engine saw of the other open invoices, for the evidence that holds only when nothing
/// else can be meant. [`Rivals::default`] knows nothing, so that evidence never counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rivals<'a> {
    /// Every open invoice owing exactly the credit, in its currency (the candidate among them),
    /// or None when a cap may have left some out.
    pub owing_the_credit: Option<&'a [InvoiceFacts<'a>]>,
    /// Whether the text quotes any invoice exactly ([`quotes_exactly`]), open or no longer open
    /// (paid already: paying it twice is no typo of another's number).
    pub quotes_an_invoice: bool,
    /// The ref keys (numbers, payment references, RFs) of the open invoices the text quotes
    /// exactly and the credit pays in full: the quote and the amount explain such a key, so it is
    /// no typo of another invoice's (which may owe as much: a subscription's sibling).
    pub quoted_in_full: &'a [String],
}

impl Rivals<'_> {
    /// Whether a reference one edit from `invoice`'s can mean only `invoice`, which owes exactly
    /// the credit: the text quotes no invoice exactly (a key that is another invoice's
    /// number is no typo), every open invoice owing the credit is known, and none of the others
    /// has a number, payment reference or RF the text holds or comes within one edit of.
    /// Sequential numbers are one edit apart, so without all of this a typo proves nothing.
    fn leave_only(&self, invoice: &InvoiceFacts, text: &RemittanceText) -> bool {
        let Some(owing) = self.owing_the_credit else { return false };
        let near = |other: &&InvoiceFacts| {
            std::iter::once(other.number)
                .chain(other.payment_reference)
                .chain(other.rf_reference)
                .map(ref_key)
                .any(|key| !key.is_empty() && text.find(&key).is_some())
        };
        !self.quotes_an_invoice
            && owing.iter().any(|o| o.id == invoice.id)
            && !owing.iter().filter(|o| o.id != invoice.id).any(|o| near(&o))
    }
}

/// Whether the text quotes `invoice` exactly: its number or payment reference as a reference
/// (`Referenced::Exact`), or its creditor reference with valid check digits, whatever signals
/// the tenant switched off (a quote is a quote when judging what else the text may mean).
pub fn quotes_exactly(text: &str, invoice: &InvoiceFacts) -> bool {
    quotes_exactly_seen(&Seen::new(text, None), invoice)
}

/// [`quotes_exactly`], for a text already read ([`Seen`]).
pub fn quotes_exactly_seen(seen: &Seen, invoice: &InvoiceFacts) -> bool {
    matches!(
        referenced(&seen.text, &seen.rfs, invoice, &[], &Tuning::default()),
        Referenced::Exact(_) | Referenced::Rf(_)
    )
}

/// Scores one open invoice as what the transaction pays (`customer` is the invoice's customer if
/// known), knowing nothing of its rivals. None when the currency differs, the transaction is not
/// a credit, nothing is due, or the score is below the suggest threshold.
pub fn score_invoice(
    tx: &TxFacts,
    invoice: &InvoiceFacts,
    customer: Option<&CustomerFacts>,
    tuning: &Tuning,
) -> Option<Scored> {
    score_invoice_among(tx, invoice, customer, &Rivals::default(), tuning)
}

/// [`score_invoice`], knowing its `rivals`: a key of the text that is the reference of another
/// open invoice the credit pays in full is no near miss for this one, and a reference one edit
/// away is strong (strength 0.8) when the credit is exactly the amount due and [`Rivals`] leave
/// only this invoice.
pub fn score_invoice_among(
    tx: &TxFacts,
    invoice: &InvoiceFacts,
    customer: Option<&CustomerFacts>,
    rivals: &Rivals,
    tuning: &Tuning,
) -> Option<Scored> {
    if tx.amount <= 0 || invoice.amount_due <= 0 || !same_currency(tx.currency, invoice.currency) {
        return None;
    }
    let mut slot = None;
    let seen = seen(tx, &mut slot);
    let text = &seen.text;
    let mut card = Scorecard::default();
    let reference = match referenced(text, &seen.rfs, invoice, rivals.quoted_in_full, tuning) {
        Referenced::OneEdit { found, shown }
            if tx.amount == invoice.amount_due
                && tuning.signals.is_on(Signal::Amount)
                && rivals.leave_only(invoice, text) =>
        {
            Referenced::OneEditOnly { found, shown, amount: money(tx.amount, tx.currency) }
        }
        other => other,
    };
    add_reference(&mut card, reference);
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

    /// The reference reason and whether the candidate is strong.
    fn typo_verdict(tx: &TxFacts, inv: &InvoiceFacts, rivals: &Rivals, tuning: &Tuning) -> (f64, bool) {
        let scored = score_invoice_among(tx, inv, None, rivals, tuning).expect("a candidate");
        (scored.reasons[0].strength, scored.strong)
    }

    #[test]
    fn a_typo_proves_the_only_open_invoice_owing_the_credit_that_it_comes_near() {
        let tuning = Tuning::default();
        let inv = invoice("inv_a", "INV-2026-0104", 125_000);
        let far = invoice("inv_f", "INV-2026-0977", 125_000);
        let tx = tx("PAYMENT INV-2026-0140", 125_000);
        let owing = [inv, far];
        let rivals = Rivals { owing_the_credit: Some(&owing), quotes_an_invoice: false, quoted_in_full: &[] };
        let scored = score_invoice_among(&tx, &inv, None, &rivals, &tuning).unwrap();
        assert!(scored.strong && scored.score >= 0.9, "without a name or account: {scored:?}");
        assert_eq!(scored.reasons[0].strength, 0.8);
        let detail = "reference INV20260140 differs by one character from INV-2026-0104, and no other open invoice \
                      owing 1,250.00 GBP is that close to the text";
        assert_eq!(scored.reasons[0].detail, detail);
        let other = score_invoice_among(&tx, &far, None, &rivals, &tuning).unwrap();
        let decision = super::super::decide(&[scored, other], &[], &tuning);
        assert_eq!(decision, super::super::Decision::AutoMatch(0), "the far sibling owing the same has no reference");
        assert_eq!(typo_verdict(&tx, &inv, &Rivals::default(), &tuning), (0.5, false), "nothing known of rivals");
    }

    #[test]
    fn a_typo_proves_nothing_when_another_invoice_could_be_meant() {
        let tuning = Tuning::default();
        let inv = invoice("inv_a", "INV-2026-0104", 125_000);
        let tx = tx("PAYMENT INV-2026-0140", 125_000);
        let hint = (0.5, false);
        let cut = Rivals { owing_the_credit: None, quotes_an_invoice: false, quoted_in_full: &[] };
        assert_eq!(typo_verdict(&tx, &inv, &cut, &tuning), hint, "a cap cut the invoices owing the credit");
        let sibling = invoice("inv_b", "INV-2026-0141", 125_000);
        let owing = [inv, sibling];
        let two = Rivals { owing_the_credit: Some(&owing), quotes_an_invoice: false, quoted_in_full: &[] };
        assert_eq!(typo_verdict(&tx, &inv, &two, &tuning), hint, "INV20260140 is one edit from INV-2026-0141 too");
        let by_reference =
            InvoiceFacts { payment_reference: Some("INV 2026 0140"), ..invoice("inv_c", "C-1", 125_000) };
        let owing = [inv, by_reference];
        let quoted = Rivals { owing_the_credit: Some(&owing), quotes_an_invoice: false, quoted_in_full: &[] };
        assert_eq!(typo_verdict(&tx, &inv, &quoted, &tuning), hint, "another's payment reference is in the text");
        let owing = [inv];
        let alone = Rivals { owing_the_credit: Some(&owing), quotes_an_invoice: false, quoted_in_full: &[] };
        let named = Rivals { quotes_an_invoice: true, ..alone };
        assert_eq!(typo_verdict(&tx, &inv, &named, &tuning), hint, "the text quotes an open invoice exactly");
        let missing = Rivals { owing_the_credit: Some(&[]), quotes_an_invoice: false, quoted_in_full: &[] };
        assert_eq!(typo_verdict(&tx, &inv, &missing, &tuning), hint, "the invoice must be among those owing it");
        let short = TxFacts { amount: 120_000, ..tx };
        assert!(!score_invoice_among(&short, &inv, None, &alone, &tuning).unwrap().strong, "not the amount due");
        let mut blind = Tuning::default();
        blind.signals.set(Signal::Amount, false);
        assert_eq!(typo_verdict(&tx, &inv, &alone, &blind), hint, "the amount signal is off");
        assert_eq!(typo_verdict(&tx, &inv, &alone, &tuning), (0.8, true), "and all else equal, it proves");
    }

    #[test]
    fn a_quoted_invoice_takes_its_key_from_its_one_edit_siblings() {
        let tuning = Tuning::default();
        let mut tx = tx("SUBSCRIPTION INV-2026-1507", 4_900);
        tx.counterparty_name = Some("ACME WIDGETS LTD");
        let (quoted, sibling) = (invoice("inv_a", "INV-2026-1507", 4_900), invoice("inv_b", "INV-2026-3507", 4_900));
        let customer = acme(&[], &[]);
        let score =
            |inv: &InvoiceFacts, rivals: &Rivals| score_invoice_among(&tx, inv, Some(&customer), rivals, &tuning);
        let blind = [score(&quoted, &Rivals::default()).unwrap(), score(&sibling, &Rivals::default()).unwrap()];
        assert_eq!((blind[0].score, blind[1].score), (1.0, 1.0), "a hint, a name and the amount clamp to 1 too");
        assert_eq!(super::super::decide(&blind, &[], &tuning), super::super::Decision::Suggest(vec![0, 1]));
        let keys = ["INV20261507".to_owned()];
        let rivals = Rivals { owing_the_credit: None, quotes_an_invoice: true, quoted_in_full: &keys };
        let seen = [score(&quoted, &rivals).unwrap(), score(&sibling, &rivals).unwrap()];
        assert!(seen[1].reasons.iter().all(|r| r.signal != Signal::Reference), "{:?}", seen[1]);
        assert_eq!(super::super::decide(&seen, &[], &tuning), super::super::Decision::AutoMatch(0), "{seen:?}");

        // Quoted but owing more, the typo's reading stays open: a part payment of INV-2026-1507,
        // or INV-2026-3507 paid in full with one character wrong.
        let owing_more = invoice("inv_a", "INV-2026-1507", 9_800);
        let rivals = Rivals { owing_the_credit: None, quotes_an_invoice: true, quoted_in_full: &[] };
        let open = [score(&owing_more, &rivals).unwrap(), score(&sibling, &rivals).unwrap()];
        assert!(open[0].strong && open[1].reasons[0].signal == Signal::Reference, "{open:?}");
        assert!(!matches!(super::super::decide(&open, &[], &tuning), super::super::Decision::AutoMatch(_)), "{open:?}");
    }

    #[test]
    fn a_quote_is_the_number_payment_reference_or_valid_rf_not_a_typo() {
        let mut inv = invoice("inv_a", "INV-2026-0104", 1);
        assert!(quotes_exactly("paid inv 2026 0104", &inv));
        assert!(!quotes_exactly("paid inv 2026 0140", &inv), "one edit away is no quote");
        inv.payment_reference = Some("PR-BBSNMMZB");
        assert!(quotes_exactly("PR BBSNMMZB", &inv));
        inv.rf_reference = Some("RF18539007547034");
        assert!(quotes_exactly("RF18 5390 0754 7034", &inv));
        assert!(!quotes_exactly("RF19 5390 0754 7034", &inv), "another creditor reference");
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
