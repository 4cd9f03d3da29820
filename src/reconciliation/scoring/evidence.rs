//! The signals an invoice (or a set of one customer's invoices) is judged on, each adding its
//! reason to a [`Scorecard`]; weights and strengths as the module table in `scoring` says.

use chrono::NaiveDate;

use super::{CustomerFacts, InvoiceFacts, Scorecard, Signal, Tuning, TxFacts, days, money};
use crate::reconciliation::text::{NormalizedName, RemittanceText, is_letter_code, is_reference_like, ref_key};

pub(super) const REFERENCE: f64 = 0.45;
pub(super) const RF_REFERENCE: f64 = 0.50;
pub(super) const BANK_ACCOUNT: f64 = 0.30;
pub(super) const NAME: f64 = 0.20;
pub(super) const AMOUNT: f64 = 0.30;
pub(super) const DATE: f64 = 0.10;

/// A reference one edit away: a hint, since sequential invoice numbers are one edit apart.
pub(super) const ONE_EDIT: f64 = 0.5;
/// A reference one edit away that can mean only this invoice (`Rivals::leave_only`).
pub(super) const ONE_EDIT_ONLY: f64 = 0.8;
/// Names less similar than this are different payers, not evidence.
const NAME_MIN: f64 = 0.75;
const WITHIN_TOLERANCE: f64 = 0.7;
const PARTIAL: f64 = 0.3;
/// What a payment at the end of the date window still scores.
const LATE_FLOOR: f64 = 0.25;

/// How the remittance text refers to one invoice.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Referenced {
    /// Its creditor reference, check digits valid (shown as the invoice has it).
    Rf(String),
    /// Its number or payment reference, exactly.
    Exact(String),
    /// A key one edit away from its number or payment reference.
    OneEdit {
        found: String,
        shown: String,
    },
    /// The same, where nothing else can be meant: the only open invoice owing exactly the credit
    /// (`amount`, printed) that the text comes near.
    OneEditOnly {
        found: String,
        shown: String,
        amount: String,
    },
    Not,
}

/// Whether the text refers to `invoice`; `rfs` are the text's valid creditor references, and
/// `taken` keys that are other invoices' references (in a set), so never a near miss for this one.
pub(super) fn referenced(
    text: &RemittanceText,
    rfs: &[String],
    invoice: &InvoiceFacts,
    taken: &[String],
    tuning: &Tuning,
) -> Referenced {
    let rf = invoice.rf_reference.filter(|_| tuning.signals.is_on(Signal::RfReference));
    if let Some(rf) = rf
        && rfs.contains(&ref_key(rf))
    {
        return Referenced::Rf(rf.to_owned());
    }
    if !tuning.signals.is_on(Signal::Reference) {
        return Referenced::Not;
    }
    let mut typo = Referenced::Not;
    // A payment reference may be letters only (`PR-BBSNMMZB`): then it counts when the text
    // holds exactly it, never one typo away. An invoice number always needs a digit.
    let codes = std::iter::once((invoice.number, false)).chain(invoice.payment_reference.map(|r| (r, true)));
    for (shown, letters_may_do) in codes {
        let key = ref_key(shown);
        if !is_reference_like(&key) {
            if letters_may_do && is_letter_code(&key) && text.contains(&key) {
                return Referenced::Exact(shown.to_owned());
            }
            continue;
        }
        if text.contains(&key) {
            return Referenced::Exact(shown.to_owned());
        }
        if typo == Referenced::Not
            && let Some(found) = text.near(&key).find(|found| !taken.iter().any(|t| t == found))
        {
            typo = Referenced::OneEdit { found: found.to_owned(), shown: shown.to_owned() };
        }
    }
    typo
}

/// The reason for one invoice's reference, if any.
pub(super) fn add_reference(card: &mut Scorecard, referenced: Referenced) {
    match referenced {
        Referenced::Rf(rf) => card.add_strong(
            Signal::RfReference,
            1.0,
            RF_REFERENCE,
            format!("creditor reference {rf} found in the remittance text, check digits valid"),
        ),
        Referenced::Exact(shown) => card.add_strong(
            Signal::Reference,
            1.0,
            REFERENCE,
            format!("reference {shown} found in the remittance text"),
        ),
        Referenced::OneEdit { found, shown } => card.add(
            Signal::Reference,
            ONE_EDIT,
            REFERENCE,
            format!("reference {found} differs by one character from {shown}"),
        ),
        Referenced::OneEditOnly { found, shown, amount } => card.add_strong(
            Signal::Reference,
            ONE_EDIT_ONLY,
            REFERENCE,
            format!(
                "reference {found} differs by one character from {shown}, and no other open invoice owing \
                 {amount} is that close to the text"
            ),
        ),
        Referenced::Not => {}
    }
}

