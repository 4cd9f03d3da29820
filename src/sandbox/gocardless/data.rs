//! Deterministic simulated data: institutions, accounts, and each account's transactions as a
//! function of (seed, account, day).

use chrono::{Datelike, Days, NaiveDate};
use serde::Serialize;
use serde_json::{Value, json};

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`high > low`).
    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }

    /// One element of a non-empty slice.
    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Mixes several numbers into one seed.
pub(crate) fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0xcbf2_9ce4_8422_2325, |acc, part| Rng::new(acc ^ part).next())
}

/// A bank the simulator offers.
#[derive(Debug)]
pub(crate) struct Institution {
    pub id: &'static str,
    pub name: &'static str,
    pub bic: &'static str,
    pub transaction_total_days: i64,
    pub max_access_valid_for_days: i64,
    pub countries: &'static [&'static str],
    pub currency: &'static str,
}

/// The simulated institutions; the sandbox bank is listed for GB as well as its usual `XX`.
pub(crate) const INSTITUTIONS: &[Institution] = &[
    Institution {
        id: "SANDBOXFINANCE_SFIN0000",
        name: "Sandbox Finance",
        bic: "SFIN0000",
        transaction_total_days: 730,
        max_access_valid_for_days: 180,
        countries: &["XX", "GB"],
        currency: "GBP",
    },
    Institution {
        id: "MONZO_MONZGB2L",
        name: "Monzo Bank",
        bic: "MONZGB2L",
        transaction_total_days: 730,
        max_access_valid_for_days: 90,
        countries: &["GB"],
        currency: "GBP",
    },
    Institution {
        id: "REVOLUT_REVOGB21",
        name: "Revolut",
        bic: "REVOGB21",
        transaction_total_days: 730,
        max_access_valid_for_days: 180,
        countries: &["GB"],
        currency: "GBP",
    },
    Institution {
        id: "STARLING_SRLGGB3L",
        name: "Starling Bank",
        bic: "SRLGGB3L",
        transaction_total_days: 540,
        max_access_valid_for_days: 90,
        countries: &["GB"],
        currency: "GBP",
    },
    Institution {
        id: "N26_NTSBDEB1",
        name: "N26 Bank",
        bic: "NTSBDEB1",
        transaction_total_days: 90,
        max_access_valid_for_days: 90,
        countries: &["DE", "AT", "FR"],
        currency: "EUR",
    },
];

/// The institution with this id.
pub(crate) fn institution(id: &str) -> Option<&'static Institution> {
    INSTITUTIONS.iter().find(|i| i.id == id)
}

/// The institution as listed by `GET /institutions/`, or with its extra fields for the single view.
pub(crate) fn institution_json(institution: &Institution, full: bool) -> Value {
    let mut value = json!({
        "id": institution.id,
        "name": institution.name,
        "bic": institution.bic,
        "transaction_total_days": institution.transaction_total_days.to_string(),
        "max_access_valid_for_days": institution.max_access_valid_for_days.to_string(),
        "max_access_valid_for_days_reconfirmation": "730",
        "countries": institution.countries,
        "logo": format!("https://cdn-logos.gocardless.com/ais/{}.png", institution.id),
    });
    if full {
        value["supported_features"] = json!(["account_selection", "business_accounts", "reconfirmation_of_consent"]);
        value["identification_codes"] = json!([]);
    }
    value
}

const OWNERS: &[&str] =
    &["Jane Doe", "Ada Lovelace Ltd", "Brightside Plumbing Ltd", "Oakfield Consulting", "Sam Patel"];
const CUSTOMERS: &[&str] =
    &["Acme Widgets Ltd", "Northwind Traders", "Globex UK", "Initech Ltd", "Hooli Europe", "Stark Supplies"];
const MERCHANTS: &[&str] =
    &["Tesco Stores", "Pret A Manger", "Amazon UK", "Shell Garage", "Transport for London", "Kafejnica"];

