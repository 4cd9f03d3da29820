//! Deterministic simulated data: institutions, accounts, and each account's transactions as a
//! function of (seed, account, day).

use chrono::{Datelike, NaiveDate};
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

/// One simulated transaction.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub day: NaiveDate,
    pub cents: i64,
    pub counterparty: &'static str,
    pub remittance: String,
    pub transaction_id: String,
    pub internal_id: String,
}

/// The transactions of account `key` dated `day` (a pure function of its arguments).
pub(crate) fn transactions_on(seed: u64, key: u64, day: NaiveDate) -> Vec<Txn> {
    let day_number = u64::from(day.num_days_from_ce().unsigned_abs());
    let mut rng = Rng::new(mix(&[seed, key, day_number]));
    let count = rng.range(0, 4);
    (0..count)
        .map(|seq| {
            let credit = rng.range(0, 3) == 0;
            let (cents, counterparty, remittance) = if credit {
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
            };
            Txn {
                day,
                cents,
                counterparty,
                remittance,
                transaction_id: format!("{}{:05}-{}", day.format("%Y%m%d"), key % 100_000, seq + 1),
                internal_id: format!("{:016x}{:016x}", mix(&[seed, key, day_number, seq, 2]), mix(&[key, seq, 3])),
            }
        })
        .collect()
}

/// The opening balance, in cents, of account `key` before its first simulated day.
pub(crate) fn opening_cents(seed: u64, key: u64) -> i64 {
    Rng::new(mix(&[seed, key, 4])).range(100_000, 500_000) as i64
}

/// Cents as a decimal string: `-550` → `"-5.50"`.
pub(crate) fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.unsigned_abs() / 100, cents.unsigned_abs() % 100)
}

/// A transaction in the Berlin Group shape; `booked` ones carry ids and a booking date.
pub(crate) fn txn_json(txn: &Txn, currency: &str, booked: bool) -> Value {
    let date = txn.day.format("%Y-%m-%d").to_string();
    let mut value = json!({
        "valueDate": date,
        "transactionAmount": {"amount": amount(txn.cents), "currency": currency},
        "remittanceInformationUnstructured": txn.remittance,
    });
    let party = if txn.cents < 0 { "creditorName" } else { "debtorName" };
    value[party] = json!(txn.counterparty);
    if booked {
        value["transactionId"] = json!(txn.transaction_id);
        value["internalTransactionId"] = json!(txn.internal_id);
        value["bookingDate"] = json!(date);
        value["bankTransactionCode"] = json!(if txn.cents < 0 { "PMNT-ICDT-POSD" } else { "PMNT-RCDT-ESCT" });
    }
    value
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
}
