//! The benchmark baseline: the least a plain axum server has to do to answer the same requests as
//! `payymo`, with no middleware, no shared state beyond what a case needs, and no logging.
//! `bench/run` starts it next to the real service and prints both figures side by side, so the
//! ratio shows what our stack costs over axum itself, on the same machine, at the same moment.
//!
//! Usage: `bench-baseline CASE HOST:PORT [CASE ARGUMENTS]`, where CASE is one of [`CASES`]; each
//! case serves only the routes its benchmark needs:
//!
//! - `healthz HOST:PORT`: see [`healthz`].
//! - `api-key-get HOST:PORT DATABASE_URL TENANT_ID`: see [`api_key_get`].
//! - `transactions-list HOST:PORT DATABASE_URL TENANT_ID`: see [`transactions_list`].
//! - `stripe-webhooks HOST:PORT DATABASE_URL TENANT_ID CONNECTION_ID WHSEC`: see
//!   [`stripe_webhooks`].
//!
//! Prints `listening on http://ADDR` to stderr once bound, and serves until killed.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, bail};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::NaiveDate;
use payymo::{
    bank::model::Transaction,
    domain::ids::{BankAccountId, TenantId},
    http::pagination::Page,
    stripe::inbox::{self, Source},
    tenancy::{API_KEY_COLUMNS, ApiKey},
    transactions::query,
};
use serde::{Deserialize, Serialize};
use sqlx::{Execute, PgPool, postgres::PgPoolOptions};

/// The cases this baseline serves, named as in `bench/run`.
const CASES: &[&str] = &["healthz", "api-key-get", "transactions-list", "stripe-webhooks"];

/// Pool size for the database cases: `PAYYMO_DB_MAX_CONNECTIONS`'s default (src/config.rs), so
/// both servers queue for the same number of connections.
const MAX_CONNECTIONS: u32 = 10;

/// The allocator `payymo` runs with (src/main.rs), so the ratio compares the stacks, not the
/// allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let usage = || {
        format!(
            "usage: bench-baseline CASE HOST:PORT [ARGS] (CASE: {}; api-key-get and transactions-list take DATABASE_URL \
             TENANT_ID, stripe-webhooks DATABASE_URL TENANT_ID CONNECTION_ID WHSEC)",
            CASES.join(", ")
        )
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (case, addr, rest) = match args.as_slice() {
        [case, addr, rest @ ..] => (case.as_str(), addr, rest),
        _ => bail!(usage()),
    };
    let addr: SocketAddr = addr.parse().with_context(|| format!("invalid listen address {addr:?}"))?;
    let router = match (case, rest) {
        ("healthz", []) => healthz(),
        ("api-key-get", [url, tenant]) => api_key_get(url, tenant).await?,
        ("transactions-list", [url, tenant]) => transactions_list(url, tenant).await?,
        ("stripe-webhooks", [url, tenant, connection, secret]) => {
            stripe_webhooks(url, tenant, connection, secret).await?
        }
        (known, _) if CASES.contains(&known) => bail!("wrong arguments for {known:?}; {}", usage()),
        (other, _) => bail!("unknown case {other:?}; {}", usage()),
    };
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot bind {addr}"))?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}

/// Same body as `payymo`'s liveness route: a serialised struct, `{"status":"ok"}`.
#[derive(Serialize)]
struct Health {
    status: &'static str,
}

fn healthz() -> Router {
    Router::new().route("/healthz", get(|| async { Json(Health { status: "ok" }) }))
}

/// `GET /api/v1/api_keys/{id}` as a bare handler: the same `SELECT` as `payymo`'s route (the
/// column list and row type are `payymo::tenancy`'s own, so the SQL and the JSON cannot drift),
/// for one fixed tenant, on a plain `PgPool` of [`MAX_CONNECTIONS`] with sqlx's default connection
/// checks (a ping on acquire and on release, as in payymo's pool), with no authentication, no
/// rate limit, no transaction and no middleware. 200 with the key, or a bare 404. `/healthz`
/// answers too, for `bench/run`'s readiness check.
///
/// It connects as the role `payymo` uses (the URL names it), so the same row-level security
/// policies apply to it. Those show a session nothing unless `payymo.tenant_id` is set, and
/// `payymo` sets it per transaction (`begin; select set_config('payymo.tenant_id', …, true)`).
/// Here it is set once per pooled connection instead, at session level
/// (`set_config('payymo.tenant_id', $1, false)` in `after_connect`): the query and the policy it
/// is filtered by are the same, only the per-request BEGIN/set_config/COMMIT round trips are
/// missing, and those are part of the cost being measured.
async fn api_key_get(url: &str, tenant: &str) -> anyhow::Result<Router> {
    let pool = tenant_pool(url, tenant).await?;
    let state = KeyState {
        pool,
        sql: format!("select {API_KEY_COLUMNS} from api_keys where tenant_id = $1 and id = $2"),
        tenant: tenant.to_owned(),
    };
    Ok(Router::new()
        .route("/healthz", get(|| async { Json(Health { status: "ok" }) }))
        .route("/api/v1/api_keys/{id}", get(get_key))
        .with_state(Arc::new(state)))
}

