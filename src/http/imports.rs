//! Transaction imports: `POST /transactions/import` takes a JSON batch (written at once) or a
//! CSV file (stored and processed by a job), and `/transactions/imports/{id}` shows a CSV
//! import's progress and its per-row results.

use super::path_id::PathId;
use axum::{
    Extension,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State, multipart::MultipartError},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        ClientIp, Needs,
        scopes::{TransactionsRead, TransactionsWrite},
    },
    error::{ApiError, ErrorCode, FieldError, Problem},
    json::{self, ApiJson},
    pagination::{self, Page},
    query::ApiQuery,
    request_id::RequestId,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{BankAccountId, ImportId},
        states::ImportKind,
    },
    imports::{
        self, Account, ImportReport, MAX_JSON_ROWS, Target, UPLOAD_LIMIT,
        csv_file::{self, CsvOptions, Layout},
        job::{self, Import, NewImport},
        rows::{RowInput, RowResult, RowStatus},
    },
    state::AppState,
};

/// The paths CSV files are uploaded to: the only ones whose body may exceed the usual limit.
pub const UPLOAD_PATHS: &[&str] = &["/api/v1/transactions/import", "/api/v1/invoices/import"];
/// Largest JSON batch body (1,000 rows of the longest fields fit).
const JSON_LIMIT: usize = 4 << 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import))
        .layer(DefaultBodyLimit::max(UPLOAD_LIMIT))
        .routes(routes!(get))
        .routes(routes!(rows))
}

/// A JSON batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718", "rows": [
    {"external_id": "2026-11-20-0001", "amount": "-12.50", "booking_date": "2026-11-20",
     "description": "Coffee beans", "counterparty_name": "Roastery Ltd"}]}))]
pub struct JsonImport {
    /// The manual account to import into (`ba_…`).
    pub account_id: String,
    /// 1 to 1,000 rows; send a CSV file for more.
    pub rows: Vec<JsonRow>,
}

/// One row of a JSON batch. Every value is a string; a row with a wrong value is rejected on its
/// own, the others are imported.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonRow {
    /// Your stable id for the row, unique within the account (at most 200 characters).
    #[schema(value_type = String)]
    pub external_id: Option<Value>,
    /// A decimal string in the currency's minor-unit precision: `"-12.50"`. Negative is money out.
    /// JSON numbers are refused (floats lose cents).
    #[schema(value_type = String)]
    pub amount: Option<Value>,
    /// Defaults to the account's currency; must equal it.
    #[schema(value_type = Option<String>)]
    pub currency: Option<Value>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    pub booking_date: Option<Value>,
    #[schema(value_type = Option<String>, format = Date)]
    pub value_date: Option<Value>,
    /// At most 1,000 characters.
    #[schema(value_type = Option<String>)]
    pub description: Option<Value>,
    /// At most 500 characters.
    #[schema(value_type = Option<String>)]
    pub counterparty_name: Option<Value>,
    /// At most 500 characters.
    #[schema(value_type = Option<String>)]
    pub reference: Option<Value>,
}

impl JsonRow {
    /// The row's values as text, or its rejection when one is not a string.
    fn into_input(self, index: usize) -> Result<RowInput, RowResult> {
        let row = i32::try_from(index).unwrap_or(i32::MAX);
        let external_id = self.external_id.as_ref().and_then(Value::as_str).map(str::to_owned);
        let reject = |message: String| RowResult::rejected(row, external_id.clone(), message);
        let raw = serde_json::json!({
            "external_id": self.external_id, "amount": self.amount, "currency": self.currency,
            "booking_date": self.booking_date, "value_date": self.value_date, "description": self.description,
            "counterparty_name": self.counterparty_name, "reference": self.reference,
        });
        let text = |field: &str, value: &Option<Value>| -> Result<Option<String>, RowResult> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(_)) if field == "amount" => Err(reject(
                    "amount: must be a decimal string such as \"-12.50\"; JSON numbers are refused because floats lose cents"
                        .into(),
                )),
                Some(_) => Err(reject(format!("{field}: must be a string"))),
            }
        };
        Ok(RowInput {
            row,
            external_id: text("external_id", &self.external_id)?,
            amount: text("amount", &self.amount)?,
            currency: text("currency", &self.currency)?,
            booking_date: text("booking_date", &self.booking_date)?,
            value_date: text("value_date", &self.value_date)?,
            description: text("description", &self.description)?,
            counterparty_name: text("counterparty_name", &self.counterparty_name)?,
            reference: text("reference", &self.reference)?,
            raw,
        })
    }
}

