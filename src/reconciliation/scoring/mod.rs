//! The engine's judgement, pure: how well a bank credit fits an open invoice, a set of one
//! customer's invoices or a Stripe payout, in a score with the reasons behind it, and what to do
//! with a transaction's candidates ([`decide`]). The engine finds candidates in SQL; everything
//! here is deterministic and does no I/O.
//!
//! # Score
//!
//! Each signal contributes `weight × strength` (strength 0 to 1), and the score is the sum over
//! [`FULL_EVIDENCE`] (0.75), clamped to 0..1 and rounded to 4 decimals: an exact reference and an
//! exact amount are full evidence (1.0), and no combination of weak signals reaches the default
//! auto-match threshold of 0.90 by itself being weak evidence many times over. A candidate below
//! the tenant's suggest threshold is not returned.
//!
//! | signal | weight | strength |
//! |---|---|---|
//! | reference | 0.45 | invoice number or payment reference (ref keys, reference-like: `text::is_reference_like`) found in the text as adjacent tokens: 1; one edit away (keys of 8+ characters): 0.5, or 0.8 and strong when [`Rivals`] leave only this invoice (below); a payment reference of 8+ letters and no digit (`text::is_letter_code`) counts only found exactly |
//! | rf_reference | 0.50 | the invoice's ISO 11649 reference found with valid check digits: 1 (the number is then not counted again) |
//! | bank_account | 0.30 | paid from one of the customer's accounts, or a rule assigned the transaction to the invoice's customer: 1; a rule assigned another customer: weight −0.30 |
//! | name | 0.20 | payer name vs the customer's name and aliases: the similarity, if 0.75 or more |
//! | amount | 0.30 | equal: 1; within tolerance: 0.7; less than due: 0.3 with a strong signal, else 0; more than due: weight −0.15 |
//! | date | 0.10 | paid from issue − banking delay to due + banking delay: 1, then falling linearly to 0.25 at due + window; later: 0; before issue − banking delay: weight −0.10 |
//! | currency | — | must be equal, or the counterpart is no candidate |
//!
//! A candidate is *strong* when an exact reference, a valid creditor reference, the customer's
//! bank account (or a rule's customer) or a Stripe trace supports it; auto-matching needs one. A
//! reference one character off is not strong by itself: sequential invoice numbers are one edit
//! apart, so it suggests rather than proves, and its low strength lets the exact sibling win when
//! both are open. It proves the invoice ([`score_invoice_among`]) only when the credit is exactly
//! the amount due and the engine can tell nothing else is meant ([`Rivals`]): it saw every open
//! invoice owing exactly the credit (no cap cut them), none of the others has a reference the
//! text holds or comes within one edit of, and the text quotes no open invoice exactly. A key of
//! the text that is the reference of an open invoice the credit pays in full is no near miss for
//! any other: the quote and the amount explain it (else a subscription's sibling owing as much
//! ties with it at 1.0, clamped).
//!
//! A set of invoices ([`score_invoice_set`]) must sum to the credit within tolerance; its
//! reference strength is the share of its invoices referenced, and each invoice past the first
//! takes 0.05 off the amount's strength, since more invoices make a chance sum likelier. It is
//! strong from references when the text quotes all its invoices exactly, or
//! ([`score_sole_quoted_set`]) some of them and it is the only set that can be meant: the only
//! set of the customer's open invoices (all known, no cap cut them) that sums to the credit
//! within tolerance and holds a quoted invoice, summing exactly and holding every invoice the
//! text quotes, which quotes nobody else's.
//!
//! A Stripe payout ([`score_payout`]) must equal the credit exactly. Its trace id in the text
//! (reference-like, or a letter code found exactly) is stripe_trace 0.50 (strong); else its
//! statement descriptor is 0.50 too, strong when specific (a reference-like key of 8+
//! characters), else strength 0.8, strong only when the credit was booked from a day before the
//! payout's arrival to the banking delay after it (the date signal on): a descriptor the
//! account's payouts share names the payout only with its exact net and arrival, and two open
//! payouts of one net arriving together tie, so `decide` matches neither. The amount is 0.30 and
//! that arrival window is date 0.20.
//!
//! Signals a tenant switched off are not evaluated. Each reason says in words, with numbers, what
//! was found; amounts are printed in major units with the currency ("1,250.00 GBP").

mod decide;
mod evidence;
mod invoice;
mod payout;
#[cfg(test)]
mod properties;
mod set;
mod subset;
mod tuning;

