//! An account's syncs across three instances: never two at once, and once per interval when
//! scheduled.

use super::*;

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
    // trail its claim's: half a period is allowed for that between two of them (two claims in
    // one period, by tickers that run in step, would be milliseconds apart).
    let schedules: Vec<(DateTime<Utc>, Option<String>)> =
        sqlx::query_as("select created_at, locked_by from jobs where kind = 'bank.schedule' order by created_at")
            .fetch_all(&db)
            .await
            .unwrap();
    let most = (elapsed / PERIOD).floor() as usize + 1;
    assert!(schedules.len() <= most, "{} schedulings in {elapsed:.1} s, at most {most}", schedules.len());
    let gaps: Vec<f64> = schedules.windows(2).map(|w| (w[1].0 - w[0].0).as_seconds_f64()).collect();
    assert!(gaps.iter().all(|g| *g >= 0.5 * PERIOD), "scheduled twice in one period: {gaps:.2?}");
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
