//! Bank connections, accounts and transactions as the API shows them (and as events carry them).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{FromRow, Row, postgres::PgRow};
use utoipa::ToSchema;

use crate::domain::states::{AccountKind, ConnectionStatus, Direction, MatchStatus, TransactionStatus};

/// A consent at one bank, covering one or more accounts.
///
/// Statuses: `pending` (waiting for the account holder at the consent link) → `linked`
/// (accounts readable; synced in the background) → `expired` (the consent ran out: create a new
/// connection to re-authorise). `rejected`: the holder refused or the bank failed the consent.
/// `suspended`: the provider paused access after repeated errors. `deleted`: removed through the
/// API; its accounts and transactions are kept.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "bc_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "institution_id": "SANDBOXFINANCE_SFIN0000",
    "institution_name": "Sandbox Finance",
    "status": "linked",
    "consent_link": "https://ob.gocardless.com/psd2/start/…",
    "redirect_url": "https://portal.example.com/banks/done",
    "max_historical_days": 90,
    "access_valid_for_days": 90,
    "linked_at": "2026-11-21T09:30:00Z",
    "expires_at": "2027-02-19T09:30:00Z",
    "expiring_in_days": null,
    "last_synced_at": "2026-11-21T09:31:02Z",
    "error": null,
    "accounts": [],
    "sync_budget": {"day_limit": 4, "transactions_remaining": 3, "balances_remaining": 3, "details_remaining": 3, "resets_at": "2026-11-22T00:00:00Z"},
    "created_at": "2026-11-21T09:29:40Z",
    "updated_at": "2026-11-21T09:31:02Z"
}))]
pub struct BankConnection {
    pub id: String,
    pub institution_id: String,
    pub institution_name: String,
    pub status: ConnectionStatus,
    /// Where to send the account holder to give consent (while `pending`).
    pub consent_link: Option<String>,
    /// Where the account holder is sent back to after the consent step.
    pub redirect_url: String,
    pub max_historical_days: i32,
    pub access_valid_for_days: i32,
    pub linked_at: Option<DateTime<Utc>>,
    /// When the consent runs out.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set (7, 3 or 1 and below) when the consent expires within a week: time to re-authorise.
    pub expiring_in_days: Option<i64>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Why the connection is `rejected`, `expired` or `suspended`.
    pub error: Option<ConnectionError>,
    pub accounts: Vec<BankAccount>,
    /// Calls the bank still allows today, across this connection's accounts (the smallest).
    pub sync_budget: Option<SyncBudget>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A machine code and a sentence a person can act on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionError {
    pub code: String,
    pub detail: String,
}

/// What the bank still allows today.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncBudget {
    /// Successful calls the bank allows per account, per endpoint, per day.
    pub day_limit: i32,
    pub transactions_remaining: i32,
    pub balances_remaining: i32,
    pub details_remaining: i32,
    /// When the budget renews (midnight UTC).
    pub resets_at: DateTime<Utc>,
}

/// An account: reached through a bank connection (`kind: bank_feed`, synced in the background),
/// or created through the API to hold imported transactions (`kind: manual`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "kind": "manual",
    "bank_connection_id": null,
    "iban": "GB33BUKB20201555555555",
    "owner_name": null,
    "name": "Petty cash",
    "currency": "GBP",
    "status": "ready",
    "balances": [],
    "balances_fetched_at": null,
    "last_synced_at": null,
    "created_at": "2026-11-21T09:30:00Z"
}))]
pub struct BankAccount {
    pub id: String,
    pub kind: AccountKind,
    /// The connection a `bank_feed` account is reached through; null for `manual` accounts.
    pub bank_connection_id: Option<String>,
    pub iban: Option<String>,
    pub owner_name: Option<String>,
    pub name: Option<String>,
    pub currency: Option<String>,
    pub status: String,
    /// As last fetched from the bank; amounts in minor units.
    pub balances: Vec<Balance>,
    pub balances_fetched_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The columns [`BankAccount`] reads.
pub const ACCOUNT_COLUMNS: &str = "id, kind, connection_id, iban, owner_name, name, currency, status, balances,
    balances_fetched_at, last_synced_at, created_at";

/// One balance the bank reports, e.g. `closingBooked` or `interimAvailable`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Balance {
    #[serde(rename = "type")]
    pub balance_type: String,
    /// Minor units (cents): `65749` is 657.49.
    pub amount: i64,
    pub currency: String,
    #[schema(value_type = Option<String>, format = Date)]
    pub reference_date: Option<NaiveDate>,
}

