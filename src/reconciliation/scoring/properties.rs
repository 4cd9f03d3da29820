//! The properties the scoring design promises (numbered as in docs/reconciliation.md), over the
//! public API as the engine calls it.

use chrono::NaiveDate;

use super::*;

pub(super) fn day(month: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, month, d).unwrap()
}

pub(super) fn tx(text: &str, amount: i64) -> TxFacts<'_> {
    TxFacts {
        amount,
        currency: "GBP",
        date: day(2, 2),
        text,
        counterparty_name: None,
        counterparty_account: None,
        customer_id: None,
        seen: None,
    }
}

pub(super) fn invoice<'a>(id: &'a str, number: &'a str, amount_due: i64) -> InvoiceFacts<'a> {
    InvoiceFacts {
        id,
        number,
        payment_reference: None,
        rf_reference: None,
        customer_id: Some("cus_acme"),
        currency: "GBP",
        amount_due,
        issue_date: Some(day(1, 1)),
        due_date: Some(day(1, 31)),
    }
}

pub(super) fn acme<'a>(aliases: &'a [String], accounts: &'a [String]) -> CustomerFacts<'a> {
    CustomerFacts {
        id: "cus_acme",
        name: "Acme Widgets Limited",
        aliases,
        account_keys: accounts,
        normalized: None,
        payer_similarity: None,
    }
}

fn reference_strength(scored: &Scored) -> Option<f64> {
    scored.reasons.iter().find(|r| r.signal == Signal::Reference).map(|r| r.strength)
}

#[test]
fn p1_an_exact_reference_and_amount_are_certain() {
    let tuning = Tuning::default();
    let mut tx = tx("INV-2026-0104", 125_000);
    tx.date = day(6, 30);
    let scored = score_invoice(&tx, &invoice("inv_a", "INV-2026-0104", 125_000), None, &tuning).unwrap();
    assert!(scored.strong && scored.score >= 0.90, "{scored:?}");
    assert_eq!(scored.reasons[0].detail, "reference INV-2026-0104 found in the remittance text");
    assert_eq!(scored.reasons[1].detail, "amount equal (1,250.00 GBP)");
    assert_eq!(scored.reasons[2].strength, 0.0, "even paid far outside the dates");
}

#[test]
fn p2_amount_and_a_similar_name_are_never_enough_to_match() {
    let tuning = Tuning::default();
    let mut tx = tx("BACS CREDIT", 125_000);
    tx.counterparty_name = Some("ACME WIDGETS LTD");
    let aliases = ["Acme".to_owned()];
    let scored = score_invoice(&tx, &invoice("inv_a", "INV-2026-0104", 125_000), Some(&acme(&aliases, &[])), &tuning);
    let scored = scored.unwrap();
    assert!(!scored.strong, "{scored:?}");
    assert!(scored.score < 0.90, "{scored:?}");
    assert_eq!(scored.score, 0.8, "amount, name and date: 0.60 of 0.75");
    let name = &scored.reasons[0];
    assert_eq!(name.detail, "payer name ACME WIDGETS LTD matches the customer's name Acme Widgets Limited");
    assert_eq!(decide(&[scored], &[], &tuning), Decision::Suggest(vec![0]));
}

#[test]
fn p3_short_numbers_never_make_a_reference() {
    let tuning = Tuning::default();
    for (number, text) in [("104", "invoice 104"), ("2026", "paid 2026"), ("1044", "1044 thanks"), ("INV", "INV")] {
        let tx = tx(text, 50_000);
        let scored = score_invoice(&tx, &invoice("inv_a", number, 50_000), None, &tuning).unwrap();
        assert_eq!(reference_strength(&scored), None, "{number}");
        assert!(!scored.strong, "{number}");
    }
}

#[test]
fn p4_a_reference_is_found_however_written_and_one_typo_is_reported() {
    let tuning = Tuning::default();
    let inv = invoice("inv_a", "INV-2026-0104", 125_000);
    for text in ["payment inv 2026 0104 thanks", "INV20260104", "Inv/2026/0104"] {
        let scored = score_invoice(&tx(text, 125_000), &inv, None, &tuning).unwrap();
        assert_eq!(reference_strength(&scored), Some(1.0), "{text}");
    }
    for (text, found) in [("INV-2026-0140", "INV20260140"), ("INV-2026-0105", "INV20260105")] {
        let scored = score_invoice(&tx(text, 125_000), &inv, None, &tuning).unwrap();
        assert_eq!(reference_strength(&scored), Some(0.5), "{text}");
        let detail = format!("reference {found} differs by one character from INV-2026-0104");
        assert_eq!(scored.reasons[0].detail, detail);
        assert!(!scored.strong, "a near miss is a hint, not proof");
    }
    let scored = score_invoice(&tx("INV-2026-01", 125_000), &inv, None, &tuning).unwrap();
    assert_eq!(reference_strength(&scored), None);
}

