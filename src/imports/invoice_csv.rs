//! An invoice CSV upload: its options (which header holds which invoice field, the currency when
//! no column gives it, the source), and each record read into the invoice a batch upserts. Pure:
//! the writing is [`super::invoice_job`]'s, through the invoice batch upsert.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    csv_file::{Table, cell},
    rows::is_formula,
};
use crate::{
    domain::{
        money::{Currency, parse_minor_units},
        validation::FieldError,
    },
    invoices::{
        check_source,
        customer::NewCustomer,
        invoice::{InvoiceStatus, NewInvoice},
    },
};

/// The `options` part of an invoice CSV upload.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"source": "xero", "currency": "GBP", "date_format": "%d/%m/%Y",
    "columns": {"external_id": "InvoiceID", "number": "InvoiceNumber", "amount_total": "Total",
        "amount_tax": "TaxTotal", "issue_date": "InvoiceDate", "due_date": "DueDate", "status": "Status",
        "payment_reference": "Reference", "customer_external_id": "ContactID", "customer_name": "ContactName",
        "customer_email": "EmailAddress"}}))]
pub struct InvoiceCsvOptions {
    /// Where the invoices come from (default `api`): with `external_id`, the key each row is
    /// upserted by, the same key `POST /invoices/batch` uses.
    pub source: Option<String>,
    /// ISO 4217: the currency of rows that have none of their own. Required unless a column is
    /// mapped to `currency`.
    pub currency: Option<String>,
    pub columns: InvoiceColumns,
    /// A chrono/strftime date format for the date columns (default `%Y-%m-%d`; `%d/%m/%Y` for
    /// 31/12/2026).
    pub date_format: Option<String>,
    /// One ASCII character between fields (default `,`; `;` and `\t` are common).
    pub delimiter: Option<String>,
}

/// Which header holds each invoice field. Headers are matched exactly (surrounding spaces
/// ignored); unmapped columns are ignored.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceColumns {
    /// The invoice's id in your system: the key rows are upserted by. Required in every row.
    pub external_id: String,
    pub number: String,
    /// A decimal in the invoice's currency, tax included: `1250.00`. No thousands separators.
    pub amount_total: String,
    /// ISO 4217 per row; an empty cell takes `options.currency`.
    pub currency: Option<String>,
    /// A decimal, the part of the total that is tax.
    pub amount_tax: Option<String>,
    pub issue_date: Option<String>,
    pub due_date: Option<String>,
    /// `draft`, `open` (the default for an empty cell) or `uncollectible`, in any case.
    pub status: Option<String>,
    pub payment_reference: Option<String>,
    /// An ISO 11649 creditor reference (`RF…`).
    pub rf_reference: Option<String>,
    /// The customer's id in your system: the customer is created, or updated, by it.
    pub customer_external_id: Option<String>,
    /// Required with `customer_external_id`.
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
}

/// A file checked against its options: where each field is.
#[derive(Debug, Clone)]
pub struct InvoiceLayout {
    pub table: Table,
    source: Option<String>,
    currency: Option<Currency>,
    external_id: usize,
    number: usize,
    amount_total: usize,
    currency_column: Option<usize>,
    amount_tax: Option<usize>,
    issue_date: Option<usize>,
    due_date: Option<usize>,
    status: Option<usize>,
    payment_reference: Option<usize>,
    rf_reference: Option<usize>,
    customer: Option<CustomerColumns>,
}

#[derive(Debug, Clone)]
struct CustomerColumns {
    external_id: usize,
    name: usize,
    email: Option<usize>,
}

fn refusal(field: &str, message: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError::new(field, message)]
}

