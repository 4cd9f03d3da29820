//! `GET /transactions/stats`: totals per currency, each broken down by category, month and match
//! status, from one pass over the filtered rows. Sums never cross currencies.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{QueryBuilder, Row};
use utoipa::ToSchema;

use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    ApiError, ApiQuery, Direction, Filters, MatchStatus, Needs, Principal, RawFilters, TransactionStatus,
    TransactionsRead, parse_filters, with_filters,
};
use crate::{
    db::tenant::end_read,
    http::reads::Reader,
    http::{error::Problem, json::ApiJson},
};

with_filters! {
    pub struct StatsParams {}
}

impl super::QueryParams for StatsParams {
    fn problems(&self) -> Vec<super::FieldError> {
        super::field_errors([self.filters().map(drop)])
    }
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
    reader: Reader,
    principal: Principal,
    _: Needs<TransactionsRead>,
    ApiQuery(params): ApiQuery<StatsParams>,
) -> Result<ApiJson<TransactionStats>, ApiError> {
    let filters = params.filters()?;
    let tenant = &principal.tenant.id;
    // One scan, one grouping by (currency, category, month, match status): a few thousand groups,
    // added up into the four breakdowns here.
    let mut sql = QueryBuilder::new(
        "select currency, category, to_char(month, 'YYYY-MM') as month, match_status, count, inflow, outflow
         from (select currency, category, date_trunc('month', list_date) as month, match_status,
                      count(*) as count,
                      coalesce(sum(amount) filter (where amount >= 0), 0)::int8 as inflow,
                      coalesce(-sum(amount) filter (where amount < 0), 0)::int8 as outflow
               from transactions",
    );
    filters.push_where(&mut sql, tenant);
    sql.push(" group by 1, 2, 3, 4) g");
    let mut tx = reader.begin(tenant).await?;
    sqlx::query("select set_config('work_mem', '64MB', true), set_config('jit', 'off', true)")
        .execute(&mut *tx)
        .await?;
    let time_zone: String = sqlx::query_scalar("select time_zone from tenants where id = $1")
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
    let rows = sql.build().fetch_all(&mut *tx).await?;
    end_read(tx);

    fn add(into: &mut Totals, from: &Totals) -> Result<(), ApiError> {
        let overflow = || ApiError::from(anyhow::anyhow!("a transaction total does not fit in 64 bits"));
        into.count += from.count;
        into.inflow = into.inflow.checked_add(from.inflow).ok_or_else(overflow)?;
        into.outflow = into.outflow.checked_add(from.outflow).ok_or_else(overflow)?;
        into.net = into.inflow.checked_sub(into.outflow).ok_or_else(overflow)?;
        Ok(())
    }
    type Breakdowns = (Totals, BTreeMap<Option<String>, Totals>, BTreeMap<String, Totals>, BTreeMap<String, Totals>);
    let mut groups: BTreeMap<String, Breakdowns> = BTreeMap::new();
    for row in rows {
        let currency: String = row.try_get("currency")?;
        let (inflow, outflow): (i64, i64) = (row.try_get("inflow")?, row.try_get("outflow")?);
        let totals = Totals { count: row.try_get("count")?, inflow, outflow, net: 0 };
        let month: Option<String> = row.try_get("month")?;
        let entry = groups.entry(currency).or_default();
        add(&mut entry.0, &totals)?;
        add(entry.1.entry(row.try_get("category")?).or_default(), &totals)?;
        add(entry.2.entry(month.unwrap_or_else(|| "undated".into())).or_default(), &totals)?;
        add(entry.3.entry(row.try_get("match_status")?).or_default(), &totals)?;
    }
    let by_currency: BTreeMap<String, CurrencyStats> = groups
        .into_iter()
        .map(|(currency, (totals, categories, months, statuses))| {
            let stats = CurrencyStats {
                currency: currency.clone(),
                totals,
                by_category: categories
                    .into_iter()
                    .map(|(category, totals)| CategoryTotals { category, totals })
                    .collect(),
                by_month: months.into_iter().map(|(month, totals)| MonthTotals { month, totals }).collect(),
                by_match_status: statuses
                    .into_iter()
                    .map(|(match_status, totals)| MatchStatusTotals { match_status, totals })
                    .collect(),
            };
            (currency, stats)
        })
        .collect();
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
