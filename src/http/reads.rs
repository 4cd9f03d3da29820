//! Which endpoints may read from the replica (`DATABASE_READ_URL`), the [`Reader`] their
//! handlers begin with, the middleware that keeps read-your-writes, and what the OpenAPI document
//! says about each endpoint. The routing itself is [`crate::db::replica`].

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
};

use axum::{
    body::Body,
    extract::{FromRequestParts, MatchedPath, Request, State},
    http::{HeaderValue, Method, StatusCode, request::Parts},
    middleware::Next,
    response::Response,
};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::{
    auth::Principal,
    db::replica::{Reads, Source},
    domain::ids::TenantId,
    state::AppState,
};

/// The response header that says a read was served by the replica (absent: the primary).
pub const READ_FROM_HEADER: &str = "payymo-read-from";

/// The endpoints that may read from the replica: lists, gets, stats and exports of the data a
/// tenant accumulates. Configuration (keys, members, endpoints, rules, settings), the
/// reconciliation inbox, the changes feeds and everything that writes use the primary.
pub const REPLICA_READS: &[&str] = &[
    "/api/v1/accounts",
    "/api/v1/accounts/{id}",
    "/api/v1/transactions",
    "/api/v1/transactions/{id}",
    "/api/v1/transactions/stats",
    "/api/v1/transactions/export",
    "/api/v1/customers",
    "/api/v1/customers/{id}",
    "/api/v1/invoices",
    "/api/v1/invoices/{id}",
    "/api/v1/events",
    "/api/v1/events/{id}",
    "/api/v1/stripe/payments",
    "/api/v1/stripe/payments/{id}",
    "/api/v1/stripe/payouts",
    "/api/v1/stripe/payouts/{id}",
    "/api/v1/stripe/payouts/{id}/balance_transactions",
    "/api/v1/reconciliation/matches",
    "/api/v1/reconciliation/matches/{id}",
    "/api/v1/reconciliation/report",
];

const REPLICA_DOC: &str = "**Database:** with a read replica configured (`DATABASE_READ_URL`), \
    this read is served by the replica while it is at most `PAYYMO_REPLICA_MAX_LAG` (default \
    500 ms) behind the primary, so it may miss changes others made in that time (a resource the \
    replica does not have is looked up again on the primary before the answer is 404). It sees \
    the caller's own writes: on any instance when the deployment runs Redis, else on the \
    instance that took the write. Otherwise it reads the primary. A response served by the \
    replica carries `Payymo-Read-From: replica`.";
const PRIMARY_READ_DOC: &str = "**Database:** always reads the primary, never the read replica.";
const WRITE_DOC: &str = "**Database:** runs on the primary. The caller's later reads see this \
    write even where a read replica serves them (on every instance when the deployment runs \
    Redis).";
const PUBLIC_WRITE_DOC: &str = "**Database:** runs on the primary.";

/// Sends every read of this request to the primary (a retry after the replica failed).
#[derive(Debug, Clone, Copy)]
struct OnPrimary;

/// Marks that a read of this request was served by the replica.
#[derive(Debug, Clone, Default)]
struct ServedByReplica(Arc<AtomicBool>);

/// How a handler of a [`REPLICA_READS`] endpoint begins its read: on the replica when
/// [`crate::db::replica::Reads::route`] allows it, else on the primary.
pub struct Reader {
    reads: Arc<Reads>,
    caller: String,
    served: Option<ServedByReplica>,
    on_primary: bool,
    /// Where this request's first read went ([`UNDECIDED`], [`PRIMARY`] or [`REPLICA`]); its
    /// later reads follow, so that one answer never steps back in time.
    decided: AtomicU8,
}

const UNDECIDED: u8 = 0;
const PRIMARY: u8 = 1;
const REPLICA: u8 = 2;

