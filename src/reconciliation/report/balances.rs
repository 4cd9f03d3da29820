//! Where a day's opening and closing balances come from: the balances the bank reported, when
//! one of them is an end-of-day balance for the right day; otherwise what the day's booked
//! transactions let us derive, labelled as such; otherwise nothing. Pure, so every case is
//! unit-tested here.
//!
//! Only booked end-of-day balances count: `closingBooked` dated the day (its end), and
//! `openingBooked` dated the next day (the same instant, seen from the morning after). Interim,
//! available and expected balances are snapshots during a day that may include pending
//! movements or a credit line, so they are never used as an opening or a closing balance.

use chrono::NaiveDate;

use super::{BalanceCheckStatus, BalanceSource, EndOfDayBalance, EndOfDayBalanceCheck};
use crate::bank::model::Balance;

/// A balance the bank reported for the end of a day.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reported {
    amount: i64,
    balance_type: String,
    reference_date: NaiveDate,
}

/// The bank's balance at the end of `day` in `currency`, if it reported one.
fn end_of_day(balances: &[Balance], day: NaiveDate, currency: &str) -> Option<Reported> {
    let find = |balance_type: &str, reference_date: Option<NaiveDate>| {
        let reference_date = reference_date?;
        balances
            .iter()
            .find(|b| {
                b.balance_type == balance_type && b.reference_date == Some(reference_date) && b.currency == currency
            })
            .map(|b| Reported { amount: b.amount, balance_type: b.balance_type.clone(), reference_date })
    };
    find("closingBooked", Some(day)).or_else(|| find("openingBooked", day.succ_opt()))
}

fn from_bank(reported: Reported, currency: &str, what: &str) -> EndOfDayBalance {
    let detail = format!("{what} as the bank reported it: {} of {}", reported.balance_type, reported.reference_date);
    EndOfDayBalance {
        amount: Some(reported.amount),
        currency: Some(currency.to_owned()),
        source: BalanceSource::Bank,
        balance_type: Some(reported.balance_type),
        reference_date: Some(reported.reference_date),
        detail,
    }
}

fn derived(amount: Option<i64>, currency: &str, detail: String) -> EndOfDayBalance {
    match amount {
        Some(amount) => EndOfDayBalance {
            amount: Some(amount),
            currency: Some(currency.to_owned()),
            source: BalanceSource::Derived,
            balance_type: None,
            reference_date: None,
            detail,
        },
        None => unavailable(Some(currency), "deriving it overflows 64 bits".into()),
    }
}

fn unavailable(currency: Option<&str>, detail: String) -> EndOfDayBalance {
    EndOfDayBalance {
        amount: None,
        currency: currency.map(str::to_owned),
        source: BalanceSource::Unavailable,
        balance_type: None,
        reference_date: None,
        detail,
    }
}

/// The opening and closing balances of `date` in `currency`, and whether they agree with the
/// day's booked net (`closing = opening + net`). The check is only made between two balances the
/// bank reported: a derived balance agrees by construction, so comparing it would prove nothing.
pub fn day_balances(
    balances: &[Balance],
    date: NaiveDate,
    currency: Option<&str>,
    net: i64,
) -> (EndOfDayBalance, EndOfDayBalance, EndOfDayBalanceCheck) {
    let Some(currency) = currency else {
        let none = || unavailable(None, "the account has no currency and nothing was booked".into());
        return (none(), none(), EndOfDayBalanceCheck::unavailable("no balances to compare"));
    };
    let opening = date.pred_opt().and_then(|previous| end_of_day(balances, previous, currency));
    let closing = end_of_day(balances, date, currency);
    match (opening, closing) {
        (Some(opening), Some(closing)) => {
            let check = EndOfDayBalanceCheck::compare(opening.amount, net, closing.amount);
            (from_bank(opening, currency, "opening"), from_bank(closing, currency, "closing"), check)
        }
        (Some(opening), None) => {
            let amount = opening.amount.checked_add(net);
            let closing = derived(
                amount,
                currency,
                format!("the bank reported no closing balance for {date}: opening balance + booked net"),
            );
            let check = EndOfDayBalanceCheck::unavailable("the bank reported no closing balance for the day");
            (from_bank(opening, currency, "opening"), closing, check)
        }
        (None, Some(closing)) => {
            let amount = closing.amount.checked_sub(net);
            let opening = derived(
                amount,
                currency,
                format!("the bank reported no closing balance for the day before {date}: closing balance − booked net"),
            );
            let check = EndOfDayBalanceCheck::unavailable("the bank reported no opening balance for the day");
            (opening, from_bank(closing, currency, "closing"), check)
        }
        (None, None) => {
            let detail = format!("the bank reported no end-of-day balance for {date} or the day before");
            (
                unavailable(Some(currency), detail.clone()),
                unavailable(Some(currency), detail),
                EndOfDayBalanceCheck::unavailable("the bank reported no balances for the day"),
            )
        }
    }
}