/// The owner name and IBAN of account number `key`, within an institution.
pub(crate) fn account_identity(seed: u64, key: u64, institution: &Institution) -> (String, String) {
    let mut rng = Rng::new(mix(&[seed, key, 1]));
    let owner = rng.pick(OWNERS).to_owned();
    let bank: String = institution.bic.chars().take(4).collect();
    let bban = format!("{bank}{:06}{:08}", rng.range(0, 1_000_000), rng.range(0, 100_000_000));
    (owner, iban("GB", &bban))
}

/// An IBAN with correct check digits.
fn iban(country: &str, bban: &str) -> String {
    let rearranged = format!("{bban}{country}00");
    let remainder = rearranged.chars().fold(0u64, |acc, c| match c.to_digit(36) {
        Some(d) if d >= 10 => (acc * 100 + u64::from(d)) % 97,
        Some(d) => (acc * 10 + u64::from(d)) % 97,
        None => acc,
    });
    format!("{country}{:02}{bban}", 98 - remainder)
}

/// How a transaction's pending version differs from its booked one, as at real banks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settlement {
    /// Books as it was pending; the pending version carries no `transactionId`.
    Unchanged,
    /// Books as it was pending, under the `transactionId` it already carried while pending.
    SameId,
    /// A card pre-authorisation: pending for a day or two, then books under the same
    /// `transactionId` for a few percent more.
    AmountChanges,
    /// Pending under a provisional `PDNG-…` id, booked under the bank's final id, same amount.
    IdChanges,
}

/// The pending version of a transaction, shown from `since` until it books.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub since: NaiveDate,
    pub cents: i64,
    pub transaction_id: Option<String>,
}

/// One simulated transaction: its booked form, and the pending form that precedes it.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    /// The booking date; the transaction is booked once the simulated day is past it.
    pub day: NaiveDate,
    pub cents: i64,
    pub counterparty: String,
    pub remittance: String,
    pub transaction_id: String,
    pub internal_id: String,
    pub pending: Pending,
}

/// A counterparty and remittance text for a new transaction dated `day`, with its amount in cents.
fn purpose(rng: &mut Rng, day: NaiveDate) -> (i64, &'static str, String) {
    if rng.range(0, 3) == 0 {
        let invoice = format!("INV-{}-{:04}", day.year(), rng.range(1, 1000));
        let text = match rng.range(0, 3) {
            0 => format!("Payment {invoice}"),
            1 => format!("{invoice} thank you"),
            _ => format!("Ref {} inv {}", rng.range(1000, 9999), invoice.to_lowercase()),
        };
        (rng.range(5_000, 250_000) as i64, rng.pick(CUSTOMERS), text)
    } else {
        let merchant = rng.pick(MERCHANTS);
        (-(rng.range(150, 15_000) as i64), merchant, format!("Card payment {merchant}"))
    }
}

/// Whether and how a generated transaction changes when it books: one in four changes its
/// amount, one in four its id (a pure function of its inputs, drawn apart from its contents).
fn settlement(seed: u64, key: u64, day_number: u64, seq: u64) -> Settlement {
    match Rng::new(mix(&[seed, key, day_number, seq, 5])).range(0, 8) {
        0 | 1 => Settlement::AmountChanges,
        2 | 3 => Settlement::IdChanges,
        4 | 5 => Settlement::SameId,
        _ => Settlement::Unchanged,
    }
}

