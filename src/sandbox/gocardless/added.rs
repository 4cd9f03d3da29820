//! The control API's transaction calls: add explicit transactions to an account (booked or
//! pending), generate many deterministic booked ones, and book a pending one.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use chrono::{Days, NaiveDate};
use serde_json::{Value, json};

use super::{
    accounts::{find_account, retrievable_from},
    data::{Pending, Txn, TxnView, added_internal_id, extra_transaction, parse_cents},
    error::ApiError,
    ledger::BookError,
    state::{Account, Inner, SandboxState},
};

/// Most transactions one `generate` call may add.
const MAX_GENERATE: u64 = 1_000_000;

/// The transaction routes of the control API.
pub(crate) fn router() -> Router<SandboxState> {
    Router::new()
        .route("/_sandbox/accounts/{id}/transactions", post(add))
        .route("/_sandbox/accounts/{id}/transactions/{txn}/book", post(book))
}

/// `{"transactions": [...]}` or `{"generate": N}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    transactions: Option<Vec<NewTransaction>>,
    generate: Option<u64>,
}

/// One explicit transaction to add.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTransaction {
    booking_date: String,
    amount: String,
    counterparty: Option<String>,
    remittance: Option<String>,
    #[serde(default)]
    pending: bool,
    transaction_id: Option<String>,
}

/// Changes applied when a pending transaction books; each defaults to the pending value (and the
/// booking date to today).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BookRequest {
    booking_date: Option<String>,
    amount: Option<String>,
    transaction_id: Option<String>,
}

/// Parses a control-API body, answering 400 in the API's error format.
fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("Invalid request body", e.to_string()))
}

fn parse_day(field: &str, value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("Invalid {field}"), format!("'{value}' is not a YYYY-MM-DD date")))
}

fn parse_amount(field: &str, value: &str) -> Result<i64, ApiError> {
    parse_cents(value).ok_or_else(|| {
        ApiError::bad_request(
            format!("Invalid {field}"),
            format!("'{value}' is not a decimal amount with at most two decimals, like \"-12.34\""),
        )
    })
}

/// The explicit transaction number `n` of `account`, validated.
fn explicit(seed: u64, account: &Account, n: u64, index: usize, new: NewTransaction) -> Result<Txn, ApiError> {
    let day = parse_day(&format!("transactions[{index}].booking_date"), &new.booking_date)?;
    let cents = parse_amount(&format!("transactions[{index}].amount"), &new.amount)?;
    let transaction_id = new
        .transaction_id
        .clone()
        .unwrap_or_else(|| format!("{}{:05}-A{n}", day.format("%Y%m%d"), account.key % 100_000));
    Ok(Txn {
        day,
        cents,
        counterparty: new.counterparty.unwrap_or_else(|| "Sandbox counterparty".to_owned()),
        remittance: new.remittance.unwrap_or_default(),
        transaction_id,
        internal_id: added_internal_id(seed, account.key, n),
        pending: Pending { since: day, cents, transaction_id: new.transaction_id },
    })
}

/// How an added transaction is reported back to the caller.
fn receipt(txn: &Txn, pending: bool) -> Value {
    json!({
        "transaction_id": txn.transaction_id,
        "internal_transaction_id": (!pending).then_some(&txn.internal_id),
        "booking_date": txn.day.format("%Y-%m-%d").to_string(),
        "pending": pending,
    })
}

/// Adds the explicit transactions, all or none; pending ones wait for `…/book`.
fn add_explicit(inner: &mut Inner, account: &Account, list: Vec<NewTransaction>) -> Result<Value, ApiError> {
    if list.is_empty() {
        return Err(ApiError::bad_request("Invalid transactions", "Send at least one transaction."));
    }
    let seed = inner.seed;
    let ledger = inner.ledgers.entry(account.id.clone()).or_default();
    let first = ledger.added();
    let mut txns = Vec::with_capacity(list.len());
    for (index, new) in list.into_iter().enumerate() {
        let pending = new.pending;
        txns.push((explicit(seed, account, first + index as u64, index, new)?, pending));
    }
    ledger.reserve(txns.len() as u64);
    let receipts: Vec<Value> = txns.iter().map(|(txn, pending)| receipt(txn, *pending)).collect();
    let (pending, booked): (Vec<_>, Vec<_>) = txns.into_iter().partition(|(_, pending)| *pending);
    ledger.add_booked(booked.into_iter().map(|(txn, _)| txn));
    pending.into_iter().for_each(|(txn, _)| ledger.add_pending(txn));
    Ok(json!({"added": receipts.len(), "transactions": receipts}))
}

