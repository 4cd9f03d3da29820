//! A CSV upload: its options (which header holds which field, the date format, the delimiter),
//! the checks that refuse a file as a whole, and the conversion of each record into a row.

use std::collections::BTreeMap;

use chrono::{NaiveDate, format::StrftimeItems};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::rows::RowInput;
use crate::domain::validation::FieldError;

/// The date format when none is given.
pub const DEFAULT_DATE_FORMAT: &str = "%Y-%m-%d";

/// The `options` part of a CSV upload.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "columns": {"external_id": "Id", "amount": "Amount", "booking_date": "Date", "description": "Text"},
    "date_format": "%d/%m/%Y", "delimiter": ";"}))]
pub struct CsvOptions {
    /// The manual account to import into (`ba_…`).
    pub account_id: String,
    pub columns: ColumnMap,
    /// A chrono/strftime date format for the date columns (default `%Y-%m-%d`; `%d/%m/%Y` for
    /// 31/12/2026).
    pub date_format: Option<String>,
    /// One ASCII character between fields (default `,`; `;` and `\t` are common).
    pub delimiter: Option<String>,
}

/// Which header names the field of each column. Headers are matched exactly (surrounding spaces
/// ignored). Unmapped columns are kept with the transaction (`raw`) but not interpreted.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    pub external_id: String,
    /// A decimal in the account's currency: `-12.50`. No thousands separators.
    pub amount: String,
    pub booking_date: String,
    pub value_date: Option<String>,
    /// When mapped, each row's currency must be the account's.
    pub currency: Option<String>,
    pub description: Option<String>,
    pub counterparty_name: Option<String>,
    pub reference: Option<String>,
}

/// A CSV file checked as a whole, whatever it imports: its delimiter and date format, its
/// header, and how many data rows it has.
#[derive(Debug, Clone)]
pub struct Table {
    pub delimiter: u8,
    pub date_format: String,
    headers: Vec<String>,
    pub total_rows: usize,
}

/// A file checked as a whole: where each field is, and how many data rows it has.
#[derive(Debug, Clone)]
pub struct Layout {
    pub table: Table,
    external_id: usize,
    amount: usize,
    booking_date: usize,
    value_date: Option<usize>,
    currency: Option<usize>,
    description: Option<usize>,
    counterparty_name: Option<usize>,
    reference: Option<usize>,
}

fn refusal(field: &str, message: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError { field: field.to_owned(), message: message.into() }]
}

