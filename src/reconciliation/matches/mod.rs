//! Matches: the record that bank transactions paid invoices and Stripe payouts.
//!
//! A match holds whole transactions (the bank side), allocations (how much pays which invoice
//! or payout) and typed adjustments (the explained difference). Per currency it balances:
//! Σ transactions = Σ direct allocations + Σ adjustments. An allocation `via_payout_id` pays an
//! invoice through a charge inside a payout of the same match: it is part of that payout's
//! gross, so it is not counted again at the bank level.
//!
//! [`create::create_many`] is the only way a transaction becomes `matched` and an invoice's
//! `amount_paid` grows; [`unmatch::unmatch`] the only way back.

mod check;
pub mod create;
mod read;
pub mod unmatch;
mod write;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use create::{Locking, Proposal, create, create_many};
pub use read::{MatchFilters, get, list};
pub use unmatch::unmatch;

crate::domain::states::states! {
    /// What an allocation pays.
    TargetType {
        Invoice = "invoice",
        StripePayout = "stripe_payout",
    }

    /// What an adjustment explains. `stripe_fee`, `stripe_refund` and `stripe_adjustment` come
    /// from a payout's balance transactions; the rest are booked by a person or a rule.
    AdjustmentKind {
        StripeFee = "stripe_fee",
        StripeRefund = "stripe_refund",
        StripeAdjustment = "stripe_adjustment",
        BankCharge = "bank_charge",
        ShortPayment = "short_payment",
        Overpayment = "overpayment",
        FxDifference = "fx_difference",
        Other = "other",
    }

    /// A match is `active` until it is undone (`unmatched`); an unmatched match is kept.
    MatchState {
        Active = "active",
        Unmatched = "unmatched",
    }

    /// Who made the match: a person (`manual`), a person accepting a suggestion (`suggestion`),
    /// or the engine on its own (`auto`).
    MatchOrigin {
        Manual = "manual",
        Suggestion = "suggestion",
        Auto = "auto",
    }
}

/// A match as a client writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "transaction_ids": ["txn_0192f3c4d5e6478fa1b2c3d4e5f60718"],
    "allocations": [{"target_type": "invoice", "target_id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718", "amount": 125000}],
    "adjustments": [{"kind": "bank_charge", "amount": -250, "description": "Receiving bank's fee"}],
    "note": "Paid by ACME's parent company"
}))]
pub struct NewMatch {
    /// The bank transactions (credits, `unmatched` or `suggested`), each matched whole: 1 to 100.
    pub transaction_ids: Vec<String>,
    /// What they pay: 1 to 500 allocations.
    pub allocations: Vec<NewAllocation>,
    /// The difference, explained: at most 50.
    #[serde(default)]
    pub adjustments: Vec<NewAdjustment>,
    /// Up to 2,000 characters.
    pub note: Option<String>,
    /// Your own string key-value pairs.
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub metadata: BTreeMap<String, String>,
}

/// One allocation as a client writes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAllocation {
    pub target_type: TargetType,
    /// An invoice (`inv_…`, `open` or `partially_paid`) or a `paid` Stripe payout (`po_…`).
    pub target_id: String,
    /// Minor units, positive. Default: what the invoice still owes; a payout's gross (its
    /// charges), with its refunds, fees and adjustments added as adjustments when you give none
    /// of the `stripe_*` kinds yourself.
    pub amount: Option<i64>,
    /// For an invoice paid by a card payment inside a payout of this match: that payout's id.
    pub via_payout_id: Option<String>,
    /// The card payment (`ch_…`) that paid it, for the record.
    pub via_payment_id: Option<String>,
}

/// One adjustment as a client writes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdjustment {
    pub kind: AdjustmentKind,
    /// Minor units, signed, not zero: negative when it reduced what arrived (a fee, a short
    /// payment), positive when more arrived than was owed (an overpayment).
    pub amount: i64,
    /// ISO 4217; default: the transactions' currency when they share one.
    pub currency: Option<String>,
    /// Up to 500 characters.
    pub description: Option<String>,
}

/// A transaction in a match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct MatchTransaction {
    pub transaction_id: String,
    /// Minor units: the whole transaction.
    pub amount: i64,
    pub currency: String,
}

/// What a match pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Allocation {
    pub target_type: TargetType,
    pub target_id: String,
    /// Minor units, positive.
    pub amount: i64,
    pub currency: String,
    /// Set when a charge inside this match's payout paid the invoice.
    pub via_payout_id: Option<String>,
    pub via_payment_id: Option<String>,
}

/// A difference a match explains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Adjustment {
    pub kind: AdjustmentKind,
    /// Minor units, signed.
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
}

/// A match.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "match_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "status": "active",
    "origin": "auto",
    "created_by": "engine",
    "suggestion_id": null,
    "score": 0.97,
    "reasons": [{"signal": "reference", "strength": 1.0, "weight": 0.45,
                 "detail": "reference INV-2026-0104 found in the remittance text"},
                {"signal": "amount", "strength": 1.0, "weight": 0.3, "detail": "amount equal (1,250.00 GBP)"}],
    "note": null,
    "metadata": {},
    "transactions": [{"transaction_id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718", "amount": 125000, "currency": "GBP"}],
    "allocations": [{"target_type": "invoice", "target_id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718",
                     "amount": 125000, "currency": "GBP", "via_payout_id": null, "via_payment_id": null}],
    "adjustments": [],
    "unmatched_at": null,
    "unmatched_by": null,
    "unmatch_reason": null,
    "created_at": "2026-12-04T09:30:00.000000Z",
    "updated_at": "2026-12-04T09:30:00.000000Z"
}))]
pub struct Match {
    /// `match_…`
    pub id: String,
    pub status: MatchState,
    pub origin: MatchOrigin,
    /// `engine`, or who decided: `user:usr_…`, `api_key:key_…`, `oauth_client:…`.
    pub created_by: String,
    /// The suggestion a person accepted.
    pub suggestion_id: Option<String>,
    /// The engine's score, 0 to 1 (auto matches and accepted suggestions).
    pub score: Option<f64>,
    /// The engine's signals, in words and numbers.
    #[schema(value_type = Vec<Object>)]
    pub reasons: serde_json::Value,
    pub note: Option<String>,
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub metadata: BTreeMap<String, String>,
    pub transactions: Vec<MatchTransaction>,
    pub allocations: Vec<Allocation>,
    pub adjustments: Vec<Adjustment>,
    pub unmatched_at: Option<DateTime<Utc>>,
    pub unmatched_by: Option<String>,
    pub unmatch_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