/// The pending version of a booked transaction of `cents` on `day`.
fn pending_version(kind: Settlement, rng: &mut Rng, day: NaiveDate, cents: i64, id: &str) -> Pending {
    match kind {
        Settlement::Unchanged => Pending { since: day, cents, transaction_id: None },
        Settlement::SameId => Pending { since: day, cents, transaction_id: Some(id.to_owned()) },
        Settlement::IdChanges => {
            Pending { since: day, cents, transaction_id: Some(format!("PDNG-{:012x}", rng.next() >> 16)) }
        }
        Settlement::AmountChanges => {
            // The hold is 1–5 % (at least a penny) below what settles, placed 1–2 days before.
            let percent = rng.range(1, 6) as i64;
            let difference = (cents.abs() * percent / 100).max(1);
            let lag = Days::new(rng.range(1, 3));
            Pending {
                since: day.checked_sub_days(lag).unwrap_or(day),
                cents: cents - cents.signum() * difference,
                transaction_id: Some(id.to_owned()),
            }
        }
    }
}

/// The transactions of account `key` booked on `day` (a pure function of its arguments).
pub(crate) fn transactions_on(seed: u64, key: u64, day: NaiveDate) -> Vec<Txn> {
    let day_number = u64::from(day.num_days_from_ce().unsigned_abs());
    let mut rng = Rng::new(mix(&[seed, key, day_number]));
    let count = rng.range(0, 4);
    (0..count)
        .map(|seq| {
            let (cents, counterparty, remittance) = purpose(&mut rng, day);
            let transaction_id = format!("{}{:05}-{}", day.format("%Y%m%d"), key % 100_000, seq + 1);
            let kind = settlement(seed, key, day_number, seq);
            let mut pending_rng = Rng::new(mix(&[seed, key, day_number, seq, 6]));
            Txn {
                day,
                cents,
                counterparty: counterparty.to_owned(),
                remittance,
                internal_id: format!("{:016x}{:016x}", mix(&[seed, key, day_number, seq, 2]), mix(&[key, seq, 3])),
                pending: pending_version(kind, &mut pending_rng, day, cents, &transaction_id),
                transaction_id,
            }
        })
        .collect()
}

/// Days ahead of today whose transactions may already be pending (card holds placed early).
pub(crate) const PENDING_LEAD_DAYS: u64 = 2;

/// The generated transactions of account `key` that are pending on `today`: not booked yet, but
/// already authorised.
pub(crate) fn pending_on(seed: u64, key: u64, today: NaiveDate) -> Vec<Txn> {
    today
        .iter_days()
        .take(PENDING_LEAD_DAYS as usize + 1)
        .flat_map(|day| transactions_on(seed, key, day))
        .filter(|t| t.pending.since <= today)
        .collect()
}

/// Extra booked transaction number `n` of account `key`, dated `offset` days after `from`: what
/// the control API's `generate` adds, deterministic from the seed and the per-account counter.
pub(crate) fn extra_transaction(seed: u64, key: u64, n: u64, from: NaiveDate, span_days: u64) -> Txn {
    let mut rng = Rng::new(mix(&[seed, key, n, 7]));
    let day = from.checked_add_days(Days::new(rng.range(0, span_days.max(1)))).unwrap_or(from);
    let (cents, counterparty, remittance) = purpose(&mut rng, day);
    let transaction_id = format!("{}{:05}-G{n}", day.format("%Y%m%d"), key % 100_000);
    Txn {
        day,
        cents,
        counterparty: counterparty.to_owned(),
        remittance,
        internal_id: added_internal_id(seed, key, n),
        pending: Pending { since: day, cents, transaction_id: None },
        transaction_id,
    }
}

/// The `internalTransactionId` of the `n`th transaction added to account `key`.
pub(crate) fn added_internal_id(seed: u64, key: u64, n: u64) -> String {
    format!("{:016x}{:016x}", mix(&[seed, key, n, 8]), mix(&[key, n, 9]))
}

/// The opening balance, in cents, of account `key` before its first simulated day.
pub(crate) fn opening_cents(seed: u64, key: u64) -> i64 {
    Rng::new(mix(&[seed, key, 4])).range(100_000, 500_000) as i64
}

/// Cents as a decimal string: `-550` → `"-5.50"`.
pub(crate) fn amount(cents: i64) -> String {
    Amount(cents).to_string()
}

