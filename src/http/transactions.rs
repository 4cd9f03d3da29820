//! Transactions: list with combinable filters and stable cursors, get, annotate (`PATCH`),
//! statistics per currency, and a streamed CSV export. Filters are parsed here once and turned
//! into SQL by [`crate::transactions::query`], so every endpoint covers the same rows.

use super::path_id::PathId;
use std::collections::BTreeMap;

use axum::{Extension, extract::State};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{TransactionsRead, TransactionsWrite},
    },
    error::{ApiError, FieldError, Problem},
    json::ApiJson,
    pagination::{self, Page},
    query::{ApiQuery, QueryParams},
};
use crate::{
    auth::Principal,
    bank::model::{TRANSACTION_COLUMNS, Transaction},
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{BankAccountId, BankConnectionId, TenantId, TransactionId},
        money::Currency,
        states::{MatchStatus, TransactionStatus},
    },
    events,
    http::reads::Reader,
    state::AppState,
    transactions::query::{self, Category, CursorCodec, Direction, Filters, Sort},
};

mod export;
mod stats;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stats::stats))
        .routes(routes!(export::export))
        .routes(routes!(get, update))
}

/// Declares a query-parameter struct holding every transaction filter plus `$extra` fields, so
/// list, statistics and export accept exactly the same filters, documented once.
macro_rules! with_filters {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default, Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            /// Booked on or after this date (`YYYY-MM-DD`, inclusive).
            #[param(value_type = Option<String>, format = Date)]
            pub booking_date_from: Option<String>,
            /// Booked on or before this date (inclusive).
            #[param(value_type = Option<String>, format = Date)]
            pub booking_date_to: Option<String>,
            /// Value date on or after this date (inclusive).
            #[param(value_type = Option<String>, format = Date)]
            pub value_date_from: Option<String>,
            /// Value date on or before this date (inclusive).
            #[param(value_type = Option<String>, format = Date)]
            pub value_date_to: Option<String>,
            /// At least this amount, in signed minor units (`-5000` is -50.00).
            #[param(value_type = Option<i64>)]
            pub amount_min: Option<String>,
            /// At most this amount, in signed minor units.
            #[param(value_type = Option<i64>)]
            pub amount_max: Option<String>,
            /// ISO 4217 code, e.g. `GBP`.
            #[param(value_type = Option<String>, pattern = "^[A-Za-z]{3}$")]
            pub currency: Option<String>,
            /// `credit` (money in, amount ≥ 0) or `debit` (money out).
            pub direction: Option<Direction>,
            pub status: Option<TransactionStatus>,
            pub match_status: Option<MatchStatus>,
            /// A category, or `uncategorized` for transactions without one.
            pub category: Option<String>,
            /// Only transactions from this bank connection (`bc_…`).
            pub bank_connection_id: Option<String>,
            /// Only this account's transactions (`ba_…`).
            pub account_id: Option<String>,
            /// Text that description, counterparty name or reference contains (case-insensitive,
            /// 3 to 200 characters; trigram-indexed).
            #[param(min_length = 3, max_length = 200)]
            pub q: Option<String>,
            /// Only transactions created or changed at or after this instant (RFC 3339): for
            /// incremental sync, pass the `updated_at` of the newest transaction you hold.
            #[param(value_type = Option<String>, format = DateTime)]
            pub updated_since: Option<String>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            fn filters(&self) -> Result<Filters, ApiError> {
                parse_filters(&RawFilters {
                    booking_date_from: self.booking_date_from.as_deref(),
                    booking_date_to: self.booking_date_to.as_deref(),
                    value_date_from: self.value_date_from.as_deref(),
                    value_date_to: self.value_date_to.as_deref(),
                    amount_min: self.amount_min.as_deref(),
                    amount_max: self.amount_max.as_deref(),
                    currency: self.currency.as_deref(),
                    direction: self.direction,
                    status: self.status,
                    match_status: self.match_status,
                    category: self.category.as_deref(),
                    bank_connection_id: self.bank_connection_id.as_deref(),
                    account_id: self.account_id.as_deref(),
                    q: self.q.as_deref(),
                    updated_since: self.updated_since.as_deref(),
                })
            }
        }
    };
}
pub(crate) use with_filters;

