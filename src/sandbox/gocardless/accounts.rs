//! Account endpoints: metadata, details, balances and transactions, with the per-account daily
//! success budget, access expiry, suspension and the `PROCESSING` delay after linking.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{Days, Duration, NaiveDate};
use serde_json::{Value, json};

use super::{
    data::{Txn, TxnView, amount, opening_cents, pending_on, transactions_on},
    error::ApiError,
    limits::account_success_headers,
    routes::Bearer,
    state::{Account, Endpoint, Inner, SandboxState, timestamp},
};

/// Days of history generated before an account was linked.
const HISTORY_DAYS: u64 = 730;

/// The account routes, relative to `/api/v2`.
pub(crate) fn router() -> Router<SandboxState> {
    Router::new()
        .route("/accounts/{id}/", get(metadata))
        .route("/accounts/{id}/details/", get(details))
        .route("/accounts/{id}/balances/", get(balances))
        .route("/accounts/{id}/transactions/", get(transactions))
}

/// The account with this id, or the API's 400 (not a UUID) or 404.
pub(crate) fn find_account(inner: &Inner, id: &str) -> Result<Account, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request("Invalid Account ID", format!("{id} is not a valid Account UUID. ")));
    }
    inner.accounts.iter().find(|a| a.id == id).cloned().ok_or_else(|| {
        ApiError::not_found(
            format!("Account ID {id} not found"),
            "Please check whether you specified a valid Account ID",
        )
    })
}

/// Whether the account's requisition still grants access.
fn access_live(inner: &Inner, account: &Account) -> bool {
    inner.requisitions.iter().any(|r| r.id == account.requisition && r.status == "LN" && !r.deleted)
}

/// Whether the account's requisition was suspended.
fn suspended(inner: &Inner, account: &Account) -> bool {
    inner.requisitions.iter().any(|r| r.id == account.requisition && r.status == "SU")
}

/// Whether the account is still `PROCESSING`: linked less than the configured delay ago.
fn processing(state: &SandboxState, inner: &Inner, account: &Account) -> bool {
    inner.now() < account.created + Duration::seconds(state.config.account_ready_after_seconds)
}

/// The account's status as its metadata shows it.
fn account_status(state: &SandboxState, inner: &Inner, account: &Account) -> &'static str {
    if suspended(inner, account) {
        "SUSPENDED"
    } else if !access_live(inner, account) {
        "EXPIRED"
    } else if processing(state, inner, account) {
        "PROCESSING"
    } else {
        "READY"
    }
}

async fn metadata(
    _: Bearer,
    State(state): State<SandboxState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inner = state.lock();
    let account = find_account(&inner, &id)?;
    Ok(Json(json!({
        "id": account.id,
        "created": timestamp(account.created),
        "last_accessed": timestamp(inner.now()),
        "iban": account.iban,
        "bban": account.iban.get(4..),
        "institution_id": account.institution_id,
        "status": account_status(&state, &inner, &account),
        "owner_name": account.owner_name,
        "name": "Main account",
    })))
}

/// Why an account's data cannot be read now, if it cannot: suspended, expired or still processing.
fn unavailable(state: &SandboxState, inner: &Inner, account: &Account, agreement: &str) -> Option<ApiError> {
    let id = &account.id;
    if suspended(inner, account) {
        Some(ApiError::new(
            StatusCode::CONFLICT,
            "Account suspended",
            format!("Account {id} is suspended after too many consecutive failed requests. Reconnect the account."),
        ))
    } else if !access_live(inner, account) {
        Some(
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Access has expired or it has been revoked. To restore access reconnect the account.",
                format!("EUA {agreement} has expired or was revoked"),
            )
            .with_type("AccessExpiredError"),
        )
    } else if processing(state, inner, account) {
        Some(ApiError::new(
            StatusCode::CONFLICT,
            "Account is being processed",
            format!("Account {id} is still being processed by the institution. Please try again in a few seconds."),
        ))
    } else {
        None
    }
}