impl InvoiceLayout {
    /// Checks the options against the file: the [`Table`] checks, every mapped column in the
    /// header exactly once, a currency for every row, a customer's key and name together.
    pub fn check(options: &InvoiceCsvOptions, text: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(source) = &options.source {
            check_source(source, &mut errors);
        }
        if let Some(error) = errors.pop() {
            return Err(refusal("options.source", error.message));
        }
        let currency = match options.currency.as_deref() {
            None => None,
            Some(code) => match Currency::parse(code).filter(|c| c.is_iso4217()) {
                Some(currency) => Some(currency),
                None => return Err(refusal("options.currency", format!("{code:?} is not an ISO 4217 currency code"))),
            },
        };
        let c = &options.columns;
        if currency.is_none() && c.currency.is_none() {
            return Err(refusal(
                "options.currency",
                "is required when no column is mapped to currency: it is the currency of every row",
            ));
        }
        let customer_columns = (&c.customer_external_id, &c.customer_name);
        if c.customer_external_id.is_none() && (c.customer_name.is_some() || c.customer_email.is_some()) {
            return Err(refusal(
                "options.columns.customer_external_id",
                "is required when a customer's name or email is mapped: it is the key customers are upserted by",
            ));
        }
        if let (Some(_), None) = customer_columns {
            return Err(refusal("options.columns.customer_name", "is required with customer_external_id"));
        }
        let table = Table::check(options.delimiter.as_deref(), options.date_format.as_deref(), text)?;
        let customer = match customer_columns {
            (Some(external_id), Some(name)) => Some(CustomerColumns {
                external_id: table.column("customer_external_id", external_id)?,
                name: table.column("customer_name", name)?,
                email: table.optional("customer_email", &c.customer_email)?,
            }),
            _ => None,
        };
        Ok(Self {
            source: options.source.clone(),
            currency,
            external_id: table.column("external_id", &c.external_id)?,
            number: table.column("number", &c.number)?,
            amount_total: table.column("amount_total", &c.amount_total)?,
            currency_column: table.optional("currency", &c.currency)?,
            amount_tax: table.optional("amount_tax", &c.amount_tax)?,
            issue_date: table.optional("issue_date", &c.issue_date)?,
            due_date: table.optional("due_date", &c.due_date)?,
            status: table.optional("status", &c.status)?,
            payment_reference: table.optional("payment_reference", &c.payment_reference)?,
            rf_reference: table.optional("rf_reference", &c.rf_reference)?,
            customer,
            table,
        })
    }

    /// The external id cell of a record, for reporting a refused row.
    pub fn external_id_of(&self, record: &csv::StringRecord) -> Option<String> {
        cell(record, self.external_id).map(|id| id.trim().to_owned())
    }

