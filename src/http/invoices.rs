//! Invoices: create, list, get, update, void and delete a tenant's invoices, and read their
//! changes feed. The rules live in `invoices::invoice`; this module extracts, calls and shapes.

use std::collections::BTreeMap;

use axum::{
    Extension,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{InvoicesRead, InvoicesWrite},
    },
    customers::{ChangesParams, read_feed, search_problems},
    error::{ApiError, Problem},
    json::{ApiJson, merge_metadata},
    pagination::{self, Page},
    path_id::PathId,
    query::{ApiQuery, QueryParams},
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{CustomerId, InvoiceId},
        money::Currency,
        validation::FieldError,
    },
    http::reads::Reader,
    invoices::{
        InvoiceError,
        batch::{self, BatchResult},
        changes::{Change, Resource},
        invoice::{self, Invoice, InvoiceFilters, InvoiceLine, InvoiceStatus, NewInvoice},
    },
    reconciliation::runs,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(changes_feed))
        .routes(routes!(get, update, delete))
        .routes(routes!(void))
        .routes(routes!(batch_upsert))
}

/// Create an invoice
///
/// Money in minor units, exact. `number` is unique per tenant, `external_id` per tenant and
/// `source` (409 when taken). The lines, when given, must add up: each line's `amount` is
/// `quantity` × `unit_amount`, and the lines plus `amount_tax` make `amount_total`. An
/// `rf_reference` is checked as an ISO 11649 creditor reference. A new invoice is `open`, or
/// `draft` when asked. `amount_paid` starts at 0 and is kept by reconciliation.
#[utoipa::path(
    post,
    path = "/invoices",
    tag = "invoices",
    request_body = NewInvoice,
    responses(
        (status = 201, body = Invoice),
        (status = 409, description = "The number or external id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]), ("bearer" = ["invoices:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesWrite>,
    ApiJson(body): ApiJson<NewInvoice>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let body = batch::with_inline_customer(&mut tx, tenant, body).await?;
    let spec = body.check().map_err(InvoiceError::Invalid)?;
    let invoice = invoice::create(&mut tx, tenant, &spec).await?;
    runs::invoices_changed(&mut tx, tenant, std::slice::from_ref(&invoice.id)).await?;
    tx.commit().await?;
    let audit = AuditResource::new("invoice", &invoice.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(invoice)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvoiceParams {
    pub status: Option<InvoiceStatus>,
    /// Only this customer's invoices (`cus_…`).
    pub customer_id: Option<String>,
    /// ISO 4217 code, e.g. `GBP`.
    pub currency: Option<String>,
    /// Only invoices from this source.
    pub source: Option<String>,
    /// The invoice with this external id.
    pub external_id: Option<String>,
    /// The invoice with this number.
    pub number: Option<String>,
    pub issue_date_from: Option<NaiveDate>,
    pub issue_date_to: Option<NaiveDate>,
    pub due_date_from: Option<NaiveDate>,
    pub due_date_to: Option<NaiveDate>,
    /// At least this `amount_total`, minor units.
    pub amount_min: Option<i64>,
    /// At most this `amount_total`, minor units.
    pub amount_max: Option<i64>,
    /// `true`: open, partially paid or uncollectible and past its due date; `false`: the others.
    pub overdue: Option<bool>,
    /// Text the number, the payment or RF reference, or the customer's name or email contains
    /// (case-insensitive, 3 to 200 characters; trigram-indexed).
    #[param(min_length = 3, max_length = 200)]
    pub q: Option<String>,
    /// Only invoices created or changed at or after this instant. The changes feed
    /// (`GET /invoices/changes`) is the reliable way to keep in step.
    pub updated_since: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<pagination::Limit>,
    /// `next_cursor` of the previous page, with the same filters.
    pub cursor: Option<String>,
}

impl QueryParams for InvoiceParams {
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = search_problems(self.q.as_deref());
        if let Some(customer) = &self.customer_id
            && CustomerId::parse(customer).is_none()
        {
            problems.push(FieldError::new("customer_id", "is not a customer id (cus_…)"));
        }
        if let Some(currency) = &self.currency
            && !Currency::parse(currency).is_some_and(|c| c.is_iso4217())
        {
            problems.push(FieldError::new("currency", "is not an ISO 4217 currency code such as GBP"));
        }
        if let (Some(min), Some(max)) = (self.amount_min, self.amount_max)
            && min > max
        {
            problems.push(FieldError::new("amount_max", "must be at least amount_min"));
        }
        problems
    }
}

/// List invoices
///
/// Newest first, with the filters given.
#[utoipa::path(
    get,
    path = "/invoices",
    tag = "invoices",
    params(InvoiceParams),
    responses((status = 200, body = Page<Invoice>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["invoices:read"]), ("bearer" = ["invoices:read"]))
)]
async fn list(
    State(state): State<AppState>,
    reader: Reader,
    principal: Principal,
    _: Needs<InvoicesRead>,
    ApiQuery(params): ApiQuery<InvoiceParams>,
) -> Result<ApiJson<Page<Invoice>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let before = cursors.after(params.cursor.as_deref(), InvoiceId::parse)?;
    let filters = InvoiceFilters {
        status: params.status,
        customer_id: params.customer_id.as_deref().and_then(CustomerId::parse),
        currency: params.currency.map(|c| c.to_ascii_uppercase()),
        source: params.source,
        external_id: params.external_id,
        number: params.number,
        issue_date_from: params.issue_date_from,
        issue_date_to: params.issue_date_to,
        due_date_from: params.due_date_from,
        due_date_to: params.due_date_to,
        amount_min: params.amount_min,
        amount_max: params.amount_max,
        overdue: params.overdue,
        q: params.q.map(|q| q.trim().to_lowercase()),
        updated_since: params.updated_since,
    };
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let rows = invoice::list(&mut tx, &principal.tenant.id, &filters, before.as_ref(), i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |i| i.id.clone())))
}