use chrono::NaiveDate;

pub use decide::{AMBIGUITY_MARGIN, Decision, Refusal, decide, decide_explained};
pub use invoice::{Rivals, quotes_exactly, quotes_exactly_seen, score_invoice, score_invoice_among};
pub use payout::score_payout;
pub use set::{MAX_SET, score_invoice_set, score_sole_quoted_set};
pub use subset::{SUBSET_MAX_AMOUNTS, SUBSET_MAX_STEPS, subset_sums};
pub use tuning::{Signal, SignalSwitches, Tuning};

use crate::{
    domain::money::{Currency, format_minor_units},
    reconciliation::text::{NormalizedName, RemittanceText, candidate_keys_in, rf_references},
};

/// The weighted sum that scores 1.0: an exact reference (0.45) and an exact amount (0.30).
pub const FULL_EVIDENCE: f64 = 0.75;

/// One transaction as scoring sees it.
#[derive(Debug, Clone, Copy)]
pub struct TxFacts<'a> {
    /// Minor units; only credits (> 0) pay anything.
    pub amount: i64,
    pub currency: &'a str,
    pub date: NaiveDate,
    /// Description, reference and any remittance information joined by ' '.
    pub text: &'a str,
    pub counterparty_name: Option<&'a str>,
    /// The ref key of the payer's IBAN or BBAN.
    pub counterparty_account: Option<&'a str>,
    /// The customer a reconciliation rule assigned: as strong a hint as the bank account.
    pub customer_id: Option<&'a str>,
    /// The text tokenised and the payer's name normalised, once: pass it when scoring many
    /// candidates for one transaction (None: each scoring derives them again).
    pub seen: Option<&'a Seen>,
}

/// What scoring reads from a transaction's text and payer name, derived once.
#[derive(Debug)]
pub struct Seen {
    pub text: RemittanceText,
    /// The reference keys the text may quote ([`candidate_keys_in`]).
    pub keys: Vec<String>,
    /// The text's creditor references with valid check digits (ref keys).
    pub rfs: Vec<String>,
    pub payer: Option<NormalizedName>,
}

impl Seen {
    pub fn new(text: &str, payer: Option<&str>) -> Self {
        let text_read = RemittanceText::new(text);
        Self {
            keys: candidate_keys_in(&text_read),
            text: text_read,
            rfs: rf_references(text),
            payer: payer.map(NormalizedName::new),
        }
    }
}

/// `tx.seen`, or what it would hold, derived now into `slot`.
fn seen<'s>(tx: &'s TxFacts, slot: &'s mut Option<Seen>) -> &'s Seen {
    match tx.seen {
        Some(seen) => seen,
        None => slot.insert(Seen::new(tx.text, tx.counterparty_name)),
    }
}

/// An open invoice as scoring sees it.
#[derive(Debug, Clone, Copy)]
pub struct InvoiceFacts<'a> {
    pub id: &'a str,
    pub number: &'a str,
    pub payment_reference: Option<&'a str>,
    pub rf_reference: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub currency: &'a str,
    /// What is still to be paid, minor units.
    pub amount_due: i64,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
}

/// The invoice's customer as scoring sees it.
#[derive(Debug, Clone, Copy)]
pub struct CustomerFacts<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub aliases: &'a [String],
    /// Ref keys of the customer's bank accounts (`customers.account_keys`).
    pub account_keys: &'a [String],
    /// The name, then each alias, normalised once (None: normalised when compared).
    pub normalized: Option<&'a [NormalizedName]>,
    /// The payer's similarity to the name, then to each alias, computed once per transaction and
    /// customer (None: computed when compared).
    pub payer_similarity: Option<&'a [f64]>,
}

/// A paid Stripe payout as scoring sees it.
#[derive(Debug, Clone, Copy)]
pub struct PayoutFacts<'a> {
    pub id: &'a str,
    /// What reaches the bank, minor units.
    pub net: i64,
    pub currency: &'a str,
    pub arrival_date: NaiveDate,
    pub trace_id: Option<&'a str>,
    pub statement_descriptor: Option<&'a str>,
}

/// One signal's contribution, in words and numbers, as the API reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Reason {
    pub signal: Signal,
    /// How strongly this signal supports the candidate, 0 to 1 (e.g. name similarity 0.93).
    pub strength: f64,
    /// Its weight in the score; negative for evidence against the candidate (a payment before
    /// the invoice was issued).
    pub weight: f64,
    /// In words, e.g. "reference INV-2026-0104 found in the remittance text".
    pub detail: String,
}

