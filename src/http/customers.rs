//! Customers: create, list, get, update and delete a tenant's customers, and read their changes
//! feed. The rules live in `invoices::customer`; this module extracts, calls and shapes.

use std::collections::BTreeMap;

use axum::{
    Extension,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{InvoicesRead, InvoicesWrite},
    },
    error::{ApiError, Problem},
    json::{ApiJson, merge_metadata},
    pagination::{self, Page},
    path_id::PathId,
    query::{ApiQuery, QueryParams},
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    domain::{ids::CustomerId, validation::FieldError},
    http::reads::Reader,
    invoices::{
        InvoiceError,
        batch::{self, BatchResult},
        changes::{self, Change, Resource},
        customer::{self, Customer, CustomerBankAccount, CustomerFilters, NewCustomer},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(changes_feed))
        .routes(routes!(get, update, delete))
        .routes(routes!(batch_upsert))
}

/// Create a customer
///
/// `external_id` is unique per tenant and `source`: a second customer with the same pair is a
/// 409 (upsert with `POST /invoices/batch`'s inline customers instead). Bank accounts are
/// checked: an IBAN by its check digits, a US routing number by its check digit.
#[utoipa::path(
    post,
    path = "/customers",
    tag = "invoices",
    request_body = NewCustomer,
    responses(
        (status = 201, body = Customer),
        (status = 409, description = "The external id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]), ("bearer" = ["invoices:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesWrite>,
    ApiJson(body): ApiJson<NewCustomer>,
) -> Result<impl IntoResponse, ApiError> {
    let spec = body.check().map_err(InvoiceError::Invalid)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let customer = customer::create(&mut tx, &principal.tenant.id, &spec).await?;
    tx.commit().await?;
    let audit = AuditResource::new("customer", &customer.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(customer)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomerParams {
    /// Only customers from this source.
    pub source: Option<String>,
    /// The customer with this external id (with `source`, or from any source).
    pub external_id: Option<String>,
    /// Only customers with this email address (case-insensitive).
    pub email: Option<String>,
    /// Text the name or email contains (case-insensitive, 3 to 200 characters; trigram-indexed).
    #[param(min_length = 3, max_length = 200)]
    pub q: Option<String>,
    /// Only customers created or changed at or after this instant. The changes feed
    /// (`GET /customers/changes`) is the reliable way to keep in step.
    pub updated_since: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<pagination::Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl QueryParams for CustomerParams {
    fn problems(&self) -> Vec<FieldError> {
        search_problems(self.q.as_deref())
    }
}

/// The problem with a `q`, if any: 3 to 200 characters once trimmed.
pub(super) fn search_problems(q: Option<&str>) -> Vec<FieldError> {
    match q.map(|q| q.trim().chars().count()) {
        Some(length) if !(3..=200).contains(&length) => vec![FieldError::new("q", "must be 3 to 200 characters")],
        _ => Vec::new(),
    }
}

/// List customers
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/customers",
    tag = "invoices",
    params(CustomerParams),
    responses((status = 200, body = Page<Customer>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["invoices:read"]), ("bearer" = ["invoices:read"]))
)]
async fn list(
    State(state): State<AppState>,
    reader: Reader,
    principal: Principal,
    _: Needs<InvoicesRead>,
    ApiQuery(params): ApiQuery<CustomerParams>,
) -> Result<ApiJson<Page<Customer>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let before = cursors.after(params.cursor.as_deref(), CustomerId::parse)?;
    let filters = CustomerFilters {
        source: params.source,
        external_id: params.external_id,
        email: params.email,
        q: params.q.map(|q| q.trim().to_lowercase()),
        updated_since: params.updated_since,
    };
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let rows = customer::list(&mut tx, &principal.tenant.id, &filters, before.as_ref(), i64::from(limit) + 1).await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |c| c.id.clone())))
}

/// Get a customer
#[utoipa::path(
    get,
    path = "/customers/{id}",
    tag = "invoices",
    params(("id" = String, Path, description = "The customer's id (`cus_…`)")),
    responses((status = 200, body = Customer), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["invoices:read"]), ("bearer" = ["invoices:read"]))
)]
async fn get(
    reader: Reader,
    principal: Principal,
    _: Needs<InvoicesRead>,
    PathId(id): PathId<CustomerId>,
) -> Result<ApiJson<Customer>, ApiError> {
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let found = customer::load(&mut tx, &principal.tenant.id, &id, false).await?;
    end_read(tx);
    found.map(ApiJson).ok_or_else(|| ApiError::not_found_in(Probe::Customers, id.as_str()))
}

/// Absent: unchanged; `null`: cleared (`email`, `external_id`); a value: set. `aliases` and
/// `bank_accounts` are replaced whole; `metadata` keys are merged (`null` or `""` removes one).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"aliases": ["ACME WIDGETS LTD", "ACME W"], "metadata": {"segment": null}}))]
pub struct UpdateCustomer {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    pub source: Option<String>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    pub aliases: Option<Vec<String>>,
    pub bank_accounts: Option<Vec<CustomerBankAccount>>,
    #[schema(value_type = Option<std::collections::HashMap<String, Option<String>>>)]
    pub metadata: Option<BTreeMap<String, Option<String>>>,
}

