//! The states and kinds that rows carry, as enums: each one spelled once here, mapped to its
//! Postgres `text` column (`sqlx::Type`), to JSON (`serde`) and to the OpenAPI schema, so code
//! compares variants rather than strings and a misspelt state does not compile. The columns'
//! `check` constraints list the same values (a test compares them).

/// Declares a state enum: each variant with the one string it is stored and shown as.
macro_rules! states {
    ($(
        $(#[$meta:meta])*
        $name:ident { $($(#[$variant_meta:meta])* $variant:ident = $text:tt),+ $(,)? }
    )+) => {$(
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, sqlx::Type,
            utoipa::ToSchema,
        )]
        #[sqlx(type_name = "text")]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] #[sqlx(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The value named `text`, if it is one.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}
pub(crate) use states;

states! {
    /// A bank connection's consent: `pending` (waiting for the account holder) → `linked` →
    /// `expired`; or `rejected`, `suspended` (the provider paused access), `deleted`.
    ConnectionStatus {
        Pending = "pending",
        Linked = "linked",
        Rejected = "rejected",
        Expired = "expired",
        Suspended = "suspended",
        Deleted = "deleted",
    }

    /// How an account's transactions arrive.
    AccountKind {
        /// Synced through a bank connection.
        BankFeed = "bank_feed",
        /// Created through the API; its transactions are imported.
        Manual = "manual",
    }

    /// A transaction as the bank reports it.
    TransactionStatus {
        /// Not yet booked; may still change or vanish.
        Pending = "pending",
        Booked = "booked",
        /// A pending entry the bank dropped without booking it.
        Cancelled = "cancelled",
    }

    /// Which way money moved.
    Direction {
        /// Money in (amount ≥ 0).
        Credit = "credit",
        /// Money out (amount < 0).
        Debit = "debit",
    }

    /// Where a transaction stands in reconciliation: `unmatched`, `suggested` (the engine
    /// proposes a match a person must decide), `matched` (part of an active match) or `excluded`
    /// (taken out of reconciliation by a person or a rule).
    MatchStatus {
        Unmatched = "unmatched",
        Suggested = "suggested",
        Matched = "matched",
        Excluded = "excluded",
    }

    /// A webhook delivery: `pending` until an attempt succeeds (`succeeded`) or the last one
    /// fails (`failed`).
    DeliveryStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }

    /// A background job in the queue.
    JobStatus {
        Queued = "queued",
        Running = "running",
        Done = "done",
        /// Out of attempts; its dead-job handler has run.
        Dead = "dead",
    }

    /// A run a client started and can follow: an import, a categorisation rule run.
    RunStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }

    /// What a CSV import writes.
    ImportKind {
        /// Transactions into a manual account (`POST /transactions/import`).
        Transactions = "transactions",
        /// Invoices, and their customers (`POST /invoices/import`).
        Invoices = "invoices",
    }
}

impl Direction {
    /// The direction of a signed amount: money in is zero or more.
    pub fn of(amount: i64) -> Self {
        if amount < 0 { Direction::Debit } else { Direction::Credit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_reads_back_as_written_in_json_and_text() {
        for status in ConnectionStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
            assert_eq!(serde_json::from_value::<ConnectionStatus>(json).unwrap(), *status);
            assert_eq!(ConnectionStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(MatchStatus::Excluded.to_string(), "excluded");
        assert_eq!(serde_json::to_value(MatchStatus::Suggested).unwrap(), "suggested");
        assert_eq!(TransactionStatus::parse("Booked"), None, "exact spelling only");
    }
}