/// Get an invoice
#[utoipa::path(
    get,
    path = "/invoices/{id}",
    tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id (`inv_…`)")),
    responses((status = 200, body = Invoice), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["invoices:read"]), ("bearer" = ["invoices:read"]))
)]
async fn get(
    reader: Reader,
    principal: Principal,
    _: Needs<InvoicesRead>,
    PathId(id): PathId<InvoiceId>,
) -> Result<ApiJson<Invoice>, ApiError> {
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let found = invoice::load(&mut tx, &principal.tenant.id, &id, false).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::Invoices, id.as_str()))
}

/// Absent: unchanged; `null`: cleared (the optional fields); a value: set. `lines` are replaced
/// whole; `metadata` keys are merged (`null` or `""` removes one). `amount_paid` is never
/// written by clients.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"due_date": "2027-01-15", "status": "uncollectible"}))]
pub struct UpdateInvoice {
    pub number: Option<String>,
    pub source: Option<String>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub customer_id: Option<Option<String>>,
    pub currency: Option<String>,
    pub amount_total: Option<i64>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<i64>)]
    pub amount_tax: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>, format = Date)]
    pub issue_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Option<Option<NaiveDate>>,
    /// `open` (finalise a draft, or reopen an uncollectible invoice) or `uncollectible`.
    pub status: Option<InvoiceStatus>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub payment_reference: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub rf_reference: Option<Option<String>>,
    pub lines: Option<Vec<InvoiceLine>>,
    #[schema(value_type = Option<std::collections::HashMap<String, Option<String>>>)]
    pub metadata: Option<BTreeMap<String, Option<String>>>,
}

