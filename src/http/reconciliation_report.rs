//! `GET /reconciliation/report`: the end-of-day close of one day, as JSON or CSV
//! (docs/reconciliation.md, "End-of-day report").

use axum::{
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::Probe,
    auth::{Needs, scopes::ReconciliationRead},
    csv::{Cell, CsvWriter, download},
    error::{ApiError, FieldError, Problem},
    json::ApiJson,
    query::{ApiQuery, QueryParams},
};
use crate::{
    auth::Principal,
    db::tenant::end_read,
    domain::ids::BankAccountId,
    http::reads::Reader,
    reconciliation::{
        ReconciliationError,
        report::{self, EndOfDayAccount, EndOfDayReport, ReportFlow},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(end_of_day_report))
}

/// How the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Json,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// The day to close (`YYYY-MM-DD`, required): today or earlier in the tenant's time zone.
    #[param(value_type = String, format = Date)]
    pub date: String,
    /// Only this account (`ba_…`); every account of the tenant when absent.
    pub account_id: Option<String>,
    /// `json` (the default) or `csv`. Without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    pub format: Option<ReportFormat>,
}

impl ReportParams {
    fn date(&self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(&self.date, "%Y-%m-%d").ok().filter(|_| self.date.len() == 10)
    }
}

impl QueryParams for ReportParams {
    fn problems(&self) -> Vec<FieldError> {
        match self.date() {
            Some(_) => Vec::new(),
            None => vec![FieldError { field: "date".into(), message: "must be a date in the form YYYY-MM-DD".into() }],
        }
    }
}