/// The parts of a CSV upload (`multipart/form-data`), as documented.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CsvUpload {
    /// The CSV file: UTF-8 (a byte order mark is fine), a header row, then one row per
    /// transaction; at most 64 MiB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// JSON: the account, the column mapping, the date format and the delimiter.
    options: CsvOptions,
}

/// The body of an import: a JSON batch or a multipart CSV upload, told apart by content type.
pub enum ImportBody {
    Json(JsonImport),
    Csv(Multipart),
}

impl<S: Send + Sync> FromRequest<S> for ImportBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "multipart/form-data" => Multipart::from_request(request, state).await.map(ImportBody::Csv).map_err(|r| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("the multipart body cannot be read: {}", r.body_text()),
                )
            }),
            "application/json" => {
                let bytes = axum::body::to_bytes(request.into_body(), JSON_LIMIT).await.map_err(|_| {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        "a JSON import body may be at most 4 MiB; send larger imports as a CSV file",
                    )
                })?;
                json::parse(&bytes).map(ImportBody::Json)
            }
            _ => Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send a JSON batch as application/json, or a CSV file as multipart/form-data",
            )),
        }
    }
}

/// Import transactions
///
/// Into a manual account (`POST /accounts`); a bank-feed account answers 409. Rows are keyed by
/// `external_id` within the account: importing the same rows again changes nothing (`unchanged`),
/// and a known `external_id` with other content updates the transaction (`updated`, emitting
/// `transaction.updated` with `previous_attributes`; category, notes, tags and metadata are kept).
/// New rows are `booked` transactions with `source: import`, each announced by
/// `transaction.created`. A row that fails a check is `rejected` with the reason and never stops
/// the others.
///
/// **JSON** (`application/json`, up to 1,000 rows): processed at once; 200 with per-row results.
///
/// **CSV** (`multipart/form-data` with a `file` part and an `options` part holding JSON with the
/// account and column mapping): the file is checked as a whole (UTF-8, the mapped columns in the
/// header, at least one row, at most 64 MiB), stored, and processed by a background job; 202 with
/// the import, whose progress `GET /transactions/imports/{id}` reports. Text cells that a
/// spreadsheet would run as a formula are rejected. A request refused as a whole writes nothing.
#[utoipa::path(
    post,
    path = "/transactions/import",
    tag = "transactions",
    request_body(content(
        (JsonImport = "application/json"),
        (CsvUpload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "A JSON batch, imported", body = ImportReport),
        (status = 202, description = "A CSV file, accepted and queued", body = Import),
        (status = 400, description = "A malformed JSON or multipart body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account is a bank-feed account", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over 64 MiB (CSV) or 4 MiB (JSON)", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Too many rows, bad options, a file that is not UTF-8, empty or lacks a mapped column", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:write"]), ("bearer" = ["transactions:write"]))
)]
async fn import(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsWrite>,
    _ip: ClientIp,
    _request_id: RequestId,
    body: ImportBody,
) -> Result<Response, ApiError> {
    match body {
        ImportBody::Json(body) => {
            if body.rows.is_empty() || body.rows.len() > MAX_JSON_ROWS {
                return Err(ApiError::invalid_field(
                    "rows",
                    format!(
                        "must hold 1 to {MAX_JSON_ROWS} rows (this has {}); send larger imports as a CSV file",
                        body.rows.len()
                    ),
                ));
            }
            let account = manual_account(&state, &principal, &body.account_id, "account_id").await?;
            let inputs = body.rows.into_iter().enumerate().map(|(i, row)| row.into_input(i)).collect();
            let report = imports::import_now(&state, &principal.tenant.id, &account, inputs).await?;
            Ok((Extension(AuditResource::new("bank_account", &account.id)), ApiJson(report)).into_response())
        }
        ImportBody::Csv(multipart) => {
            let (options, file) =
                read_upload::<CsvOptions>(multipart, "a JSON part with account_id and columns").await?;
            let account = manual_account(&state, &principal, &options.account_id, "options.account_id").await?;
            let text = csv_file::text(&file).map_err(ApiError::validation)?;
            let layout = Layout::check(&options, text).map_err(ApiError::validation)?;
            let new = NewImport {
                kind: ImportKind::Transactions,
                account_id: Some(&account.id),
                options: serde_json::json!(options),
                total_rows: layout.table.total_rows,
            };
            let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
            let import = job::create(&mut tx, &principal.tenant.id, new, &file).await?;
            tx.commit().await?;
            let audit = AuditResource::new("transaction_import", &import.id);
            Ok((StatusCode::ACCEPTED, Extension(audit), ApiJson(import)).into_response())
        }
    }
}

/// The `options` and `file` parts of an upload; `options_are` says what the options part holds.
pub async fn read_upload<T: serde::de::DeserializeOwned>(
    mut multipart: Multipart,
    options_are: &str,
) -> Result<(T, Bytes), ApiError> {
    let (mut options, mut file) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(upload_error)? {
        match field.name() {
            Some("options") => options = Some(field.bytes().await.map_err(upload_error)?),
            Some("file") => file = Some(field.bytes().await.map_err(upload_error)?),
            other => {
                return Err(ApiError::invalid_field(
                    other.unwrap_or("(unnamed part)"),
                    "is not a part of this form; send `file` (the CSV) and `options` (JSON)",
                ));
            }
        }
    }
    let mut missing = Vec::new();
    if options.is_none() {
        missing.push(FieldError { field: "options".into(), message: format!("is required: {options_are}") });
    }
    if file.is_none() {
        missing.push(FieldError { field: "file".into(), message: "is required: the CSV file".into() });
    }
    let (Some(options), Some(file)) = (options, file) else { return Err(ApiError::validation(missing)) };
    let options: T = json::parse(&options).map_err(|error| match error {
        ApiError::Problem { code: ErrorCode::ValidationFailed, errors, .. } => ApiError::validation(
            errors.into_iter().map(|e| FieldError { field: format!("options.{}", e.field), ..e }).collect(),
        ),
        ApiError::Problem { code: ErrorCode::MalformedJson, detail, .. } => {
            ApiError::invalid_field("options", detail.replacen("the body", "the options part", 1))
        }
        other => other,
    })?;
    Ok((options, file))
}

fn upload_error(error: MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the upload is larger than the import limit of {} MiB; split the file", UPLOAD_LIMIT >> 20),
        )
    } else {
        ApiError::new(ErrorCode::InvalidRequest, format!("the multipart body cannot be read: {}", error.body_text()))
    }
}

