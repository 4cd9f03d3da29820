//! Scoring a bank credit against a paid Stripe payout: the payout's net lands as one credit,
//! usually carrying its trace id or the account's statement descriptor.

use super::{PayoutFacts, Scorecard, Scored, Signal, Target, Tuning, TxFacts, days, money, same_currency, seen};
use crate::reconciliation::text::{RemittanceText, is_letter_code, is_reference_like, ref_key};

const STRIPE_TRACE: f64 = 0.50;
const AMOUNT: f64 = 0.30;
const DATE: f64 = 0.20;
/// A descriptor shared by every payout of the account ("ACME LTD") still says "Stripe paid
/// this", but not which payout.
const GENERIC_DESCRIPTOR: f64 = 0.8;
/// The shortest descriptor key specific enough to prove which payout it is.
const SPECIFIC_DESCRIPTOR_LEN: usize = 8;

/// Scores a paid payout as what a bank credit is: its trace id in the text (strong), or its
/// statement descriptor, the exact amount and arrival within the banking delay. A specific
/// descriptor (a reference-like key of 8+ characters) is strong by itself; one the account's
/// payouts share is strong only with the arrival date, as it names the account, not the payout:
/// two open payouts of one net arriving together then tie, and `decide` matches neither. A payout
/// whose net differs from the credit, or whose currency differs, is never a candidate (None); nor
/// one below the suggest threshold.
pub fn score_payout(tx: &TxFacts, payout: &PayoutFacts, tuning: &Tuning) -> Option<Scored> {
    if tx.amount <= 0 || tx.amount != payout.net || !same_currency(tx.currency, payout.currency) {
        return None;
    }
    let (arrival, delay) = (payout.arrival_date, tuning.banking_delay_days.max(0));
    let late = (tx.date - arrival).num_days();
    // A day early allows for time zones between Stripe's date and the bank's.
    let arrived = (-1..=delay).contains(&late);
    let mut card = Scorecard::default();
    if tuning.signals.is_on(Signal::StripeTrace) {
        let dated = arrived && tuning.signals.is_on(Signal::Date);
        let mut slot = None;
        add_trace(&mut card, &seen(tx, &mut slot).text, payout, dated);
    }
    if tuning.signals.is_on(Signal::Amount) {
        let detail = format!("amount equal to the payout's net ({})", money(payout.net, payout.currency));
        card.add(Signal::Amount, 1.0, AMOUNT, detail);
    }
    if tuning.signals.is_on(Signal::Date) {
        let when = match late {
            0 => format!("booked on the payout's arrival date ({arrival})"),
            _ if late < 0 => format!("booked {} before the payout's arrival date ({arrival})", days(-late)),
            _ => format!("booked {} after the payout's arrival date ({arrival})", days(late)),
        };
        if arrived {
            card.add(Signal::Date, 1.0, DATE, when);
        } else {
            card.add(Signal::Date, 0.0, DATE, format!("{when}, outside the {}-day banking delay", delay));
        }
    }
    card.finish(Target::Payout(payout.id.to_owned()), tuning)
}