/// A candidate counterpart with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub target: Target,
    /// 0..1, rounded to 4 decimals.
    pub score: f64,
    pub reasons: Vec<Reason>,
    /// Whether a strong signal (reference, RF, bank account or rule's customer, Stripe trace)
    /// supports it.
    pub strong: bool,
}

/// What a transaction may pay.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// One or more invoices, ids sorted.
    Invoices(Vec<String>),
    Payout(String),
}

impl Target {
    /// "invoice:inv_a", "invoices:inv_a,inv_b" (sorted), "stripe_payout:po_…": what a
    /// rejection stores, and the tie-break that keeps rankings deterministic.
    pub fn key(&self) -> String {
        match self {
            Target::Invoices(ids) if ids.len() == 1 => format!("invoice:{}", ids[0]),
            Target::Invoices(ids) => format!("invoices:{}", ids.join(",")),
            Target::Payout(id) => format!("stripe_payout:{id}"),
        }
    }
}

/// Reasons gathered for one candidate, and whether a strong one is among them.
#[derive(Debug, Default)]
struct Scorecard {
    reasons: Vec<Reason>,
    strong: bool,
}

impl Scorecard {
    fn add(&mut self, signal: Signal, strength: f64, weight: f64, detail: String) {
        self.reasons.push(Reason { signal, strength: round4(strength), weight, detail });
    }

    /// A reason that alone identifies the counterpart.
    fn add_strong(&mut self, signal: Signal, strength: f64, weight: f64, detail: String) {
        self.strong = true;
        self.add(signal, strength, weight, detail);
    }

