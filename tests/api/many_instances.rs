//! Many `payymo serve` processes on one database behave as one service: one rate limit across
//! three (through Redis), migrations applied once when three start together, one effect for one idempotency key sent to all three, one
//! reconciliation run per tenant at a time, and automatic matching racing on three instances
//! matching each credit once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{PgPool, postgres::PgConnectOptions};

use payymo::auth::{Environment, Plan};

use crate::{
    reconciliation_matches::{SCOPES, credits, invoice},
    support::{
        APP_PASSWORD, TestApp, TestCluster, client,
        process::{Server, database_url, redis, serve},
        receiver::Receiver,
        test_config,
    },
};

/// Three `payymo serve` processes on `options`' database, started at the same moment.
pub(crate) async fn three(options: &PgConnectOptions, envs: &[(&str, &str)]) -> [Server; 3] {
    let url = database_url(options, APP_PASSWORD);
    let mut all = vec![("DATABASE_URL", url.as_str()), ("PAYYMO_LOG", "info")];
    all.extend_from_slice(envs);
    let (a, b, c) = tokio::join!(serve(&all), serve(&all), serve(&all));
    [a, b, c]
}

/// A superuser pool on `options`' database, for a test with no in-process app to ask
/// (`TestApp::superuser_pool`).
async fn superuser(options: &PgConnectOptions) -> PgPool {
    let name = options.get_database().unwrap();
    PgPool::connect_with(TestCluster::get().await.superuser(name)).await.unwrap()
}

#[tokio::test]
async fn three_instances_started_together_on_an_empty_database_apply_the_migrations_once() {
    let options = TestCluster::get().await.empty_database().await;
    let servers = three(&options, &[]).await;
    for server in &servers {
        let ready = client().get(format!("{}/readyz", server.base)).send().await.unwrap();
        assert_eq!(ready.status(), 200, "{}", server.base);
    }
    let db = superuser(&options).await;
    let twice: Vec<i64> =
        sqlx::query_scalar("select version from _sqlx_migrations group by version having count(*) > 1")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    let applied: i64 =
        sqlx::query_scalar("select count(*) from _sqlx_migrations where success").fetch_one(&db).await.unwrap();
    assert_eq!(applied as usize, payymo::db::MIGRATOR.iter().count());
}

