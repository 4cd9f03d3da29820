//! Scoring a bank credit against one open invoice (sets of invoices: `set.rs`).

use super::evidence::{Referenced, add_amount, add_customer, add_date, add_reference, referenced};
use super::{
    CustomerFacts, InvoiceFacts, Scorecard, Scored, Seen, Signal, Target, Tuning, TxFacts, money, same_currency, seen,
};
use crate::reconciliation::text::{RemittanceText, ref_key};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciliation::scoring::properties::{acme, invoice, tx};

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
}
