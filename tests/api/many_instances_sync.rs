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

#[derive(Debug, sqlx::FromRow)]
struct SyncJob {
    status: String,
    attempts: i32,
    finished_at: Option<DateTime<Utc>>,
    locked_by: Option<String>,
}

/// Refreshes of one connection, nine at a time spread over the three instances while the bank
/// answers slowly and books new credits, start many syncs of each account; whichever instance
/// runs one, it has called the bank and been recorded done before the next one calls the bank,
/// and every transaction is kept once, with one `transaction.created`.
#[tokio::test]
async fn syncs_of_one_account_requested_on_three_instances_never_overlap_and_keep_each_transaction_once() {
    const ROUNDS: usize = 40;
    let bank = Simulator::bank(Some(Duration::from_millis(250))).await;
    let api = format!("{}/api/v2", bank.base);
    let options = TestCluster::get().await.fresh_database().await;
    let mut config = test_config();
    config.sandbox_url = Some(api.clone());
    let fixtures = TestApp::spawn_with(config, options.clone()).await;
    let tenant = fixtures.tenant().await;
    let connection = connect(&fixtures, &tenant).await; // queues each account's first sync
    let id = connection["id"].as_str().unwrap().to_owned();
    let db = fixtures.superuser_pool().await;
    let accounts = accounts(&db, &tenant.id).await;
    let started = Utc::now();
    let servers = three(&options, &[("PAYYMO_WORKERS", "true"), ("PAYYMO_SANDBOX_URL", api.as_str())]).await;
    let pids = pids(&servers);

    // Forty rounds of nine refreshes at once, three to each instance; every fifth round the bank
    // books a new credit on each account first.
    let client = client();
    let today = Utc::now().date_naive().to_string();
    for round in 0..ROUNDS {
        if round % 5 == 0 {
            for (_, provider) in &accounts {
                let credit = json!({"booking_date": today, "amount": "12.34", "counterparty": "Round Payer",
                                    "remittance": format!("ROUND-{round}")});
                let path = format!("/_sandbox/accounts/{provider}/transactions");
                control(&fixtures, &path, json!({ "transactions": [credit] })).await;
            }
        }
        let refreshes = (0..9).map(|i| {
            client
                .post(format!("{}/api/v1/bank_connections/{id}/refresh", servers[i % 3].base))
                .bearer_auth(&tenant.key)
                .send()
        });
        for response in futures_util::future::join_all(refreshes).await {
            let response = response.unwrap();
            assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pending = "select count(*) from jobs where tenant_id = $1 and kind = 'bank.sync_account'
                   and status in ('queued', 'running')";
    until_none(&db, pending, &tenant.id, Duration::from_secs(30)).await;

    let mut ran_on = HashSet::new();
    let mut counts = Vec::new();
    for (account, provider) in &accounts {
        let fetches = syncs_at_the_bank(&bank, provider, started);
        let balances: Vec<Call> = bank
            .calls("GET", &format!("/accounts/{provider}/balances/"))
            .into_iter()
            .filter(|c| c.began >= started)
            .collect();
        let jobs: Vec<SyncJob> = sqlx::query_as(
            "select status, attempts, finished_at, locked_by from jobs
             where kind = 'bank.sync_account' and payload->>'account_id' = $1 order by finished_at, id",
        )
        .bind(account)
        .fetch_all(&db)
        .await
        .unwrap();
        assert!(jobs.iter().all(|j| j.status == "done" && j.attempts == 1), "{jobs:?}");
        assert_eq!(jobs.len(), fetches.len(), "{account}: one call to the bank per sync");
        assert!(fetches.len() >= 10, "{account}: only {} syncs", fetches.len());
        // Sync k called the bank and was recorded done before sync k + 1 called the bank.
        for (k, job) in jobs.iter().enumerate() {
            let finished = job.finished_at.unwrap();
            assert!(fetches[k].ended <= finished, "{account}: sync {k} was done before its answer came");
            if let Some(next) = fetches.get(k + 1) {
                assert!(
                    finished <= next.began,
                    "{account}: sync {} called the bank at {} while sync {k} ran until {finished}",
                    k + 1,
                    next.began
                );
            }
            ran_on.insert(instance_of(&pids, job.locked_by.as_deref().unwrap()));
        }
        // Each sync's balances call falls within that sync.
        assert_eq!(balances.len(), fetches.len(), "{account}: one balances call per sync");
        for (k, call) in balances.iter().enumerate() {
            let within = fetches[k].ended <= call.began && call.ended <= jobs[k].finished_at.unwrap();
            assert!(within, "{account}: balances call {k} outside its sync");
        }
        let (used, day_limit) = budget_used(&db, &tenant.id, account).await;
        assert_eq!(used as usize, fetches.len(), "{account}: the budget counted each call once");
        assert_eq!(day_limit, 10_000, "the bank's own daily limit, not the default 4");
        counts.push(fetches.len());
    }
    assert!(ran_on.len() >= 2, "the syncs all ran on one instance");

    // What the bank lists is kept once: compare with the bank itself.
    let access = sandbox_token(&fixtures).await;
    for (account, provider) in &accounts {
        let listed: Value = browser()
            .get(format!("{api}/accounts/{provider}/transactions/"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ours: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
            "select status, count(*) from transactions where tenant_id = $1 and account_id = $2 group by status",
        )
        .bind(&tenant.id)
        .bind(account)
        .fetch_all(&db)
        .await
        .unwrap()
        .into_iter()
        .collect();
        let theirs = |list: &str| listed["transactions"][list].as_array().unwrap().len() as i64;
        let expected: HashMap<String, i64> = [("booked", theirs("booked")), ("pending", theirs("pending"))]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.to_owned(), n))
            .collect();
        assert_eq!(ours, expected, "{account}: ours by status against the bank's");
        let rounds: Vec<(String, i64)> = sqlx::query_as(
            "select description, count(*) from transactions
             where tenant_id = $1 and account_id = $2 and description like 'ROUND-%' group by description",
        )
        .bind(&tenant.id)
        .bind(account)
        .fetch_all(&db)
        .await
        .unwrap();
        assert_eq!(rounds.len(), ROUNDS / 5, "{account}: every credit the bank booked mid-way: {rounds:?}");
        assert!(rounds.iter().all(|(_, n)| *n == 1), "{account}: {rounds:?}");
    }
    let (kept, created): (i64, i64) = sqlx::query_as(
        "select (select count(*) from transactions where tenant_id = $1),
                (select count(*) from events where tenant_id = $1 and event_type = 'transaction.created')",
    )
    .bind(&tenant.id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(created, kept, "one transaction.created per transaction");
    println!(
        "syncs per account {counts:?} over {:.1} s, on {} instances; {kept} transactions",
        (Utc::now() - started).as_seconds_f64(),
        ran_on.len()
    );
}

/// With a 3 s sync interval and a 1 s scheduling period, three instances left to themselves for
/// 24 s sync the account about once per interval: never twice within one interval, never much
/// later than one; and scheduling itself runs once per period across the three.
#[tokio::test]
async fn scheduled_syncs_on_three_instances_happen_once_per_interval() {
    const INTERVAL: f64 = 3.0;
    const PERIOD: f64 = 1.0;
    // When the account falls due, the next scheduling is at most two periods away (a period,
    // then up to one tick of the ticker); two seconds for queueing, claiming and busy runners.
    const LATEST: f64 = INTERVAL + 2.0 * PERIOD + 2.0;
    let bank = Simulator::bank(None).await;
    let api = format!("{}/api/v2", bank.base);
    let options = TestCluster::get().await.fresh_database().await;
    let mut config = test_config();
    config.sandbox_url = Some(api.clone());
    let fixtures = TestApp::spawn_with(config, options.clone()).await;
    let tenant = fixtures.tenant().await;
    connect(&fixtures, &tenant).await;
    let db = fixtures.superuser_pool().await;
    let accounts = accounts(&db, &tenant.id).await;
    let started = Utc::now();
    let envs = [
        ("PAYYMO_WORKERS", "true"),
        ("PAYYMO_SANDBOX_URL", api.as_str()),
        ("PAYYMO_SYNC_INTERVAL", "3s"),
        ("PAYYMO_BANK_SCHEDULE_PERIOD", "1s"),
    ];
    let mut servers = three(&options, &envs).await;
    let pids = pids(&servers);
    tokio::time::sleep(Duration::from_secs(24)).await;
    // Stopped gracefully, so every sync that called the bank is recorded.
    for pid in pids {
        let status = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
        assert!(status.success());
    }
    for server in &mut servers {
        server.child.wait().await.unwrap();
    }
    let stopped = Utc::now();
    let elapsed = (stopped - started).as_seconds_f64();

    let mut counts = Vec::new();
    for (account, provider) in &accounts {
        let syncs: Vec<DateTime<Utc>> =
            syncs_at_the_bank(&bank, provider, started).into_iter().map(|c| c.began).collect();
        let gaps: Vec<f64> = syncs.windows(2).map(|w| (w[1] - w[0]).as_seconds_f64()).collect();
        // Due again only an interval after its last sync committed, whoever schedules.
        assert!(gaps.iter().all(|g| *g >= INTERVAL), "{account}: two syncs within an interval: {gaps:.2?}");
        assert!(gaps.iter().all(|g| *g <= LATEST), "{account}: a sync came late: {gaps:.2?}");
        let (least, most) = ((elapsed / LATEST).floor() as usize, (elapsed / INTERVAL).floor() as usize + 1);
        assert!(
            (least..=most).contains(&syncs.len()),
            "{account}: {} syncs in {elapsed:.1} s, expected {least} to {most}",
            syncs.len()
        );
        let (used, day_limit) = budget_used(&db, &tenant.id, account).await;
        assert_eq!(used as usize, syncs.len(), "{account}: the budget counted each sync once");
        assert_eq!(day_limit, 10_000, "the bank's own daily limit, not the default 4");
        counts.push((syncs.len(), gaps));
    }

    // Scheduling: queued once per period whichever instance's ticker claimed it, run by any of
    // the three. Claiming a period and queueing its job are two statements, so a job's time may
    // trail its claim's: a quarter of a period is allowed for that between two of them.
    let schedules: Vec<(DateTime<Utc>, Option<String>)> =
        sqlx::query_as("select created_at, locked_by from jobs where kind = 'bank.schedule' order by created_at")
            .fetch_all(&db)
            .await
            .unwrap();
    let most = (elapsed / PERIOD).floor() as usize + 1;
    assert!(schedules.len() <= most, "{} schedulings in {elapsed:.1} s, at most {most}", schedules.len());
    let gaps: Vec<f64> = schedules.windows(2).map(|w| (w[1].0 - w[0].0).as_seconds_f64()).collect();
    assert!(gaps.iter().all(|g| *g >= 0.75 * PERIOD), "scheduled twice in one period: {gaps:.2?}");
    assert!(gaps.iter().all(|g| *g <= 2.0 * PERIOD + 1.0), "a period without scheduling: {gaps:.2?}");
    let ran_on: HashSet<usize> =
        schedules.iter().filter_map(|(_, by)| by.as_deref()).map(|by| instance_of(&pids, by)).collect();
    assert!(ran_on.len() >= 2, "the scheduling all ran on one instance");
    let (shortest, longest) = (gaps.iter().copied().fold(f64::MAX, f64::min), gaps.iter().copied().fold(0.0, f64::max));
    println!(
        "{} schedulings in {elapsed:.1} s on {} instances, {shortest:.2} to {longest:.2} s apart; \
         syncs per account and the gaps between them (s): {counts:.2?}",
        schedules.len(),
        ran_on.len()
    );
}

/// The charge an event is about: a charge event carries it, a refund or dispute event names it.
fn charge_of(event: &Value) -> Option<&str> {
    let object = &event["data"]["object"];
    match object["object"].as_str() {
        Some("charge") => object["id"].as_str(),
        Some("refund" | "dispute") => object["charge"].as_str(),
        _ => None,
    }
}

/// The events of the account at Stripe that its webhook endpoint subscribes to, oldest first.
async fn subscribed_events(app: &TestApp, secret: &str) -> Vec<Value> {
    let endpoints = at_stripe(app, Method::GET, "/v1/webhook_endpoints", secret, &[]).await;
    let enabled: HashSet<&str> =
        endpoints["data"][0]["enabled_events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/v1/events?limit=100".to_owned();
        if let Some(after) = &after {
            path.push_str(&format!("&starting_after={after}"));
        }
        let page = at_stripe(app, Method::GET, &path, secret, &[]).await;
        let data = page["data"].as_array().unwrap();
        events.extend(data.iter().filter(|e| enabled.contains(e["type"].as_str().unwrap())).cloned());
        after = data.last().map(|e| e["id"].as_str().unwrap().to_owned());
        if page["has_more"] != true {
            break;
        }
    }
    events.reverse();
    events
}

/// Thirty card payments, ten of them partly refunded: each of their events is delivered, signed,
/// to all three instances at once, and then again. Each is kept once (one delivery of the six
/// answered as new), applied once (its charge fetched once from Stripe), and each payment is
/// stored once with one `stripe_payment.succeeded`, and one `stripe_payment.refunded` if refunded.
#[tokio::test]
async fn stripe_events_delivered_to_three_instances_at_once_are_kept_once_and_applied_once() {
    const CHARGES: usize = 30;
    let stripe = Simulator::stripe().await;
    let options = TestCluster::get().await.fresh_database().await;
    let mut config = test_config();
    config.stripe_sandbox_url = Some(stripe.base.clone());
    let fixtures = TestApp::spawn_with(config, options.clone()).await;
    let tenant = fixtures.tenant().await;
    let (secret, _) = new_account(&fixtures, &tenant, "Three Instances Ltd").await;
    let connected = json_of(put(&fixtures, &tenant.key, &secret).await, 201).await;
    let connection = connected["id"].as_str().unwrap().to_owned();
    let account = connected["account_id"].as_str().unwrap().to_owned();
    let db = fixtures.superuser_pool().await;
    let servers =
        three(&options, &[("PAYYMO_WORKERS", "true"), ("PAYYMO_STRIPE_SANDBOX_URL", stripe.base.as_str())]).await;
    let pids = pids(&servers);
    // The three's first poll (and the connection's backfill) find nothing; the next poll is a
    // minute away, so what follows is kept from the webhooks alone.
    let polled =
        "select greatest(0, 1 - count(*)) from jobs where tenant_id = $1 and kind = 'stripe.poll' and status = 'done'";
    until_none(&db, polled, &tenant.id, Duration::from_secs(20)).await;
    let busy =
        "select count(*) from jobs where tenant_id = $1 and kind like 'stripe.%' and status in ('queued', 'running')";
    until_none(&db, busy, &tenant.id, Duration::from_secs(20)).await;

    let mut refunded = HashSet::new();
    for n in 0..CHARGES {
        let amount = (1_000 + n).to_string();
        let pay =
            [("amount", amount.as_str()), ("currency", "eur"), ("payment_method", "pm_card_visa"), ("confirm", "true")];
        let intent = at_stripe(&fixtures, Method::POST, "/v1/payment_intents", &secret, &pay).await;
        if n % 3 == 0 {
            let intent_id = intent["id"].as_str().unwrap();
            at_stripe(
                &fixtures,
                Method::POST,
                "/v1/refunds",
                &secret,
                &[("payment_intent", intent_id), ("amount", "100")],
            )
            .await;
            refunded.insert(intent["latest_charge"].as_str().unwrap().to_owned());
        }
    }
    let events = subscribed_events(&fixtures, &secret).await;
    let endpoints: Value = reqwest::Client::new()
        .get(format!("{}/_stripe/webhooks/endpoints", stripe.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = endpoints["endpoints"].as_array().unwrap().iter().find(|e| e["account"] == account.as_str());
    let signing = endpoint.unwrap()["secret"].as_str().unwrap().to_owned();

    // Each event to the three at once, sixteen events at a time; then all of them again.
    let client = client();
    let deliver = |event: &Value, base: &str| {
        let body = event.to_string();
        client
            .post(format!("{base}/api/v1/stripe/webhooks/{connection}"))
            .header("Stripe-Signature", signature(&signing, Utc::now().timestamp(), &body))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let (deliver, bases) = (&deliver, servers.each_ref().map(|s| s.base.as_str()));
    // For each event, the instances that answered it as new (not a duplicate).
    let mut new: HashMap<String, Vec<usize>> = HashMap::new();
    for _ in 0..2 {
        let rounds = futures_util::stream::iter(&events)
            .map(|event| async move {
                let answers = futures_util::future::join_all(bases.map(|base| deliver(event, base))).await;
                (event["id"].as_str().unwrap().to_owned(), answers)
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for (id, answers) in rounds {
            let firsts = new.entry(id).or_default();
            for (instance, answer) in answers.into_iter().enumerate() {
                if json_of(answer.unwrap(), 200).await["duplicate"] == false {
                    firsts.push(instance);
                }
            }
        }
    }
    let unapplied = "select count(*) from stripe_events where tenant_id = $1 and applied_at is null";
    until_none(&db, unapplied, &tenant.id, Duration::from_secs(30)).await;
    until_none(&db, busy, &tenant.id, Duration::from_secs(30)).await;

    assert_eq!(new.len(), events.len());
    assert!(new.values().all(|firsts| firsts.len() == 1), "answered as new by: {new:?}");
    let winners: HashSet<usize> = new.values().flatten().copied().collect();
    assert!(winners.len() >= 2, "one instance kept every event first: the three did not race");
    let kept: Vec<(String, String)> =
        sqlx::query_as("select id, source from stripe_events where tenant_id = $1 order by id")
            .bind(&tenant.id)
            .fetch_all(&db)
            .await
            .unwrap();
    let sent: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(kept.iter().map(|(id, _)| id.as_str()).collect::<HashSet<_>>(), sent, "the inbox holds what was sent");
    assert!(kept.iter().all(|(_, source)| source == "webhook"), "{kept:?}");

    // One payment per charge, as Stripe has it.
    let charges = at_stripe(&fixtures, Method::GET, "/v1/charges?limit=100", &secret, &[]).await;
    let charges: HashMap<String, i64> = charges["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_owned(), c["amount_refunded"].as_i64().unwrap()))
        .collect();
    assert_eq!(charges.len(), CHARGES);
    let payments: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("select id, amount_refunded from stripe_payments where tenant_id = $1")
            .bind(&tenant.id)
            .fetch_all(&db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(payments, charges, "stored payments against Stripe's charges");

    // One announcement per change, whichever instance applied which event.
    let announced: Vec<(String, String, i64)> = sqlx::query_as(
        "select event_type, data->>'id', count(*) from events
         where tenant_id = $1 and event_type like 'stripe_payment.%' group by 1, 2",
    )
    .bind(&tenant.id)
    .fetch_all(&db)
    .await
    .unwrap();
    let times = |event_type: &str, charge: &str| {
        announced.iter().find(|(t, c, _)| t == event_type && c == charge).map_or(0, |(_, _, n)| *n)
    };
    for charge in charges.keys() {
        assert_eq!(times("stripe_payment.succeeded", charge), 1, "{charge}");
        let refunds = i64::from(refunded.contains(charge));
        assert_eq!(times("stripe_payment.refunded", charge), refunds, "{charge}");
    }
    assert_eq!(announced.iter().map(|(_, _, n)| n).sum::<i64>() as usize, CHARGES + refunded.len(), "{announced:?}");

    // Applying an event fetches its charge: once per event naming the charge.
    let mut named: HashMap<String, usize> = HashMap::new();
    for charge in events.iter().filter_map(charge_of) {
        *named.entry(charge.to_owned()).or_default() += 1;
    }
    let mut fetched: HashMap<String, usize> = HashMap::new();
    for call in stripe.calls("GET", "/v1/charges/") {
        *fetched.entry(call.path.trim_start_matches("/v1/charges/").to_owned()).or_default() += 1;
    }
    assert_eq!(fetched, named, "charge fetches against the events naming each charge");
    let jobs: Vec<(String, i32, Option<String>)> =
        sqlx::query_as("select status, attempts, locked_by from jobs where tenant_id = $1 and kind = 'stripe.apply'")
            .bind(&tenant.id)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(jobs.iter().all(|(status, _, _)| status == "done"), "{jobs:?}");
    let ran_on: HashSet<usize> =
        jobs.iter().filter_map(|(_, _, by)| by.as_deref()).map(|by| instance_of(&pids, by)).collect();
    let retried = jobs.iter().filter(|(_, attempts, _)| *attempts > 1).count();
    let kept_by: Vec<usize> = (0..3).map(|i| new.values().filter(|firsts| firsts[0] == i).count()).collect();
    println!(
        "{} events ({} naming a charge) delivered 6 times each, kept first by the three {kept_by:?}; \
         {} apply jobs on {} instances, {retried} retried",
        events.len(),
        named.values().sum::<usize>(),
        jobs.len(),
        ran_on.len()
    );
}
