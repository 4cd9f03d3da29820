//! The GoCardless Bank Account Data wire format (v2), as far as Payymo reads it. Every field the
//! provider may omit is an `Option`: provider payloads are untrusted input.

use serde::{Deserialize, Serialize};

/// `POST /token/new/`.
#[derive(Debug, Deserialize)]
pub struct NewToken {
    pub access: String,
    pub access_expires: i64,
    pub refresh: String,
    pub refresh_expires: i64,
}

/// `POST /token/refresh/`.
#[derive(Debug, Deserialize)]
pub struct RefreshedToken {
    pub access: String,
    pub access_expires: i64,
}

/// A bank, as `GET /institutions/` lists it. Day counts arrive as strings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Institution {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub bic: Option<String>,
    #[serde(default)]
    pub transaction_total_days: Option<String>,
    #[serde(default)]
    pub max_access_valid_for_days: Option<String>,
    #[serde(default)]
    pub countries: Vec<String>,
    #[serde(default)]
    pub logo: Option<String>,
}

impl Institution {
    /// History the bank offers, in days (90 when it does not say).
    pub fn history_days(&self) -> i32 {
        self.transaction_total_days.as_deref().and_then(|d| d.parse().ok()).unwrap_or(90)
    }

    /// The longest consent the bank grants, in days (90 when it does not say).
    pub fn max_access_days(&self) -> i32 {
        self.max_access_valid_for_days.as_deref().and_then(|d| d.parse().ok()).unwrap_or(90)
    }
}

/// `POST /agreements/enduser/`.
#[derive(Debug, Deserialize)]
pub struct Agreement {
    pub id: String,
}

/// A requisition: the consent link and, once linked, the accounts.
#[derive(Debug, Clone, Deserialize)]
pub struct Requisition {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub link: Option<String>,
    #[serde(default)]
    pub accounts: Vec<String>,
    #[serde(default)]
    pub reference: Option<String>,
}

/// `GET /accounts/{id}/`.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountMetadata {
    pub id: String,
    #[serde(default)]
    pub iban: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub owner_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /accounts/{id}/details/`.
#[derive(Debug, Deserialize)]
pub struct DetailsResponse {
    pub account: AccountDetails,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDetails {
    #[serde(default)]
    pub iban: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub owner_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub product: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Amount {
    pub amount: String,
    pub currency: String,
}

/// `GET /accounts/{id}/balances/`.
#[derive(Debug, Deserialize)]
pub struct BalancesResponse {
    #[serde(default)]
    pub balances: Vec<Balance>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub balance_amount: Amount,
    pub balance_type: String,
    #[serde(default)]
    pub reference_date: Option<String>,
}

/// `GET /accounts/{id}/transactions/`.
#[derive(Debug, Deserialize)]
pub struct TransactionsResponse {
    pub transactions: TransactionLists,
}

#[derive(Debug, Default, Deserialize)]
pub struct TransactionLists {
    #[serde(default)]
    pub booked: Vec<serde_json::Value>,
    #[serde(default)]
    pub pending: Vec<serde_json::Value>,
}

/// The fields of one Berlin Group transaction that Payymo uses; the whole entry is kept raw too.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankTransaction {
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub internal_transaction_id: Option<String>,
    #[serde(default)]
    pub booking_date: Option<String>,
    #[serde(default)]
    pub value_date: Option<String>,
    pub transaction_amount: Amount,
    #[serde(default)]
    pub creditor_name: Option<String>,
    #[serde(default)]
    pub debtor_name: Option<String>,
    #[serde(default)]
    pub remittance_information_unstructured: Option<String>,
    #[serde(default)]
    pub remittance_information_unstructured_array: Option<Vec<String>>,
    #[serde(default)]
    pub additional_information: Option<String>,
    #[serde(default)]
    pub remittance_information_structured: Option<String>,
    #[serde(default)]
    pub end_to_end_id: Option<String>,
    #[serde(default)]
    pub entry_reference: Option<String>,
    #[serde(default)]
    pub bank_transaction_code: Option<String>,
}

/// The body of every GoCardless error: `{summary, detail, status_code, type?}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

impl ErrorBody {
    /// `summary: detail` for logs and messages (the provider's words, never secrets of ours).
    pub fn describe(&self) -> String {
        let detail = match &self.detail {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        match (&self.summary, detail.is_empty()) {
            (Some(summary), false) => format!("{summary}: {detail}"),
            (Some(summary), true) => summary.clone(),
            (None, _) => detail,
        }
    }
}