    /// A record as the invoice a batch upserts, or every reason it cannot be one, each naming
    /// the invoice field and the column it was read from.
    pub fn row(&self, record: &csv::StringRecord) -> Result<NewInvoice, Vec<FieldError>> {
        if let Some(reason) = self.table.ragged(record) {
            return Err(refusal("", reason));
        }
        let mut errors = Vec::new();
        let mut refuse = |field: &str, index: usize, message: String| {
            errors.push(FieldError::new(field, format!("column {:?}: {message}", self.table.header(index))));
        };
        let mut text = |field: &str, index: Option<usize>| -> Option<String> {
            let value = cell(record, index?)?.trim().to_owned();
            if value.is_empty() {
                None
            } else if value.contains('\0') {
                refuse(field, index?, "contains a NUL character".into());
                None
            } else if is_formula(&value) {
                refuse(
                    field,
                    index?,
                    format!("{value:?} would run as a formula in a spreadsheet (it starts with =, +, -, @ or a tab)"),
                );
                None
            } else {
                Some(value)
            }
        };
        let external_id = text("external_id", Some(self.external_id));
        let number = text("number", Some(self.number));
        let currency_cell = text("currency", self.currency_column);
        let status_cell = text("status", self.status);
        let payment_reference = text("payment_reference", self.payment_reference);
        let rf_reference = text("rf_reference", self.rf_reference);
        let customer = self.customer.as_ref().map(|c| {
            (
                text("customer.external_id", Some(c.external_id)),
                text("customer.name", Some(c.name)),
                text("customer.email", c.email),
            )
        });
        let present = |index: usize| cell(record, index).is_some_and(|c| !c.trim().is_empty());
        let total_cell = cell(record, self.amount_total);
        let tax_cell = self.amount_tax.and_then(|i| cell(record, i));
        let issue_cell = self.issue_date.and_then(|i| cell(record, i));
        let due_cell = self.due_date.and_then(|i| cell(record, i));

        if !present(self.external_id) {
            refuse("external_id", self.external_id, "is empty; every row needs the invoice's id in your system".into());
        }
        if !present(self.number) {
            refuse("number", self.number, "is empty; every invoice needs a number".into());
        }
        let currency = match (&currency_cell, self.currency_column) {
            (Some(code), Some(index)) => match Currency::parse(code).filter(|c| c.is_iso4217()) {
                Some(currency) => Some(currency),
                None => {
                    refuse("currency", index, format!("{code:?} is not an ISO 4217 currency code"));
                    None
                }
            },
            (None, Some(index)) if self.currency.is_none() => {
                refuse("currency", index, "is empty and the options give no currency".into());
                None
            }
            _ => self.currency,
        };
        let mut amount = |field: &str, index: usize, value: Option<String>| -> Option<i64> {
            let (value, currency) = (value?, currency?);
            match parse_minor_units(value.trim(), currency) {
                Ok(minor) => Some(minor),
                Err(error) => {
                    refuse(field, index, error.to_string());
                    None
                }
            }
        };
        let amount_total = amount("amount_total", self.amount_total, total_cell.clone());
        let amount_tax = self.amount_tax.and_then(|index| amount("amount_tax", index, tax_cell));
        if total_cell.is_none() {
            refuse("amount_total", self.amount_total, "is empty; every invoice needs its total".into());
        }
        let mut date = |field: &str, index: Option<usize>, value: Option<String>| -> Option<NaiveDate> {
            let (index, value) = (index?, value?);
            let format = &self.table.date_format;
            match NaiveDate::parse_from_str(value.trim(), format) {
                Ok(date) => Some(date),
                Err(_) => {
                    refuse(field, index, format!("{value:?} is not a date in the format {format}"));
                    None
                }
            }
        };
        let issue_date = date("issue_date", self.issue_date, issue_cell);
        let due_date = date("due_date", self.due_date, due_cell);
        let status = match (status_cell, self.status) {
            (Some(text), Some(index)) => match InvoiceStatus::parse(&text.to_ascii_lowercase()) {
                Some(status) => Some(status),
                None => {
                    refuse("status", index, format!("{text:?} is not one of draft, open, uncollectible"));
                    None
                }
            },
            _ => None,
        };
        let customer = match (customer, &self.customer) {
            (Some((external_id, name, email)), Some(columns)) => match (external_id, name) {
                (None, None) => None,
                (Some(external_id), Some(name)) => Some(Box::new(NewCustomer {
                    name,
                    email,
                    external_id: Some(external_id),
                    ..NewCustomer::default()
                })),
                (Some(_), None) => {
                    refuse("customer.name", columns.name, "is empty but the row names a customer".into());
                    None
                }
                (None, Some(_)) => {
                    refuse("customer.external_id", columns.external_id, "is empty but the row names a customer".into());
                    None
                }
            },
            _ => None,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewInvoice {
            number: number.unwrap_or_default(),
            source: self.source.clone(),
            external_id,
            currency: currency.map(|c| c.as_str().to_owned()).unwrap_or_default(),
            amount_total: amount_total.unwrap_or_default(),
            amount_tax,
            issue_date,
            due_date,
            status,
            payment_reference,
            rf_reference,
            customer,
            metadata: BTreeMap::new(),
            ..NewInvoice::default()
        })
    }

    /// Field errors from the invoice checks, with the column each field was read from.
    pub fn describe(&self, errors: Vec<FieldError>) -> Vec<FieldError> {
        errors
            .into_iter()
            .map(|error| match self.column_of(&error.field) {
                Some(index) => {
                    FieldError::new(&error.field, format!("column {:?}: {}", self.table.header(index), error.message))
                }
                None => error,
            })
            .collect()
    }