/// End-of-day report
///
/// The close of one day (`date`, required; today at the latest, in the tenant's time zone), for
/// each of the tenant's accounts (or only `account_id`), with the tenant's overdue invoices.
/// Amounts are integer minor units, always with their ISO 4217 currency, and are never summed
/// across currencies.
///
/// Per account (`accounts[]`; an account with transactions in several currencies has one entry
/// per currency):
/// - `opening_balance`, `closing_balance`: `amount`, `currency`, `source` and `detail`. `source`
///   is `bank` when the bank reported a booked end-of-day balance for that instant
///   (`closingBooked` dated the day before for the opening, or `openingBooked` dated the day;
///   `closingBooked` dated the day for the closing, or `openingBooked` dated the day after), and
///   then `balance_type` and `reference_date` say which. `derived` when the bank did not report
///   it but reported the other end of the day: opening = closing − `booked.net`, or closing =
///   opening + `booked.net`. `unavailable` (`amount` null) when neither end was reported. Interim,
///   available and expected balances are never used. Payymo keeps the balances of the latest
///   fetch only, so older days are usually `unavailable`.
/// - `booked`: transactions booked that day (by booking date): `count`, `credits` and `debits`
///   (each a `count` and an `amount`, debits as a positive sum), and `net` = credits − debits.
/// - `pending`: transactions still pending with that value date, in the same shape; never part
///   of `booked` or the check.
/// - `balance_check`: `ok` when both balances come from the bank and
///   `opening + booked.net == closing`; `mismatch` when they disagree, with `expected_closing`
///   and `difference` (closing − expected: positive when the bank holds more than the booked
///   transactions explain); `unavailable` when a balance is derived or missing, so there is
///   nothing independent to compare. A mismatch means a transaction is missing, duplicated or
///   re-dated in the feed, or the bank corrected a balance: re-sync, then compare the
///   transactions of the day with the bank's statement.
/// - `by_match_status`: the day's booked transactions by reconciliation status (`matched`,
///   `suggested`, `unmatched`, `excluded`), each as `credits` and `debits` (`count`, `amount`).
///
/// `overdue_invoices[]`: per currency, invoices `open` or `partially_paid` now whose `due_date`
/// is before `date`: `count` and `amount_due` (total − paid). They are the tenant's, whatever
/// `account_id` says.
///
/// CSV (`format=csv` or `Accept: text/csv`): RFC 4180 with a header row. The first column, `row`,
/// is `account` (one row per account entry) or `overdue_invoices` (one row per currency, filling
/// only `date`, `currency`, `overdue_count` and `overdue_amount_due`). Columns: `row`, `date`,
/// `account_id`, `account_name`, `currency`, `opening_balance`, `opening_source`,
/// `opening_balance_type`, `opening_reference_date`, `closing_balance`, `closing_source`,
/// `closing_balance_type`, `closing_reference_date`, `booked_count`, `credits_count`,
/// `credits_amount`, `debits_count`, `debits_amount`, `net`, `pending_count`, `pending_net`,
/// `balance_check`, `expected_closing`, `difference`, then for each of `matched`, `suggested`,
/// `unmatched`, `excluded`: `<status>_credits_count`, `<status>_credits_amount`,
/// `<status>_debits_count`, `<status>_debits_amount`; then `overdue_count`, `overdue_amount_due`.
/// Amounts are integer minor units as in JSON; empty cells are absent values. Text cells starting
/// with `=`, `+`, `-`, `@`, tab or CR are prefixed with `'`.
#[utoipa::path(
    get,
    path = "/reconciliation/report",
    tag = "reconciliation",
    params(ReportParams),
    responses(
        (status = 200, description = "The report: JSON, or CSV with the columns listed above",
            content((EndOfDayReport = "application/json"), (String = "text/csv"))),
        (status = 404, description = "`account_id` is not one of the tenant's accounts", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`date` is missing, malformed or after today, or another parameter is invalid; `errors` names each", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn end_of_day_report(
    reader: Reader,
    principal: Principal,
    _: Needs<ReconciliationRead>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let date = params.date().ok_or_else(|| ApiError::validation(params.problems()))?;
    let account = match &params.account_id {
        Some(raw) => Some(BankAccountId::parse(raw).ok_or_else(|| ApiError::not_found_in(Probe::Accounts, raw))?),
        None => None,
    };
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let report = report::report(&mut tx, &principal.tenant.id, date, account.as_ref()).await.map_err(|e| match e {
        ReconciliationError::NotFound(_) => {
            ApiError::not_found_in(Probe::Accounts, params.account_id.as_deref().unwrap_or_default())
        }
        other => other.into(),
    })?;
    end_read(tx);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if params.format.map_or_else(|| prefers_csv(accept), |f| f == ReportFormat::Csv) {
        let csv = to_csv(&report);
        let filename = format!("reconciliation-report-{date}.csv");
        Ok(download(&filename, futures_util::stream::once(async move { Ok(csv) })))
    } else {
        Ok(ApiJson(report).into_response())
    }
}

/// Whether an `Accept` header asks for CSV rather than JSON: `text/csv` with a higher quality
/// than `application/json`, or the same quality and listed first.
fn prefers_csv(accept: &str) -> bool {
    let find = |wanted: &str| {
        accept.split(',').enumerate().find_map(|(position, range)| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim();
            if !media.eq_ignore_ascii_case(wanted) {
                return None;
            }
            let quality =
                parts.find_map(|p| p.trim().strip_prefix("q=")).map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            Some((quality, position))
        })
    };
    match (find("text/csv"), find("application/json")) {
        (Some((csv, _)), _) if csv <= 0.0 => false,
        (Some(_), None) => true,
        (Some((csv, csv_at)), Some((json, json_at))) => csv > json || (csv == json && csv_at < json_at),
        (None, _) => false,
    }
}

