//! One imported row: what arrived (text cells or JSON values), the checks it must pass, and its
//! outcome. Pure: the database work is in [`super::apply`].

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::money::{Currency, parse_minor_units};

/// Longest `external_id` accepted.
pub const MAX_EXTERNAL_ID: usize = 200;
/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 1_000;
/// Longest counterparty name or reference accepted.
pub const MAX_SHORT_TEXT: usize = 500;

/// A row as it arrived, before any check: cells of a CSV record or fields of a JSON row. Empty
/// cells are `None`.
#[derive(Debug, Clone, Default)]
pub struct RowInput {
    /// The number results report: the CSV row (the header is row 1) or the JSON array index.
    pub row: i32,
    pub external_id: Option<String>,
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub booking_date: Option<String>,
    pub value_date: Option<String>,
    pub description: Option<String>,
    pub counterparty_name: Option<String>,
    pub reference: Option<String>,
    /// The row as received, stored with the transaction for audit.
    pub raw: Value,
}

/// A row that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRow {
    pub row: i32,
    pub external_id: String,
    /// Minor units of the account's currency.
    pub amount: i64,
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    pub description: Option<String>,
    pub counterparty_name: Option<String>,
    pub reference: Option<String>,
    pub raw: Value,
}

/// What an import did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// A new transaction.
    Created,
    /// The external id was already imported with the same content: nothing changed.
    Unchanged,
    /// The external id was already imported with other content: the transaction now carries the
    /// row's values (`transaction.updated` says what changed).
    Updated,
    /// Not imported; `error` says why.
    Rejected,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Unchanged => "unchanged",
            Self::Updated => "updated",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Created, Self::Unchanged, Self::Updated, Self::Rejected].into_iter().find(|s| s.as_str() == text)
    }
}

/// One row's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({"row": 3, "external_id": "2026-11-20-0042", "status": "rejected",
    "transaction_id": null, "error": "booking_date: \"2026-02-30\" is not a date in the format %Y-%m-%d"}))]
pub struct RowResult {
    /// CSV: the row in the file (the header is row 1). JSON: the index in `rows` (from 0).
    #[sqlx(rename = "row_number")]
    pub row: i32,
    pub external_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: RowStatus,
    /// The transaction created, updated or left unchanged.
    pub transaction_id: Option<String>,
    /// Why the row was rejected: the field, then what is wrong with it.
    pub error: Option<String>,
}

/// Reads `import_rows.status`.
impl TryFrom<String> for RowStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        RowStatus::parse(&text).ok_or_else(|| format!("unknown row status {text:?}"))
    }
}
impl RowResult {
    pub fn rejected(row: i32, external_id: Option<String>, error: impl Into<String>) -> Self {
        Self { row, external_id, status: RowStatus::Rejected, transaction_id: None, error: Some(error.into()) }
    }

    pub fn done(row: i32, external_id: String, status: RowStatus, transaction_id: String) -> Self {
        Self { row, external_id: Some(external_id), status, transaction_id: Some(transaction_id), error: None }
    }
}

/// How rows are checked: the account's currency, the date format, and whether text cells that a
/// spreadsheet would run as a formula are refused (for CSV files).
#[derive(Debug, Clone)]
pub struct Rules {
    pub currency: Currency,
    pub date_format: String,
    pub refuse_formulas: bool,
}

/// Checks a batch of rows. `seen` holds the external ids of earlier rows of the same import with
/// the row they were on, so a repeated id is refused (the first occurrence wins).
pub fn check(inputs: Vec<RowInput>, rules: &Rules, seen: &mut HashMap<String, i32>) -> (Vec<ValidRow>, Vec<RowResult>) {
    let mut valid = Vec::with_capacity(inputs.len());
    let mut rejected = Vec::new();
    for input in inputs {
        let (row, external_id) = (input.row, input.external_id.clone());
        match check_row(input, rules) {
            Ok(checked) => match seen.get(&checked.external_id) {
                Some(first) => rejected.push(RowResult::rejected(
                    row,
                    external_id,
                    format!(
                        "external_id: {:?} is repeated (first on row {first}); each row needs its own",
                        checked.external_id
                    ),
                )),
                None => {
                    seen.insert(checked.external_id.clone(), row);
                    valid.push(checked);
                }
            },
            Err(error) => rejected.push(RowResult::rejected(row, external_id, error)),
        }
    }
    (valid, rejected)
}

/// Checks one row: the first problem found is the reason it is refused.
pub fn check_row(input: RowInput, rules: &Rules) -> Result<ValidRow, String> {
    let external_id = input.external_id.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if external_id.is_empty() {
        return Err("external_id: is missing; every row needs its own stable id".into());
    }
    text("external_id", &external_id, MAX_EXTERNAL_ID, rules)?;
    let amount_text = input.amount.as_deref().map(str::trim).unwrap_or_default();
    if amount_text.is_empty() {
        return Err("amount: is missing".into());
    }
    let amount = parse_minor_units(amount_text, rules.currency).map_err(|e| format!("amount: {e}"))?;
    if let Some(currency) = input.currency.as_deref().map(str::trim).filter(|c| !c.is_empty())
        && Currency::parse(currency) != Some(rules.currency)
    {
        return Err(format!("currency: {currency:?} is not the account's currency ({})", rules.currency));
    }
    let booking_date = match input.booking_date.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(date) => parse_date("booking_date", date, &rules.date_format)?,
        None => return Err("booking_date: is missing".into()),
    };
    let value_date = match input.value_date.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(date) => Some(parse_date("value_date", date, &rules.date_format)?),
        None => None,
    };
    let optional = |field: &str, value: Option<String>, max: usize| -> Result<Option<String>, String> {
        match value.filter(|v| !v.trim().is_empty()) {
            Some(v) => text(field, &v, max, rules).map(|()| Some(v)),
            None => Ok(None),
        }
    };
    Ok(ValidRow {
        row: input.row,
        external_id,
        amount,
        booking_date,
        value_date,
        description: optional("description", input.description, MAX_DESCRIPTION)?,
        counterparty_name: optional("counterparty_name", input.counterparty_name, MAX_SHORT_TEXT)?,
        reference: optional("reference", input.reference, MAX_SHORT_TEXT)?,
        raw: input.raw,
    })
}

