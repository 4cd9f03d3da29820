//! Account endpoints: metadata, details, balances and transactions, with the per-account daily
//! success budget and access expiry.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{Days, NaiveDate};
use serde_json::{Value, json};

use super::{
    data::{amount, opening_cents, transactions_on, txn_json},
    error::ApiError,
    routes::{Bearer, header_name},
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

fn find_account(inner: &Inner, id: &str) -> Result<Account, ApiError> {
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

async fn metadata(
    _: Bearer,
    State(state): State<SandboxState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inner = state.lock();
    let account = find_account(&inner, &id)?;
    let status = if access_live(&inner, &account) { "READY" } else { "EXPIRED" };
    Ok(Json(json!({
        "id": account.id,
        "created": timestamp(account.created),
        "last_accessed": timestamp(inner.now()),
        "iban": account.iban,
        "bban": account.iban.get(4..),
        "institution_id": account.institution_id,
        "status": status,
        "owner_name": account.owner_name,
        "name": "Main account",
    })))
}

/// The budget headers for one account endpoint today.
fn budget_headers(limit: u32, used: u32, reset: i64) -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (header_name("http_x_ratelimit_account_success_limit"), HeaderValue::from(limit)),
        (header_name("http_x_ratelimit_account_success_remaining"), HeaderValue::from(limit.saturating_sub(used))),
        (header_name("http_x_ratelimit_account_success_reset"), HeaderValue::from(reset)),
    ]
}

/// Checks access, scope and today's budget, runs `produce`, and counts the call if it succeeded.
fn budgeted(
    state: &SandboxState,
    id: &str,
    endpoint: Endpoint,
    produce: impl FnOnce(&Inner, &Account) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let mut inner = state.lock();
    let account = find_account(&inner, id)?;
    let Some(requisition) = inner.requisitions.iter().find(|r| r.id == account.requisition).cloned() else {
        return Err(ApiError::not_found(format!("Account ID {id} not found"), "Requisition not found"));
    };
    if !access_live(&inner, &account) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Access has expired or it has been revoked. To restore access reconnect the account.",
            format!("EUA {} has expired or was revoked", requisition.agreement),
        )
        .with_type("AccessExpiredError"));
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
        .with_headers(budget_headers(limit, used, reset)));
    }
    let body = produce(&inner, &account)?;
    inner.usage.insert(key, used + 1);
    let mut response = Json(body).into_response();
    response.headers_mut().extend(budget_headers(limit, used + 1, reset));
    Ok(response)
}

async fn details(_: Bearer, State(state): State<SandboxState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    budgeted(&state, &id, Endpoint::Details, |_, account| {
        Ok(json!({"account": {
            "resourceId": account.id,
            "iban": account.iban,
            "currency": account.currency,
            "ownerName": account.owner_name,
            "name": "Main account",
            "product": "Business Current Account",
            "cashAccountType": "CACC",
        }}))
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
        let mut last = None;
        for day in origin_day(account).iter_days().take_while(|d| *d < today) {
            for txn in transactions_on(inner.seed, account.key, day) {
                booked += txn.cents;
                last = Some(txn.internal_id);
            }
        }
        let pending: i64 = transactions_on(inner.seed, account.key, today).iter().map(|t| t.cents).sum();
        let yesterday = today.pred_opt().unwrap_or(today).format("%Y-%m-%d").to_string();
        let entry = |cents: i64, kind: &str, date: &str| {
            json!({"balanceAmount": {"amount": amount(cents), "currency": account.currency},
                "balanceType": kind, "referenceDate": date, "creditLimitIncluded": false,
                "lastCommittedTransaction": last})
        };
        Ok(json!({"balances": [
            entry(booked, "closingBooked", &yesterday),
            entry(booked + pending, "interimAvailable", &today.format("%Y-%m-%d").to_string()),
        ]}))
    })
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
        let history = inner
            .requisitions
            .iter()
            .find(|r| r.id == account.requisition)
            .and_then(|r| inner.agreements.iter().find(|a| a.id == r.agreement))
            .map_or(90, |a| a.max_historical_days.unsigned_abs());
        let earliest = today.checked_sub_days(Days::new(history)).unwrap_or(today).max(origin_day(account));
        let from = from.unwrap_or(earliest).max(earliest);
        let to = to.unwrap_or(today).min(today);
        let mut booked = Vec::new();
        for day in from.iter_days().take_while(|d| *d <= to && *d < today) {
            booked.extend(
                transactions_on(inner.seed, account.key, day).iter().map(|t| txn_json(t, account.currency, true)),
            );
        }
        booked.reverse();
        let pending: Vec<Value> = if from <= today && today <= to {
            transactions_on(inner.seed, account.key, today)
                .iter()
                .map(|t| txn_json(t, account.currency, false))
                .collect()
        } else {
            Vec::new()
        };
        Ok(json!({"transactions": {"booked": booked, "pending": pending}, "last_updated": timestamp(inner.now())}))
    })
}
