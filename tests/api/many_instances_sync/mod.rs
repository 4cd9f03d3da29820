//! Three `payymo serve` processes on one database share the background work as one service: an
//! account's syncs never overlap whichever instance runs them, scheduled syncs happen once per
//! sync interval across the three, and Stripe's events, each delivered to all three at once and
//! then again, are kept once and applied once.
//!
//! The simulators are served by the test itself, so that they record every call they answer and
//! when: the bank's timeline is the evidence that no two syncs of an account overlapped, Stripe's
//! that each event was applied once. The bank allows 10,000 calls a day per account and endpoint,
//! as a bank may (the in-process sandbox allows the usual 4): with 4, Payymo's budget would stop
//! the syncs after four and hide a duplicate.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{extract::Request, middleware::Next};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use payymo::sandbox::{
    gocardless::{self, Clock, CompanyLimits, SandboxConfig, SandboxState},
    stripe::{StripeSim, signature},
};

use crate::{
    many_instances::three,
    stripe::{at_stripe, new_account, put},
    support::{
        TestApp, TestCluster,
        bank::{browser, connect, control, sandbox_token},
        client, json_of,
        process::Server,
        test_config,
    },
};

/// A call a simulator answered, by the wall clock (comparable with Postgres's `now()`).
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    began: DateTime<Utc>,
    ended: DateTime<Utc>,
}

/// A simulator served by the test, recording every call it answers. Calls whose path contains
/// `slow.0` are answered after `slow.1`, as by a bank that takes its time.
struct Simulator {
    base: String,
    calls: Arc<Mutex<Vec<Call>>>,
    shutdown: CancellationToken,
}

impl Simulator {
    async fn serve(router: axum::Router, slow: Option<(&'static str, Duration)>) -> Simulator {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let record = calls.clone();
        let router = router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
            let record = record.clone();
            async move {
                let (method, path) = (request.method().to_string(), request.uri().path().to_owned());
                let began = Utc::now();
                if let Some((part, delay)) = slow
                    && path.contains(part)
                {
                    tokio::time::sleep(delay).await;
                }
                let response = next.run(request).await;
                record.lock().unwrap().push(Call { method, path, began, ended: Utc::now() });
                response
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await }).await
        });
        Simulator { base, calls, shutdown }
    }

    /// A GoCardless bank allowing 10,000 calls a day per account and endpoint.
    async fn bank(slow_transactions: Option<Duration>) -> Simulator {
        let config = SandboxConfig {
            daily_account_limit: 10_000,
            company_limits: CompanyLimits { accounts_per_minute: 10_000, ..CompanyLimits::default() },
            ..SandboxConfig::default()
        };
        let bank = SandboxState::with_config(42, Clock::system(), config);
        Self::serve(gocardless::router(bank), slow_transactions.map(|delay| ("/transactions/", delay))).await
    }

    /// Stripe, delivering no webhooks of its own: the test delivers them.
    async fn stripe() -> Simulator {
        Self::serve(payymo::sandbox::stripe::router(StripeSim::new(42, Clock::system())), None).await
    }

    /// The `method` calls whose path contains `part`, in the order they began.
    fn calls(&self, method: &str, part: &str) -> Vec<Call> {
        let mut calls: Vec<Call> = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method && c.path.contains(part))
            .cloned()
            .collect();
        calls.sort_by_key(|c| c.began);
        calls
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The process ids of the three, to tell from a job's `locked_by` (`host-pid`) which one ran it.
fn pids(servers: &[Server; 3]) -> [u32; 3] {
    servers.each_ref().map(|s| s.child.id().unwrap())
}

fn instance_of(pids: &[u32; 3], locked_by: &str) -> usize {
    let pid: u32 = locked_by.rsplit('-').next().and_then(|p| p.parse().ok()).unwrap_or(0);
    pids.iter().position(|p| *p == pid).unwrap_or_else(|| panic!("{locked_by} is none of the three"))
}

/// Waits, `limit` at most, until the count `sql` (with `tenant` as `$1`) is zero.
async fn until_none(db: &PgPool, sql: &str, tenant: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left: i64 = sqlx::query_scalar(sql).bind(tenant).fetch_one(db).await.unwrap();
        if left == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{left} left after {limit:?}: {sql}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A tenant's linked accounts: (id, the bank's id).
async fn accounts(db: &PgPool, tenant: &str) -> Vec<(String, String)> {
    sqlx::query_as("select id, provider_account_id from bank_accounts where tenant_id = $1 order by id")
        .bind(tenant)
        .fetch_all(db)
        .await
        .unwrap()
}

/// Calls to the account's transactions endpoint since `since`: one per sync.
fn syncs_at_the_bank(bank: &Simulator, provider: &str, since: DateTime<Utc>) -> Vec<Call> {
    let path = format!("/accounts/{provider}/transactions/");
    bank.calls("GET", &path).into_iter().filter(|c| c.began >= since).collect()
}

/// The calls Payymo counted against the account's daily transactions budget.
async fn budget_used(db: &PgPool, tenant: &str, account: &str) -> (i64, i32) {
    sqlx::query_as(
        "select coalesce(sum(used), 0)::int8, coalesce(max(day_limit), 0) from provider_call_budgets
         where tenant_id = $1 and account_id = $2 and endpoint = 'transactions'",
    )
    .bind(tenant)
    .bind(account)
    .fetch_one(db)
    .await
    .unwrap()
}

mod bank;
mod stripe;
