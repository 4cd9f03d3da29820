//! `GET /transactions/stats`: totals per currency, each broken down by category, month and match
//! status, from one pass over the filtered rows. Sums never cross currencies.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::Serialize;
use sqlx::{QueryBuilder, Row};
use utoipa::ToSchema;

use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    ApiError, ApiQuery, DirectionParam, Filters, MatchStatusParam, Needs, Principal, RawFilters, StatusParam,
    TransactionsRead, parse_filters, with_filters,
};
use crate::{
    app::AppState,
    db::tenant::{begin_tenant, end_read},
    http::{error::Problem, json::ApiJson},
};

with_filters! {
    pub struct StatsParams {}
}

/// Money in and out of one group, in minor units of its currency.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct Totals {
    pub count: i64,
    /// The sum of credits (≥ 0).
    pub inflow: i64,
    /// The sum of debits, as a positive number.
    pub outflow: i64,
    /// `inflow - outflow`.
    pub net: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryTotals {
    /// Null for uncategorised transactions.
    pub category: Option<String>,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MonthTotals {
    /// `YYYY-MM`.
    pub month: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MatchStatusTotals {
    pub match_status: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Everything about one currency's transactions.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyStats {
    /// ISO 4217.
    pub currency: String,
    #[serde(flatten)]
    pub totals: Totals,
    /// Largest outflow first, then by name.
    pub by_category: Vec<CategoryTotals>,
    /// Oldest month first.
    pub by_month: Vec<MonthTotals>,
    pub by_match_status: Vec<MatchStatusTotals>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"time_zone": "Europe/London", "count": 3, "currencies": [{"currency": "GBP",
    "count": 3, "inflow": 125000, "outflow": 4550, "net": 120450,
    "by_category": [{"category": "office", "count": 2, "inflow": 0, "outflow": 4550, "net": -4550},
                    {"category": null, "count": 1, "inflow": 125000, "outflow": 0, "net": 125000}],
    "by_month": [{"month": "2026-11", "count": 3, "inflow": 125000, "outflow": 4550, "net": 120450}],
    "by_match_status": [{"match_status": "unmatched", "count": 3, "inflow": 125000, "outflow": 4550, "net": 120450}]}]}))]
pub struct TransactionStats {
    /// The tenant's time zone. Months are calendar months of the booking date (the value date
    /// while pending), which banks state in the account's own calendar, so no shifting is done.
    pub time_zone: String,
    /// Transactions counted, across currencies (amounts are only ever summed per currency).
    pub count: i64,
    /// One entry per currency, most transactions first.
    pub currencies: Vec<CurrencyStats>,
}

/// Transaction statistics
///
/// Count, inflow, outflow and net per currency for the transactions the filters select (the
/// same filters as the list), each broken down by category, by month and by match status.
/// Amounts are minor units and are never summed across currencies.
#[utoipa::path(
    get,
    path = "/transactions/stats",
    tag = "transactions",
    params(StatsParams),
    responses(
        (status = 200, body = TransactionStats),
        (status = 422, description = "A parameter is unknown or invalid; `errors` names each", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
pub(super) async fn stats(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsRead>,
    ApiQuery(params): ApiQuery<StatsParams>,
) -> Result<ApiJson<TransactionStats>, ApiError> {
    let filters = params.filters()?;
    let tenant = &principal.tenant.id;
    // One scan, four groupings. `grouping(...)` says which set a row belongs to: bit 2 is
    // category, bit 1 month, bit 0 match status (a set bit means "not grouped by it").
    let mut sql = QueryBuilder::new(
        "select currency, category, month, match_status, grouping(category, month, match_status)::int4 as set,
                count(*) as count,
                coalesce(sum(amount) filter (where amount >= 0), 0)::int8 as inflow,
                coalesce(-sum(amount) filter (where amount < 0), 0)::int8 as outflow
         from (select currency, category, match_status, amount,
                      to_char(coalesce(booking_date, value_date), 'YYYY-MM') as month
               from transactions",
    );
    filters.push_where(&mut sql, tenant);
    sql.push(
        ") t group by grouping sets ((currency), (currency, category), (currency, month), (currency, match_status))",
    );
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let time_zone: String = sqlx::query_scalar("select time_zone from tenants where id = $1")
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
    let rows = sql.build().fetch_all(&mut *tx).await?;
    end_read(tx);

    let mut by_currency: BTreeMap<String, CurrencyStats> = BTreeMap::new();
    for row in rows {
        let currency: String = row.try_get("currency")?;
        let (inflow, outflow): (i64, i64) = (row.try_get("inflow")?, row.try_get("outflow")?);
        let net = inflow
            .checked_sub(outflow)
            .ok_or_else(|| anyhow::anyhow!("the net of {currency} transactions does not fit in 64 bits"))?;
        let totals = Totals { count: row.try_get("count")?, inflow, outflow, net };
        let entry = by_currency.entry(currency.clone()).or_insert_with(|| CurrencyStats {
            currency,
            totals: Totals::default(),
            by_category: Vec::new(),
            by_month: Vec::new(),
            by_match_status: Vec::new(),
        });
        match row.try_get::<i32, _>("set")? {
            0b111 => entry.totals = totals,
            0b011 => entry.by_category.push(CategoryTotals { category: row.try_get("category")?, totals }),
            0b101 => {
                let month: Option<String> = row.try_get("month")?;
                entry.by_month.push(MonthTotals { month: month.unwrap_or_else(|| "undated".into()), totals });
            }
            0b110 => {
                entry.by_match_status.push(MatchStatusTotals { match_status: row.try_get("match_status")?, totals })
            }
            other => return Err(anyhow::anyhow!("unexpected grouping set {other}").into()),
        }
    }
    let mut currencies: Vec<CurrencyStats> = by_currency.into_values().collect();
    for c in &mut currencies {
        c.by_category.sort_by(|a, b| b.totals.outflow.cmp(&a.totals.outflow).then(a.category.cmp(&b.category)));
        c.by_month.sort_by(|a, b| a.month.cmp(&b.month));
        c.by_match_status.sort_by(|a, b| a.match_status.cmp(&b.match_status));
    }
    currencies.sort_by(|a, b| b.totals.count.cmp(&a.totals.count).then(a.currency.cmp(&b.currency)));
    let count = currencies.iter().map(|c| c.totals.count).sum();
    Ok(ApiJson(TransactionStats { time_zone, count, currencies }))
}