/// Who paid: the customer's bank account or a rule's customer (strong), and the payer's name.
pub(super) fn add_customer(
    card: &mut Scorecard,
    tx: &TxFacts,
    customer_id: Option<&str>,
    customer: Option<&CustomerFacts>,
    tuning: &Tuning,
) {
    if tuning.signals.is_on(Signal::BankAccount) {
        match (tx.customer_id, customer_id) {
            (Some(rule), Some(id)) if rule == id => card.add_strong(
                Signal::BankAccount,
                1.0,
                BANK_ACCOUNT,
                format!("a reconciliation rule assigned the transaction to this customer ({id})"),
            ),
            // The tenant's rule says someone else paid: that outweighs what the account says.
            (Some(rule), Some(_)) => card.add(
                Signal::BankAccount,
                1.0,
                -BANK_ACCOUNT,
                format!("a reconciliation rule assigned the transaction to another customer ({rule})"),
            ),
            _ => {
                let account = tx.counterparty_account.filter(|a| !a.is_empty());
                let known = customer.map_or(&[][..], |c| c.account_keys);
                if let Some(account) = account.filter(|a| known.iter().any(|k| k == a)) {
                    let ending = &account[account.len().saturating_sub(4)..];
                    let detail = format!("paid from the customer's bank account ending {ending}");
                    card.add_strong(Signal::BankAccount, 1.0, BANK_ACCOUNT, detail);
                }
            }
        }
    }
    let (Some(payer), Some(customer)) = (tx.counterparty_name, customer) else { return };
    if !tuning.signals.is_on(Signal::Name) {
        return;
    }
    let owned;
    let payer_key = match tx.seen.and_then(|s| s.payer.as_ref()) {
        Some(key) => key,
        None => {
            owned = NormalizedName::new(payer);
            &owned
        }
    };
    let names = std::iter::once(customer.name).chain(customer.aliases.iter().map(String::as_str));
    let mut best: Option<(f64, &str, bool)> = None;
    for (i, name) in names.enumerate() {
        let similarity =
            match (customer.payer_similarity.and_then(|s| s.get(i)), customer.normalized.and_then(|n| n.get(i))) {
                (Some(&known), _) => known,
                (None, Some(normalized)) => payer_key.similarity(normalized),
                (None, None) => payer_key.similarity(&NormalizedName::new(name)),
            };
        if best.is_none_or(|(b, _, _)| similarity > b) {
            best = Some((similarity, name, i > 0));
        }
    }
    if let Some((similarity, name, alias)) = best.filter(|(s, _, _)| *s >= NAME_MIN) {
        let whose = if alias { "the customer's alias" } else { "the customer's name" };
        let detail = if similarity >= 1.0 {
            format!("payer name {payer} matches {whose} {name}")
        } else {
            format!("payer name {payer} similar to {whose} {name} ({similarity:.2})")
        };
        card.add(Signal::Name, similarity, NAME, detail);
    }
}

/// The larger of the fixed tolerance and the per-mille one, for `due`.
pub(super) fn tolerance(due: i64, tuning: &Tuning) -> i64 {
    let share = i128::from(due) * i128::from(tuning.amount_tolerance_permille) / 1000;
    tuning.amount_tolerance.max(i64::try_from(share).unwrap_or(i64::MAX)).max(0)
}

/// The amount paid against the amount due; `invoices` past the first each take 0.05 off the
/// strength of a fitting sum. Must come after the strong signals: a partial payment counts only
/// with one.
/// The weight against a candidate the credit pays more than is due.
const OVERPAID: f64 = 0.15;