#[test]
fn p4_the_exact_invoice_beats_its_sequential_sibling() {
    let tuning = Tuning::default();
    let tx = tx("INV-2026-0104", 125_000);
    let candidates: Vec<Scored> =
        [invoice("inv_a", "INV-2026-0104", 125_000), invoice("inv_b", "INV-2026-0105", 125_000)]
            .iter()
            .filter_map(|inv| score_invoice(&tx, inv, None, &tuning))
            .collect();
    assert_eq!(candidates.len(), 2);
    assert_eq!(decide(&candidates, &[], &tuning), Decision::AutoMatch(0), "{candidates:?}");
}

#[test]
fn p5_two_invoices_of_the_same_amount_without_reference_are_both_suggested() {
    let tuning = Tuning::default();
    let tx = tx("THANK YOU", 125_000);
    let invoices = [invoice("inv_b", "INV-2026-0200", 125_000), invoice("inv_a", "INV-2026-0104", 125_000)];
    let candidates: Vec<Scored> = invoices.iter().filter_map(|inv| score_invoice(&tx, inv, None, &tuning)).collect();
    assert_eq!(candidates[0].score, candidates[1].score);
    assert_eq!(decide(&candidates, &[], &tuning), Decision::Suggest(vec![1, 0]));
}

#[test]
fn p5_even_a_known_account_does_not_choose_between_twins() {
    let tuning = Tuning::default();
    let mut tx = tx("THANK YOU", 125_000);
    tx.counterparty_account = Some("GB29NWBK60161331926819");
    let accounts = ["GB29NWBK60161331926819".to_owned()];
    let customer = acme(&[], &accounts);
    let invoices = [invoice("inv_a", "INV-2026-0104", 125_000), invoice("inv_b", "INV-2026-0200", 125_000)];
    let candidates: Vec<Scored> =
        invoices.iter().filter_map(|inv| score_invoice(&tx, inv, Some(&customer), &tuning)).collect();
    assert!(candidates.iter().all(|c| c.strong && c.score >= 0.9), "{candidates:?}");
    assert_eq!(decide_explained(&candidates, &[], &tuning), (Decision::Suggest(vec![0, 1]), Some(Refusal::Ambiguous)));
}

#[test]
fn p6_a_rejected_target_is_never_in_the_result() {
    let tuning = Tuning::default();
    let tx = tx("INV-2026-0104", 125_000);
    let candidates: Vec<Scored> =
        [invoice("inv_a", "INV-2026-0104", 125_000), invoice("inv_b", "INV-2026-0200", 125_000)]
            .iter()
            .filter_map(|inv| score_invoice(&tx, inv, None, &tuning))
            .collect();
    assert_eq!(decide(&candidates, &["invoice:inv_a".to_owned()], &tuning), Decision::Suggest(vec![1]));
    let both = ["invoice:inv_b".to_owned(), "invoice:inv_a".to_owned()];
    assert_eq!(decide(&candidates, &both, &tuning), Decision::Nothing);
}

#[test]
fn p7_payouts_are_proved_by_their_net_and_trace_or_descriptor_and_arrival() {
    let tuning = Tuning::default();
    let payout = PayoutFacts {
        id: "po_1",
        net: 125_000,
        currency: "GBP",
        arrival_date: day(2, 1),
        trace_id: Some("TRACE-20260201-77"),
        statement_descriptor: Some("ACME"),
    };
    let scored = score_payout(&tx("STRIPE TRACE 20260201 77", 125_000), &payout, &tuning).unwrap();
    assert!(scored.strong && scored.score >= 0.95, "{scored:?}");
    let scored = score_payout(&tx("STRIPE ACME", 125_000), &payout, &tuning).unwrap();
    assert!(scored.strong && scored.score >= 0.9, "booked the day after arrival: {scored:?}");
    let late = TxFacts { date: day(2, 9), ..tx("STRIPE ACME", 125_000) };
    assert!(!score_payout(&late, &payout, &tuning).unwrap().strong, "a shared descriptor, a week late");
    assert_eq!(score_payout(&tx("STRIPE TRACE 20260201 77", 125_001), &payout, &tuning), None);
}

#[test]
fn p8_subset_sums_finds_the_pair() {
    assert_eq!(subset_sums(500, &[100, 200, 300, 700], 0, 5), [[1, 2]]);
}

#[test]
fn the_same_input_gives_the_same_output() {
    let tuning = Tuning::default();
    let mut tx = tx("FP ACME INV 2026 0104 RF18 5390 0754 7034", 125_000);
    tx.counterparty_name = Some("ACME WIDG");
    let mut inv = invoice("inv_a", "INV-2026-0104", 125_000);
    inv.rf_reference = Some("RF18 5390 0754 7034");
    let aliases = ["Acme".to_owned()];
    let first = score_invoice(&tx, &inv, Some(&acme(&aliases, &[])), &tuning);
    for _ in 0..3 {
        assert_eq!(score_invoice(&tx, &inv, Some(&acme(&aliases, &[])), &tuning), first);
    }
    let signals: Vec<Signal> = first.unwrap().reasons.iter().map(|r| r.signal).collect();
    assert_eq!(signals, [Signal::RfReference, Signal::Name, Signal::Amount, Signal::Date], "RF, not RF and number");
}