with_filters! {
    pub struct ListParams {
        /// `-booking_date` (default), `booking_date`, `-amount` or `amount`; ties by id.
        pub sort: Option<Sort>,
        /// Page size, 1 to 100 (default 25).
        #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
        pub limit: Option<pagination::Limit>,
        /// `next_cursor` of the previous page, with the same filters and sort.
        pub cursor: Option<String>,
    }
}

impl QueryParams for ListParams {
    fn problems(&self) -> Vec<FieldError> {
        field_errors([self.filters().map(drop)])
    }
}

/// The field errors of failed validations, for [`QueryParams::problems`].
fn field_errors(results: impl IntoIterator<Item = Result<(), ApiError>>) -> Vec<FieldError> {
    results
        .into_iter()
        .filter_map(Result::err)
        .flat_map(|error| match error {
            ApiError::Problem { errors, .. } => errors,
            _ => Vec::new(),
        })
        .collect()
}

/// The filter parameters as received, for one parser shared by every endpoint.
struct RawFilters<'a> {
    booking_date_from: Option<&'a str>,
    booking_date_to: Option<&'a str>,
    value_date_from: Option<&'a str>,
    value_date_to: Option<&'a str>,
    amount_min: Option<&'a str>,
    amount_max: Option<&'a str>,
    currency: Option<&'a str>,
    direction: Option<Direction>,
    status: Option<TransactionStatus>,
    match_status: Option<MatchStatus>,
    category: Option<&'a str>,
    bank_connection_id: Option<&'a str>,
    account_id: Option<&'a str>,
    q: Option<&'a str>,
    updated_since: Option<&'a str>,
}

/// The largest amount a filter accepts, in minor units (a quadrillion: beyond any real payment,
/// and exact in every JSON parser).
const AMOUNT_LIMIT: i64 = 1_000_000_000_000_000;

/// Validates every filter, reporting all bad ones at once, each under its parameter's name.
fn parse_filters(raw: &RawFilters<'_>) -> Result<Filters, ApiError> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: String| errors.push(FieldError { field: field.into(), message });
    let mut date = |field: &str, value: Option<&str>| -> Option<NaiveDate> {
        let value = value?;
        match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            Ok(day) if value.len() == 10 => Some(day),
            _ => {
                bad(field, format!("{value:?} is not a date that exists, as YYYY-MM-DD"));
                None
            }
        }
    };
    let booking_date_from = date("booking_date_from", raw.booking_date_from);
    let booking_date_to = date("booking_date_to", raw.booking_date_to);
    let value_date_from = date("value_date_from", raw.value_date_from);
    let value_date_to = date("value_date_to", raw.value_date_to);
    let mut errors_after_dates = Vec::new();
    let mut bad = |field: &str, message: String| errors_after_dates.push(FieldError { field: field.into(), message });
    for (from, to, from_name, to_name) in [
        (booking_date_from, booking_date_to, "booking_date_from", "booking_date_to"),
        (value_date_from, value_date_to, "value_date_from", "value_date_to"),
    ] {
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            bad(to_name, format!("is before {from_name}; the range is inclusive, so use the same date for one day"));
        }
    }
    let mut amount = |field: &str, value: Option<&str>| -> Option<i64> {
        let value = value?;
        match value.parse::<i64>() {
            Ok(n) if n.abs() <= AMOUNT_LIMIT => Some(n),
            _ if value.parse::<i128>().is_ok() => {
                bad(field, format!("must be between -{AMOUNT_LIMIT} and {AMOUNT_LIMIT} (minor units)"));
                None
            }
            _ => {
                bad(field, "must be a whole number of minor units, e.g. -1250 for -12.50".into());
                None
            }
        }
    };
    let amount_min = amount("amount_min", raw.amount_min);
    let amount_max = amount("amount_max", raw.amount_max);
    if let (Some(min), Some(max)) = (amount_min, amount_max)
        && min > max
    {
        bad("amount_max", "is less than amount_min".into());
    }
    let currency = raw.currency.and_then(|code| {
        let parsed = Currency::parse(&code.to_ascii_uppercase());
        if parsed.is_none() {
            bad("currency", format!("{code:?} is not an ISO 4217 currency code such as GBP"));
        }
        parsed
    });
    let direction = raw.direction;
    let (status, match_status) = (raw.status, raw.match_status);
    let category = match raw.category.map(str::trim) {
        None => None,
        Some("uncategorized") => Some(Category::Uncategorized),
        Some(c) if !c.is_empty() && c.chars().count() <= 100 => Some(Category::Is(c.to_owned())),
        Some(_) => {
            bad("category", "must be 1 to 100 characters, or uncategorized".into());
            None
        }
    };
    let bank_connection_id = raw.bank_connection_id.and_then(|id| {
        let parsed = BankConnectionId::parse(id);
        if parsed.is_none() {
            bad("bank_connection_id", "is not a bank connection id (bc_…)".into());
        }
        parsed
    });
    let account_id = raw.account_id.and_then(|id| {
        let parsed = BankAccountId::parse(id);
        if parsed.is_none() {
            bad("account_id", "is not an account id (ba_…)".into());
        }
        parsed
    });
    let q = raw.q.map(str::trim).and_then(|q| {
        let length = q.chars().count();
        if (3..=200).contains(&length) {
            Some(q.to_lowercase())
        } else {
            bad("q", "must be 3 to 200 characters".into());
            None
        }
    });
    let updated_since = raw.updated_since.and_then(|value| match DateTime::parse_from_rfc3339(value) {
        Ok(at) => Some(at.with_timezone(&Utc)),
        Err(_) => {
            bad("updated_since", format!("{value:?} is not an RFC 3339 timestamp such as 2026-11-21T09:30:00Z"));
            None
        }
    });
    errors.extend(errors_after_dates);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(Filters {
        booking_date_from,
        booking_date_to,
        value_date_from,
        value_date_to,
        amount_min,
        amount_max,
        currency,
        direction,
        status,
        match_status,
        category,
        bank_connection_id,
        account_id,
        q,
        updated_since,
    })
}