pub(super) fn add_amount(card: &mut Scorecard, paid: i64, due: i64, currency: &str, invoices: usize, tuning: &Tuning) {
    if !tuning.signals.is_on(Signal::Amount) {
        return;
    }
    let set_penalty = 1.0 - 0.05 * invoices.saturating_sub(1) as f64;
    let (diff, tolerance) = (paid.abs_diff(due), tolerance(due, tuning));
    let (paid_text, due_text) = (money(paid, currency), money(due, currency));
    let (strength, detail) = if diff == 0 && invoices > 1 {
        (set_penalty, format!("the {invoices} invoices' amounts due sum to the credit ({paid_text})"))
    } else if diff == 0 {
        (1.0, format!("amount equal ({paid_text})"))
    } else if diff <= tolerance.unsigned_abs() {
        let (diff, tolerance) = (money(diff as i64, currency), money(tolerance, currency));
        let detail = format!(
            "amount within tolerance: {paid_text} paid, {due_text} due (difference {diff}, tolerance {tolerance})"
        );
        (WITHIN_TOLERANCE * set_penalty, detail)
    } else if paid > due {
        // More than is owed is evidence against: the credit likely pays something else too (a set
        // of invoices), and an overpaid invoice must never outrank one paid exactly.
        let detail = format!("{paid_text} paid, more than the {due_text} due");
        card.add(Signal::Amount, 1.0, -OVERPAID, detail);
        return;
    } else if card
        .reasons
        .iter()
        .any(|r| matches!(r.signal, Signal::Reference | Signal::RfReference) && r.strength >= 1.0)
    {
        (PARTIAL, format!("partial payment: {paid_text} of {due_text} due"))
    } else {
        let why = "a partial payment counts only when the credit quotes the invoice";
        (0.0, format!("{paid_text} paid, less than the {due_text} due; {why}"))
    };
    card.add(Signal::Amount, strength, AMOUNT, detail);
}

/// How the payment date fits an invoice's dates: (strength, weight, detail), the weight negative
/// for a payment before the invoice was issued; None when the invoice has no dates.
pub(super) fn date_fit(
    paid_on: NaiveDate,
    issue: Option<NaiveDate>,
    due: Option<NaiveDate>,
    tuning: &Tuning,
) -> Option<(f64, f64, String)> {
    let delay = tuning.banking_delay_days.max(0);
    if let Some(issue) = issue {
        let early = (issue - paid_on).num_days();
        if early > delay {
            return Some((1.0, -DATE, format!("paid {} before the invoice was issued ({issue})", days(early))));
        }
    }
    let (anchor, what) = match (due, issue) {
        (Some(due), _) => (due, "the due date"),
        (None, Some(issue)) => (issue, "the issue date"),
        (None, None) => return None,
    };
    let late = (paid_on - anchor).num_days();
    let when = match late {
        0 => format!("paid on {what} ({anchor})"),
        _ if late < 0 => format!("paid {} before {what} ({anchor})", days(-late)),
        _ => format!("paid {} after {what} ({anchor})", days(late)),
    };
    let end = tuning.date_window_days.max(delay);
    Some(if late <= delay {
        (1.0, DATE, when)
    } else if late <= end {
        (1.0 - (1.0 - LATE_FLOOR) * (late - delay) as f64 / (end - delay) as f64, DATE, when)
    } else {
        (0.0, DATE, format!("{when}, outside the {end}-day window"))
    })
}