/// Checks access, scope and today's budget, runs `produce`, and counts the call if it succeeded.
fn budgeted(
    state: &SandboxState,
    id: &str,
    endpoint: Endpoint,
    produce: impl FnOnce(&Inner, &Account) -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    let mut inner = state.lock();
    let account = find_account(&inner, id)?;
    let Some(requisition) = inner.requisitions.iter().find(|r| r.id == account.requisition).cloned() else {
        return Err(ApiError::not_found(format!("Account ID {id} not found"), "Requisition not found"));
    };
    if let Some(error) = unavailable(state, &inner, &account, &requisition.agreement) {
        return Err(error);
    }
    let scope = match endpoint {
        Endpoint::Details => "details",
        Endpoint::Balances => "balances",
        Endpoint::Transactions => "transactions",
    };
    let in_scope = inner
        .agreements
        .iter()
        .find(|a| a.id == requisition.agreement)
        .is_some_and(|a| a.access_scope.iter().any(|s| s == scope));
    if !in_scope {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "End User Agreement (EUA) access scope error",
            format!("Your EUA doesn't allow {scope} access"),
        )
        .with_type("AccountAccessForbidden"));
    }
    let now = inner.now();
    let today = now.date_naive();
    let reset = today
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(86_400, |midnight| (midnight.and_utc() - now).num_seconds());
    let limit = state.config.daily_account_limit;
    let key = (account.id.clone(), endpoint, today);
    let used = inner.usage.get(&key).copied().unwrap_or(0);
    if used >= limit {
        let summary = match endpoint {
            Endpoint::Details => "Couldn't update account details",
            Endpoint::Balances => "Couldn't update account balances",
            Endpoint::Transactions => "Couldn't update account transactions",
        };
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            summary,
            "Daily request limit set by the Institution has been exceeded.",
        )
        .with_type("RateLimitError")
        .with_headers(account_success_headers(&state.config, limit, 0, reset)));
    }
    let mut response = produce(&inner, &account)?;
    inner.usage.insert(key, used + 1);
    response.headers_mut().extend(account_success_headers(&state.config, limit, limit - used - 1, reset));
    Ok(response)
}

async fn details(_: Bearer, State(state): State<SandboxState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    budgeted(&state, &id, Endpoint::Details, |_, account| {
        Ok(Json(json!({"account": {
            "resourceId": account.id,
            "iban": account.iban,
            "currency": account.currency,
            "ownerName": account.owner_name,
            "name": "Main account",
            "product": "Business Current Account",
            "cashAccountType": "CACC",
        }}))
        .into_response())
    })
}

/// The first day with simulated history for this account.
fn origin_day(account: &Account) -> NaiveDate {
    let created = account.created.date_naive();
    created.checked_sub_days(Days::new(HISTORY_DAYS)).unwrap_or(created)
}

async fn balances(_: Bearer, State(state): State<SandboxState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    budgeted(&state, &id, Endpoint::Balances, |inner, account| {
        let today = inner.now().date_naive();
        let mut booked = opening_cents(inner.seed, account.key);
        let mut last: Option<(NaiveDate, &str)> = None;
        let generated: Vec<Txn> = origin_day(account)
            .iter_days()
            .take_while(|d| *d < today)
            .flat_map(|day| transactions_on(inner.seed, account.key, day))
            .collect();
        let ledger = inner.ledgers.get(&account.id);
        let added = ledger.map_or(&[][..], |l| l.booked_before(today));
        for txn in generated.iter().chain(added) {
            booked += txn.cents;
            if last.is_none_or(|(day, _)| txn.day >= day) {
                last = Some((txn.day, &txn.internal_id));
            }
        }
        let booked_today: i64 = ledger.map_or(0, |l| l.booked_between(today, today).iter().map(|t| t.cents).sum());
        let pending: i64 = pending_on(inner.seed, account.key, today)
            .iter()
            .chain(ledger.map_or(&[][..], |l| l.pending()))
            .map(|t| t.pending.cents)
            .sum();
        let yesterday = today.pred_opt().unwrap_or(today).format("%Y-%m-%d").to_string();
        let last = last.map(|(_, id)| id);
        let entry = |cents: i64, kind: &str, date: &str| {
            json!({"balanceAmount": {"amount": amount(cents), "currency": account.currency},
                "balanceType": kind, "referenceDate": date, "creditLimitIncluded": false,
                "lastCommittedTransaction": last})
        };
        Ok(Json(json!({"balances": [
            entry(booked, "closingBooked", &yesterday),
            entry(booked + booked_today + pending, "interimAvailable", &today.format("%Y-%m-%d").to_string()),
        ]}))
        .into_response())
    })
}