async fn cursor_key(state: &AppState) -> Result<[u8; 32], ApiError> {
    Ok(*state.auth.jwt().await?.cursor_key())
}

/// List transactions
///
/// Every filter combines with the others. Ordered by `sort` (default newest booking date first;
/// a pending transaction sorts by its value date), ties broken by id. The cursor is a position in
/// that order and is bound to the filters and sort that produced it, so transactions arriving
/// while you page never make a row repeat or go missing from the pages still to come; a cursor
/// used with other filters, edited, or from another tenant is refused (422 naming `cursor`).
#[utoipa::path(
    get,
    path = "/transactions",
    tag = "transactions",
    params(ListParams),
    responses(
        (status = 200, body = Page<Transaction>),
        (status = 422, description = "A parameter is unknown or invalid; `errors` names each", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn list(
    State(state): State<AppState>,
    reader: Reader,
    principal: Principal,
    _: Needs<TransactionsRead>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<ApiJson<Page<Transaction>>, ApiError> {
    let filters = params.filters()?;
    let sort = params.sort.unwrap_or_default();
    let limit = pagination::limit(params.limit);
    let key = cursor_key(&state).await?;
    let codec = CursorCodec { key: &key };
    let tenant = &principal.tenant.id;
    let after = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(codec.decode(cursor, tenant, &filters, sort).ok_or_else(|| {
            ApiError::invalid_field(
                "cursor",
                "is not a cursor this list issued for these filters and sort; start again without it",
            )
        })?),
    };
    let mut tx = reader.begin(tenant).await?;
    let mut rows = query::page(&mut tx, tenant, &filters, sort, after.as_ref(), i64::from(limit) + 1).await?;
    end_read(tx);
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if has_more {
        rows.last().map(|last| codec.encode(tenant, &filters, sort, &sort.position_of(last)))
    } else {
        None
    };
    Ok(ApiJson(Page { data: rows, has_more, next_cursor }))
}

/// Get a transaction
#[utoipa::path(
    get,
    path = "/transactions/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "The transaction's id (`txn_…`)")),
    responses((status = 200, body = Transaction), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn get(
    reader: Reader,
    principal: Principal,
    _: Needs<TransactionsRead>,
    PathId(parsed): PathId<TransactionId>,
) -> Result<ApiJson<Transaction>, ApiError> {
    let id = parsed.as_str();
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let transaction = load(&mut tx, &principal.tenant.id, &parsed, false).await?;
    end_read(tx);
    match transaction {
        Some(transaction) => Ok(ApiJson(transaction)),
        None => Err(ApiError::not_found_in(Probe::Transactions, id)),
    }
}

async fn load(
    conn: &mut sqlx::PgConnection,
    tenant: &TenantId,
    id: &TransactionId,
    for_update: bool,
) -> Result<Option<Transaction>, sqlx::Error> {
    let lock = if for_update { " for update" } else { "" };
    sqlx::query_as(&format!("select {TRANSACTION_COLUMNS} from transactions where tenant_id = $1 and id = $2{lock}"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// What a client may change on a transaction. Absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"category": "office_supplies", "notes": "Receipt in Dropbox", "tags": ["q4", "vat"],
    "metadata": {"invoice_id": "INV-2026-0042", "old_key": null}}))]
pub struct UpdateTransaction {
    /// 1 to 100 characters; `null` removes it (categorisation rules may then set one again).
    /// A category set here always wins over rules.
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub category: Option<Option<String>>,
    /// Up to 5,000 characters; `null` removes them.
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub notes: Option<Option<String>>,
    /// Replaces the tags: at most 20, each 1 to 50 characters; duplicates are dropped.
    pub tags: Option<Vec<String>>,
    /// Merged into the metadata: a key set to a string is set, a key set to `null` or `""` is
    /// removed. At most 50 keys; keys up to 40 characters (no `[` or `]`), values up to 500.
    #[schema(value_type = Option<HashMap<String, String>>)]
    pub metadata: Option<BTreeMap<String, Option<String>>>,
}

const MAX_TAGS: usize = 20;

/// The changes a valid body makes to `current`: new values and previous ones, by field.
fn apply_update(current: &Transaction, body: UpdateTransaction) -> Result<Changes, ApiError> {
    let mut errors = Vec::new();
    let mut bad = |field: String, message: &str| errors.push(FieldError { field, message: message.into() });
    if body.category.is_none() && body.notes.is_none() && body.tags.is_none() && body.metadata.is_none() {
        return Err(ApiError::invalid_field("body", "set at least one of category, notes, tags, metadata"));
    }
    let category = body.category.map(|c| c.map(|c| c.trim().to_owned()));
    if let Some(Some(c)) = &category
        && (c.is_empty() || c.chars().count() > 100 || c.chars().any(char::is_control))
    {
        bad("category".into(), "must be 1 to 100 characters without control characters");
    }
    if let Some(Some(notes)) = &body.notes
        && notes.chars().count() > 5000
    {
        bad("notes".into(), "must be at most 5000 characters");
    }
    let tags = body.tags.map(|tags| {
        let mut kept: Vec<String> = Vec::new();
        for (i, tag) in tags.into_iter().enumerate() {
            let tag = tag.trim().to_owned();
            if tag.is_empty() || tag.chars().count() > 50 || tag.chars().any(char::is_control) {
                bad(format!("tags[{i}]"), "must be 1 to 50 characters without control characters");
            } else if !kept.contains(&tag) {
                kept.push(tag);
            }
        }
        kept
    });
    if tags.as_ref().is_some_and(|t| t.len() > MAX_TAGS) {
        bad("tags".into(), "holds at most 20 tags");
    }
    let metadata = body.metadata.map(|changes| super::json::merge_metadata(&current.metadata, changes, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }

    let mut changes = Changes { previous: Map::new(), ..Changes::default() };
    if let Some(category) = category
        && (category != current.category || (category.is_some() && current.category_source.as_deref() != Some("user")))
    {
        changes.previous.insert("category".into(), json!(current.category));
        changes.previous.insert("category_source".into(), json!(current.category_source));
        changes.category = Some(category);
    }
    if let Some(notes) = body.notes
        && notes != current.notes
    {
        changes.previous.insert("notes".into(), json!(current.notes));
        changes.notes = Some(notes);
    }
    if let Some(tags) = tags
        && tags != current.tags
    {
        changes.previous.insert("tags".into(), json!(current.tags));
        changes.tags = Some(tags);
    }
    if let Some(metadata) = metadata
        && metadata != current.metadata
    {
        changes.previous.insert("metadata".into(), json!(current.metadata));
        changes.metadata = Some(metadata);
    }
    Ok(changes)
}

#[derive(Debug, Default)]
struct Changes {
    category: Option<Option<String>>,
    notes: Option<Option<String>>,
    tags: Option<Vec<String>>,
    metadata: Option<BTreeMap<String, String>>,
    previous: Map<String, Value>,
}

/// Update a transaction
///
/// Sets its category, notes, tags or metadata; nothing else about a transaction can change
/// through the API. A category set here is the user's and always wins over categorisation rules.
/// When anything changed, emits `transaction.updated` with `previous_attributes` holding the
/// changed fields' previous values; a request that changes nothing emits nothing.
#[utoipa::path(
    patch,
    path = "/transactions/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "The transaction's id (`txn_…`)")),
    request_body = UpdateTransaction,
    responses(
        (status = 200, body = Transaction),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:write"]), ("bearer" = ["transactions:write"]))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsWrite>,
    PathId(parsed): PathId<TransactionId>,
    ApiJson(body): ApiJson<UpdateTransaction>,
) -> Result<(Extension<AuditResource>, ApiJson<Transaction>), ApiError> {
    let id = parsed.as_str();
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let Some(current) = load(&mut tx, tenant, &parsed, true).await? else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::Transactions, id));
    };
    let changes = apply_update(&current, body)?;
    let audit = Extension(AuditResource::new("transaction", &current.id));
    if changes.previous.is_empty() {
        end_read(tx);
        return Ok((audit, ApiJson(current)));
    }
    let source = changes.category.as_ref().map(|c| c.as_ref().map(|_| "user"));
    let updated: Transaction = sqlx::query_as(&format!(
        "update transactions set
             category = case when $3 then $4 else category end,
             category_source = case when $3 then $5 else category_source end,
             category_rule_id = case when $3 then null else category_rule_id end,
             notes = case when $6 then $7 else notes end,
             tags = coalesce($8, tags),
             metadata = coalesce($9, metadata)
         where tenant_id = $1 and id = $2
         returning {TRANSACTION_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(parsed.as_str())
    .bind(changes.category.is_some())
    .bind(changes.category.clone().flatten())
    .bind(source.flatten())
    .bind(changes.notes.is_some())
    .bind(changes.notes.clone().flatten())
    .bind(changes.tags.clone())
    .bind(changes.metadata.as_ref().map(sqlx::types::Json))
    .fetch_one(&mut *tx)
    .await?;
    let mut data = serde_json::to_value(&updated).map_err(anyhow::Error::from)?;
    data["previous_attributes"] = Value::Object(changes.previous);
    events::record(&mut tx, tenant, "transaction.updated", data).await?;
    tx.commit().await?;
    Ok((audit, ApiJson(updated)))
}

/// Builds the test-only filter parser input from a query string.
#[cfg(test)]
fn filters_of(query: &str) -> Result<Filters, ApiError> {
    super::query::parse::<ListParams>(query)?.filters()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(query: &str) -> Vec<String> {
        match filters_of(query).unwrap_err() {
            ApiError::Problem { errors, .. } => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn filters_combine_and_bad_ones_are_each_named() {
        let f =
            filters_of("booking_date_from=2026-01-01&booking_date_to=2026-03-31&direction=debit&q=Amazon&currency=gbp")
                .unwrap();
        assert_eq!(f.direction, Some(Direction::Debit));
        assert_eq!(f.q.as_deref(), Some("amazon"));
        assert_eq!(f.currency.map(|c| c.as_str().to_owned()).as_deref(), Some("GBP"));

        assert_eq!(fields("booking_date_from=2026-02-30"), ["booking_date_from"]);
        assert_eq!(fields("booking_date_from=2026-03-02&booking_date_to=2026-03-01"), ["booking_date_to"]);
        assert_eq!(fields("amount_min=10&amount_max=5"), ["amount_max"]);
        assert_eq!(fields("amount_min=99999999999999999999"), ["amount_min"]);
        assert_eq!(fields("amount_min=1.5"), ["amount_min"]);
        assert_eq!(fields("direction=up&status=done&q=ab"), ["direction", "status", "q"]);
        assert_eq!(fields("updated_since=yesterday"), ["updated_since"]);
        assert_eq!(fields("account_id=bc_0192f3c4d5e6478fa1b2c3d4e5f60718"), ["account_id"]);
        assert_eq!(fields("colour=red"), ["colour"]);
    }

    #[test]
    fn category_filter_knows_uncategorized() {
        assert_eq!(filters_of("category=uncategorized").unwrap().category, Some(Category::Uncategorized));
        assert_eq!(filters_of("category=rent").unwrap().category, Some(Category::Is("rent".into())));
    }
}