/// The date reason for one invoice.
pub(super) fn add_date(card: &mut Scorecard, paid_on: NaiveDate, invoice: &InvoiceFacts, tuning: &Tuning) {
    if !tuning.signals.is_on(Signal::Date) {
        return;
    }
    if let Some((strength, weight, detail)) = date_fit(paid_on, invoice.issue_date, invoice.due_date, tuning) {
        card.add(Signal::Date, strength, weight, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciliation::scoring::Reason;
    use crate::reconciliation::scoring::properties::{acme, day, invoice, tx};

    fn fit(paid_on: NaiveDate, tuning: &Tuning) -> Option<(f64, f64, String)> {
        date_fit(paid_on, Some(day(1, 1)), Some(day(1, 31)), tuning)
    }

    #[test]
    fn a_payment_fits_from_issue_to_due_then_fades_until_the_window_ends() {
        let tuning = Tuning::default();
        assert_eq!(fit(day(1, 31), &tuning), Some((1.0, DATE, "paid on the due date (2026-01-31)".into())));
        assert_eq!(fit(day(1, 10), &tuning).map(|f| f.2), Some("paid 21 days before the due date (2026-01-31)".into()));
        assert_eq!(fit(day(2, 3), &tuning).map(|f| f.0), Some(1.0), "within the banking delay");
        let (strength, _, detail) = fit(day(3, 2), &tuning).unwrap();
        assert!(strength > LATE_FLOOR && strength < 1.0, "{strength}");
        assert_eq!(detail, "paid 30 days after the due date (2026-01-31)");
        assert_eq!(fit(day(4, 1), &tuning).map(|f| f.0), Some(LATE_FLOOR), "the last day of the window");
        let (strength, weight, detail) = fit(day(4, 2), &tuning).unwrap();
        assert_eq!((strength, weight), (0.0, DATE));
        assert_eq!(detail, "paid 61 days after the due date (2026-01-31), outside the 60-day window");
    }

    #[test]
    fn a_payment_before_the_invoice_was_issued_counts_against_it() {
        let tuning = Tuning::default();
        let new_year_eve = NaiveDate::from_ymd_opt(2025, 12, 29).unwrap();
        assert_eq!(fit(new_year_eve, &tuning).map(|f| f.1), Some(DATE), "within the delay");
        let (strength, weight, detail) = fit(day(1, 1).pred_opt().unwrap() - chrono::Days::new(10), &tuning).unwrap();
        assert_eq!((strength, weight), (1.0, -DATE));
        assert_eq!(detail, "paid 11 days before the invoice was issued (2026-01-01)");
        let only_issue = date_fit(day(1, 20), Some(day(1, 1)), None, &tuning).map(|f| f.2);
        assert_eq!(only_issue, Some("paid 19 days after the issue date (2026-01-01)".into()));
        assert_eq!(date_fit(day(1, 20), None, None, &tuning), None);
    }

    #[test]
    fn tolerance_is_the_larger_of_fixed_and_per_mille() {
        let tuning = Tuning { amount_tolerance: 50, amount_tolerance_permille: 2, ..Tuning::default() };
        assert_eq!(tolerance(10_000, &tuning), 50);
        assert_eq!(tolerance(100_000, &tuning), 200);
        assert_eq!(tolerance(i64::MAX, &Tuning { amount_tolerance_permille: 100, ..tuning }), i64::MAX / 10);
        assert_eq!(tolerance(10_000, &Tuning::default()), 0);
    }

    /// The amount's reason, after an exact reference when `quoted`.
    fn amount(paid: i64, due: i64, quoted: bool, tuning: &Tuning) -> Reason {
        let mut card = Scorecard::default();
        if quoted {
            card.add_strong(Signal::Reference, 1.0, REFERENCE, "reference found".into());
        }
        add_amount(&mut card, paid, due, "EUR", 1, tuning);
        card.reasons.pop().expect("an amount reason")
    }

    #[test]
    fn amounts_score_by_how_they_differ() {
        let tuning = Tuning { amount_tolerance: 100, ..Tuning::default() };
        assert_eq!(amount(10_000, 10_000, false, &tuning).detail, "amount equal (100.00 EUR)");
        let near = amount(9_950, 10_000, false, &tuning);
        assert_eq!(near.strength, WITHIN_TOLERANCE);
        let detail =
            "amount within tolerance: 99.50 EUR paid, 100.00 EUR due (difference 0.50 EUR, tolerance 1.00 EUR)";
        assert_eq!(near.detail, detail);
        let partial = amount(5_000, 10_000, true, &tuning);
        assert_eq!(
            (partial.strength, partial.detail.as_str()),
            (PARTIAL, "partial payment: 50.00 EUR of 100.00 EUR due")
        );
        let unproven = amount(5_000, 10_000, false, &tuning);
        assert_eq!(unproven.strength, 0.0);
        assert!(unproven.detail.ends_with("a partial payment counts only when the credit quotes the invoice"));
        let over = amount(20_000, 10_000, true, &tuning);
        assert_eq!(
            (over.strength, over.weight, over.detail.as_str()),
            (1.0, -OVERPAID, "200.00 EUR paid, more than the 100.00 EUR due"),
            "an overpaid invoice counts against, so one paid exactly outranks it"
        );
    }

    fn customer_reasons(tx: &TxFacts, customer: &CustomerFacts, tuning: &Tuning) -> Scorecard {
        let mut card = Scorecard::default();
        add_customer(&mut card, tx, Some("cus_acme"), Some(customer), tuning);
        card
    }

    #[test]
    fn the_customers_account_or_rule_is_strong_and_a_rule_for_another_counts_against() {
        let tuning = Tuning::default();
        let accounts = ["GB29NWBK60161331926819".to_owned()];
        let customer = acme(&[], &accounts);
        let mut paid = tx("", 1);
        paid.counterparty_account = Some("GB29NWBK60161331926819");
        let card = customer_reasons(&paid, &customer, &tuning);
        assert!(card.strong);
        assert_eq!(card.reasons[0].detail, "paid from the customer's bank account ending 6819");
        paid.customer_id = Some("cus_acme");
        let card = customer_reasons(&paid, &customer, &tuning);
        assert_eq!(
            card.reasons[0].detail,
            "a reconciliation rule assigned the transaction to this customer (cus_acme)"
        );
        paid.customer_id = Some("cus_other");
        let card = customer_reasons(&paid, &customer, &tuning);
        assert!(!card.strong);
        assert_eq!((card.reasons[0].weight, card.reasons.len()), (-BANK_ACCOUNT, 1), "the rule wins over the account");
        paid.customer_id = None;
        paid.counterparty_account = Some("GB00OTHER");
        assert!(customer_reasons(&paid, &customer, &tuning).reasons.is_empty());
    }

    #[test]
    fn names_count_from_075_and_aliases_are_named() {
        let tuning = Tuning::default();
        let aliases = ["Widget World".to_owned()];
        let customer = acme(&aliases, &[]);
        let mut paid = tx("", 1);
        paid.counterparty_name = Some("WIDGET WORLD");
        let card = customer_reasons(&paid, &customer, &tuning);
        assert_eq!(card.reasons[0].detail, "payer name WIDGET WORLD matches the customer's alias Widget World");
        assert!(!card.strong, "a name is never proof");
        paid.counterparty_name = Some("ACME WIDG");
        let card = customer_reasons(&paid, &customer, &tuning);
        assert_eq!(
            card.reasons[0].detail,
            "payer name ACME WIDG similar to the customer's name Acme Widgets Limited (0.95)"
        );
        paid.counterparty_name = Some("Initech");
        assert!(customer_reasons(&paid, &customer, &tuning).reasons.is_empty());
        paid.counterparty_name = Some("ACME WIDGETS");
        let mut off = Tuning::default();
        off.signals.set(Signal::Name, false);
        assert!(customer_reasons(&paid, &customer, &off).reasons.is_empty());
    }

    #[test]
    fn references_prefer_the_rf_then_exact_then_one_edit() {
        let tuning = Tuning::default();
        let mut inv = invoice("inv_a", "INV-2026-0104", 1);
        inv.payment_reference = Some("PO-778812");
        let text = RemittanceText::new("INV-2026-0105 PO 778812");
        assert_eq!(referenced(&text, &[], &inv, &[], &tuning), Referenced::Exact("PO-778812".into()));
        let text = RemittanceText::new("INV-2026-0105");
        let near = Referenced::OneEdit { found: "INV20260105".into(), shown: "INV-2026-0104".into() };
        assert_eq!(referenced(&text, &[], &inv, &[], &tuning), near);
        let taken = ["INV20260105".to_owned()];
        assert_eq!(referenced(&text, &[], &inv, &taken, &tuning), Referenced::Not, "another invoice's");
        inv.rf_reference = Some("RF18539007547034");
        let rfs = ["RF18539007547034".to_owned()];
        assert_eq!(referenced(&text, &rfs, &inv, &[], &tuning), Referenced::Rf("RF18539007547034".into()));
        let mut off = Tuning::default();
        off.signals.set(Signal::RfReference, false);
        off.signals.set(Signal::Reference, false);
        assert_eq!(referenced(&text, &rfs, &inv, &[], &off), Referenced::Not);
    }

    #[test]
    fn a_payment_reference_of_letters_counts_only_quoted_exactly() {
        let tuning = Tuning::default();
        let quoted = |reference: &str, text: &str| {
            let inv = InvoiceFacts { payment_reference: Some(reference), ..invoice("inv_a", "INV-2026-0104", 1) };
            referenced(&RemittanceText::new(text), &[], &inv, &[], &tuning)
        };
        assert_eq!(quoted("PR-BBSNMMZB", "pr bbsnmmzb thanks"), Referenced::Exact("PR-BBSNMMZB".into()));
        assert_eq!(quoted("PR-BBSNMMZB", "PR-BBSNMMZC"), Referenced::Not, "no typo allowed without a digit");
        assert_eq!(quoted("PR-BBSNMMZB", "BBSNMMZB"), Referenced::Not, "a part of it is not it");
        assert_eq!(quoted("PR-BBSNMMZB", "SEPA CREDIT TRANSFER"), Referenced::Not);
        let own_word = quoted("Transfer", "SEPA CREDIT TRANSFER");
        assert_eq!(own_word, Referenced::Exact("Transfer".into()), "only when the invoice's reference is the word");
        assert_eq!(quoted("Payment", "PAYMENT"), Referenced::Not, "7 letters are a word, not a code");
        let letters = invoice("inv_b", "ABCDEFGHJK", 1);
        let text = RemittanceText::new("ABCDEFGHJK");
        assert_eq!(referenced(&text, &[], &letters, &[], &tuning), Referenced::Not, "a number needs a digit");
    }
}