/// The first day whose transactions this account's agreement lets a client retrieve today.
pub(crate) fn retrievable_from(inner: &Inner, account: &Account) -> NaiveDate {
    let today = inner.now().date_naive();
    let history = inner
        .requisitions
        .iter()
        .find(|r| r.id == account.requisition)
        .and_then(|r| inner.agreements.iter().find(|a| a.id == r.agreement))
        .map_or(90, |a| a.max_historical_days.unsigned_abs());
    today.checked_sub_days(Days::new(history)).unwrap_or(today).max(origin_day(account))
}

/// The body of `GET /accounts/{id}/transactions/`, serialised without an intermediate tree.
#[derive(serde::Serialize)]
struct TransactionsBody<'a> {
    transactions: TransactionLists<'a>,
    last_updated: String,
}

#[derive(serde::Serialize)]
struct TransactionLists<'a> {
    booked: Vec<TxnView<'a>>,
    pending: Vec<TxnView<'a>>,
}

#[derive(serde::Deserialize)]
struct DateRange {
    date_from: Option<String>,
    date_to: Option<String>,
}

fn parse_date(field: &str, value: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                ApiError::bad_request(
                    format!("Invalid {field}"),
                    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
                )
            })
        })
        .transpose()
}

async fn transactions(
    _: Bearer,
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    Query(range): Query<DateRange>,
) -> Result<Response, ApiError> {
    let from = parse_date("date_from", range.date_from.as_deref())?;
    let to = parse_date("date_to", range.date_to.as_deref())?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::bad_request(
            "Incorrect date range",
            format!(
                "Starting date '{from}' is greater than end date '{to}'. When specifying date range, starting date must precede the end date."
            ),
        ));
    }
    budgeted(&state, &id, Endpoint::Transactions, |inner, account| {
        let today = inner.now().date_naive();
        let from = from.unwrap_or(NaiveDate::MIN).max(retrievable_from(inner, account));
        let to = to.unwrap_or(today).min(today);
        let ledger = inner.ledgers.get(&account.id);
        let generated: Vec<Txn> = from
            .iter_days()
            .take_while(|d| *d <= to && *d < today)
            .flat_map(|day| transactions_on(inner.seed, account.key, day))
            .collect();
        let added = ledger.map_or(&[][..], |l| l.booked_between(from, to));
        let mut booked: Vec<&Txn> = generated.iter().chain(added).collect();
        booked.sort_by_key(|t| std::cmp::Reverse(t.day));
        let generated_pending =
            if from <= today && today <= to { pending_on(inner.seed, account.key, today) } else { Vec::new() };
        let added_pending = if from <= today && today <= to { ledger.map_or(&[][..], |l| l.pending()) } else { &[] };
        let body = TransactionsBody {
            transactions: TransactionLists {
                booked: booked.into_iter().map(|t| TxnView::booked(t, account.currency)).collect(),
                pending: generated_pending
                    .iter()
                    .chain(added_pending)
                    .map(|t| TxnView::pending(t, account.currency))
                    .collect(),
            },
            last_updated: timestamp(inner.now()),
        };
        Ok(Json(body).into_response())
    })
}