/// The trace id, or else the statement descriptor, found in the text; `arrived`: the credit was
/// booked within the banking delay of the payout's arrival (and the date signal is on), which
/// with the exact net makes even a shared descriptor proof.
fn add_trace(card: &mut Scorecard, text: &RemittanceText, payout: &PayoutFacts, arrived: bool) {
    let trace =
        payout.trace_id.map(|t| (t, ref_key(t))).filter(|(_, key)| is_reference_like(key) || is_letter_code(key));
    if let Some((trace, _)) = trace.filter(|(_, key)| text.contains(key)) {
        let detail = format!("Stripe trace id {trace} found in the remittance text");
        card.add_strong(Signal::StripeTrace, 1.0, STRIPE_TRACE, detail);
        return;
    }
    let Some(descriptor) = payout.statement_descriptor else { return };
    let key = ref_key(descriptor);
    if key.len() < 4 || !text.contains(&key) {
        return;
    }
    if key.len() >= SPECIFIC_DESCRIPTOR_LEN && is_reference_like(&key) {
        let detail = format!("statement descriptor {descriptor} found in the remittance text");
        card.add_strong(Signal::StripeTrace, 1.0, STRIPE_TRACE, detail);
    } else if arrived {
        let detail = format!(
            "statement descriptor {descriptor} found in the remittance text (shared by the account's payouts; \
             with the exact net and the arrival date it names this one)"
        );
        card.add_strong(Signal::StripeTrace, GENERIC_DESCRIPTOR, STRIPE_TRACE, detail);
    } else {
        let detail = format!(
            "statement descriptor {descriptor} found in the remittance text (shared by the account's payouts, \
             and booked outside the arrival window, so not proof)"
        );
        card.add(Signal::StripeTrace, GENERIC_DESCRIPTOR, STRIPE_TRACE, detail);
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::reconciliation::scoring::{Decision, Refusal, decide_explained};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    fn tx(text: &str, amount: i64, date: NaiveDate) -> TxFacts<'_> {
        TxFacts {
            amount,
            currency: "EUR",
            date,
            text,
            counterparty_name: Some("STRIPE"),
            counterparty_account: None,
            customer_id: None,
            seen: None,
        }
    }

    fn payout<'a>(trace_id: Option<&'a str>, descriptor: Option<&'a str>) -> PayoutFacts<'a> {
        PayoutFacts {
            id: "po_1",
            net: 98_765,
            currency: "eur",
            arrival_date: day(10),
            trace_id,
            statement_descriptor: descriptor,
        }
    }

    #[test]
    fn the_trace_id_and_the_net_prove_the_payout() {
        let tuning = Tuning::default();
        let tx = tx("STRIPE PAYOUT TR-0042-9981X", 98_765, day(25));
        let scored = score_payout(&tx, &payout(Some("tr_00429981x"), None), &tuning).expect("a candidate");
        assert!(scored.strong);
        assert!(scored.score >= 0.95, "{scored:?}");
        assert_eq!(scored.target.key(), "stripe_payout:po_1");
        assert_eq!(scored.reasons[0].detail, "Stripe trace id tr_00429981x found in the remittance text");
        assert_eq!(scored.reasons[1].detail, "amount equal to the payout's net (987.65 EUR)");
        assert_eq!(
            scored.reasons[2].detail,
            "booked 15 days after the payout's arrival date (2026-03-10), outside the 3-day banking delay"
        );
        assert_eq!(scored.reasons[2].strength, 0.0);
    }

    #[test]
    fn a_trace_id_of_letters_only_counts_when_quoted_whole() {
        let tuning = Tuning::default();
        let letters = payout(Some("STGEANNMQMGRVQ"), None);
        let scored = score_payout(&tx("STRIPE PAYMENTS STGEANNMQMGRVQ", 98_765, day(10)), &letters, &tuning).unwrap();
        assert!(scored.strong, "{scored:?}");
        let other = score_payout(&tx("STRIPE PAYMENTS STGEANNMQMGRVX", 98_765, day(10)), &letters, &tuning).unwrap();
        assert!(!other.strong && other.reasons.len() == 2, "{other:?}");
        let short = payout(Some("STGEANN"), None);
        assert!(!score_payout(&tx("STGEANN", 98_765, day(10)), &short, &tuning).unwrap().strong, "a word");
    }

    #[test]
    fn a_descriptor_proves_the_payout_only_when_specific() {
        let tuning = Tuning::default();
        let specific = payout(None, Some("ACME PO 20260310"));
        let scored = score_payout(&tx("acme po 20260310", 98_765, day(11)), &specific, &tuning).expect("a candidate");
        assert!(scored.strong && scored.score >= 0.9, "{scored:?}");
        assert_eq!(scored.reasons[2].detail, "booked 1 day after the payout's arrival date (2026-03-10)");

        let late = score_payout(&tx("acme po 20260310", 98_765, day(20)), &specific, &tuning).expect("a candidate");
        assert!(late.strong, "a specific descriptor needs no date: {late:?}");
    }

    #[test]
    fn a_shared_descriptor_proves_the_payout_only_with_its_net_and_arrival() {
        let tuning = Tuning::default();
        let generic = payout(None, Some("ACME LTD"));
        let scored = score_payout(&tx("ACME LTD", 98_765, day(9)), &generic, &tuning).expect("a candidate");
        assert!(scored.strong && scored.score >= 0.9, "a day early is within the window: {scored:?}");
        assert_eq!(scored.reasons[0].strength, GENERIC_DESCRIPTOR);
        assert!(scored.reasons[0].detail.ends_with("with the exact net and the arrival date it names this one)"));
        assert!(score_payout(&tx("ACME LTD", 98_765, day(13)), &generic, &tuning).unwrap().strong, "3 days late");

        for booked in [day(8), day(14)] {
            let scored = score_payout(&tx("ACME LTD", 98_765, booked), &generic, &tuning).expect("a candidate");
            assert!(!scored.strong, "{booked}: {scored:?}");
            assert!(scored.reasons[0].detail.ends_with("booked outside the arrival window, so not proof)"));
        }
        let mut undated = Tuning::default();
        undated.signals.set(Signal::Date, false);
        let scored = score_payout(&tx("ACME LTD", 98_765, day(10)), &generic, &undated).expect("a candidate");
        assert!(!scored.strong, "without the date signal the arrival proves nothing: {scored:?}");
        assert_eq!(score_payout(&tx("ACME LTD", 98_766, day(10)), &generic, &tuning), None, "the net must be exact");
    }

    #[test]
    fn two_payouts_of_one_net_arriving_together_are_never_matched_by_a_shared_descriptor() {
        let tuning = Tuning::default();
        let tx = tx("STRIPE ACME LTD", 98_765, day(11));
        let first = payout(None, Some("ACME LTD"));
        let second = PayoutFacts { id: "po_2", arrival_date: day(12), ..first };
        let candidates: Vec<Scored> = [first, second].iter().filter_map(|p| score_payout(&tx, p, &tuning)).collect();
        assert!(candidates.iter().all(|c| c.strong), "{candidates:?}");
        let (decision, why) = decide_explained(&candidates, &[], &tuning);
        assert_eq!((decision, why), (Decision::Suggest(vec![0, 1]), Some(Refusal::Ambiguous)));
        let long_ago = PayoutFacts { id: "po_2", arrival_date: day(1), ..first };
        let candidates: Vec<Scored> = [first, long_ago].iter().filter_map(|p| score_payout(&tx, p, &tuning)).collect();
        assert!(candidates[0].strong && !candidates[1].strong, "{candidates:?}");
        let why = decide_explained(&candidates, &[], &tuning).1;
        assert_eq!(why, Some(Refusal::Ambiguous), "one of the account's older payouts is as likely");
    }

    #[test]
    fn a_payout_whose_amount_or_currency_differs_is_never_a_candidate() {
        let tuning = Tuning::default();
        let trace = payout(Some("TR00429981X"), None);
        assert_eq!(score_payout(&tx("TR00429981X", 98_764, day(10)), &trace, &tuning), None);
        assert_eq!(score_payout(&tx("TR00429981X", 98_766, day(10)), &trace, &tuning), None);
        assert_eq!(
            score_payout(&tx("TR00429981X", -98_765, day(10)), &PayoutFacts { net: -98_765, ..trace }, &tuning),
            None
        );
        let gbp = TxFacts { currency: "GBP", ..tx("TR00429981X", 98_765, day(10)) };
        assert_eq!(score_payout(&gbp, &trace, &tuning), None);
    }

    #[test]
    fn amount_and_arrival_alone_suggest_but_do_not_prove() {
        let tuning = Tuning::default();
        let scored = score_payout(&tx("transfer", 98_765, day(10)), &payout(Some("TR1"), Some("ACM")), &tuning);
        let scored = scored.expect("amount and date are worth suggesting");
        assert!(!scored.strong);
        assert_eq!(scored.score, 0.6667);
        assert_eq!(scored.reasons.len(), 2, "a 3-character descriptor and a short trace id are not looked for");
        assert_eq!(scored.reasons[1].detail, "booked on the payout's arrival date (2026-03-10)");
    }

    #[test]
    fn switched_off_signals_do_not_count() {
        let mut tuning = Tuning::default();
        tuning.signals.set(Signal::StripeTrace, false);
        tuning.signals.set(Signal::Date, false);
        let tx = tx("TR00429981X", 98_765, day(8));
        let scored = score_payout(&tx, &payout(Some("TR00429981X"), None), &tuning).expect("the amount alone");
        assert_eq!((scored.score, scored.strong, scored.reasons.len()), (0.4, false, 1), "exactly the threshold");
    }
}