/// Parses a decimal amount string (`"-12.34"`, `"5"`, `"0.5"`) into cents; at most two decimals.
pub(crate) fn parse_cents(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || fraction.len() > 2 || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let cents = whole.parse::<i64>().ok()?.checked_mul(100)?;
    let fraction = format!("{fraction:0<2}").parse::<i64>().ok()?;
    let cents = cents.checked_add(fraction)?;
    Some(if negative { -cents } else { cents })
}

/// An amount in cents that serialises as the API's decimal string.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Amount(pub i64);

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:02}", self.0.unsigned_abs() / 100, self.0.unsigned_abs() % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `transactionAmount`.
#[derive(Debug, Serialize)]
pub(crate) struct Money<'a> {
    amount: Amount,
    currency: &'a str,
}

/// A transaction in the Berlin Group shape, borrowed from a [`Txn`]: booked ones carry an
/// `internalTransactionId` and a `bookingDate`, pending ones neither (and a `transactionId` only
/// when their bank gives one). Serialised straight to the response, without an intermediate tree,
/// so that an account with 100,000 transactions answers quickly.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TxnView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    internal_transaction_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    booking_date: Option<NaiveDate>,
    value_date: NaiveDate,
    transaction_amount: Money<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    creditor_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    debtor_name: Option<&'a str>,
    remittance_information_unstructured: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bank_transaction_code: Option<&'static str>,
}

impl<'a> TxnView<'a> {
    /// The booked version.
    pub(crate) fn booked(txn: &'a Txn, currency: &'a str) -> Self {
        let debit = txn.cents < 0;
        Self {
            transaction_id: Some(&txn.transaction_id),
            internal_transaction_id: Some(&txn.internal_id),
            booking_date: Some(txn.day),
            value_date: txn.day,
            transaction_amount: Money { amount: Amount(txn.cents), currency },
            creditor_name: debit.then_some(txn.counterparty.as_str()),
            debtor_name: (!debit).then_some(txn.counterparty.as_str()),
            remittance_information_unstructured: &txn.remittance,
            bank_transaction_code: Some(if debit { "PMNT-ICDT-POSD" } else { "PMNT-RCDT-ESCT" }),
        }
    }

    /// The pending version.
    pub(crate) fn pending(txn: &'a Txn, currency: &'a str) -> Self {
        let debit = txn.pending.cents < 0;
        Self {
            transaction_id: txn.pending.transaction_id.as_deref(),
            internal_transaction_id: None,
            booking_date: None,
            value_date: txn.pending.since,
            transaction_amount: Money { amount: Amount(txn.pending.cents), currency },
            creditor_name: debit.then_some(txn.counterparty.as_str()),
            debtor_name: (!debit).then_some(txn.counterparty.as_str()),
            remittance_information_unstructured: &txn.remittance,
            bank_transaction_code: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_decimal_strings() {
        assert_eq!(amount(-550), "-5.50");
        assert_eq!(amount(120_003), "1200.03");
        assert_eq!(amount(7), "0.07");
    }

    #[test]
    fn ibans_have_valid_check_digits() {
        assert_eq!(iban("GB", "WEST12345698765432"), "GB82WEST12345698765432");
    }

    #[test]
    fn transactions_are_a_function_of_their_inputs() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
        let a: Vec<_> = transactions_on(7, 9, day).into_iter().map(|t| (t.cents, t.internal_id)).collect();
        let b: Vec<_> = transactions_on(7, 9, day).into_iter().map(|t| (t.cents, t.internal_id)).collect();
        assert_eq!(a, b);
    }

    fn march(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, day).unwrap_or_default()
    }

    /// Every generated transaction over ~three years of one account.
    fn many() -> Vec<Txn> {
        march(1).iter_days().take(1000).flat_map(|day| transactions_on(11, 13, day)).collect()
    }