/// The manual account an import names: 404 when the tenant has none with that id (audited when
/// another tenant has it), 409 for a bank-feed account.
async fn manual_account(state: &AppState, principal: &Principal, id: &str, field: &str) -> Result<Account, ApiError> {
    let Some(parsed) = BankAccountId::parse(id) else {
        return Err(ApiError::invalid_field(field, "is not an account id (ba_…)"));
    };
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let target = imports::target(&mut tx, &principal.tenant.id, parsed.as_str()).await?;
    end_read(tx);
    match target {
        Target::Manual(account) => Ok(account),
        Target::BankFeed => Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "{field}: {id} is a bank-feed account, whose transactions come from its bank; \
                 import into a manual account (create one with POST /api/v1/accounts)"
            ),
        )),
        Target::Missing => {
            Err(ApiError::new(ErrorCode::NotFound, format!("{field}: no such account {id}"))
                .probing(Probe::Accounts, id))
        }
    }
}

/// Get a transaction import
///
/// A CSV import's status and progress: `processed_rows` of `total_rows`, with the counts so far.
/// `succeeded` once every row has a result; `failed` (with `error`) if it could not finish.
#[utoipa::path(
    get,
    path = "/transactions/imports/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "The import's id (`imp_…`)")),
    responses((status = 200, body = Import), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsRead>,
    PathId(parsed): PathId<ImportId>,
) -> Result<ApiJson<Import>, ApiError> {
    let id = parsed.as_str();
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let import = job::load(&mut tx, &principal.tenant.id, ImportKind::Transactions, &parsed).await?;
    end_read(tx);
    match import {
        Some(import) => Ok(ApiJson(import)),
        None => Err(ApiError::not_found_in(Probe::Imports, id)),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RowFilters {
    /// Only rows with this outcome: `created`, `unchanged`, `updated` or `rejected`.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<super::pagination::Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl super::query::QueryParams for RowFilters {
    fn problems(&self) -> Vec<FieldError> {
        match self.status.as_deref() {
            Some(text) if RowStatus::parse(text).is_none() => vec![FieldError {
                field: "status".into(),
                message: "must be one of created, unchanged, updated, rejected".into(),
            }],
            _ => Vec::new(),
        }
    }
}

/// List an import's rows
///
/// The per-row results processed so far, in file order: `?status=rejected` pages through every
/// rejected row with the reason.
#[utoipa::path(
    get,
    path = "/transactions/imports/{id}/rows",
    tag = "transactions",
    params(("id" = String, Path, description = "The import's id (`imp_…`)"), RowFilters),
    responses(
        (status = 200, body = Page<RowResult>),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn rows(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsRead>,
    PathId(id): PathId<ImportId>,
    ApiQuery(f): ApiQuery<RowFilters>,
) -> Result<ApiJson<Page<RowResult>>, ApiError> {
    row_page(&state, &principal, ImportKind::Transactions, &id, f).await.map(ApiJson)
}

/// A page of an import's row results, shaped as `T`: 404 when the tenant has no import of this
/// kind with the id.
pub async fn row_page<T: From<job::StoredRow>>(
    state: &AppState,
    principal: &Principal,
    kind: ImportKind,
    id: &ImportId,
    f: RowFilters,
) -> Result<Page<T>, ApiError> {
    let status = f.status.as_deref().and_then(RowStatus::parse);
    let cursors = pagination::Cursors::of(state).await?;
    let limit = pagination::limit(f.limit);
    // The cursor names its import and filter, so it cannot continue another list.
    let list = format!("{id}|{}|", f.status.as_deref().unwrap_or("all"));
    let after = cursors
        .after(f.cursor.as_deref(), |text| text.strip_prefix(list.as_str())?.parse::<i32>().ok().filter(|n| *n >= 0))?;
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    if job::load(&mut tx, tenant, kind, id).await?.is_none() {
        end_read(tx);
        let probe = match kind {
            ImportKind::Transactions => Probe::Imports,
            ImportKind::Invoices => Probe::InvoiceImports,
        };
        return Err(ApiError::not_found_in(probe, id.as_str()));
    }
    let results = job::results(&mut tx, tenant, id, status, after, i64::from(limit) + 1).await?;
    end_read(tx);
    let page = cursors.page(results, limit, |r| format!("{list}{}", r.row));
    Ok(Page {
        data: page.data.into_iter().map(T::from).collect(),
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    })
}