/// The CSV columns, in order (documented on the operation).
const COLUMNS: &[&str] = &[
    "row",
    "date",
    "account_id",
    "account_name",
    "currency",
    "opening_balance",
    "opening_source",
    "opening_balance_type",
    "opening_reference_date",
    "closing_balance",
    "closing_source",
    "closing_balance_type",
    "closing_reference_date",
    "booked_count",
    "credits_count",
    "credits_amount",
    "debits_count",
    "debits_amount",
    "net",
    "pending_count",
    "pending_net",
    "balance_check",
    "expected_closing",
    "difference",
    "matched_credits_count",
    "matched_credits_amount",
    "matched_debits_count",
    "matched_debits_amount",
    "suggested_credits_count",
    "suggested_credits_amount",
    "suggested_debits_count",
    "suggested_debits_amount",
    "unmatched_credits_count",
    "unmatched_credits_amount",
    "unmatched_debits_count",
    "unmatched_debits_amount",
    "excluded_credits_count",
    "excluded_credits_amount",
    "excluded_debits_count",
    "excluded_debits_amount",
    "overdue_count",
    "overdue_amount_due",
];

fn to_csv(report: &EndOfDayReport) -> Vec<u8> {
    let mut writer = CsvWriter::default();
    writer.row(COLUMNS.iter().map(|c| Cell::Plain(c)));
    let date = report.date.to_string();
    for account in &report.accounts {
        account_row(&date, account).write(&mut writer);
    }
    for overdue in &report.overdue_invoices {
        let mut row = Row::default();
        row.plain("overdue_invoices").plain(&date).plain("").plain("").plain(&overdue.currency);
        while row.0.len() < COLUMNS.len() - 2 {
            row.plain("");
        }
        row.plain(overdue.count).plain(overdue.amount_due).write(&mut writer);
    }
    writer.take()
}

/// One CSV row being built: each cell's value, and whether it is outside text to neutralise.
#[derive(Default)]
struct Row(Vec<(String, bool)>);

impl Row {
    fn plain(&mut self, value: impl ToString) -> &mut Self {
        self.0.push((value.to_string(), false));
        self
    }

    fn text(&mut self, value: &str) -> &mut Self {
        self.0.push((value.to_owned(), true));
        self
    }

    fn optional(&mut self, value: Option<impl ToString>) -> &mut Self {
        self.plain(value.map(|v| v.to_string()).unwrap_or_default())
    }

    fn write(&self, writer: &mut CsvWriter) {
        writer.row(self.0.iter().map(|(value, text)| if *text { Cell::Text(value) } else { Cell::Plain(value) }));
    }
}

fn account_row(date: &str, a: &EndOfDayAccount) -> Row {
    let mut row = Row::default();
    row.plain("account").plain(date).plain(&a.account_id);
    row.text(a.account_name.as_deref().unwrap_or("")).optional(a.currency.as_deref());
    for balance in [&a.opening_balance, &a.closing_balance] {
        // The balance type is the bank's text: neutralised like any other.
        row.optional(balance.amount).plain(balance.source).text(balance.balance_type.as_deref().unwrap_or(""));
        row.optional(balance.reference_date);
    }
    let flow = |row: &mut Row, f: ReportFlow| {
        row.plain(f.count).plain(f.amount);
    };
    row.plain(a.booked.count);
    flow(&mut row, a.booked.credits);
    flow(&mut row, a.booked.debits);
    row.plain(a.booked.net).plain(a.pending.count).plain(a.pending.net);
    row.plain(a.balance_check.status).optional(a.balance_check.expected_closing).optional(a.balance_check.difference);
    let m = &a.by_match_status;
    for split in [m.matched, m.suggested, m.unmatched, m.excluded] {
        flow(&mut row, split.credits);
        flow(&mut row, split.debits);
    }
    row.plain("").plain("");
    row
}

#[cfg(test)]
mod tests {
    use super::prefers_csv;

    #[test]
    fn accept_asks_for_csv_only_when_it_prefers_it() {
        assert!(prefers_csv("text/csv"));
        assert!(prefers_csv("text/csv, application/json"));
        assert!(prefers_csv("application/json;q=0.5, text/csv"));
        assert!(prefers_csv("TEXT/CSV; charset=utf-8"));
        assert!(!prefers_csv(""));
        assert!(!prefers_csv("*/*"));
        assert!(!prefers_csv("application/json, text/csv"));
        assert!(!prefers_csv("text/csv;q=0"));
        assert!(!prefers_csv("text/csv;q=0.4, application/json"));
    }
}
