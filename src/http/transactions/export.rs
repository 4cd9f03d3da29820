//! `GET /transactions/export`: the filtered transactions as CSV, streamed page by page as they
//! are read, so memory stays flat whatever the size.

use std::sync::Arc;

use axum::response::Response;

use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    ApiError, ApiQuery, Direction, MatchStatus, Needs, Principal, RawFilters, TransactionStatus, TransactionsRead,
    parse_filters, with_filters,
};
use crate::{
    bank::model::Transaction,
    db::tenant::end_read,
    domain::{ids::TenantId, money::Currency, money::format_minor_units},
    http::reads::Reader,
    http::{
        csv::{Cell, CsvWriter, download},
        error::Problem,
    },
    transactions::query::{self, Filters, Position, Sort},
};

with_filters! {
    pub struct ExportParams {
        /// `-booking_date` (default), `booking_date`, `-amount` or `amount`.
        pub sort: Option<super::Sort>,
    }
}

impl super::QueryParams for ExportParams {
    fn problems(&self) -> Vec<super::FieldError> {
        super::field_errors([self.filters().map(drop)])
    }
}

/// The export's columns, in order. Part of the API: columns are only ever added at the end.
pub const COLUMNS: &[&str] = &[
    "id",
    "account_id",
    "bank_connection_id",
    "status",
    "booking_date",
    "value_date",
    "amount",
    "currency",
    "direction",
    "description",
    "counterparty_name",
    "reference",
    "category",
    "category_source",
    "notes",
    "tags",
    "metadata",
    "match_status",
    "source",
    "external_id",
    "created_at",
    "updated_at",
];

/// Rows read per query. Each page is its own short read, so an export never holds a database
/// transaction (or much memory) for its whole length.
const PAGE: i64 = 5000;

/// Export transactions as CSV
///
/// The transactions the filters select (the same filters as the list), in `sort` order, as
/// RFC 4180 CSV with a header row, streamed as it is read. Columns, in this order: `id`,
/// `account_id`, `bank_connection_id`, `status`, `booking_date`, `value_date` (YYYY-MM-DD),
/// `amount` (a decimal in the currency's exponent, e.g. `-12.50`; negative is money out),
/// `currency`, `direction`, `description`, `counterparty_name`, `reference`, `category`,
/// `category_source`, `notes`, `tags` (separated by `;`), `metadata` (a JSON object),
/// `match_status`, `source`, `external_id`, `created_at`, `updated_at` (RFC 3339, UTC). Empty cells
/// are absent values. Text cells starting with `=`, `+`, `-`, `@`, tab or CR are prefixed with `'`
/// so spreadsheets show them instead of running them. Rows are read in pages by position, so
/// transactions arriving during a long export are never duplicated; if reading fails midway the
/// response is cut off without its final chunk, never silently short.
#[utoipa::path(
    get,
    path = "/transactions/export",
    tag = "transactions",
    params(ExportParams),
    responses(
        (status = 200, description = "CSV; columns as listed above", content_type = "text/csv", body = String),
        (status = 422, description = "A parameter is unknown or invalid; `errors` names each", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
pub(super) async fn export(
    reader: Reader,
    principal: Principal,
    _: Needs<TransactionsRead>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let filters = params.filters()?;
    let sort = params.sort.unwrap_or_default();
    let tenant = principal.tenant.id.clone();
    // Fail before the 200 when the database is unreachable, rather than mid-stream.
    end_read(reader.begin(&tenant).await?);

    let mut header = CsvWriter::default();
    header.row(COLUMNS.iter().map(|c| Cell::Plain(c)));
    let header = header.take();
    let export = Export { reader: Arc::new(reader), tenant, filters, sort };
    let stream = futures_util::stream::unfold(Step::Header(header), move |step| {
        let export = export.clone();
        async move {
            match step {
                Step::Header(bytes) => Some((Ok(bytes), Step::Rows(None))),
                Step::Done => None,
                Step::Rows(after) => match export.page(after.as_ref()).await {
                    Ok((bytes, Some(last))) => Some((Ok(bytes), Step::Rows(Some(last)))),
                    Ok((bytes, None)) if bytes.is_empty() => None,
                    Ok((bytes, None)) => Some((Ok(bytes), Step::Done)),
                    Err(error) => {
                        tracing::error!(%error, "transaction export failed mid-stream");
                        Some((Err(std::io::Error::other("export interrupted")), Step::Done))
                    }
                },
            }
        }
    });
    Ok(download("transactions.csv", stream))
}

enum Step {
    Header(Vec<u8>),
    /// Rows after this position (from the start when `None`).
    Rows(Option<Position>),
    Done,
}

#[derive(Clone)]
struct Export {
    reader: Arc<Reader>,
    tenant: TenantId,
    filters: Filters,
    sort: Sort,
}

impl Export {
    /// One page as CSV, and where the next starts (`None` when this was the last).
    async fn page(&self, after: Option<&Position>) -> Result<(Vec<u8>, Option<Position>), ApiError> {
        let mut tx = self.reader.begin(&self.tenant).await?;
        let rows = query::page(&mut tx, &self.tenant, &self.filters, self.sort, after, PAGE).await?;
        end_read(tx);
        let mut writer = CsvWriter::default();
        for row in &rows {
            write_row(&mut writer, row);
        }
        let next = if rows.len() as i64 == PAGE { rows.last().map(|last| self.sort.position_of(last)) } else { None };
        Ok((writer.take(), next))
    }
}

fn write_row(writer: &mut CsvWriter, t: &Transaction) {
    let amount = match Currency::parse(&t.currency) {
        Some(currency) => format_minor_units(t.amount, currency),
        None => t.amount.to_string(),
    };
    let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let (booking_date, value_date) = (date(t.booking_date), date(t.value_date));
    let tags = t.tags.join(";");
    let metadata =
        if t.metadata.is_empty() { String::new() } else { serde_json::to_string(&t.metadata).unwrap_or_default() };
    let time = |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (created_at, updated_at) = (time(t.created_at), time(t.updated_at));
    fn opt(value: &Option<String>) -> &str {
        value.as_deref().unwrap_or("")
    }
    writer.row([
        Cell::Plain(&t.id),
        Cell::Plain(&t.account_id),
        Cell::Plain(opt(&t.bank_connection_id)),
        Cell::Plain(t.status.as_str()),
        Cell::Plain(&booking_date),
        Cell::Plain(&value_date),
        Cell::Plain(&amount),
        Cell::Plain(&t.currency),
        Cell::Plain(t.direction.as_str()),
        Cell::Text(opt(&t.description)),
        Cell::Text(opt(&t.counterparty_name)),
        Cell::Text(opt(&t.reference)),
        Cell::Text(opt(&t.category)),
        Cell::Plain(opt(&t.category_source)),
        Cell::Text(opt(&t.notes)),
        Cell::Text(&tags),
        Cell::Text(&metadata),
        Cell::Plain(t.match_status.as_str()),
        Cell::Plain(&t.source),
        Cell::Text(opt(&t.external_id)),
        Cell::Plain(&created_at),
        Cell::Plain(&updated_at),
    ]);
}