    fn column_of(&self, field: &str) -> Option<usize> {
        match field {
            "external_id" => Some(self.external_id),
            "number" => Some(self.number),
            "amount_total" => Some(self.amount_total),
            "currency" => self.currency_column,
            "amount_tax" => self.amount_tax,
            "issue_date" => self.issue_date,
            "due_date" => self.due_date,
            "status" => self.status,
            "payment_reference" => self.payment_reference,
            "rf_reference" => self.rf_reference,
            "customer.external_id" => self.customer.as_ref().map(|c| c.external_id),
            "customer.name" => self.customer.as_ref().map(|c| c.name),
            "customer.email" => self.customer.as_ref().and_then(|c| c.email),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(extra: serde_json::Value) -> InvoiceCsvOptions {
        let mut base = serde_json::json!({"currency": "GBP",
            "columns": {"external_id": "Id", "number": "No", "amount_total": "Total"}});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                if key == "columns" {
                    for (column, header) in value.as_object().unwrap() {
                        base["columns"][column] = header.clone();
                    }
                } else {
                    base.insert(key.clone(), value.clone());
                }
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn rows(layout: &InvoiceLayout, file: &str) -> Vec<Result<NewInvoice, Vec<FieldError>>> {
        layout.table.records(file).map(|(_, record)| layout.row(&record.unwrap())).collect()
    }

    #[test]
    fn a_row_becomes_an_invoice_in_minor_units() {
        let file = "Id,No,Total,Tax,Issued,Status,Customer,Name\nx1,INV-1,1250.50,208.42,20/11/2026,Draft,c1,Acme\n";
        let options = options(serde_json::json!({"date_format": "%d/%m/%Y", "source": "xero", "columns": {
            "amount_tax": "Tax", "issue_date": "Issued", "status": "Status", "customer_external_id": "Customer",
            "customer_name": "Name"}}));
        let layout = InvoiceLayout::check(&options, file).unwrap();
        let invoice = rows(&layout, file).remove(0).unwrap();
        assert_eq!((invoice.amount_total, invoice.amount_tax), (125_050, Some(20_842)));
        assert_eq!(invoice.currency, "GBP");
        assert_eq!(invoice.source.as_deref(), Some("xero"));
        assert_eq!(invoice.status, Some(InvoiceStatus::Draft));
        assert_eq!(invoice.issue_date, NaiveDate::from_ymd_opt(2026, 11, 20));
        let customer = invoice.customer.unwrap();
        assert_eq!((customer.name.as_str(), customer.external_id.as_deref()), ("Acme", Some("c1")));
    }

    #[test]
    fn every_bad_cell_of_a_row_is_named_with_its_column() {
        let file = "Id,No,Total,Cur,Due\n,=1+1,12.505,XXX,31/02/2026\n";
        let options = options(serde_json::json!({"columns": {"currency": "Cur", "due_date": "Due"},
            "date_format": "%d/%m/%Y"}));
        let layout = InvoiceLayout::check(&options, file).unwrap();
        let errors = rows(&layout, file).remove(0).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["number", "external_id", "currency", "due_date"], "{errors:?}");
        assert!(errors[0].message.starts_with("column \"No\": \"=1+1\" would run as a formula"), "{errors:?}");
        assert!(errors[1].message.starts_with("column \"Id\": is empty"), "{errors:?}");
        assert!(errors[2].message.contains("\"XXX\" is not an ISO 4217"), "{errors:?}");
        assert!(errors[3].message.contains("\"31/02/2026\" is not a date"), "{errors:?}");
    }

    #[test]
    fn amounts_follow_the_row_currency() {
        let file = "Id,No,Total,Cur\na,1,1250,JPY\nb,2,12.5,\nc,3,1.234,BHD\n";
        let layout = InvoiceLayout::check(&options(serde_json::json!({"columns": {"currency": "Cur"}})), file).unwrap();
        let rows = rows(&layout, file);
        assert_eq!(rows[0].as_ref().unwrap().amount_total, 1250, "JPY has no minor unit");
        assert_eq!(
            (rows[1].as_ref().unwrap().amount_total, rows[1].as_ref().unwrap().currency.as_str()),
            (1250, "GBP")
        );
        assert_eq!(rows[2].as_ref().unwrap().amount_total, 1234, "BHD has three decimals");
    }

    #[test]
    fn options_are_checked_as_a_whole() {
        let file = "Id,No,Total\na,1,1\n";
        let no_currency =
            serde_json::json!({"columns": {"external_id": "Id", "number": "No", "amount_total": "Total"}});
        let error = InvoiceLayout::check(&serde_json::from_value(no_currency).unwrap(), file).unwrap_err();
        assert_eq!(error[0].field, "options.currency");
        let error = InvoiceLayout::check(&options(serde_json::json!({"currency": "ZZZ"})), file).unwrap_err();
        assert_eq!(error[0].field, "options.currency");
        let error =
            InvoiceLayout::check(&options(serde_json::json!({"columns": {"customer_name": "No"}})), file).unwrap_err();
        assert_eq!(error[0].field, "options.columns.customer_external_id");
        let error =
            InvoiceLayout::check(&options(serde_json::json!({"columns": {"status": "State"}})), file).unwrap_err();
        assert_eq!(error[0].field, "options.columns.status");
        let error = InvoiceLayout::check(&options(serde_json::json!({"source": "Bad Source"})), file).unwrap_err();
        assert_eq!(error[0].field, "options.source");
    }
}
