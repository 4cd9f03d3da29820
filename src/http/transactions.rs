//! Bank transactions as synced from the bank feeds: a first list and get (filters, search,
//! statistics and export grow here with the transactions API).

use axum::extract::{Path, State};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{Probe, not_found},
    auth::{ClientIp, Needs, scopes::TransactionsRead},
    error::{ApiError, Problem},
    json::ApiJson,
    pagination::{self, Page},
    query::ApiQuery,
    request_id::RequestId,
};
use crate::{
    app::AppState,
    auth::Principal,
    bank::model::{TRANSACTION_COLUMNS, Transaction},
    db::tenant::{begin_tenant, end_read},
    domain::ids::{BankAccountId, BankConnectionId, TransactionId},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(get))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransactionFilters {
    /// Only this account's transactions (`ba_…`).
    pub account_id: Option<String>,
    /// Only transactions from this bank connection (`bc_…`).
    pub bank_connection_id: Option<String>,
    /// `pending`, `booked` or `cancelled`.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 25).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const STATUSES: &[&str] = &["pending", "booked", "cancelled"];

/// List transactions
///
/// Newest first by booking date (a pending transaction by its value date), then id. The cursor
/// is a position in that order, so transactions arriving while you page never make a row
/// repeat or go missing from the pages still to come.
#[utoipa::path(
    get,
    path = "/transactions",
    tag = "transactions",
    params(TransactionFilters),
    responses((status = 200, body = Page<Transaction>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsRead>,
    ApiQuery(f): ApiQuery<TransactionFilters>,
) -> Result<ApiJson<Page<Transaction>>, ApiError> {
    if let Some(status) = &f.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::invalid_field("status", format!("must be one of {}", STATUSES.join(", "))));
    }
    let account = match f.account_id.as_deref() {
        Some(id) => Some(
            BankAccountId::parse(id)
                .ok_or_else(|| ApiError::invalid_field("account_id", "is not an account id (ba_…)"))?,
        ),
        None => None,
    };
    let connection = match f.bank_connection_id.as_deref() {
        Some(id) => Some(
            BankConnectionId::parse(id)
                .ok_or_else(|| ApiError::invalid_field("bank_connection_id", "is not a bank connection id (bc_…)"))?,
        ),
        None => None,
    };
    let limit = pagination::limit(f.limit)?;
    let after = pagination::after(f.cursor.as_deref(), parse_position)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows: Vec<Transaction> = sqlx::query_as(&format!(
        "select {TRANSACTION_COLUMNS} from transactions
         where tenant_id = $1 and ($2::text is null or account_id = $2) and ($3::text is null or connection_id = $3)
           and ($4::text is null or status = $4)
           and ($5::date is null or (coalesce(booking_date, value_date), id) < ($5, $6))
         order by coalesce(booking_date, value_date) desc, id desc limit $7"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(account.as_ref().map(BankAccountId::as_str))
    .bind(connection.as_ref().map(BankConnectionId::as_str))
    .bind(&f.status)
    .bind(after.as_ref().map(|(date, _)| *date))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    end_read(tx);
    Ok(ApiJson(pagination::page(rows, limit, |t| {
        format!("{}|{}", t.booking_date.or(t.value_date).unwrap_or_default(), t.id)
    })))
}

/// A cursor's position: (date, id).
fn parse_position(text: &str) -> Option<(NaiveDate, TransactionId)> {
    let (date, id) = text.split_once('|')?;
    Some((date.parse().ok()?, TransactionId::parse(id)?))
}

/// Get a transaction
#[utoipa::path(
    get,
    path = "/transactions/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "The transaction's id (`txn_…`)")),
    responses((status = 200, body = Transaction), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsRead>,
    Path(id): Path<String>,
    ip: ClientIp,
    request_id: RequestId,
) -> Result<ApiJson<Transaction>, ApiError> {
    let Some(parsed) = TransactionId::parse(&id) else { return Err(ApiError::not_found()) };
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let transaction: Option<Transaction> =
        sqlx::query_as(&format!("select {TRANSACTION_COLUMNS} from transactions where tenant_id = $1 and id = $2"))
            .bind(principal.tenant.id.as_str())
            .bind(parsed.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    end_read(tx);
    match transaction {
        Some(transaction) => Ok(ApiJson(transaction)),
        None => Err(not_found(&state, &principal, Probe::Transactions, &id, ip, &request_id).await),
    }
}