/// Adds `count` deterministic booked transactions spread over the days a client can retrieve
/// today (from the agreement's history limit to yesterday).
fn generate(inner: &mut Inner, account: &Account, count: u64) -> Result<Value, ApiError> {
    if !(1..=MAX_GENERATE).contains(&count) {
        return Err(ApiError::bad_request(
            "Invalid generate",
            format!("generate must be between 1 and {MAX_GENERATE}"),
        ));
    }
    let today = inner.now().date_naive();
    let from = retrievable_from(inner, account);
    let span = u64::try_from((today - from).num_days()).unwrap_or(0).max(1);
    let to = from.checked_add_days(Days::new(span - 1)).unwrap_or(from);
    let seed = inner.seed;
    let ledger = inner.ledgers.entry(account.id.clone()).or_default();
    let numbers = ledger.reserve(count);
    ledger.add_booked(numbers.map(|n| extra_transaction(seed, account.key, n, from, span)));
    Ok(json!({"added": count, "date_from": from.format("%Y-%m-%d").to_string(),
        "date_to": to.format("%Y-%m-%d").to_string()}))
}

async fn add(State(state): State<SandboxState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let request: AddRequest = parse_body(&body)?;
    let mut inner = state.lock();
    let account = find_account(&inner, &id)?;
    let body = match (request.transactions, request.generate) {
        (Some(list), None) => add_explicit(&mut inner, &account, list)?,
        (None, Some(count)) => generate(&mut inner, &account, count)?,
        _ => {
            return Err(ApiError::bad_request(
                "Invalid request body",
                "Send either {\"transactions\": [...]} or {\"generate\": N}.",
            ));
        }
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn book(
    State(state): State<SandboxState>,
    Path((id, handle)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: BookRequest = parse_body(&body)?;
    let mut inner = state.lock();
    let account = find_account(&inner, &id)?;
    let today = inner.now().date_naive();
    let day = request.booking_date.as_deref().map(|d| parse_day("booking_date", d)).transpose()?.unwrap_or(today);
    let cents = request.amount.as_deref().map(|a| parse_amount("amount", a)).transpose()?;
    let ledger = inner.ledgers.entry(account.id.clone()).or_default();
    let booked = ledger
        .book(&handle, |txn| {
            txn.day = day;
            txn.cents = cents.unwrap_or(txn.cents);
            if let Some(new_id) = request.transaction_id {
                txn.transaction_id = new_id;
            }
        })
        .map_err(|error| match error {
            BookError::AlreadyBooked => ApiError::new(
                StatusCode::CONFLICT,
                "Transaction already booked",
                format!("Transaction {handle} of account {id} is booked already"),
            ),
            BookError::Unknown => {
                ApiError::not_found("Not found.", format!("No pending transaction {handle} on account {id}"))
            }
        })?;
    Ok(Json(TxnView::booked(booked, account.currency)).into_response())
}

/// A credit that another simulator (Stripe's payouts) books into an account.
#[derive(Debug, Clone)]
pub struct BankCredit {
    pub booking_date: NaiveDate,
    /// Cents of the account's currency.
    pub cents: i64,
    /// The currency the credit is in (ISO 4217): booked only into an account in it.
    pub currency: String,
    pub counterparty: String,
    pub remittance: String,
    pub transaction_id: String,
}

impl SandboxState {
    /// Books `credit` into the account `account_id`, as the control API's explicit transactions
    /// are booked. Refused when there is no such account or its currency is another.
    pub fn book_credit(&self, account_id: &str, credit: BankCredit) -> Result<(), String> {
        let mut inner = self.lock();
        let account = find_account(&inner, account_id).map_err(|e| e.describe())?;
        if !account.currency.eq_ignore_ascii_case(&credit.currency) {
            return Err(format!("account {account_id} is in {}, not {}", account.currency, credit.currency));
        }
        let new = NewTransaction {
            booking_date: credit.booking_date.format("%Y-%m-%d").to_string(),
            amount: format!("{}.{:02}", credit.cents / 100, credit.cents % 100),
            counterparty: Some(credit.counterparty),
            remittance: Some(credit.remittance),
            pending: false,
            transaction_id: Some(credit.transaction_id),
        };
        add_explicit(&mut inner, &account, vec![new]).map(drop).map_err(|e| e.describe())
    }
}
