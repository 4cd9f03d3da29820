//! Transactions added to one account through the control API: booked ones kept sorted by booking
//! date (so a date range is two binary searches, even at 100,000 rows), pending ones in order of
//! arrival until they are booked.

use chrono::NaiveDate;

use super::data::Txn;

/// The added transactions of one account.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    booked: Vec<Txn>,
    pending: Vec<Txn>,
    /// How many transactions were ever added: the counter their deterministic ids derive from.
    added: u64,
}

/// Why a pending transaction could not be booked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BookError {
    /// No added transaction has this id.
    Unknown,
    /// It is booked already.
    AlreadyBooked,
}

impl Ledger {
    /// How many transactions were ever added (the number the next one gets).
    pub(crate) fn added(&self) -> u64 {
        self.added
    }

    /// Numbers for the next `count` added transactions, advancing the counter.
    pub(crate) fn reserve(&mut self, count: u64) -> std::ops::Range<u64> {
        let first = self.added;
        self.added += count;
        first..self.added
    }

    /// Adds booked transactions, keeping the booking-date order (a stable sort that merges the
    /// already sorted run with the new one).
    pub(crate) fn add_booked(&mut self, txns: impl IntoIterator<Item = Txn>) {
        self.booked.extend(txns);
        self.booked.sort_by_key(|t| t.day);
    }

    /// Adds a pending transaction.
    pub(crate) fn add_pending(&mut self, txn: Txn) {
        self.pending.push(txn);
    }

    /// Booked transactions dated `from..=to`, oldest first.
    pub(crate) fn booked_between(&self, from: NaiveDate, to: NaiveDate) -> &[Txn] {
        let start = self.booked.partition_point(|t| t.day < from);
        let end = self.booked.partition_point(|t| t.day <= to);
        self.booked.get(start..end.max(start)).unwrap_or_default()
    }

    /// Booked transactions dated before `day`, oldest first.
    pub(crate) fn booked_before(&self, day: NaiveDate) -> &[Txn] {
        let end = self.booked.partition_point(|t| t.day < day);
        self.booked.get(..end).unwrap_or_default()
    }

    /// The transactions still pending.
    pub(crate) fn pending(&self) -> &[Txn] {
        &self.pending
    }

    /// Books the pending transaction whose `transactionId` or `internalTransactionId` is
    /// `handle`, after `change` has adjusted it (booking date, amount, id), and returns it.
    pub(crate) fn book(&mut self, handle: &str, change: impl FnOnce(&mut Txn)) -> Result<&Txn, BookError> {
        let matches = |t: &Txn| t.transaction_id == handle || t.internal_id == handle;
        let Some(index) = self.pending.iter().position(matches) else {
            return Err(if self.booked.iter().any(matches) { BookError::AlreadyBooked } else { BookError::Unknown });
        };
        let mut txn = self.pending.remove(index);
        change(&mut txn);
        let at = self.booked.partition_point(|t| t.day <= txn.day);
        self.booked.insert(at, txn);
        self.booked.get(at).ok_or(BookError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::gocardless::data::extra_transaction;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, d).unwrap_or_default()
    }

    #[test]
    fn booked_ranges_are_sorted_slices() {
        let mut ledger = Ledger::default();
        ledger.add_booked((0..200).map(|n| extra_transaction(1, 2, n, day(1), 20)));
        ledger.add_booked((200..300).map(|n| extra_transaction(1, 2, n, day(1), 20)));
        let all = ledger.booked_between(day(1), day(31));
        assert_eq!(all.len(), 300);
        assert!(all.windows(2).all(|w| w[0].day <= w[1].day));
        let some = ledger.booked_between(day(5), day(9));
        assert!(!some.is_empty() && some.iter().all(|t| t.day >= day(5) && t.day <= day(9)));
        assert!(ledger.booked_between(day(9), day(5)).is_empty());
        assert_eq!(ledger.booked_before(day(1)).len(), 0);
    }

    #[test]
    fn pending_transactions_book_once() {
        let mut ledger = Ledger::default();
        let mut txn = extra_transaction(1, 2, 1, day(3), 1);
        txn.transaction_id = "hold-1".to_owned();
        ledger.add_pending(txn);
        let booked = ledger.book("hold-1", |t| t.cents = -999).map(|t| t.cents);
        assert_eq!(booked, Ok(-999));
        assert!(ledger.pending().is_empty());
        assert_eq!(ledger.book("hold-1", |_| {}).err(), Some(BookError::AlreadyBooked));
        assert_eq!(ledger.book("nope", |_| {}).err(), Some(BookError::Unknown));
    }
}