/// Update an invoice
///
/// Changes only the fields sent; the invoice must still be valid afterwards (totals that add
/// up, `amount_total` not below `amount_paid`). Status moves a client may make: `draft` →
/// `open`, `open` or `partially_paid` → `uncollectible`, `uncollectible` → `open`; others are a
/// 422 naming `status`. A void invoice is a 409. Nothing is written, and no event or change
/// recorded, when the update changes nothing.
#[utoipa::path(
    patch,
    path = "/invoices/{id}",
    tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id (`inv_…`)")),
    request_body = UpdateInvoice,
    responses(
        (status = 200, body = Invoice),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Void, or the number or external id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]), ("bearer" = ["invoices:write"]))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesWrite>,
    PathId(id): PathId<InvoiceId>,
    ApiJson(body): ApiJson<UpdateInvoice>,
) -> Result<Response, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let current = locked(&mut tx, tenant, &id).await?;
    let mut errors = Vec::new();
    let mut changed = NewInvoice::from(&current);
    if let Some(metadata) = body.metadata {
        changed.metadata = merge_metadata(&current.metadata, metadata, &mut errors);
    }
    changed.number = body.number.unwrap_or(changed.number);
    changed.source = body.source.or(changed.source);
    changed.external_id = body.external_id.unwrap_or(changed.external_id);
    changed.customer_id = body.customer_id.unwrap_or(changed.customer_id);
    changed.currency = body.currency.unwrap_or(changed.currency);
    changed.amount_total = body.amount_total.unwrap_or(changed.amount_total);
    changed.amount_tax = body.amount_tax.unwrap_or(changed.amount_tax);
    changed.issue_date = body.issue_date.unwrap_or(changed.issue_date);
    changed.due_date = body.due_date.unwrap_or(changed.due_date);
    changed.payment_reference = body.payment_reference.unwrap_or(changed.payment_reference);
    changed.rf_reference = body.rf_reference.unwrap_or(changed.rf_reference);
    changed.lines = body.lines.unwrap_or(changed.lines);
    // The stored status is checked as a move by `invoice::update`, not as a new invoice's.
    let status = body.status.unwrap_or(current.status);
    changed.status = None;
    let mut spec = match changed.check() {
        Ok(spec) if errors.is_empty() => spec,
        result => {
            return Err(ApiError::validation(errors.into_iter().chain(result.err().unwrap_or_default()).collect()));
        }
    };
    spec.status = status;
    let (invoice, changed) = invoice::update(&mut tx, tenant, &current, &spec).await?;
    if changed {
        runs::invoices_changed(&mut tx, tenant, std::slice::from_ref(&invoice.id)).await?;
    }
    tx.commit().await?;
    Ok((Extension(AuditResource::new("invoice", &invoice.id)), ApiJson(invoice)).into_response())
}

/// Void an invoice
///
/// For an invoice that was sent in error or replaced: it keeps its number, stops counting as
/// owed, and never changes again. Only an invoice nothing has paid can be voided (409
/// otherwise: unmatch its payments first). Voiding a void invoice answers it unchanged.
#[utoipa::path(
    post,
    path = "/invoices/{id}/void",
    tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id (`inv_…`)")),
    responses(
        (status = 200, body = Invoice),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Partly or wholly paid", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]), ("bearer" = ["invoices:write"]))
)]
async fn void(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesWrite>,
    PathId(id): PathId<InvoiceId>,
) -> Result<Response, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let current = locked(&mut tx, tenant, &id).await?;
    let invoice = invoice::void(&mut tx, tenant, &current).await?;
    tx.commit().await?;
    Ok((Extension(AuditResource::new("invoice", &invoice.id)), ApiJson(invoice)).into_response())
}

/// Delete a draft invoice
///
/// Only drafts are deleted; any other invoice is a 409 that says to void it instead. Answers
/// with the invoice as it was; the changes feed records a tombstone.
#[utoipa::path(
    delete,
    path = "/invoices/{id}",
    tag = "invoices",
    params(("id" = String, Path, description = "The invoice's id (`inv_…`)")),
    responses(
        (status = 200, body = Invoice),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a draft: void it instead", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]), ("bearer" = ["invoices:write"]))
)]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesWrite>,
    PathId(id): PathId<InvoiceId>,
) -> Result<Response, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let current = locked(&mut tx, tenant, &id).await?;
    invoice::delete(&mut tx, tenant, &current).await?;
    tx.commit().await?;
    Ok((Extension(AuditResource::new("invoice", &current.id)), ApiJson(current)).into_response())
}