impl EndOfDayBalanceCheck {
    fn unavailable(detail: &str) -> Self {
        Self {
            status: BalanceCheckStatus::Unavailable,
            expected_closing: None,
            difference: None,
            detail: detail.into(),
        }
    }

    /// `ok` when `opening + net == closing`, else `mismatch` with `closing − (opening + net)`.
    fn compare(opening: i64, net: i64, closing: i64) -> Self {
        let Some(expected) = opening.checked_add(net) else {
            return Self::unavailable("opening balance + booked net overflows 64 bits");
        };
        let Some(difference) = closing.checked_sub(expected) else {
            return Self::unavailable("the difference overflows 64 bits");
        };
        let (status, detail) = if difference == 0 {
            (BalanceCheckStatus::Ok, "opening balance + booked net = closing balance".to_owned())
        } else {
            (
                BalanceCheckStatus::Mismatch,
                format!(
                    "the bank's closing balance differs from opening balance + booked net by {difference} minor units"
                ),
            )
        };
        Self { status, expected_closing: Some(expected), difference: Some(difference), detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    fn balance(balance_type: &str, amount: i64, reference_date: Option<NaiveDate>) -> Balance {
        Balance { balance_type: balance_type.into(), amount, currency: "GBP".into(), reference_date }
    }

    #[test]
    fn two_bank_balances_that_add_up_are_ok() {
        let balances = [balance("closingBooked", 1_000, Some(day(3))), balance("closingBooked", 1_250, Some(day(4)))];
        let (opening, closing, check) = day_balances(&balances, day(4), Some("GBP"), 250);
        assert_eq!((opening.source, opening.amount), (BalanceSource::Bank, Some(1_000)));
        assert_eq!(opening.reference_date, Some(day(3)));
        assert_eq!((closing.source, closing.amount), (BalanceSource::Bank, Some(1_250)));
        assert_eq!(
            (check.status, check.difference, check.expected_closing),
            (BalanceCheckStatus::Ok, Some(0), Some(1_250))
        );
    }

    #[test]
    fn a_mismatch_says_by_how_much_the_bank_is_above_the_sum() {
        let balances = [balance("openingBooked", 1_000, Some(day(4))), balance("closingBooked", 1_300, Some(day(4)))];
        let (opening, _, check) = day_balances(&balances, day(4), Some("GBP"), 250);
        assert_eq!(opening.balance_type.as_deref(), Some("openingBooked"), "the opening of the day itself");
        assert_eq!((check.status, check.difference), (BalanceCheckStatus::Mismatch, Some(50)));
    }

    #[test]
    fn the_next_mornings_opening_balance_is_the_days_closing() {
        let balances = [balance("openingBooked", 900, Some(day(5)))];
        let (opening, closing, check) = day_balances(&balances, day(4), Some("GBP"), -100);
        assert_eq!(
            (closing.source, closing.amount, closing.reference_date),
            (BalanceSource::Bank, Some(900), Some(day(5)))
        );
        assert_eq!((opening.source, opening.amount), (BalanceSource::Derived, Some(1_000)));
        assert_eq!(check.status, BalanceCheckStatus::Unavailable, "a derived balance proves nothing");
    }

    #[test]
    fn a_missing_closing_is_derived_from_the_opening() {
        let balances = [balance("closingBooked", 1_000, Some(day(3))), balance("interimAvailable", 7, Some(day(4)))];
        let (opening, closing, check) = day_balances(&balances, day(4), Some("GBP"), 250);
        assert_eq!(opening.source, BalanceSource::Bank);
        assert_eq!((closing.source, closing.amount, closing.balance_type), (BalanceSource::Derived, Some(1_250), None));
        assert_eq!((check.status, check.difference), (BalanceCheckStatus::Unavailable, None));
    }

    #[test]
    fn interim_undated_and_other_currency_balances_are_never_used() {
        let mut usd = balance("closingBooked", 5, Some(day(4)));
        usd.currency = "USD".into();
        let balances = [
            balance("interimBooked", 1_000, Some(day(4))),
            balance("closingBooked", 1_000, None),
            balance("expected", 1_000, Some(day(4))),
            usd,
        ];
        let (opening, closing, check) = day_balances(&balances, day(4), Some("GBP"), 0);
        assert_eq!((opening.source, opening.amount), (BalanceSource::Unavailable, None));
        assert_eq!((closing.source, closing.amount), (BalanceSource::Unavailable, None));
        assert_eq!(check.status, BalanceCheckStatus::Unavailable);
    }

    #[test]
    fn overflow_is_unavailable_not_a_wrong_number() {
        let balances = [balance("closingBooked", i64::MAX, Some(day(3)))];
        let (_, closing, _) = day_balances(&balances, day(4), Some("GBP"), 1);
        assert_eq!((closing.source, closing.amount), (BalanceSource::Unavailable, None));
    }
}
