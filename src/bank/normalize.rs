//! From the provider's transaction entries to ours: a stable key per entry, exact amounts, dates,
//! text; and the rule that recognises a booked entry as the successor of a pending one.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::{
    domain::money::{Currency, parse_minor_units},
    providers::gocardless::types::BankTransaction,
};

/// A provider entry in our terms, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// Unique within the account: `internalTransactionId` when booked, else `transactionId`,
    /// else a digest of the entry's content (pending entries often carry no id at all).
    pub key: String,
    pub bank_transaction_id: Option<String>,
    pub booked: bool,
    pub amount: i64,
    pub currency: Currency,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    pub description: Option<String>,
    pub counterparty_name: Option<String>,
    pub reference: Option<String>,
    pub bank_transaction_code: Option<String>,
    pub raw: serde_json::Value,
}

impl Incoming {
    /// The date lists and windows use: the booking date, else the value date.
    pub fn date(&self) -> Option<NaiveDate> {
        self.booking_date.or(self.value_date)
    }
}

/// Converts one raw entry. `seen` counts identical content digests already produced in this
/// response, so two genuinely identical pending card payments stay two.
pub fn normalize(
    raw: serde_json::Value,
    booked: bool,
    seen: &mut std::collections::HashMap<String, u32>,
) -> Result<Incoming, String> {
    let entry: BankTransaction = serde_json::from_value(raw.clone()).map_err(|e| format!("unreadable entry: {e}"))?;
    let currency = Currency::parse(&entry.transaction_amount.currency)
        .ok_or_else(|| format!("{:?} is not a currency code", entry.transaction_amount.currency))?;
    let amount = parse_minor_units(&entry.transaction_amount.amount, currency).map_err(|e| e.to_string())?;
    let date = |value: &Option<String>, field: &str| -> Result<Option<NaiveDate>, String> {
        value
            .as_deref()
            .map(|v| {
                let day = v.get(..10).unwrap_or(v);
                NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| format!("{field} {v:?} is not a date"))
            })
            .transpose()
    };
    let booking_date = date(&entry.booking_date, "bookingDate")?;
    let value_date = date(&entry.value_date, "valueDate")?;
    let description = entry
        .remittance_information_unstructured
        .clone()
        .or_else(|| entry.remittance_information_unstructured_array.as_ref().map(|lines| lines.join(" ")))
        .or_else(|| entry.additional_information.clone())
        .map(|text| bounded(&text, 1000));
    let counterparty_name = if amount < 0 { entry.creditor_name.clone() } else { entry.debtor_name.clone() }
        .or_else(|| entry.creditor_name.clone().or_else(|| entry.debtor_name.clone()))
        .map(|name| bounded(&name, 300));
    let bank_transaction_id = entry.transaction_id.clone().filter(|id| !id.is_empty()).map(|id| bounded(&id, 200));
    let key = match (booked, &entry.internal_transaction_id, &bank_transaction_id) {
        (true, Some(internal), _) if !internal.is_empty() => format!("b:{}", bounded(internal, 200)),
        (true, _, Some(id)) => format!("b:id:{id}"),
        (false, _, Some(id)) => format!("p:id:{id}"),
        _ => {
            let digest =
                content_digest(booked, amount, currency, value_date.or(booking_date), &description, &counterparty_name);
            let n = seen.entry(digest.clone()).or_insert(0);
            *n += 1;
            format!("{}:h:{digest}:{n}", if booked { "b" } else { "p" })
        }
    };
    Ok(Incoming {
        key,
        bank_transaction_id,
        booked,
        amount,
        currency,
        booking_date,
        // Lists sort and page by a date: an entry the bank sent undated is dated the day it is
        // seen (its key and raw entry keep what the bank actually said).
        value_date: value_date.or_else(|| booking_date.is_none().then(|| chrono::Utc::now().date_naive())),
        description,
        counterparty_name,
        reference: [&entry.remittance_information_structured, &entry.end_to_end_id, &entry.entry_reference]
            .into_iter()
            .flatten()
            .find(|r| !r.trim().is_empty())
            .map(|r| bounded(r, 300)),
        bank_transaction_code: entry.bank_transaction_code.map(|c| bounded(&c, 100)),
        raw,
    })
}