/// Read the invoices' changes feed
///
/// Every creation, update, void and deletion of the tenant's invoices, oldest first, each once,
/// in an order no later commit can slip behind: a change whose transaction was still running
/// when a page was read comes after that page's cursor, never before it. `next_cursor` is always
/// set: store it and pass it next time; `has_more` says whether to read again now. A deletion is
/// a tombstone (`data` null, with the id and `external_id`). See `docs/invoices.md`.
#[utoipa::path(
    get,
    path = "/invoices/changes",
    tag = "invoices",
    params(ChangesParams),
    responses((status = 200, body = Page<Change>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["invoices:read"]), ("bearer" = ["invoices:read"]))
)]
async fn changes_feed(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesRead>,
    ApiQuery(params): ApiQuery<ChangesParams>,
) -> Result<ApiJson<Page<Change>>, ApiError> {
    read_feed(&state, &principal, Resource::Invoice, params).await.map(ApiJson)
}

/// A batch of invoices to upsert.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"atomic": false, "invoices": [
    {"number": "INV-2026-0104", "source": "hubspot", "external_id": "hs-inv-88172", "currency": "GBP",
     "amount_total": 125000, "due_date": "2026-12-20", "payment_reference": "INV-2026-0104",
     "customer": {"name": "Acme Widgets Ltd", "external_id": "hs-4411", "aliases": ["ACME WIDGETS LTD"]}}
]}))]
pub struct InvoiceBatch {
    /// 1 to 1,000 invoices, each with its `external_id`.
    pub invoices: Vec<NewInvoice>,
    /// `true`: apply every row or none (a 422 names each bad row's fields as
    /// `invoices[i].field`). Default `false`: apply the valid rows and report the others.
    #[serde(default)]
    pub atomic: bool,
}

/// Upsert invoices in a batch
///
/// Creates or updates up to 1,000 invoices by `(source, external_id)` in one request, each with
/// its customer by id or inline (upserted by the customer's `external_id`). Answers one result
/// per row, in input order: `created`, `updated`, `unchanged` (nothing written, no event) or
/// `error` with the row's field errors. Rows are independent: a bad row is reported and the
/// others applied, unless `atomic` asks for all or nothing. The same `external_id` twice in one
/// batch is an error on the later row. An `Idempotency-Key` covers the whole batch, and sending
/// the same batch again changes nothing and emits nothing. Events and changes are recorded only
/// for rows that changed.
#[utoipa::path(
    post,
    path = "/invoices/batch",
    tag = "invoices",
    request_body = InvoiceBatch,
    responses(
        (status = 200, body = BatchResult),
        (status = 422, description = "An empty or oversized batch, or an atomic batch with a bad row", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]), ("bearer" = ["invoices:write"]))
)]
async fn batch_upsert(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesWrite>,
    ApiJson(body): ApiJson<InvoiceBatch>,
) -> Result<ApiJson<BatchResult>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let result = batch::upsert_invoices(&mut tx, &principal.tenant.id, body.invoices).await?;
    if body.atomic && result.failed > 0 {
        drop(tx);
        return Err(ApiError::validation(result.field_errors("invoices")));
    }
    runs::invoices_changed(&mut tx, &principal.tenant.id, &result.written_ids()).await?;
    tx.commit().await?;
    Ok(ApiJson(result))
}

/// The tenant's invoice `id`, locked for the change `tx` makes, or the 404 of a missing one.
async fn locked(
    tx: &mut sqlx::PgConnection,
    tenant: &crate::domain::ids::TenantId,
    id: &InvoiceId,
) -> Result<Invoice, ApiError> {
    invoice::load(tx, tenant, id, true).await?.ok_or_else(|| ApiError::not_found_in(Probe::Invoices, id.as_str()))
}