impl FromRequestParts<AppState> for Reader {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        if let Some(path) = parts.extensions.get::<MatchedPath>() {
            debug_assert!(
                REPLICA_READS.contains(&path.as_str()),
                "{} reads through a Reader but is not listed in REPLICA_READS",
                path.as_str()
            );
        }
        let caller = parts.extensions.get::<Principal>().map(caller).unwrap_or_default();
        let served = parts.extensions.get::<ServedByReplica>().cloned();
        let on_primary = parts.extensions.get::<OnPrimary>().is_some();
        Ok(Self { reads: state.reads.clone(), caller, served, on_primary, decided: AtomicU8::new(UNDECIDED) })
    }
}

impl Reader {
    /// A read-only transaction bound to `tenant` (see [`crate::db::tenant::begin_tenant`]).
    pub async fn begin(&self, tenant: &TenantId) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let (tx, source) = match self.decided.load(Ordering::Relaxed) {
            _ if self.on_primary => self.reads.primary_route().begin(tenant).await?,
            UNDECIDED => self.reads.route(&self.caller).await.begin(tenant).await?,
            REPLICA => self.reads.replica_route().begin(tenant).await?,
            _ => self.reads.primary_route().uncounted().begin(tenant).await?,
        };
        // Once on the primary (chosen, or the replica failed), stay there.
        let decided = if source == Source::Replica { REPLICA } else { PRIMARY };
        self.decided.store(decided, Ordering::Relaxed);
        if let (Some(served), Source::Replica) = (&self.served, source) {
            served.0.store(true, Ordering::Relaxed);
        }
        Ok(tx)
    }
}

/// Who a write mark belongs to: the tenant and the credential, as rate limits count callers.
fn caller(principal: &Principal) -> String {
    format!("{}:{}", principal.tenant.id, principal.credential_id())
}

/// With a replica: tags replica-served reads with [`READ_FROM_HEADER`], answers a read that failed
/// on the replica (it went away mid-query, or cancelled the query to replay WAL) again from the
/// primary, and after every request that may write, records the caller's write mark before the
/// answer leaves, so that its next read (on any instance, with Redis) waits for the replica or
/// goes to the primary.
pub async fn middleware(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if !state.reads.has_replica() {
        return next.run(request).await;
    }
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        let served = ServedByReplica::default();
        request.extensions_mut().insert(served.clone());
        let (parts, body) = request.into_parts();
        let retry = parts.clone();
        let mut response = next.clone().run(Request::from_parts(parts, body)).await;
        if served.0.load(Ordering::Relaxed) {
            let failed = response.status().is_server_error();
            // A 404 there may be a resource created moments ago by someone else (a webhook's
            // receiver fetching what the event names): the primary has the last word on absence.
            if failed || response.status() == StatusCode::NOT_FOUND {
                // A GET has no effect to repeat, and its body is empty: run it again, on the primary.
                if failed {
                    tracing::warn!(status = %response.status(), "a read failed on the replica; answering it from the primary");
                    state.reads.replica_failed();
                }
                let mut retry = Request::from_parts(retry, Body::empty());
                retry.extensions_mut().insert(OnPrimary);
                retry.extensions_mut().remove::<ServedByReplica>();
                return next.run(retry).await;
            }
            response.headers_mut().insert(READ_FROM_HEADER, HeaderValue::from_static("replica"));
        }
        return response;
    }
    let caller = request.extensions().get::<Principal>().map(caller);
    let response = next.run(request).await;
    if let Some(caller) = caller {
        state.reads.wrote(&caller).await;
    }
    response
}

/// Adds to each `/api/v1` operation's description which database it uses.
pub fn document(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            let text = match method.as_str() {
                "get" if REPLICA_READS.contains(&path.as_str()) => REPLICA_DOC,
                "get" => PRIMARY_READ_DOC,
                "post" | "put" | "patch" | "delete" if operation.get("security").is_some() => WRITE_DOC,
                "post" | "put" | "patch" | "delete" => PUBLIC_WRITE_DOC,
                _ => continue,
            };
            let Some(operation) = operation.as_object_mut() else { continue };
            let description = match operation.get("description").and_then(Value::as_str) {
                Some(existing) if !existing.is_empty() => format!("{existing}\n\n{text}"),
                _ => text.to_owned(),
            };
            operation.insert("description".into(), Value::String(description));
        }
    }
}