impl FromRow<'_, PgRow> for BankAccount {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let balances: serde_json::Value = row.try_get("balances")?;
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            bank_connection_id: row.try_get("connection_id")?,
            iban: row.try_get("iban")?,
            owner_name: row.try_get("owner_name")?,
            name: row.try_get("name")?,
            currency: row.try_get("currency")?,
            status: row.try_get("status")?,
            balances: serde_json::from_value(balances).unwrap_or_default(),
            balances_fetched_at: row.try_get("balances_fetched_at")?,
            last_synced_at: row.try_get("last_synced_at")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A bank transaction. Money in is positive, money out negative, in minor units.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "bank_connection_id": "bc_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "status": "booked",
    "amount": 125000,
    "currency": "GBP",
    "booking_date": "2026-11-20",
    "value_date": "2026-11-20",
    "description": "Payment INV-2026-0042",
    "counterparty_name": "Acme Widgets Ltd",
    "reference": "NOTPROVIDED",
    "bank_transaction_code": "PMNT-RCDT-ESCT",
    "direction": "credit",
    "match_status": "unmatched",
    "category": "sales",
    "category_source": "rule",
    "notes": null,
    "tags": ["q4"],
    "metadata": {"invoice_id": "INV-2026-0042"},
    "source": "bank_feed",
    "external_id": null,
    "created_at": "2026-11-21T09:31:02Z",
    "updated_at": "2026-11-21T09:31:02Z"
}))]
pub struct Transaction {
    pub id: String,
    pub account_id: String,
    #[sqlx(rename = "connection_id")]
    pub bank_connection_id: Option<String>,
    pub status: TransactionStatus,
    /// Minor units of `currency`: `-550` is -5.50. Negative is money out.
    pub amount: i64,
    /// ISO 4217, uppercase.
    pub currency: String,
    /// The bank's booking date (absent while pending), never shifted between time zones.
    #[schema(value_type = Option<String>, format = Date)]
    pub booking_date: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub value_date: Option<NaiveDate>,
    /// Remittance information, as the bank gives it.
    pub description: Option<String>,
    pub counterparty_name: Option<String>,
    /// A structured reference besides the description: the bank's end-to-end id or creditor
    /// reference, or an imported row's reference.
    pub reference: Option<String>,
    /// ISO 20022 bank transaction code, when the bank gives one.
    pub bank_transaction_code: Option<String>,
    pub direction: Direction,
    /// `unmatched` until reconciliation matches it.
    pub match_status: MatchStatus,
    /// Set by a categorisation rule or by a user (`PATCH`); a user's choice always wins.
    pub category: Option<String>,
    /// `rule` or `user`; null when uncategorised.
    pub category_source: Option<String>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    /// Your own string key-value pairs (at most 50 keys; keys up to 40 characters, values up to 500).
    #[sqlx(json)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// `bank_feed` (synced from a bank connection) or `import`.
    pub source: String,
    /// The imported row's own id (`import` only).
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`Transaction`] reads.
pub const TRANSACTION_COLUMNS: &str =
    "id, account_id, connection_id, status, amount, currency, booking_date, value_date,
    description, counterparty_name, reference, bank_transaction_code,
    case when amount < 0 then 'debit' else 'credit' end as direction, match_status, category,
    category_source, notes, tags, metadata, source, external_id, created_at, updated_at";