/// The file's text without a UTF-8 byte order mark, or why it is not UTF-8.
pub fn text(file: &[u8]) -> Result<&str, Vec<FieldError>> {
    if file.starts_with(&[0xFF, 0xFE]) || file.starts_with(&[0xFE, 0xFF]) {
        return Err(refusal("file", "is UTF-16 text; re-save it as UTF-8 (in Excel: Save As, \"CSV UTF-8\")"));
    }
    let file = file.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(file);
    std::str::from_utf8(file).map_err(|error| {
        let at = error.valid_up_to();
        let line = file[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        refusal(
            "file",
            format!(
                "is not UTF-8 text (byte {at}, on line {line}, is not valid UTF-8); re-save it as UTF-8 \
                 (in Excel: Save As, \"CSV UTF-8\")"
            ),
        )
    })
}

impl Table {
    /// Checks the options every import shares against the file: a valid delimiter and date
    /// format, a readable header, at least one data row, every record readable.
    pub fn check(delimiter: Option<&str>, date_format: Option<&str>, text: &str) -> Result<Table, Vec<FieldError>> {
        let delimiter = match delimiter {
            None => b',',
            Some(d) if d.len() == 1 && d.is_ascii() && !matches!(d, "\"" | "\n" | "\r") => d.as_bytes()[0],
            Some(_) => {
                return Err(refusal(
                    "options.delimiter",
                    "must be one ASCII character other than a quote or a line break",
                ));
            }
        };
        let date_format = date_format.unwrap_or(DEFAULT_DATE_FORMAT).to_owned();
        if !is_date_format(&date_format) {
            return Err(refusal(
                "options.date_format",
                "must be a strftime format that writes a whole date, such as %Y-%m-%d or %d/%m/%Y",
            ));
        }
        if text.trim().is_empty() {
            return Err(refusal("file", "is empty; send a CSV file with a header row and at least one row"));
        }
        let mut reader = reader(delimiter, text);
        let headers: Vec<String> = match reader.headers() {
            Ok(headers) => headers.iter().map(|h| h.trim().to_owned()).collect(),
            Err(error) => return Err(refusal("file", format!("has no readable header row: {error}"))),
        };
        let mut record = csv::StringRecord::new();
        let mut rows = 0;
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => rows += 1,
                Ok(false) => break,
                Err(error) => return Err(refusal("file", format!("cannot be read as CSV: {error}"))),
            }
        }
        if rows == 0 {
            return Err(refusal("file", "has a header row but no rows to import"));
        }
        Ok(Table { delimiter, date_format, headers, total_rows: rows })
    }

    /// The index of the column headed `name`, which `options.columns.{field}` maps: it must be
    /// in the header exactly once (surrounding spaces ignored).
    pub fn column(&self, field: &str, name: &str) -> Result<usize, Vec<FieldError>> {
        let matches: Vec<usize> =
            self.headers.iter().enumerate().filter(|(_, h)| h.as_str() == name.trim()).map(|(i, _)| i).collect();
        match matches.as_slice() {
            [index] => Ok(*index),
            [] => Err(refusal(
                &format!("options.columns.{field}"),
                format!("column {name:?} is not in the file's header (it has: {})", list(&self.headers)),
            )),
            _ => Err(refusal(
                &format!("options.columns.{field}"),
                format!("column {name:?} appears more than once in the header"),
            )),
        }
    }

    /// [`Table::column`] for a column the mapping may leave out.
    pub fn optional(&self, field: &str, name: &Option<String>) -> Result<Option<usize>, Vec<FieldError>> {
        name.as_deref().map(|n| self.column(field, n)).transpose()
    }

    /// The header of column `index`.
    pub fn header(&self, index: usize) -> &str {
        self.headers.get(index).map_or("", String::as_str)
    }

    /// The data records, in order, with the row number each is reported under (the header is
    /// row 1, so the first record is row 2).
    pub fn records<'a>(
        &self,
        text: &'a str,
    ) -> impl Iterator<Item = (i32, Result<csv::StringRecord, csv::Error>)> + 'a {
        reader(self.delimiter, text)
            .into_records()
            .enumerate()
            .map(|(i, r)| (i32::try_from(i).unwrap_or(i32::MAX - 2) + 2, r))
    }

    /// Why a record cannot be a row: it has more or fewer fields than the header.
    pub fn ragged(&self, record: &csv::StringRecord) -> Option<String> {
        (record.len() != self.headers.len()).then(|| {
            format!(
                "the row has {} fields but the header has {}; check for a missing or extra {:?}",
                record.len(),
                self.headers.len(),
                char::from(self.delimiter)
            )
        })
    }

    /// The record as an object of header to cell, kept with what it imports for audit.
    pub fn raw(&self, record: &csv::StringRecord) -> Value {
        let raw: BTreeMap<&str, &str> = self.headers.iter().map(String::as_str).zip(record.iter()).collect();
        serde_json::to_value(raw).unwrap_or(Value::Null)
    }
}

/// The non-empty cell at `index` of a record.
pub fn cell(record: &csv::StringRecord, index: usize) -> Option<String> {
    record.get(index).filter(|c| !c.is_empty()).map(str::to_owned)
}

impl Layout {
    /// Checks the options against the file: the [`Table`] checks, and every mapped column
    /// present in the header (exactly once).
    pub fn check(options: &CsvOptions, text: &str) -> Result<Layout, Vec<FieldError>> {
        let table = Table::check(options.delimiter.as_deref(), options.date_format.as_deref(), text)?;
        let c = &options.columns;
        Ok(Layout {
            external_id: table.column("external_id", &c.external_id)?,
            amount: table.column("amount", &c.amount)?,
            booking_date: table.column("booking_date", &c.booking_date)?,
            value_date: table.optional("value_date", &c.value_date)?,
            currency: table.optional("currency", &c.currency)?,
            description: table.optional("description", &c.description)?,
            counterparty_name: table.optional("counterparty_name", &c.counterparty_name)?,
            reference: table.optional("reference", &c.reference)?,
            table,
        })
    }

