//! Invoice CSV imports: `POST /invoices/import` takes a CSV file and a column mapping, stores
//! it and queues its job; `/invoices/imports/{id}` shows its progress and its per-row results.
//! The reading lives in `imports::invoice_csv`, the writing in `imports::invoice_job`.

use axum::{
    Extension,
    extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{InvoicesRead, InvoicesWrite},
    },
    error::{ApiError, ErrorCode, Problem},
    imports::{RowFilters, read_upload, row_page},
    json::ApiJson,
    pagination::Page,
    path_id::PathId,
    query::ApiQuery,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::{ids::ImportId, states::ImportKind},
    imports::{
        UPLOAD_LIMIT, csv_file,
        invoice_csv::{InvoiceCsvOptions, InvoiceLayout},
        invoice_job::InvoiceRowResult,
        job::{self, Import, NewImport},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import))
        .layer(DefaultBodyLimit::max(UPLOAD_LIMIT))
        .routes(routes!(get))
        .routes(routes!(rows))
}

/// The parts of an invoice CSV upload (`multipart/form-data`), as documented.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct InvoiceCsvUpload {
    /// The CSV file: UTF-8 (a byte order mark is fine), a header row, then one row per invoice;
    /// at most 64 MiB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// JSON: the column mapping, the currency, the source, the date format and the delimiter.
    options: InvoiceCsvOptions,
}

/// A multipart body; anything else is a 415 that points JSON to the batch endpoint.
pub struct Upload(Multipart);

impl<S: Send + Sync> FromRequest<S> for Upload {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !content_type.trim_start().to_ascii_lowercase().starts_with("multipart/form-data") {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the CSV file as multipart/form-data with `file` and `options` parts; \
                 send invoices as JSON to POST /api/v1/invoices/batch",
            ));
        }
        Multipart::from_request(request, state).await.map(Upload).map_err(|r| {
            ApiError::new(ErrorCode::InvalidRequest, format!("the multipart body cannot be read: {}", r.body_text()))
        })
    }
}

/// Import invoices from a CSV file
///
/// For an ERP or CRM export: a `multipart/form-data` body with a `file` part (the CSV) and an
/// `options` part (JSON: which header holds which invoice field, the currency of rows without
/// one, the `source`, the date format and the delimiter). Amounts are decimals in the invoice's
/// currency (`1250.00`), converted exactly to minor units.
///
/// The file is checked as a whole (UTF-8, every mapped column in the header, at least one row,
/// at most 64 MiB), stored, and processed by a background job 1,000 rows at a time, each batch
/// through the same upsert as `POST /invoices/batch`: rows are keyed by `source` and
/// `external_id`, so importing the same file again leaves every invoice `unchanged` and emits
/// nothing; a known `external_id` with other content is `updated`; a customer named by
/// `customer_external_id` is created or updated with the invoice. A row that fails a check is
/// `rejected` with its field errors (each naming the column) and never stops the others.
/// Answers 202 with the import; `GET /invoices/imports/{id}` reports its progress. A request
/// refused as a whole writes nothing.
#[utoipa::path(
    post,
    path = "/invoices/import",
    tag = "invoices",
    request_body(content((InvoiceCsvUpload = "multipart/form-data"))),
    responses(
        (status = 202, description = "Accepted and queued", body = Import),
        (status = 400, description = "A malformed multipart body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over 64 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart/form-data", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad options, a file that is not UTF-8, empty or lacks a mapped column", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]), ("bearer" = ["invoices:write"]))
)]
async fn import(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesWrite>,
    Upload(multipart): Upload,
) -> Result<Response, ApiError> {
    let (options, file) =
        read_upload::<InvoiceCsvOptions>(multipart, "a JSON part with columns (and currency, unless mapped)").await?;
    let text = csv_file::text(&file).map_err(ApiError::validation)?;
    let layout = InvoiceLayout::check(&options, text).map_err(ApiError::validation)?;
    let new = NewImport {
        kind: ImportKind::Invoices,
        account_id: None,
        options: serde_json::json!(options),
        total_rows: layout.table.total_rows,
    };
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let import = job::create(&mut tx, &principal.tenant.id, new, &file).await?;
    tx.commit().await?;
    let audit = AuditResource::new("invoice_import", &import.id);
    Ok((StatusCode::ACCEPTED, Extension(audit), ApiJson(import)).into_response())
}

/// Get an invoice import
///
/// An invoice CSV import's status and progress: `processed_rows` of `total_rows`, with the
/// counts so far. `succeeded` once every row has a result; `failed` (with `error`) if it could
/// not finish.
#[utoipa::path(
    get,
    path = "/invoices/imports/{id}",
    tag = "invoices",
    params(("id" = String, Path, description = "The import's id (`imp_…`)")),
    responses((status = 200, body = Import), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["invoices:read"]), ("bearer" = ["invoices:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesRead>,
    PathId(id): PathId<ImportId>,
) -> Result<ApiJson<Import>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let import = job::load(&mut tx, &principal.tenant.id, ImportKind::Invoices, &id).await?;
    end_read(tx);
    import.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::InvoiceImports, id.as_str()))
}

/// List an invoice import's rows
///
/// The per-row results processed so far, in file order, each with the invoice it wrote:
/// `?status=rejected` pages through every refused row with its field errors.
#[utoipa::path(
    get,
    path = "/invoices/imports/{id}/rows",
    tag = "invoices",
    params(("id" = String, Path, description = "The import's id (`imp_…`)"), RowFilters),
    responses(
        (status = 200, body = Page<InvoiceRowResult>),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:read"]), ("bearer" = ["invoices:read"]))
)]
async fn rows(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesRead>,
    PathId(id): PathId<ImportId>,
    ApiQuery(f): ApiQuery<RowFilters>,
) -> Result<ApiJson<Page<InvoiceRowResult>>, ApiError> {
    row_page(&state, &principal, ImportKind::Invoices, &id, f).await.map(ApiJson)
}