#[tokio::test]
async fn one_idempotency_key_sent_to_three_instances_at_once_acts_once() {
    let options = TestCluster::get().await.fresh_database().await;
    let fixtures = TestApp::spawn_with(test_config(), options.clone()).await;
    let tenant = fixtures.tenant().await;
    let servers = three(&options, &[("PAYYMO_WORKERS", "false")]).await;

    let client = client();
    let requests = (0..30).map(|i| {
        client
            .post(format!("{}/api/v1/invoices", servers[i % 3].base))
            .bearer_auth(&tenant.key)
            .header("idempotency-key", "three-instances-1")
            .json(&json!({"number": "INV-3X-1", "currency": "EUR", "amount_total": 1000}))
            .send()
    });
    let (mut originals, mut replays, mut in_flight) = (0, 0, 0);
    for response in futures_util::future::join_all(requests).await {
        let response = response.unwrap();
        match (response.status().as_u16(), response.headers().contains_key("idempotent-replayed")) {
            (201, false) => originals += 1,
            (201, true) => replays += 1,
            (409, _) => in_flight += 1,
            (status, _) => panic!("unexpected {status}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!(originals, 1, "{originals} originals, {replays} replays, {in_flight} in flight");
    let listed: Value = fixtures
        .as_key(Method::GET, "/api/v1/invoices?number=INV-3X-1", &tenant.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn three_instances_start_one_reconciliation_run_per_tenant_at_a_time() {
    let options = TestCluster::get().await.fresh_database().await;
    let fixtures = TestApp::spawn_with(test_config(), options.clone()).await;
    let tenant = fixtures.tenant().await;
    // No workers: the run stays queued, so every later request meets it in progress.
    let servers = three(&options, &[("PAYYMO_WORKERS", "false")]).await;
    let client = client();
    let requests = (0..9).map(|i| {
        client
            .post(format!("{}/api/v1/reconciliation/runs", servers[i % 3].base))
            .bearer_auth(&tenant.key)
            .json(&json!({}))
            .send()
    });
    let statuses: Vec<u16> =
        futures_util::future::join_all(requests).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 8, "{statuses:?}");
}

#[tokio::test]
async fn automatic_matching_racing_on_three_instances_matches_each_credit_once() {
    let options = TestCluster::get().await.fresh_database().await;
    let fixtures = TestApp::spawn_with(test_config(), options.clone()).await;
    let tenant = fixtures.tenant().await;
    let key = fixtures.key(&tenant, SCOPES).await;
    let count = 60;
    for n in 0..count {
        invoice(
            &fixtures,
            &key,
            json!({"number": format!("RACE-{n:04}"), "currency": "EUR", "amount_total": 1000 + n}),
        )
        .await;
    }
    // Three engines wake on the same import's job and on their own sweeps.
    let servers = three(&options, &[("PAYYMO_WORKERS", "true")]).await;
    let rows: Vec<Value> = (0..count)
        .map(|n| json!({"amount": format!("{}.{:02}", (1000 + n) / 100, (1000 + n) % 100), "description": format!("PAYMENT RACE-{n:04}")}))
        .collect();
    let txns = credits(&fixtures, &key, "EUR", &rows).await;
    for _ in 0..3 {
        client()
            .post(format!("{}/api/v1/reconciliation/runs", servers[0].base))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
    }

    let db = fixtures.superuser_pool().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let matched: i64 = sqlx::query_scalar(
            "select count(*) from transactions where tenant_id = $1 and id = any($2) and match_status = 'matched'",
        )
        .bind(&tenant.id)
        .bind(&txns)
        .fetch_one(&db)
        .await
        .unwrap();
        if matched as usize == txns.len() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {matched} of {} matched within 60 s", txns.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let twice: Vec<String> = sqlx::query_scalar(
        "select mt.transaction_id from reconciliation_match_transactions mt
         join reconciliation_matches m on m.tenant_id = mt.tenant_id and m.id = mt.match_id
         where mt.tenant_id = $1 and m.status = 'active' group by mt.transaction_id having count(*) > 1",
    )
    .bind(&tenant.id)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(twice.is_empty(), "matched twice: {twice:?}");
    let wrong: i64 = sqlx::query_scalar(
        "select count(*) from invoices where tenant_id = $1 and (amount_paid <> amount_total or status <> 'paid')",
    )
    .bind(&tenant.id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(wrong, 0, "every invoice paid exactly once");
    drop(servers);
}

/// A client spreading its requests over three instances is held to its plan's one limit, and
/// the rate-limit headers agree whichever instance answers.
#[tokio::test]
async fn a_client_spread_over_three_instances_is_held_to_one_limit() {
    let redis = redis().await;
    let options = TestCluster::get().await.fresh_database().await;
    let fixtures = TestApp::spawn_with(test_config(), options.clone()).await;
    let steady = fixtures.tenant_with(Environment::Test, Plan::Free).await;
    let burst = fixtures.tenant_with(Environment::Test, Plan::Free).await;
    let limits = "free=100/1h,standard=600/1m,premium=6000/1m";
    let servers = three(&options, &[("REDIS_URL", redis.url.as_str()), ("PAYYMO_RATE_LIMITS", limits)]).await;
    let client = client();

    // One after another, round the three: one count, whoever answers.
    let mut remaining = Vec::new();
    for i in 0..9 {
        let response =
            client.get(format!("{}/api/v1/me", servers[i % 3].base)).bearer_auth(&steady.key).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-rate-limit-limit"], "100");
        remaining.push(response.headers()["x-rate-limit-remaining"].to_str().unwrap().parse::<i64>().unwrap());
    }
    assert_eq!(remaining, (91..=99).rev().collect::<Vec<i64>>(), "one count across the three instances");

    // All at once: 300 requests, 100 a client's worth.
    let requests =
        (0..300).map(|i| client.get(format!("{}/api/v1/me", servers[i % 3].base)).bearer_auth(&burst.key).send());
    let statuses: Vec<u16> =
        futures_util::future::join_all(requests).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(allowed + statuses.iter().filter(|s| **s == 429).count(), 300, "{statuses:?}");
    assert!((95..=105).contains(&allowed), "{allowed} of 300 allowed against a limit of 100");
}

/// Three dispatchers drain a 20,000-event backlog to one endpoint; one is killed with SIGKILL
/// halfway. Every event arrives; an event arrives twice only when the killed instance had sent
/// it without recording the outcome, and then only after that attempt's lease ran out: no two
/// live instances ever send the same attempt.
#[tokio::test]
async fn three_dispatchers_drain_20000_events_with_one_killed_halfway_and_send_no_attempt_twice() {
    const EVENTS: usize = 20_000;
    let options = TestCluster::get().await.fresh_database().await;
    let fixtures = TestApp::spawn_with(test_config(), options.clone()).await;
    let tenant = fixtures.tenant().await;
    let receiver = Receiver::start().await;
    crate::webhooks::create_endpoint(&fixtures, &tenant, &receiver.url, &["*"]).await;
    let su = fixtures.superuser_pool().await;
    let envs = [
        ("PAYYMO_WORKERS", "true"),
        ("PAYYMO_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("PAYYMO_WEBHOOK_TIMEOUT", "2s"),
        ("PAYYMO_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s"),
    ];
    let [first, mut second, third] = three(&options, &envs).await;
    let pid = second.child.id().unwrap();

    let started = Instant::now();
    crate::webhooks::insert_events(&su, &tenant, i32::try_from(EVENTS).unwrap()).await;
    let distinct = |receiver: &Receiver| {
        receiver
            .received()
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    while distinct(&receiver) < EVENTS / 2 {
        assert!(started.elapsed() < Duration::from_secs(120), "{} of {EVENTS} in 120 s", distinct(&receiver));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.child.kill().await.unwrap(); // SIGKILL: nothing recorded on the way out
    second.child.wait().await.unwrap();
    let killed = Instant::now();
    // What the dead instance had claimed and not recorded, and how long each lease had to run.
    let leased: HashMap<String, f64> = sqlx::query_as::<_, (String, f64)>(
        "select event_id, extract(epoch from next_attempt_at - now())::float8 from webhook_deliveries
         where status = 'pending' and locked_by like '%-' || $1",
    )
    .bind(pid.to_string())
    .fetch_all(&su)
    .await
    .unwrap()
    .into_iter()
    .collect();

    let deadline = killed + Duration::from_secs(120);
    while distinct(&receiver) < EVENTS {
        assert!(Instant::now() < deadline, "{} of {EVENTS} arrived within 120 s of the kill", distinct(&receiver));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = started.elapsed();
    let settled = Instant::now() + Duration::from_secs(60);
    loop {
        let pending: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries where status <> 'succeeded'")
            .fetch_one(&su)
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < settled, "{pending} deliveries not settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut arrivals: HashMap<String, Vec<Instant>> = HashMap::new();
    for received in receiver.received() {
        arrivals.entry(received.header("webhook-id").to_owned()).or_default().push(received.at);
    }
    // A held attempt is taken over by a live instance only when its lease has run out.
    for (event, lease) in &leased {
        for at in arrivals.get(event).into_iter().flatten().filter(|at| **at > killed) {
            let after = at.duration_since(killed).as_secs_f64();
            assert!(after >= lease - 0.5, "{event} was sent {after:.1} s after the kill, its lease ran {lease:.1} s");
        }
    }
    let twice: Vec<(&String, &Vec<Instant>)> = arrivals.iter().filter(|(_, at)| at.len() > 1).collect();
    for (event, at) in &twice {
        let lease =
            leased.get(*event).unwrap_or_else(|| panic!("{event} arrived twice but the dead instance did not hold it"));
        assert_eq!(at.len(), 2, "{event} arrived {} times", at.len());
        let again = at.iter().max().unwrap();
        // Half a second for the clocks of the test and the database to disagree.
        assert!(
            again.duration_since(killed).as_secs_f64() >= lease - 0.5,
            "{event} was sent again {:?} after the kill, before its lease of {lease:.1} s ran out",
            again.duration_since(killed)
        );
    }
    println!(
        "{EVENTS} events drained by three dispatchers in {drained:?} (one killed after {:?}); {} held by it, \
         {} sent twice, after their leases",
        killed - started,
        leased.len(),
        twice.len()
    );
    drop((first, third));
}

/// Under steady traffic, each of three instances is stopped (SIGTERM) and started again in turn.
/// Every request the service accepted is answered and kept, and every kept invoice has its event.
/// Clients send again, with the same idempotency key, what was refused or cut off before an
/// answer: a connection still in the kernel's queue when an instance closes its listener is
/// reset, which TCP cannot avoid. That the service never did such a request's work is checked:
/// the resend is never a replay.
#[tokio::test]
async fn a_rolling_restart_under_traffic_loses_no_accepted_request_and_no_event() {
    let options = TestCluster::get().await.fresh_database().await;
    let fixtures = TestApp::spawn_with(test_config(), options.clone()).await;
    let tenant = fixtures.tenant().await;
    let servers = three(&options, &[("PAYYMO_WORKERS", "false")]).await;
    let bases: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(servers.iter().map(|s| s.base.clone()).collect()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Four clients, each a new connection per request (no pooled connection to a closed server).
    let traffic = (0..4).map(|client_no| {
        let (bases, stop, key) = (bases.clone(), stop.clone(), tenant.key.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
            let (mut created, mut refused, mut reset, mut n) = (Vec::new(), 0, 0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let number = format!("RR-{client_no}-{n:05}");
                let (mut attempt, mut after_reset) = (0, false);
                loop {
                    let base = { bases.lock().unwrap()[(n + attempt) % 3].clone() };
                    let sent = client
                        .post(format!("{base}/api/v1/invoices"))
                        .bearer_auth(&key)
                        .header("idempotency-key", &number)
                        .json(&json!({"number": number, "currency": "EUR", "amount_total": 100}))
                        .send()
                        .await;
                    match sent {
                        Ok(response) => {
                            // A replay after a reset would mean the service had done the work
                            // and lost the answer.
                            let replayed = response.headers().contains_key("idempotent-replayed");
                            assert!(!(after_reset && replayed), "{number} was accepted, then its answer was lost");
                            assert_eq!(response.status(), 201, "{number}: {}", response.text().await.unwrap());
                            created.push(number);
                            break;
                        }
                        // Refused: that instance is down; try the next one.
                        Err(error) if error.is_connect() => refused += 1,
                        // The connection went down before an answer: a connection the kernel
                        // had queued when the stopping instance closed its listener. Safe to
                        // send again with the same key; the replay check above says whether
                        // the service had taken it.
                        Err(_) => {
                            reset += 1;
                            after_reset = true;
                        }
                    }
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            (created, refused, reset)
        })
    });
    let traffic: Vec<_> = traffic.collect();

    let url = database_url(&options, APP_PASSWORD);
    let envs = [("DATABASE_URL", url.as_str()), ("PAYYMO_LOG", "info"), ("PAYYMO_WORKERS", "false")];
    let mut servers = servers;
    for (i, server) in servers.iter_mut().enumerate() {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let pid = server.child.id().unwrap();
        let status = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
        assert!(status.success());
        server.child.wait().await.unwrap();
        let replacement = serve(&envs).await;
        bases.lock().unwrap()[i] = replacement.base.clone();
        *server = replacement;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let (mut created, mut refused, mut reset) = (Vec::new(), 0, 0);
    for client in traffic {
        let (made, turned_away, cut) = client.await.unwrap();
        created.extend(made);
        refused += turned_away;
        reset += cut;
    }
    let db = fixtures.superuser_pool().await;
    let stored: Vec<String> = sqlx::query_scalar("select number from invoices where tenant_id = $1")
        .bind(&tenant.id)
        .fetch_all(&db)
        .await
        .unwrap();
    let mut expected = created.clone();
    expected.sort();
    let mut stored = stored;
    stored.sort();
    assert_eq!(stored, expected, "every accepted invoice is kept, and nothing else");
    let events: i64 =
        sqlx::query_scalar("select count(*) from events where tenant_id = $1 and event_type = 'invoice.created'")
            .bind(&tenant.id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(events as usize, created.len(), "one invoice.created per invoice");
    println!(
        "rolling restart: {} invoices created; {refused} refused connections and {reset} connections reset \
         before an answer retried, none of them work already done",
        created.len()
    );
}