/// Update a customer
///
/// Changes only the fields sent. Nothing is written, and no event or change recorded, when the
/// update changes nothing.
#[utoipa::path(
    patch,
    path = "/customers/{id}",
    tag = "invoices",
    params(("id" = String, Path, description = "The customer's id (`cus_…`)")),
    request_body = UpdateCustomer,
    responses(
        (status = 200, body = Customer),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The external id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]), ("bearer" = ["invoices:write"]))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesWrite>,
    PathId(id): PathId<CustomerId>,
    ApiJson(body): ApiJson<UpdateCustomer>,
) -> Result<Response, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let current = locked(&mut tx, tenant, &id).await?;
    let mut errors = Vec::new();
    let mut changed = NewCustomer::from(customer::CustomerSpec::from(&current));
    if let Some(metadata) = body.metadata {
        changed.metadata = merge_metadata(&current.metadata, metadata, &mut errors);
    }
    changed.name = body.name.unwrap_or(changed.name);
    changed.email = body.email.unwrap_or(changed.email);
    changed.source = body.source.or(changed.source);
    changed.external_id = body.external_id.unwrap_or(changed.external_id);
    changed.aliases = body.aliases.unwrap_or(changed.aliases);
    changed.bank_accounts = body.bank_accounts.unwrap_or(changed.bank_accounts);
    let spec = match changed.check() {
        Ok(spec) if errors.is_empty() => spec,
        result => {
            return Err(ApiError::validation(errors.into_iter().chain(result.err().unwrap_or_default()).collect()));
        }
    };
    let (customer, _) = customer::update(&mut tx, tenant, &current, &spec).await?;
    tx.commit().await?;
    Ok((Extension(AuditResource::new("customer", &customer.id)), ApiJson(customer)).into_response())
}

/// Delete a customer
///
/// Refused with a 409 while invoices that are not void point at the customer: void them (or
/// move them to another customer) first. Voided invoices keep their number and lose the link.
/// Answers with the customer as it was; the changes feed records a tombstone.
#[utoipa::path(
    delete,
    path = "/customers/{id}",
    tag = "invoices",
    params(("id" = String, Path, description = "The customer's id (`cus_…`)")),
    responses(
        (status = 200, body = Customer),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Invoices point at the customer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]), ("bearer" = ["invoices:write"]))
)]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<InvoicesWrite>,
    PathId(id): PathId<CustomerId>,
) -> Result<Response, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let current = locked(&mut tx, tenant, &id).await?;
    customer::delete(&mut tx, tenant, &current).await?;
    tx.commit().await?;
    Ok((Extension(AuditResource::new("customer", &current.id)), ApiJson(current)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// `next_cursor` of the previous read; absent: from the beginning.
    pub cursor: Option<String>,
    /// Changes per page, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<pagination::Limit>,
}

impl QueryParams for ChangesParams {}

/// Reads a page of `resource`'s changes feed for the caller's tenant.
pub(super) async fn read_feed(
    state: &AppState,
    principal: &Principal,
    resource: Resource,
    params: ChangesParams,
) -> Result<Page<Change>, ApiError> {
    let cursors = pagination::Cursors::of(state).await?;
    let limit = pagination::limit(params.limit);
    let prefix = match resource {
        Resource::Customer => "customer:",
        Resource::Invoice => "invoice:",
    };
    let after = cursors
        .after(params.cursor.as_deref(), |text| text.strip_prefix(prefix).and_then(changes::Position::parse))?
        .unwrap_or_default();
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows = changes::read(&mut tx, &principal.tenant.id, resource, after, i64::from(limit) + 1).await?;
    end_read(tx);
    let from = format!("{prefix}{}:{}", after.xid, after.seq);
    Ok(cursors.feed(rows, limit, &from, |change| format!("{prefix}{}", change.position)))
}

/// Read the customers' changes feed
///
/// Every creation, update and deletion of the tenant's customers, oldest first, each once, in an
/// order no later commit can slip behind: a change whose transaction was still running when a
/// page was read comes after that page's cursor, never before it. `next_cursor` is always set:
/// store it and pass it next time; `has_more` says whether to read again now. A deletion is a
/// tombstone (`data` null, with the id and `external_id`). See `docs/invoices.md`.
#[utoipa::path(
    get,
    path = "/customers/changes",
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
    read_feed(&state, &principal, Resource::Customer, params).await.map(ApiJson)
}

/// A batch of customers to upsert.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customers": [{"name": "Acme Widgets Ltd", "source": "hubspot", "external_id": "hs-4411"}]}))]
pub struct CustomerBatch {
    /// 1 to 1,000 customers, each with its `external_id`.
    pub customers: Vec<NewCustomer>,
    /// `true`: apply every row or none (a 422 names each bad row's fields as
    /// `customers[i].field`). Default `false`: apply the valid rows and report the others.
    #[serde(default)]
    pub atomic: bool,
}

/// Upsert customers in a batch
///
/// Creates or updates up to 1,000 customers by `(source, external_id)` in one request, with the
/// same contract as `POST /invoices/batch`: one result per row in input order (`created`,
/// `updated`, `unchanged`, `error`), valid rows applied unless `atomic`, events only for rows
/// that changed.
#[utoipa::path(
    post,
    path = "/customers/batch",
    tag = "invoices",
    request_body = CustomerBatch,
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
    ApiJson(body): ApiJson<CustomerBatch>,
) -> Result<ApiJson<BatchResult>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let result = batch::upsert_customers(&mut tx, &principal.tenant.id, body.customers).await?;
    if body.atomic && result.failed > 0 {
        drop(tx);
        return Err(ApiError::validation(result.field_errors("customers")));
    }
    tx.commit().await?;
    Ok(ApiJson(result))
}

/// The tenant's customer `id`, locked for the change `tx` makes, or the 404 of a missing one.
async fn locked(
    tx: &mut sqlx::PgConnection,
    tenant: &crate::domain::ids::TenantId,
    id: &CustomerId,
) -> Result<Customer, ApiError> {
    customer::load(tx, tenant, id, true).await?.ok_or_else(|| ApiError::not_found_in(Probe::Customers, id.as_str()))
}