fn parse_date(field: &str, value: &str, format: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(value, format)
        .map_err(|_| format!("{field}: {value:?} is not a date in the format {format}"))
}

/// Bounds a text cell, refuses NUL (which Postgres cannot store) and, for spreadsheets' files,
/// formulas.
fn text(field: &str, value: &str, max: usize, rules: &Rules) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("{field}: is longer than {max} characters"));
    }
    if value.contains('\0') {
        return Err(format!("{field}: contains a NUL character"));
    }
    if rules.refuse_formulas && is_formula(value) {
        return Err(format!(
            "{field}: {:?} would run as a formula in a spreadsheet (it starts with =, +, -, @, a tab or a carriage return)",
            truncate(value, 40)
        ));
    }
    Ok(())
}

/// Whether a spreadsheet would evaluate the cell: it starts with `=`, `@`, a tab or a carriage
/// return, or with `+` or `-` not followed by a digit (`-12.50` is a number, `-A1` a formula).
pub fn is_formula(cell: &str) -> bool {
    let mut chars = cell.chars();
    match chars.next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !chars.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

fn truncate(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules { currency: Currency::parse("EUR").unwrap(), date_format: "%Y-%m-%d".into(), refuse_formulas: true }
    }

    fn input(external_id: &str, amount: &str, date: &str) -> RowInput {
        RowInput {
            row: 2,
            external_id: Some(external_id.into()),
            amount: Some(amount.into()),
            booking_date: Some(date.into()),
            ..RowInput::default()
        }
    }

    #[test]
    fn a_good_row_is_converted_exactly() {
        let row = check_row(input(" a-1 ", "-12.50", "2026-02-28"), &rules()).unwrap();
        assert_eq!(row.external_id, "a-1");
        assert_eq!(row.amount, -1250);
        assert_eq!(row.booking_date, NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
    }

    #[test]
    fn dates_that_do_not_exist_are_refused() {
        let error = check_row(input("a", "1", "2026-02-30"), &rules()).unwrap_err();
        assert!(error.starts_with("booking_date: \"2026-02-30\""), "{error}");
        let error = check_row(input("a", "1", "30/01/2026"), &rules()).unwrap_err();
        assert!(error.contains("%Y-%m-%d"), "{error}");
        let other = Rules { date_format: "%d/%m/%Y".into(), ..rules() };
        assert!(check_row(input("a", "1", "30/01/2026"), &other).is_ok());
    }

    #[test]
    fn amounts_must_fit_the_currency() {
        assert!(check_row(input("a", "12.505", "2026-01-01"), &rules()).unwrap_err().starts_with("amount:"));
        assert!(check_row(input("a", "1e3", "2026-01-01"), &rules()).unwrap_err().starts_with("amount:"));
        assert!(check_row(input("a", "", "2026-01-01"), &rules()).unwrap_err().starts_with("amount: is missing"));
        let mut other = input("a", "1", "2026-01-01");
        other.currency = Some("USD".into());
        assert!(check_row(other, &rules()).unwrap_err().starts_with("currency:"));
        let mut same = input("a", "1", "2026-01-01");
        same.currency = Some("eur".into());
        assert!(check_row(same, &rules()).is_ok());
    }

    #[test]
    fn formulas_are_recognised() {
        for cell in ["=1+1", "@SUM(A1)", "\tx", "\rx", "+A1", "-A1", "-", "+"] {
            assert!(is_formula(cell), "{cell:?}");
        }
        for cell in ["-12.50", "+3", "Coffee", "", "a=b"] {
            assert!(!is_formula(cell), "{cell:?}");
        }
        let mut row = input("a", "1", "2026-01-01");
        row.description = Some("=HYPERLINK(\"x\")".into());
        assert!(check_row(row.clone(), &rules()).unwrap_err().starts_with("description:"));
        assert!(check_row(row, &Rules { refuse_formulas: false, ..rules() }).is_ok());
    }

    #[test]
    fn repeated_external_ids_are_refused_after_the_first() {
        let mut seen = HashMap::new();
        let mut second = input("dup", "2", "2026-01-01");
        second.row = 3;
        let (valid, rejected) = check(vec![input("dup", "1", "2026-01-01"), second], &rules(), &mut seen);
        assert_eq!(valid.len(), 1);
        assert_eq!(rejected[0].row, 3);
        assert!(rejected[0].error.as_deref().unwrap().contains("first on row 2"));
    }

    #[test]
    fn missing_external_ids_and_nul_are_refused() {
        assert!(
            check_row(input("  ", "1", "2026-01-01"), &rules()).unwrap_err().starts_with("external_id: is missing")
        );
        assert!(check_row(input("a\0b", "1", "2026-01-01"), &rules()).unwrap_err().contains("NUL"));
    }
}