fn content_digest(
    booked: bool,
    amount: i64,
    currency: Currency,
    date: Option<NaiveDate>,
    description: &Option<String>,
    counterparty: &Option<String>,
) -> String {
    let text = format!(
        "{booked}|{amount}|{currency}|{}|{}|{}",
        date.map(|d| d.to_string()).unwrap_or_default(),
        description.as_deref().unwrap_or(""),
        counterparty.as_deref().unwrap_or("")
    );
    Sha256::digest(text.as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn bounded(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// What we know of a stored pending transaction, to recognise its booked successor.
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub bank_transaction_id: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub value_date: Option<NaiveDate>,
    pub description: Option<String>,
    pub counterparty_name: Option<String>,
}

/// Days either side of a pending entry's date within which its booking may fall.
pub const LINK_WINDOW_DAYS: i64 = 5;

/// Whether `booked` is the same money movement as `pending`: the bank kept its transaction id
/// (the amount may have changed, as when a card authorisation settles), or, when the id changed,
/// the same amount and currency, a date within the window, and the same counterparty or text.
pub fn is_successor(pending: &PendingRow, booked: &Incoming) -> bool {
    if let (Some(a), Some(b)) = (&pending.bank_transaction_id, &booked.bank_transaction_id)
        && a == b
    {
        return true;
    }
    if pending.amount != booked.amount || pending.currency != booked.currency.as_str() {
        return false;
    }
    let in_window = match (pending.value_date, booked.date()) {
        (Some(p), Some(b)) => (b - p).num_days().abs() <= LINK_WINDOW_DAYS,
        _ => true,
    };
    let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        _ => false,
    };
    in_window
        && (same(&pending.counterparty_name, &booked.counterparty_name)
            || same(&pending.description, &booked.description))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn incoming(raw: serde_json::Value, booked: bool) -> Incoming {
        normalize(raw, booked, &mut HashMap::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn booked_entries_key_on_the_internal_id_and_convert_exactly() {
        let t = incoming(
            json!({"transactionId": "T1", "internalTransactionId": "abc", "bookingDate": "2026-03-01",
                   "valueDate": "2026-03-02", "transactionAmount": {"amount": "-5.50", "currency": "eur"},
                   "creditorName": "Kafejnica", "remittanceInformationUnstructured": "Coffee"}),
            true,
        );
        assert_eq!(t.key, "b:abc");
        assert_eq!(t.amount, -550);
        assert_eq!(t.currency.as_str(), "EUR");
        assert_eq!(t.counterparty_name.as_deref(), Some("Kafejnica"));
        assert_eq!(t.booking_date, NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(t.date(), NaiveDate::from_ymd_opt(2026, 3, 1));
    }

    #[test]
    fn pending_entries_without_ids_get_distinct_content_keys() {
        let raw = json!({"valueDate": "2026-03-01", "transactionAmount": {"amount": "3.00", "currency": "GBP"},
                         "debtorName": "Acme"});
        let mut seen = HashMap::new();
        let a = normalize(raw.clone(), false, &mut seen).unwrap_or_else(|e| panic!("{e}"));
        let b = normalize(raw.clone(), false, &mut seen).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a.key, b.key, "two identical pending payments stay two");
        let again = normalize(raw, false, &mut HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.key, again.key, "the same response gives the same keys");
        assert!(a.key.starts_with("p:h:"));
    }

    #[test]
    fn inexact_or_malformed_entries_are_refused() {
        let mut seen = HashMap::new();
        for bad in [
            json!({"transactionAmount": {"amount": "1.005", "currency": "EUR"}}),
            json!({"transactionAmount": {"amount": "1e3", "currency": "EUR"}}),
            json!({"transactionAmount": {"amount": "1.00", "currency": "EURO"}}),
            json!({"transactionAmount": {"amount": "1.00", "currency": "EUR"}, "bookingDate": "yesterday"}),
            json!({"amount": "1.00"}),
        ] {
            assert!(normalize(bad.clone(), true, &mut seen).is_err(), "{bad}");
        }
    }

    fn pending(id: Option<&str>, amount: i64, day: u32, counterparty: &str) -> PendingRow {
        PendingRow {
            bank_transaction_id: id.map(str::to_owned),
            amount,
            currency: "GBP".to_owned(),
            value_date: NaiveDate::from_ymd_opt(2026, 3, day),
            description: Some("Card payment".to_owned()),
            counterparty_name: Some(counterparty.to_owned()),
        }
    }

    fn booked(id: &str, amount: &str, day: u32, counterparty: &str) -> Incoming {
        incoming(
            json!({"transactionId": id, "internalTransactionId": format!("i-{id}"), "bookingDate": format!("2026-03-{day:02}"),
                   "transactionAmount": {"amount": amount, "currency": "GBP"}, "creditorName": counterparty,
                   "remittanceInformationUnstructured": "Card payment"}),
            true,
        )
    }

    #[test]
    fn a_booked_entry_succeeds_its_pending_one() {
        // Same bank id, amount changed on settlement.
        assert!(is_successor(&pending(Some("P1"), -1000, 1, "Tesco"), &booked("P1", "-10.40", 2, "Tesco")));
        // New id, same amount, counterparty and window.
        assert!(is_successor(&pending(Some("P1"), -1000, 1, "Tesco"), &booked("B7", "-10.00", 3, "tesco ")));
        assert!(is_successor(&pending(None, -1000, 1, "Tesco"), &booked("B7", "-10.00", 1, "Tesco")));
        // Different amount and id, outside the window, or someone else: a different payment.
        assert!(!is_successor(&pending(Some("P1"), -1000, 1, "Tesco"), &booked("B7", "-10.40", 2, "Tesco")));
        assert!(!is_successor(&pending(None, -1000, 1, "Tesco"), &booked("B7", "-10.00", 9, "Tesco")));
        let mut other = pending(None, -1000, 1, "Shell");
        other.description = Some("Fuel".to_owned());
        assert!(!is_successor(&other, &booked("B7", "-10.00", 1, "Tesco")));
    }
}
