//! A tenant's tuning of the engine (its `reconciliation_settings` row) and the signals it may
//! switch off.

/// The tenant's tuning, from its settings; [`Tuning::default`] is a tenant without a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// The score from which a strong, unambiguous candidate is matched without a person.
    pub auto_match_threshold: f64,
    /// The score from which a candidate is shown to a person at all.
    pub suggest_threshold: f64,
    /// A difference (minor units) still counted as the amount, for fees and rounding.
    pub amount_tolerance: i64,
    /// The same as a share of the amount due, in thousandths; the larger of the two applies.
    pub amount_tolerance_permille: i64,
    /// How long after the due date a payment still fits the invoice's dates.
    pub date_window_days: i64,
    /// How long a payment takes to reach the account (before issue, after a payout's arrival).
    pub banking_delay_days: i64,
    pub signals: SignalSwitches,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            auto_match_threshold: 0.90,
            suggest_threshold: 0.40,
            amount_tolerance: 0,
            amount_tolerance_permille: 0,
            date_window_days: 60,
            banking_delay_days: 3,
            signals: SignalSwitches::all_on(),
        }
    }
}

/// A kind of evidence scoring weighs; the names are the keys of the settings' `signals` map and
/// of the reasons the API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Reference,
    RfReference,
    BankAccount,
    Name,
    Amount,
    Currency,
    Date,
    StripeTrace,
}

impl Signal {
    pub const ALL: [Signal; 8] = [
        Signal::Reference,
        Signal::RfReference,
        Signal::BankAccount,
        Signal::Name,
        Signal::Amount,
        Signal::Currency,
        Signal::Date,
        Signal::StripeTrace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Reference => "reference",
            Signal::RfReference => "rf_reference",
            Signal::BankAccount => "bank_account",
            Signal::Name => "name",
            Signal::Amount => "amount",
            Signal::Currency => "currency",
            Signal::Date => "date",
            Signal::StripeTrace => "stripe_trace",
        }
    }

    pub fn parse(s: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|signal| signal.as_str() == s)
    }

    /// Whether the signal alone identifies the counterpart (a reference, a creditor reference,
    /// the customer's bank account or a rule's customer, a Stripe trace): auto-matching needs one.
    pub fn is_strong(self) -> bool {
        matches!(self, Signal::Reference | Signal::RfReference | Signal::BankAccount | Signal::StripeTrace)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Which signals count; all are on by default. [`Signal::Currency`] cannot be switched off (a
/// match never mixes currencies without an adjustment), so `set(Currency, false)` is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalSwitches {
    off: u8,
}

impl SignalSwitches {
    pub fn all_on() -> Self {
        Self { off: 0 }
    }

    pub fn is_on(&self, s: Signal) -> bool {
        self.off & s.bit() == 0
    }

    pub fn set(&mut self, s: Signal, on: bool) {
        if on {
            self.off &= !s.bit();
        } else if s != Signal::Currency {
            self.off |= s.bit();
        }
    }
}

impl Default for SignalSwitches {
    fn default() -> Self {
        Self::all_on()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_round_trip_and_match_serde() {
        for signal in Signal::ALL {
            assert_eq!(Signal::parse(signal.as_str()), Some(signal));
            let json = serde_json::to_value(signal).unwrap();
            assert_eq!(json, signal.as_str());
        }
        assert_eq!(Signal::parse("Reference"), None);
        assert_eq!(Signal::parse(""), None);
    }

    #[test]
    fn strong_signals_are_the_ones_that_identify_a_counterpart() {
        let strong: Vec<_> = Signal::ALL.into_iter().filter(|s| s.is_strong()).collect();
        assert_eq!(strong, [Signal::Reference, Signal::RfReference, Signal::BankAccount, Signal::StripeTrace]);
    }

    #[test]
    fn signals_switch_off_and_on_except_currency() {
        let mut switches = SignalSwitches::default();
        assert!(Signal::ALL.into_iter().all(|s| switches.is_on(s)));
        switches.set(Signal::Name, false);
        switches.set(Signal::Currency, false);
        assert!(!switches.is_on(Signal::Name));
        assert!(switches.is_on(Signal::Currency), "currency is always on");
        assert!(switches.is_on(Signal::Amount), "the others are untouched");
        switches.set(Signal::Name, true);
        assert_eq!(switches, SignalSwitches::all_on());
    }

    #[test]
    fn the_default_tuning_is_a_tenant_without_settings() {
        let tuning = Tuning::default();
        assert_eq!((tuning.auto_match_threshold, tuning.suggest_threshold), (0.90, 0.40));
        assert_eq!((tuning.amount_tolerance, tuning.amount_tolerance_permille), (0, 0));
        assert_eq!((tuning.date_window_days, tuning.banking_delay_days), (60, 3));
        assert_eq!(tuning.signals, SignalSwitches::all_on());
    }
}