    /// What happened to a transaction between its pending and booked versions.
    fn observed(t: &Txn) -> Settlement {
        match t.pending.transaction_id.as_deref() {
            None => Settlement::Unchanged,
            Some(id) if id != t.transaction_id => Settlement::IdChanges,
            Some(_) if t.cents != t.pending.cents => Settlement::AmountChanges,
            Some(_) => Settlement::SameId,
        }
    }

    #[test]
    fn pending_versions_book_with_realistic_changes() {
        let all = many();
        let share = |kind| all.iter().filter(|t| observed(t) == kind).count() as f64 / all.len() as f64;
        assert!(all.len() > 1000);
        for kind in [Settlement::AmountChanges, Settlement::IdChanges, Settlement::SameId, Settlement::Unchanged] {
            assert!((0.18..0.32).contains(&share(kind)), "{kind:?}: {}", share(kind));
        }
        for t in &all {
            // Same counterparty and text by construction; value dates within two days.
            let lag = (t.day - t.pending.since).num_days();
            assert!((0..=2).contains(&lag), "{t:?}");
            match observed(t) {
                Settlement::AmountChanges => {
                    assert!(lag >= 1, "a card hold precedes settlement: {t:?}");
                    assert_eq!(t.cents.signum(), t.pending.cents.signum());
                    let growth = t.cents.abs() - t.pending.cents.abs();
                    assert!(growth >= 1 && growth <= t.cents.abs() * 5 / 100 + 1, "{t:?}");
                }
                Settlement::IdChanges => {
                    assert!(t.pending.transaction_id.as_deref().is_some_and(|id| id.starts_with("PDNG-")), "{t:?}");
                    assert_eq!((t.cents, lag), (t.pending.cents, 0));
                }
                Settlement::SameId | Settlement::Unchanged => assert_eq!((t.cents, lag), (t.pending.cents, 0)),
            }
        }
    }

    #[test]
    fn card_holds_are_pending_before_their_booking_day() {
        let hold = many().into_iter().find(|t| observed(t) == Settlement::AmountChanges).expect("a card hold");
        let pending = pending_on(11, 13, hold.pending.since);
        assert!(pending.iter().any(|t| t.internal_id == hold.internal_id), "the hold is pending from its value date");
        let before = hold.pending.since.pred_opt().unwrap_or_default();
        assert!(pending_on(11, 13, before).iter().all(|t| t.internal_id != hold.internal_id));
        let ids = |day| pending_on(11, 13, day).into_iter().map(|t| t.internal_id).collect::<Vec<_>>();
        assert_eq!(ids(march(5)), ids(march(5)));
        assert!(pending_on(11, 13, march(5)).iter().all(|t| t.day >= march(5) && t.pending.since <= march(5)));
    }

    #[test]
    fn extra_transactions_are_deterministic_and_in_their_window() {
        let a = extra_transaction(1, 2, 3, march(1), 30);
        let b = extra_transaction(1, 2, 3, march(1), 30);
        assert_eq!((a.day, a.cents, &a.internal_id), (b.day, b.cents, &b.internal_id));
        assert_ne!(a.internal_id, extra_transaction(1, 2, 4, march(1), 30).internal_id);
        for n in 0..500 {
            let t = extra_transaction(1, 2, n, march(1), 30);
            assert!(t.day >= march(1) && t.day < march(31), "{t:?}");
        }
    }

    #[test]
    fn decimal_amounts_parse_into_cents() {
        assert_eq!(parse_cents("-12.34"), Some(-1234));
        assert_eq!(parse_cents("5"), Some(500));
        assert_eq!(parse_cents("0.5"), Some(50));
        assert_eq!(parse_cents("+7.05"), Some(705));
        for bad in ["", "-", "1.234", "1,00", "abc", ".5", "1e3", "--1"] {
            assert_eq!(parse_cents(bad), None, "{bad}");
        }
    }
}