    /// The scored candidate, or None below the suggest threshold.
    fn finish(self, target: Target, tuning: &Tuning) -> Option<Scored> {
        let evidence: f64 = self.reasons.iter().map(|r| r.weight * r.strength).sum();
        let score = round4((evidence / FULL_EVIDENCE).clamp(0.0, 1.0));
        (score >= tuning.suggest_threshold).then_some(Scored {
            target,
            score,
            reasons: self.reasons,
            strong: self.strong,
        })
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn same_currency(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// An amount for people: major units grouped in thousands, then the currency ("1,250.00 GBP",
/// "150,000 JPY"). Unknown codes get two decimals.
fn money(minor: i64, currency: &str) -> String {
    let code = Currency::parse(currency).or_else(|| Currency::parse("XXX"));
    let plain = code.map_or_else(|| minor.to_string(), |code| format_minor_units(minor, code));
    let (sign, unsigned) = plain.strip_prefix('-').map_or(("", plain.as_str()), |rest| ("-", rest));
    let (whole, fraction) = unsigned.split_once('.').map_or((unsigned, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::with_capacity(plain.len() + whole.len() / 3 + currency.len() + 1);
    grouped.push_str(sign);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if let Some(fraction) = fraction {
        grouped.push('.');
        grouped.push_str(fraction);
    }
    grouped.push(' ');
    grouped.push_str(&currency.to_ascii_uppercase());
    grouped
}

/// "1 day", "3 days".
fn days(n: i64) -> String {
    if n.abs() == 1 { format!("{n} day") } else { format!("{n} days") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_keys_are_what_rejections_store() {
        assert_eq!(Target::Invoices(vec!["inv_a".into()]).key(), "invoice:inv_a");
        assert_eq!(Target::Invoices(vec!["inv_a".into(), "inv_b".into()]).key(), "invoices:inv_a,inv_b");
        assert_eq!(Target::Payout("po_1".into()).key(), "stripe_payout:po_1");
    }

    #[test]
    fn amounts_print_in_major_units_with_the_currency() {
        assert_eq!(money(125_000, "GBP"), "1,250.00 GBP");
        assert_eq!(money(5, "eur"), "0.05 EUR");
        assert_eq!(money(-123_456_789, "USD"), "-1,234,567.89 USD");
        assert_eq!(money(150_000, "JPY"), "150,000 JPY");
        assert_eq!(money(100, "KWD"), "0.100 KWD");
        assert_eq!(money(99_999, "XYZ"), "999.99 XYZ");
        assert_eq!(money(12, "??"), "0.12 ??", "an unreadable code still gets two decimals");
    }

    #[test]
    fn day_counts_read_as_english() {
        assert_eq!(days(1), "1 day");
        assert_eq!(days(0), "0 days");
        assert_eq!(days(12), "12 days");
    }

    #[test]
    fn a_scorecard_scores_relative_to_full_evidence_and_drops_weak_candidates() {
        let mut card = Scorecard::default();
        card.add(Signal::Amount, 1.0, 0.30, "amount equal".into());
        card.add(Signal::Date, 1.0, 0.10, "on time".into());
        let scored = card.finish(Target::Payout("po_1".into()), &Tuning::default());
        let scored = scored.expect("0.40 / 0.75 is above the suggest threshold");
        assert_eq!((scored.score, scored.strong), (0.5333, false));

        let mut card = Scorecard::default();
        card.add_strong(Signal::Reference, 1.0, 0.45, "reference".into());
        card.add(Signal::Amount, 1.0, 0.30, "amount".into());
        card.add(Signal::Name, 1.0, 0.20, "name".into());
        let scored = card.finish(Target::Payout("po_1".into()), &Tuning::default()).expect("full evidence");
        assert_eq!((scored.score, scored.strong), (1.0, true), "clamped to 1");

        let mut card = Scorecard::default();
        card.add(Signal::Date, 1.0, -0.10, "paid before the invoice was issued".into());
        assert_eq!(
            card.finish(Target::Payout("po_1".into()), &Tuning { suggest_threshold: 0.0, ..Tuning::default() })
                .map(|s| s.score),
            Some(0.0),
            "never negative"
        );
    }
}

#[cfg(test)]
mod seen_tests {
    use super::properties::{acme, day, invoice, tx};
    use super::*;

    /// The engine reads a credit's text, normalises names and compares the payer with a customer
    /// once ([`Seen`], [`CustomerFacts::normalized`], [`CustomerFacts::payer_similarity`]);
    /// scoring must not depend on whether it did.
    #[test]
    fn what_was_read_once_scores_as_what_is_read_each_time() {
        let tuning = Tuning::default();
        let aliases = ["ACME W".to_owned(), "Acme Holdings".to_owned()];
        let accounts = ["GB33BUKB20201555555555".to_owned()];
        let normalized: Vec<NormalizedName> = std::iter::once("Acme Widgets Limited")
            .chain(aliases.iter().map(String::as_str))
            .map(NormalizedName::new)
            .collect();
        let plain = acme(&aliases, &accounts);
        let read = CustomerFacts { normalized: Some(&normalized), ..plain };
        let mut rf = invoice("inv_rf", "INV-2026-0300", 50_000);
        rf.rf_reference = Some("RF18539007547034");
        let invoices = [invoice("inv_a", "INV-2026-0104", 125_000), invoice("inv_b", "INV-2026-0105", 75_000), rf];
        for (text, amount, payer) in [
            ("PAYMENT INV-2026-0104 THANK YOU", 125_000, Some("ACME WIDGETS LTD")),
            ("inv 2026 0140", 125_000, Some("ACME W")),
            ("RF18 5390 0754 7034", 50_000, None),
            ("INV-2026-0104 INV-2026-0105", 200_000, Some("ACME HOLDINGS")),
            ("BACS CREDIT", 75_000, Some("Someone Else")),
        ] {
            let mut each = tx(text, amount);
            each.date = day(1, 20);
            each.counterparty_name = payer;
            let seen = Seen::new(text, payer);
            let once = TxFacts { seen: Some(&seen), ..each };
            let similarities: Vec<f64> = match &seen.payer {
                Some(p) => normalized.iter().map(|n| p.similarity(n)).collect(),
                None => Vec::new(),
            };
            let compared = CustomerFacts { payer_similarity: Some(&similarities), ..read };
            for i in &invoices {
                assert_eq!(
                    score_invoice(&each, i, Some(&plain), &tuning),
                    score_invoice(&once, i, Some(&read), &tuning),
                    "{text} against {}",
                    i.number
                );
                assert_eq!(
                    score_invoice(&each, i, Some(&plain), &tuning),
                    score_invoice(&once, i, Some(&compared), &tuning),
                    "{text} against {}, names compared once",
                    i.number
                );
                assert_eq!(quotes_exactly(text, i), quotes_exactly_seen(&seen, i), "{text} quotes {}", i.number);
            }
            let set = [&invoices[0], &invoices[1]];
            assert_eq!(
                score_invoice_set(&each, &set, Some(&plain), &tuning),
                score_invoice_set(&once, &set, Some(&read), &tuning),
                "{text} against the set"
            );
        }
    }
}