/// A plain pool of [`MAX_CONNECTIONS`] whose connections are bound to `tenant` at session level
/// (see [`api_key_get`] for why), with sqlx's default connection checks.
async fn tenant_pool(url: &str, tenant: &str) -> anyhow::Result<PgPool> {
    let session_tenant = tenant.to_owned();
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .after_connect(move |conn, _| {
            let tenant = session_tenant.clone();
            Box::pin(async move {
                sqlx::query("select set_config('payymo.tenant_id', $1, false)").bind(tenant).execute(conn).await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .context("cannot connect to the database")
}

struct KeyState {
    pool: PgPool,
    sql: String,
    tenant: String,
}

async fn get_key(State(state): State<Arc<KeyState>>, Path(id): Path<String>) -> Response {
    let key: Result<Option<ApiKey>, sqlx::Error> =
        sqlx::query_as(&state.sql).bind(&state.tenant).bind(&id).fetch_optional(&state.pool).await;
    match key {
        Ok(Some(key)) => Json(key).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            eprintln!("query failed: {error}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /api/v1/transactions` as a bare handler: the filters the benchmark uses (`account_id`,
/// `booking_date_from`, `booking_date_to`, `direction`, `q`, `limit`) turned into
/// [`query::Filters`] and run through [`query::page`], the very function payymo's list
/// endpoint runs, so both run the same statements. The answer is payymo's page
/// shape (`data`, `has_more`, `next_cursor`, the cursor signed with [`query::CursorCodec`]), on a
/// plain pool bound to the tenant at session level as in [`api_key_get`]: no authentication, no
/// rate limit, no transaction, no middleware. A bad parameter is a bare 400.
///
/// `GET /explain/api/v1/transactions?…` answers the same query's `EXPLAIN (ANALYZE, BUFFERS)` as
/// text, for `bench/run` to print, so index use is visible next to the figures.
async fn transactions_list(url: &str, tenant: &str) -> anyhow::Result<Router> {
    let state = ListState {
        pool: tenant_pool(url, tenant).await?,
        tenant: TenantId::parse(tenant).with_context(|| format!("not a tenant id: {tenant:?}"))?,
    };
    Ok(Router::new()
        .route("/healthz", get(|| async { Json(Health { status: "ok" }) }))
        .route("/api/v1/transactions", get(list_transactions))
        .route("/explain/api/v1/transactions", get(explain_transactions))
        .with_state(Arc::new(state)))
}

struct ListState {
    pool: PgPool,
    tenant: TenantId,
}

/// Key for the baseline's cursors (payymo's comes from its configuration; the cost is the same).
const CURSOR_KEY: &[u8] = b"bench-baseline cursor key, 32 b.";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    account_id: Option<String>,
    booking_date_from: Option<NaiveDate>,
    booking_date_to: Option<NaiveDate>,
    direction: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
}

impl ListParams {
    fn filters(self) -> Option<(query::Filters, i64)> {
        let direction = match self.direction.as_deref() {
            None => None,
            Some("debit") => Some(query::Direction::Debit),
            Some("credit") => Some(query::Direction::Credit),
            Some(_) => return None,
        };
        let account_id = match self.account_id {
            Some(id) => Some(BankAccountId::parse(&id)?),
            None => None,
        };
        let filters = query::Filters {
            booking_date_from: self.booking_date_from,
            booking_date_to: self.booking_date_to,
            direction,
            account_id,
            q: self.q.map(|q| q.to_lowercase()),
            ..query::Filters::default()
        };
        Some((filters, self.limit.unwrap_or(25).clamp(1, 100)))
    }
}

async fn list_transactions(State(state): State<Arc<ListState>>, Query(params): Query<ListParams>) -> Response {
    let Some((filters, limit)) = params.filters() else { return StatusCode::BAD_REQUEST.into_response() };
    let sort = query::Sort::DateDesc;
    let rows: Result<Vec<Transaction>, sqlx::Error> = async {
        let mut conn = state.pool.acquire().await?;
        query::page(&mut conn, &state.tenant, &filters, sort, None, limit + 1).await
    }
    .await;
    let mut data = match rows {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("query failed: {error}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let has_more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    let next_cursor = match (has_more, data.last()) {
        (true, Some(last)) => {
            Some(query::CursorCodec { key: CURSOR_KEY }.encode(&state.tenant, &filters, sort, &sort.position_of(last)))
        }
        _ => None,
    };
    Json(Page { data, has_more, next_cursor }).into_response()
}

async fn explain_transactions(State(state): State<Arc<ListState>>, Query(params): Query<ListParams>) -> Response {
    let Some((filters, limit)) = params.filters() else { return StatusCode::BAD_REQUEST.into_response() };
    // A search runs the walk first and the index plan only when the walk found less than a page
    // (query::page): both plans are shown, each with what it found.
    let plans =
        if filters.q.is_some() { vec![query::Plan::Walk, query::Plan::Index] } else { vec![query::Plan::Index] };
    let mut out = String::new();
    for plan in plans {
        let mut page = query::page_sql(&state.tenant, &filters, query::Sort::DateDesc, None, limit + 1, plan);
        let text = page.sql().to_owned();
        let sql = format!("explain (analyze, buffers) {text}");
        let arguments = match page.build().take_arguments() {
            Ok(arguments) => arguments.unwrap_or_default(),
            Err(error) => return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
        };
        match sqlx::query_scalar_with::<_, String, _>(&sql, arguments).fetch_all(&state.pool).await {
            Ok(lines) => out.push_str(&format!("{plan:?} plan:\n{text}\n{}\n", lines.join("\n"))),
            Err(error) => return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
        }
    }
    out.into_response()
}

/// `POST /api/v1/stripe/webhooks/{connection_id}` as a bare handler: payymo's own signature
/// check (`payymo::stripe::inbox::verify`, with the secret given on the command line instead of
/// looked up and opened), the same event checks, and the same row written by payymo's own
/// `inbox::keep` (`stripe_events`, same columns, `on conflict do nothing`) on a plain pool bound
/// to the tenant at session level as in [`api_key_get`], in autocommit: no lookup of the
/// connection, no job queued for the apply worker, no transaction, no middleware. Answers
/// payymo's `{"received": true, "duplicate": …}`; a bad signature or body is a bare 400, another
/// connection a bare 404.
async fn stripe_webhooks(url: &str, tenant: &str, connection: &str, secret: &str) -> anyhow::Result<Router> {
    let state = HookState {
        pool: tenant_pool(url, tenant).await?,
        tenant: TenantId::parse(tenant).with_context(|| format!("not a tenant id: {tenant:?}"))?,
        connection: connection.to_owned(),
        secrets: vec![secret.to_owned()],
    };
    Ok(Router::new()
        .route("/healthz", get(|| async { Json(Health { status: "ok" }) }))
        .route("/api/v1/stripe/webhooks/{connection_id}", post(receive_event))
        .with_state(Arc::new(state)))
}

struct HookState {
    pool: PgPool,
    tenant: TenantId,
    connection: String,
    secrets: Vec<String>,
}

/// payymo's answer to Stripe.
#[derive(Serialize)]
struct Received {
    received: bool,
    duplicate: bool,
}

async fn receive_event(
    State(state): State<Arc<HookState>>,
    Path(connection): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if connection != state.connection {
        return StatusCode::NOT_FOUND.into_response();
    }
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if inbox::verify(signature, &body, &state.secrets, chrono::Utc::now().timestamp()).is_err() {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let is_event = event["object"] == "event"
        && event["id"].as_str().is_some_and(|id| id.starts_with("evt_"))
        && event["type"].is_string();
    if !is_event {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let kept = async {
        let mut conn = state.pool.acquire().await?;
        inbox::keep(&mut conn, &state.tenant, &state.connection, &event, Source::Webhook).await
    }
    .await;
    match kept {
        Ok(kept) => Json(Received { received: true, duplicate: !kept }).into_response(),
        Err(error) => {
            eprintln!("insert failed: {error}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
