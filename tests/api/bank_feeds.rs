//! Bank feeds end to end: institutions, a bank connection through the sandbox's consent page and
//! our callback, background sync into transactions and events, pending entries that book,
//! provider faults, expiry, budgets and bad input. The GoCardless side is the project's own
//! simulator, started by the application for test-mode tenants.

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    TestApp,
    bank::{all_transactions, browser, connect, control, drain, event_counts, sandbox_token},
    json_of, problem,
};

#[tokio::test]
async fn connect_a_bank_and_sync_its_transactions() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;

    let banks =
        json_of(app.as_key(Method::GET, "/api/v1/institutions?country=gb", &tenant.key).send().await.unwrap(), 200)
            .await;
    assert!(banks.as_array().unwrap().iter().any(|b| b["id"] == "SANDBOXFINANCE_SFIN0000"), "{banks}");

    let connection = connect(&app, &tenant).await;
    assert_eq!(connection["status"], "linked", "{connection}");
    assert!(connection["consent_link"].is_null());
    assert!(connection["expires_at"].is_string());
    let accounts = connection["accounts"].as_array().unwrap();
    assert!(!accounts.is_empty());
    for account in accounts {
        assert!(account["iban"].as_str().unwrap().starts_with("GB"));
        assert_eq!(account["currency"], "GBP");
        let balances = account["balances"].as_array().unwrap();
        assert!(balances.iter().all(|b| b["amount"].is_i64()), "{balances:?}");
    }
    // Linking read details and balances once per account.
    assert_eq!(connection["sync_budget"]["details_remaining"], 3);
    assert_eq!(connection["sync_budget"]["transactions_remaining"], 4);

    // The first sync was queued by the callback.
    assert!(drain(&app).await >= accounts.len());
    let transactions = all_transactions(&app, &tenant, "").await;
    assert!(transactions.len() > 20, "months of history: {}", transactions.len());
    let ids: HashSet<&str> = transactions.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), transactions.len(), "paging repeats nothing");
    for t in &transactions {
        assert!(t["amount"].is_i64() && t["currency"] == "GBP", "{t}");
        assert!(["booked", "pending"].contains(&t["status"].as_str().unwrap()), "{t}");
    }
    let dates: Vec<&str> =
        transactions.iter().map(|t| t["booking_date"].as_str().or(t["value_date"].as_str()).unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(transactions.iter().any(|t| t["description"].as_str().unwrap_or("").to_lowercase().contains("inv")));

    let one = &transactions[0];
    let fetched = json_of(
        app.as_key(Method::GET, &format!("/api/v1/transactions/{}", one["id"].as_str().unwrap()), &tenant.key)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(&fetched, one);

    let counts = event_counts(&app, &tenant).await;
    assert_eq!(counts.get("transaction.created"), Some(&transactions.len()));
    assert_eq!(counts.get("bank_connection.created"), Some(&1));
    assert_eq!(counts.get("bank_connection.updated"), Some(&1));
    let listed = json_of(
        app.as_key(Method::GET, "/api/v1/events?type=transaction.created&limit=1", &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    assert!(listed["data"][0]["data"]["amount"].is_i64());

    // A manual refresh re-reads the overlap window and changes nothing.
    let id = connection["id"].as_str().unwrap();
    let refreshed =
        app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap();
    assert_eq!(refreshed.status(), 202);
    drain(&app).await;
    assert_eq!(all_transactions(&app, &tenant, "").await.len(), transactions.len());
    assert_eq!(event_counts(&app, &tenant).await, counts, "no duplicate events");

    // Filters.
    let account = accounts[0]["id"].as_str().unwrap();
    let of_account = all_transactions(&app, &tenant, &format!("&account_id={account}&status=booked")).await;
    assert!(of_account.iter().all(|t| t["account_id"] == account && t["status"] == "booked"));
    problem(
        app.as_key(Method::GET, "/api/v1/transactions?status=void", &tenant.key).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    problem(
        app.as_key(Method::GET, "/api/v1/transactions?colour=red", &tenant.key).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn pending_transactions_become_booked_without_duplicates() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let connection = connect(&app, &tenant).await;
    drain(&app).await;
    let before = all_transactions(&app, &tenant, "").await;
    let pending_before: Vec<&Value> = before.iter().filter(|t| t["status"] == "pending").collect();

    // Three days later every entry pending now has booked (some with a new id or a new amount):
    // a card hold may be placed up to two days before its day (the sandbox's
    // `PENDING_LEAD_DAYS`), and is booked when its day is over.
    control(&app, "/_sandbox/clock/advance", json!({"seconds": 3 * 86_400})).await;
    sqlx::query("update bank_accounts set last_synced_at = null").execute(&app.superuser_pool().await).await.unwrap();
    let id = connection["id"].as_str().unwrap();
    let response =
        app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 202);
    drain(&app).await;
    let after = all_transactions(&app, &tenant, "").await;

    // Every transaction the bank lists is here exactly once: compare with the bank itself.
    let access = &sandbox_token(&app).await;
    for account in connection["accounts"].as_array().unwrap() {
        let account_id = account["id"].as_str().unwrap();
        let provider_id: String = sqlx::query_scalar("select provider_account_id from bank_accounts where id = $1")
            .bind(account_id)
            .fetch_one(&app.superuser_pool().await)
            .await
            .unwrap();
        let listed: Value = browser()
            .get(format!("{}/accounts/{provider_id}/transactions/", app.state.sandbox_url))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let booked = listed["transactions"]["booked"].as_array().unwrap();
        let pending = listed["transactions"]["pending"].as_array().unwrap();
        // The bank lists its history window only; older rows stay with us.
        let oldest = booked.iter().map(|t| t["bookingDate"].as_str().unwrap()).min().unwrap();
        let ours = |status: &str| {
            after
                .iter()
                .filter(|t| t["account_id"] == account_id && t["status"] == status)
                .filter(|t| status == "pending" || t["booking_date"].as_str().unwrap() >= oldest)
                .count()
        };
        assert_eq!(ours("booked"), booked.len(), "booked: ours vs the bank's");
        assert_eq!(ours("pending"), pending.len(), "pending: ours vs the bank's");
    }

    // Yesterday's pending rows kept their ids and became booked (or were cancelled).
    let by_id: HashMap<&str, &Value> = after.iter().map(|t| (t["id"].as_str().unwrap(), t)).collect();
    for pending in &pending_before {
        let now = by_id.get(pending["id"].as_str().unwrap()).map(|t| t["status"].as_str().unwrap());
        assert!(matches!(now, Some("booked") | None), "{pending} is now {now:?}");
    }
    let booked_from_pending = pending_before
        .iter()
        .filter(|p| by_id.get(p["id"].as_str().unwrap()).is_some_and(|t| t["status"] == "booked"))
        .count();
    let updated = event_counts(&app, &tenant).await.get("transaction.updated").copied().unwrap_or(0);
    assert!(updated >= booked_from_pending, "each booking announced: {updated} < {booked_from_pending}");
    if !pending_before.is_empty() {
        assert!(booked_from_pending > 0, "some pending entries booked into the same transaction");
    }
}

#[tokio::test]
async fn provider_faults_are_retried_and_lose_nothing() {
    let mut config = crate::support::test_config();
    config.provider_cooldown = std::time::Duration::from_secs(2);
    let app = TestApp::spawn_with(config, crate::support::TestCluster::get().await.fresh_database().await).await;
    let tenant = app.tenant().await;
    let connection = connect(&app, &tenant).await;
    let id = connection["id"].as_str().unwrap();
    let su = app.superuser_pool().await;

    // Two 503s, a 429 with Retry-After and a dropped connection: the client retries through them.
    control(&app, "/_sandbox/faults", json!({"status": 503, "count": 2})).await;
    drain(&app).await;
    let first = all_transactions(&app, &tenant, "").await;
    assert!(!first.is_empty());
    control(&app, "/_sandbox/faults", json!({"status": 429, "count": 1, "retry_after_seconds": 1})).await;
    app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap();
    drain(&app).await;
    control(&app, "/_sandbox/faults", json!({"drop_connection": true, "count": 1})).await;
    app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap();
    drain(&app).await;
    assert_eq!(all_transactions(&app, &tenant, "").await.len(), first.len());
    let dead: i64 =
        sqlx::query_scalar("select count(*) from jobs where status <> 'done'").fetch_one(&su).await.unwrap();
    assert_eq!(dead, 0, "every sync completed");

    // A provider that keeps failing: the job fails and is queued again, nothing is written, and
    // calls fail with a retryable 503 (fast, once the circuit is open).
    control(&app, "/_sandbox/faults", json!({"status": 500, "count": 1000})).await;
    sqlx::query("delete from provider_call_budgets").execute(&su).await.unwrap();
    let accepted =
        app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap();
    assert_eq!(accepted.status(), 202);
    drain(&app).await;
    let failed: Vec<(String, Option<String>)> =
        sqlx::query_as("select status, last_error from jobs where kind = 'bank.sync_account' and status = 'queued'")
            .fetch_all(&su)
            .await
            .unwrap();
    assert!(!failed.is_empty(), "the sync is queued again after failing");
    assert!(failed.iter().all(|(_, e)| e.as_deref().unwrap_or("").contains("unavailable")), "{failed:?}");
    let started = std::time::Instant::now();
    let body = problem(
        app.as_key(Method::GET, "/api/v1/institutions?country=DE", &tenant.key).send().await.unwrap(),
        503,
        "provider_unavailable",
    )
    .await;
    assert_eq!(body["retryable"], true);
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "the open circuit fails fast");

    // The provider recovers; after the cool-down the retried job completes, duplicating nothing.
    control(&app, "/_sandbox/faults", json!({"count": 0})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    sqlx::query("update jobs set run_at = now() where status = 'queued'").execute(&su).await.unwrap();
    drain(&app).await;
    let pending: i64 =
        sqlx::query_scalar("select count(*) from jobs where status <> 'done'").fetch_one(&su).await.unwrap();
    assert_eq!(pending, 0, "the retried sync completed");
    assert_eq!(all_transactions(&app, &tenant, "").await.len(), first.len());
    let counts = event_counts(&app, &tenant).await;
    assert_eq!(counts.get("transaction.created"), Some(&first.len()), "no duplicate events");
}

#[tokio::test]
async fn expired_consent_and_spent_budgets_are_clear_errors() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let connection = connect(&app, &tenant).await;
    drain(&app).await;
    let id = connection["id"].as_str().unwrap();

    // The bank's daily budget: 4 successful transaction calls per account; one was the first sync.
    for _ in 0..3 {
        let ok = app
            .as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 202);
        drain(&app).await;
    }
    let spent =
        app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap();
    let retry_after: u64 = spent.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 86_400);
    let body = problem(spent, 429, "sync_budget_exhausted").await;
    assert!(body["detail"].as_str().unwrap().contains("per day"), "{body}");
    let shown = json_of(
        app.as_key(Method::GET, &format!("/api/v1/bank_connections/{id}"), &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(shown["sync_budget"]["transactions_remaining"], 0);

    // The consent expires at the bank: the next sync marks the connection expired.
    let requisition: String = sqlx::query_scalar("select requisition_id from bank_connections where id = $1")
        .bind(id)
        .fetch_one(&app.superuser_pool().await)
        .await
        .unwrap();
    control(&app, &format!("/_sandbox/requisitions/{requisition}/expire"), json!({})).await;
    sqlx::query("delete from provider_call_budgets").execute(&app.superuser_pool().await).await.unwrap();
    app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap();
    drain(&app).await;
    let expired = json_of(
        app.as_key(Method::GET, &format!("/api/v1/bank_connections/{id}"), &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(expired["status"], "expired", "{expired}");
    assert_eq!(expired["error"]["code"], "consent_expired");
    assert_eq!(event_counts(&app, &tenant).await.get("bank_connection.expired"), Some(&1));
    let body = problem(
        app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap(),
        409,
        "bank_connection_expired",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("re-authorise"));
}

#[tokio::test]
async fn consent_expiry_is_announced_before_and_when_it_happens() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let connection = connect(&app, &tenant).await;
    let id = connection["id"].as_str().unwrap();
    let su = app.superuser_pool().await;
    for (left, expected) in [("6 days 23 hours", 1), ("6 days", 1), ("2 days", 2), ("12 hours", 3)] {
        sqlx::query(&format!("update bank_connections set expires_at = now() + interval '{left}' where id = $1"))
            .bind(id)
            .execute(&su)
            .await
            .unwrap();
        payymo::bank::connections::sweep_expiry(&app.state).await.unwrap();
        assert_eq!(event_counts(&app, &tenant).await.get("bank_connection.expiring"), Some(&expected), "{left}");
    }
    let shown = json_of(
        app.as_key(Method::GET, &format!("/api/v1/bank_connections/{id}"), &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(shown["expiring_in_days"], 0);
    sqlx::query("update bank_connections set expires_at = now() - interval '1 minute' where id = $1")
        .bind(id)
        .execute(&su)
        .await
        .unwrap();
    payymo::bank::connections::sweep_expiry(&app.state).await.unwrap();
    payymo::bank::connections::sweep_expiry(&app.state).await.unwrap();
    assert_eq!(event_counts(&app, &tenant).await.get("bank_connection.expired"), Some(&1));
}

#[tokio::test]
async fn rejected_consent_and_deletion() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let created = json_of(
        app.as_key(Method::POST, "/api/v1/bank_connections", &tenant.key)
            .json(&json!({"institution_id": "MONZO_MONZGB2L", "redirect_url": "http://localhost:3000/cb"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let link = created["consent_link"].as_str().unwrap();
    let to_callback = browser().post(format!("{}/reject", link.trim_end_matches('/'))).send().await.unwrap();
    let callback = to_callback.headers()["location"].to_str().unwrap().to_owned();
    let onwards = browser().get(&callback).send().await.unwrap();
    let location = onwards.headers()["location"].to_str().unwrap();
    assert!(location.ends_with("&status=rejected&error=UserCancelledSession"), "{location}");
    let id = created["id"].as_str().unwrap();
    let shown = json_of(
        app.as_key(Method::GET, &format!("/api/v1/bank_connections/{id}"), &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(shown["status"], "rejected");
    assert_eq!(shown["error"]["code"], "UserCancelledSession");
    problem(
        app.as_key(Method::POST, &format!("/api/v1/bank_connections/{id}/refresh"), &tenant.key).send().await.unwrap(),
        409,
        "bank_connection_not_linked",
    )
    .await;

    // Deleting a linked connection removes the requisition upstream and keeps the history.
    let linked = connect(&app, &tenant).await;
    drain(&app).await;
    let kept = all_transactions(&app, &tenant, "").await.len();
    let linked_id = linked["id"].as_str().unwrap();
    let deleted = json_of(
        app.as_key(Method::DELETE, &format!("/api/v1/bank_connections/{linked_id}"), &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(deleted["status"], "deleted");
    assert_eq!(all_transactions(&app, &tenant, "").await.len(), kept);
    let list = json_of(
        app.as_key(Method::GET, "/api/v1/bank_connections?status=deleted", &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let requisition: String = sqlx::query_scalar("select requisition_id from bank_connections where id = $1")
        .bind(linked_id)
        .fetch_one(&app.superuser_pool().await)
        .await
        .unwrap();
    let access = sandbox_token(&app).await;
    let upstream = browser()
        .get(format!("{}/requisitions/{requisition}/", app.state.sandbox_url))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(upstream.status(), 404, "the requisition is gone upstream");
}

#[tokio::test]
async fn bad_input_gets_the_error_shape() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let post = |body: Value| app.as_key(Method::POST, "/api/v1/bank_connections", &tenant.key).json(&body).send();
    let body = problem(
        post(json!({"institution_id": "NO_SUCH_BANK", "redirect_url": "https://x.example/cb"})).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "institution_id");
    for bad in ["not a url", "ftp://x.example/cb", "https://user:pw@x.example/cb", "/relative"] {
        let body = problem(
            post(json!({"institution_id": "SANDBOXFINANCE_SFIN0000", "redirect_url": bad})).await.unwrap(),
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "redirect_url", "{bad}");
    }
    let body = problem(
        post(json!({"institution_id": "N26_NTSBDEB1", "redirect_url": "https://x.example/cb", "max_historical_days": 400}))
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("90"), "{body}");
    problem(post(json!({"redirect_url": "https://x.example/cb"})).await.unwrap(), 422, "validation_failed").await;
    problem(
        app.as_key(Method::GET, "/api/v1/institutions", &tenant.key).send().await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    problem(app.get("/api/v1/bank_connections/callback?ref=nonsense").await, 404, "not_found").await;
    problem(
        app.as_key(Method::GET, "/api/v1/bank_connections/bc_nope", &tenant.key).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    // A live tenant without provider credentials is told what to configure.
    let live = app.tenant_with(payymo::auth::Environment::Live, payymo::auth::Plan::Premium).await;
    let body = problem(
        app.as_key(Method::GET, "/api/v1/institutions?country=GB", &live.key).send().await.unwrap(),
        409,
        "provider_not_configured",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("GOCARDLESS_SECRET_ID"));
}

#[tokio::test]
async fn another_tenants_connections_and_transactions_are_404() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let intruder = app.tenant().await;
    let connection = connect(&app, &owner).await;
    drain(&app).await;
    let id = connection["id"].as_str().unwrap();
    let txn = all_transactions(&app, &owner, "").await[0]["id"].as_str().unwrap().to_owned();
    for (method, path) in [
        (Method::GET, format!("/api/v1/bank_connections/{id}")),
        (Method::DELETE, format!("/api/v1/bank_connections/{id}")),
        (Method::POST, format!("/api/v1/bank_connections/{id}/refresh")),
        (Method::GET, format!("/api/v1/transactions/{txn}")),
    ] {
        problem(app.as_key(method.clone(), &path, &intruder.key).send().await.unwrap(), 404, "not_found").await;
    }
    assert!(all_transactions(&app, &intruder, "").await.is_empty());
    let list =
        json_of(app.as_key(Method::GET, "/api/v1/bank_connections", &intruder.key).send().await.unwrap(), 200).await;
    assert!(list["data"].as_array().unwrap().is_empty());
    let incidents: i64 =
        sqlx::query_scalar("select count(*) from audit_logs where tenant_id = $1 and outcome = 'security_incident'")
            .bind(&intruder.id)
            .fetch_one(&app.superuser_pool().await)
            .await
            .unwrap();
    assert_eq!(incidents, 4);
}

#[tokio::test]
async fn a_worker_killed_mid_sync_leaves_its_job_to_be_run_again_without_duplicates() {
    use crate::support::{
        APP_PASSWORD, TestCluster,
        process::{database_url, serve},
        test_config,
    };
    let options = TestCluster::get().await.fresh_database().await;
    let app = TestApp::spawn_with(test_config(), options.clone()).await;
    let tenant = app.tenant().await;
    connect(&app, &tenant).await; // queues the first sync; this app runs no workers
    let su = app.superuser_pool().await;

    // The bank answers slowly, so the worker process is caught in the middle of its sync.
    control(&app, "/_sandbox/faults", json!({"latency_ms": 60_000, "count": 100})).await;
    let url = database_url(&options, APP_PASSWORD);
    let mut worker = serve(&[
        ("DATABASE_URL", url.as_str()),
        ("PAYYMO_WORKERS", "true"),
        ("PAYYMO_SANDBOX_URL", app.state.sandbox_url.as_str()),
        ("PAYYMO_LOG", "info"),
    ])
    .await;
    let running = async {
        loop {
            let n: i64 =
                sqlx::query_scalar("select count(*) from jobs where kind = 'bank.sync_account' and status = 'running'")
                    .fetch_one(&su)
                    .await
                    .unwrap();
            if n > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), running).await.expect("the worker claims the sync");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    worker.child.kill().await.unwrap(); // SIGKILL
    worker.child.wait().await.unwrap();
    let written: i64 = sqlx::query_scalar("select count(*) from transactions").fetch_one(&su).await.unwrap();
    assert_eq!(written, 0, "a killed sync leaves nothing half-written");

    // The bank recovers; once the dead worker's lease has run out, any worker runs the job again.
    control(&app, "/_sandbox/faults", json!({"count": 0})).await;
    drain(&app).await; // may run the dead process's scheduling job, never the leased sync
    let (status, locked_by): (String, Option<String>) =
        sqlx::query_as("select status, locked_by from jobs where kind = 'bank.sync_account' order by id limit 1")
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(status, "running", "the job is not claimable while its lease lasts");
    assert_ne!(locked_by.as_deref(), Some("test-worker"));
    sqlx::query("update jobs set locked_until = now() - interval '1 second' where status = 'running'")
        .execute(&su)
        .await
        .unwrap();
    assert!(drain(&app).await >= 1);
    let transactions = all_transactions(&app, &tenant, "").await;
    assert!(!transactions.is_empty());
    let ids: HashSet<&str> = transactions.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), transactions.len());
    assert_eq!(event_counts(&app, &tenant).await.get("transaction.created"), Some(&transactions.len()));
    let (attempts, status): (i32, String) =
        sqlx::query_as("select attempts, status from jobs where kind = 'bank.sync_account' order by id limit 1")
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!((attempts, status.as_str()), (2, "done"), "the second attempt completed the job");
}
