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
//!
//! Prints `listening on http://ADDR` to stderr once bound, and serves until killed.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, bail};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use payymo::tenancy::{API_KEY_COLUMNS, ApiKey};
use serde::Serialize;
use sqlx::{PgPool, postgres::PgPoolOptions};

/// The cases this baseline serves, named as in `bench/run`.
const CASES: &[&str] = &["healthz", "api-key-get"];

/// Pool size for the database cases: `PAYYMO_DB_MAX_CONNECTIONS`'s default (src/config.rs), so
/// both servers queue for the same number of connections.
const MAX_CONNECTIONS: u32 = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let usage = || {
        format!(
            "usage: bench-baseline CASE HOST:PORT [ARGS] (CASE: {}; api-key-get takes DATABASE_URL TENANT_ID)",
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
    let session_tenant = tenant.to_owned();
    let pool = PgPoolOptions::new()
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
        .context("cannot connect to the database")?;
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