    /// A record as a row, or why it cannot be one (a ragged row).
    pub fn row(&self, row: i32, record: &csv::StringRecord) -> Result<RowInput, String> {
        if let Some(reason) = self.table.ragged(record) {
            return Err(reason);
        }
        let optional = |index: Option<usize>| index.and_then(|i| cell(record, i));
        Ok(RowInput {
            row,
            external_id: cell(record, self.external_id),
            amount: cell(record, self.amount),
            currency: optional(self.currency),
            booking_date: cell(record, self.booking_date),
            value_date: optional(self.value_date),
            description: optional(self.description),
            counterparty_name: optional(self.counterparty_name),
            reference: optional(self.reference),
            raw: self.table.raw(record),
        })
    }

    /// The external id cell of a record, for reporting a rejected row.
    pub fn external_id_of(&self, record: &csv::StringRecord) -> Option<String> {
        cell(record, self.external_id)
    }
}

fn reader(delimiter: u8, text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(true).from_reader(text.as_bytes())
}

fn list(headers: &[String]) -> String {
    let shown: Vec<String> = headers.iter().take(20).map(|h| format!("{h:?}")).collect();
    if headers.len() > 20 { format!("{}, …", shown.join(", ")) } else { shown.join(", ") }
}

/// Whether `format` is a valid strftime format that writes a whole date: formatting a date and
/// parsing it back gives the same date.
fn is_date_format(format: &str) -> bool {
    use chrono::format::Item;
    if format.is_empty() || format.len() > 50 || StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return false;
    }
    let Some(sample) = NaiveDate::from_ymd_opt(2026, 11, 23) else { return false };
    let mut written = String::new();
    if std::fmt::write(&mut written, format_args!("{}", sample.format(format))).is_err() {
        return false;
    }
    NaiveDate::parse_from_str(&written, format) == Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(columns: serde_json::Value) -> CsvOptions {
        serde_json::from_value(serde_json::json!({"account_id": "ba_x", "columns": columns})).unwrap()
    }

    fn basic() -> CsvOptions {
        options(serde_json::json!({"external_id": "id", "amount": "amount", "booking_date": "date"}))
    }

    #[test]
    fn a_file_is_checked_as_a_whole() {
        let layout = Layout::check(&basic(), "id,date,amount\n1,2026-01-01,1.00\n2,2026-01-02,2.00\n").unwrap();
        assert_eq!(layout.table.total_rows, 2);
        let errors = Layout::check(&basic(), "id,day,amount\n1,2026-01-01,1\n").unwrap_err();
        assert_eq!(errors[0].field, "options.columns.booking_date");
        assert!(errors[0].message.contains("\"date\" is not in the file's header"), "{}", errors[0].message);
        assert!(Layout::check(&basic(), "").unwrap_err()[0].message.starts_with("is empty"));
        assert!(Layout::check(&basic(), "id,date,amount\n").unwrap_err()[0].message.contains("no rows"));
    }

    #[test]
    fn encodings_other_than_utf8_are_refused_and_a_bom_is_fine() {
        assert_eq!(text(b"\xEF\xBB\xBFid\n").unwrap(), "id\n");
        assert!(text(b"id\ncaf\xE9\n").unwrap_err()[0].message.contains("line 2"));
        assert!(text(b"\xFF\xFEi\0d\0").unwrap_err()[0].message.contains("UTF-16"));
    }

    #[test]
    fn ragged_rows_are_refused_one_by_one() {
        let file = "id,date,amount\n1,2026-01-01,1.00\n2,2026-01-02\n";
        let layout = Layout::check(&basic(), file).unwrap();
        let rows: Vec<_> = layout.table.records(file).map(|(n, r)| (n, layout.row(n, &r.unwrap()))).collect();
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.as_ref().unwrap().amount.as_deref(), Some("1.00"));
        assert!(rows[1].1.as_ref().unwrap_err().contains("2 fields but the header has 3"));
    }

    #[test]
    fn date_formats_are_validated() {
        assert!(is_date_format("%Y-%m-%d"));
        assert!(is_date_format("%d/%m/%Y"));
        assert!(!is_date_format("%Y-%m"), "not a whole date");
        assert!(!is_date_format("%Q"));
        assert!(!is_date_format(""));
    }
}
