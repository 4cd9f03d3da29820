//! A streaming read replica (`DATABASE_READ_URL`): the endpoints listed as replica reads are
//! served there while it is fresh, everything else and every write stay on the primary, a caller
//! always reads its own writes (across instances too, through Redis), a replica further behind
//! than the bound is not read, and a replica that goes away is replaced by the primary without an
//! error. Each test runs its own primary and standby (`support::replica`).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use payymo::http::reads::{READ_FROM_HEADER, REPLICA_READS};

use crate::support::{
    TestApp, ids::placeholder_id, json_of, process::redis, replica::ReplicaPair, tenants::TestTenant, test_config,
};

async fn app_on(pair: &ReplicaPair, max_lag: Duration, redis_url: Option<&str>) -> TestApp {
    let mut config = test_config();
    config.database_read_url = Some(pair.read_url.clone().into());
    config.replica_max_lag = max_lag;
    config.redis_url = redis_url.map(|url| url.to_owned().into());
    let app = TestApp::spawn_with(config, pair.primary_options.clone()).await;
    wait_for_replica(&app).await;
    app
}

/// Waits (at most 10 s) until the app's probe has found the replica usable.
async fn wait_for_replica(app: &TestApp) {
    for _ in 0..100 {
        if metric(app, "payymo_db_replica_available").await == Some(1.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the replica did not become available within 10 s");
}

/// The value of an unlabelled metric, or the sum of a labelled one's series matching `labels`.
async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    metric_with(app, name, "").await
}

async fn metric_with(app: &TestApp, name: &str, labels: &str) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.unwrap();
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.split([' ', '{']).next() == Some(name) || line.starts_with(&format!("{name}_total")))
        .filter(|line| line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn from_replica(response: &reqwest::Response) -> bool {
    response.headers().get(READ_FROM_HEADER).is_some_and(|v| v == "replica")
}

async fn create_invoice(app: &TestApp, key: &str, number: &str) -> String {
    let created = json_of(
        app.as_key(Method::POST, "/api/v1/invoices", key)
            .json(&json!({"number": number, "currency": "EUR", "amount_total": 1000}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    created["id"].as_str().unwrap().to_owned()
}

async fn invoice_numbers(app: &TestApp, key: &str) -> (bool, Vec<String>) {
    let response = app.as_key(Method::GET, "/api/v1/invoices", key).send().await.unwrap();
    let replica = from_replica(&response);
    let page = json_of(response, 200).await;
    let numbers = page["data"].as_array().unwrap().iter().map(|i| i["number"].as_str().unwrap().to_owned()).collect();
    (replica, numbers)
}

/// A second credential of the same tenant: another integration, which does not share the first
/// one's read-your-writes.
async fn other_key(app: &TestApp, tenant: &TestTenant) -> String {
    app.key(tenant, &["*"]).await
}

#[tokio::test]
async fn listed_reads_are_served_by_the_replica_and_writes_by_the_primary() {
    let pair = ReplicaPair::start().await;
    let app = app_on(&pair, Duration::from_secs(30), None).await;
    let tenant = app.tenant().await;
    let reader = other_key(&app, &tenant).await;
    create_invoice(&app, &tenant.key, "INV-R-1").await;
    pair.wait_caught_up().await;

    // Every endpoint listed as a replica read is served there (a missing id too: the 404 was
    // looked up on the replica).
    let replica_reads = || metric_with(&app, "payymo_db_reads", "served_by=\"replica\"");
    for path in REPLICA_READS {
        let path = match *path {
            "/api/v1/reconciliation/report" => format!("{path}?date={}", chrono::Utc::now().date_naive()),
            p if p.contains("{id}") => p.replace("{id}", &placeholder_id(p)),
            p => p.to_owned(),
        };
        let before = replica_reads().await.unwrap_or(0.0);
        let response = app.as_key(Method::GET, &path, &reader).send().await.unwrap();
        let looked_up_there = replica_reads().await.unwrap_or(0.0) - before;
        match response.status() {
            // A missing id is looked up on the replica, then again on the primary, which says 404.
            StatusCode::NOT_FOUND => {
                assert!(looked_up_there >= 1.0, "{path}: not looked up on the replica first");
                assert!(!from_replica(&response), "{path}: a 404 from the replica alone");
            }
            status => assert!(status.is_success() && from_replica(&response), "{path}: {status}, not from the replica"),
        }
    }
    // Reads not listed stay on the primary.
    for path in ["/api/v1/api_keys", "/api/v1/webhook_endpoints", "/api/v1/reconciliation/suggestions", "/api/v1/me"] {
        let response = app.as_key(Method::GET, path, &reader).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(!from_replica(&response), "{path} was served by the replica");
    }

    // The replica refuses writes outright; the API's writes went to the primary and worked.
    let refused = sqlx::query("insert into tenants (id, name) values ('ten_00000000000000000000000000000000', 'x')")
        .execute(&pair.standby_superuser().await)
        .await
        .unwrap_err();
    let code = refused.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("25006"), "{refused}");

    // With replay paused, the replica keeps serving what it had: another credential reads it and
    // does not see the new invoice, while its writer does (read-your-writes, from the primary).
    pair.pause_replay().await;
    let fresh = create_invoice(&app, &tenant.key, "INV-R-2").await;
    let (served_by_replica, numbers) = invoice_numbers(&app, &reader).await;
    assert!(served_by_replica);
    assert_eq!(numbers, ["INV-R-1"]);
    // A get of what the replica lacks is not a 404: the primary has the last word on absence
    // (a webhook's receiver fetching the resource its event names).
    let missing = app.as_key(Method::GET, &format!("/api/v1/invoices/{fresh}"), &reader).send().await.unwrap();
    assert!(!from_replica(&missing));
    assert_eq!(json_of(missing, 200).await["number"], "INV-R-2");

    let (served_by_replica, numbers) = invoice_numbers(&app, &tenant.key).await;
    assert!(!served_by_replica, "the writer's read went to the replica, which lacks its write");
    assert_eq!(numbers, ["INV-R-2", "INV-R-1"]);
    let own = app.as_key(Method::GET, &format!("/api/v1/invoices/{fresh}"), &tenant.key).send().await.unwrap();
    assert!(!from_replica(&own));
    assert_eq!(json_of(own, 200).await["number"], "INV-R-2");

    // Once the replica has replayed the write, both read it there.
    pair.resume_replay().await;
    pair.wait_caught_up().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for key in [&reader, &tenant.key] {
        let (served_by_replica, numbers) = invoice_numbers(&app, key).await;
        assert!(served_by_replica);
        assert_eq!(numbers, ["INV-R-2", "INV-R-1"]);
    }
    assert!(metric_with(&app, "payymo_db_reads", "served_by=\"replica\",because=\"fresh\"").await.unwrap() > 0.0);
    assert!(metric_with(&app, "payymo_db_reads", "because=\"own_write\"").await.unwrap() >= 2.0);
    assert!(metric_with(&app, "payymo_db_reads", "because=\"fallback\"").await.unwrap() >= 1.0);
    assert!(metric(&app, "payymo_db_replica_lag_seconds").await.is_some());
}

#[tokio::test]
async fn a_replica_further_behind_than_the_bound_is_not_read() {
    let pair = ReplicaPair::start().await;
    let app = app_on(&pair, Duration::from_millis(300), None).await;
    let tenant = app.tenant().await;
    let reader = other_key(&app, &tenant).await;
    create_invoice(&app, &tenant.key, "INV-L-1").await;
    pair.wait_caught_up().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(invoice_numbers(&app, &reader).await.0, "a fresh replica is read");

    pair.pause_replay().await;
    create_invoice(&app, &tenant.key, "INV-L-2").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lag = metric(&app, "payymo_db_replica_lag_seconds").await.unwrap();
    assert!(lag > 0.3, "lag {lag}");
    assert_eq!(metric(&app, "payymo_db_replica_available").await, Some(0.0));
    let (served_by_replica, numbers) = invoice_numbers(&app, &reader).await;
    assert!(!served_by_replica, "read from a replica {lag} s behind");
    assert_eq!(numbers, ["INV-L-2", "INV-L-1"]);
    assert!(metric_with(&app, "payymo_db_reads", "because=\"lagging\"").await.unwrap() > 0.0);

    pair.resume_replay().await;
    wait_for_replica(&app).await;
    let (served_by_replica, numbers) = invoice_numbers(&app, &reader).await;
    assert!(served_by_replica);
    assert_eq!(numbers, ["INV-L-2", "INV-L-1"]);
}

// Two worker threads: stopping the standby blocks one (`pg_ctl -w`) while readers go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_outage_falls_back_to_the_primary_without_an_error() {
    let mut pair = ReplicaPair::start().await;
    let app = app_on(&pair, Duration::from_secs(5), None).await;
    let tenant = app.tenant().await;
    let reader = other_key(&app, &tenant).await;
    create_invoice(&app, &tenant.key, "INV-O-1").await;
    pair.wait_caught_up().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Warm the replica pool, so that the outage breaks connections in use.
    for _ in 0..5 {
        assert!(invoice_numbers(&app, &reader).await.0);
    }

    // Readers keep reading while the replica goes down under them.
    let traffic = {
        let (client, base, reader) = (app.client.clone(), app.url("/api/v1"), reader.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                for path in ["/invoices", "/transactions", "/customers", "/events", "/transactions/stats"] {
                    let response = client.get(format!("{base}{path}")).bearer_auth(&reader).send().await.unwrap();
                    answers.push((path, response.status(), from_replica(&response)));
                }
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| pair.stop_standby());
    let answers = traffic.await.unwrap();
    let failed: Vec<_> = answers.iter().filter(|(_, status, _)| !status.is_success()).collect();
    assert!(failed.is_empty(), "{} of {} reads failed: {failed:?}", failed.len(), answers.len());
    assert!(answers.iter().any(|(_, _, replica)| *replica), "no read was served by the replica before the outage");
    assert!(!answers.last().unwrap().2, "reads still went to the stopped replica");
    let (served_by_replica, numbers) = invoice_numbers(&app, &reader).await;
    assert!(!served_by_replica);
    assert_eq!(numbers, ["INV-O-1"]);
    assert_eq!(metric(&app, "payymo_db_replica_available").await, Some(0.0));

    // When it is back, reads return to it by themselves: each pooled connection that died with
    // the old server fails once (that read answered by the primary), then the replica serves.
    pair.restart_standby().await;
    wait_for_replica(&app).await;
    let mut reads = 0;
    loop {
        reads += 1;
        let (served_by_replica, numbers) = invoice_numbers(&app, &reader).await;
        assert_eq!(numbers, ["INV-O-1"]);
        if served_by_replica {
            break;
        }
        assert!(reads < 30, "the replica serves nothing after its restart");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test]
async fn a_caller_reads_its_own_write_on_another_instance_through_redis() {
    let pair = ReplicaPair::start().await;
    let redis = redis().await;
    let first = app_on(&pair, Duration::from_secs(30), Some(&redis.url)).await;
    let second = app_on(&pair, Duration::from_secs(30), Some(&redis.url)).await;
    let tenant = first.tenant().await;
    let reader = other_key(&first, &tenant).await;
    create_invoice(&first, &tenant.key, "INV-X-1").await;
    pair.wait_caught_up().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    pair.pause_replay().await;
    let id = create_invoice(&first, &tenant.key, "INV-X-2").await;
    // The writer, answered by the other instance, sees its write...
    let own = second.as_key(Method::GET, &format!("/api/v1/invoices/{id}"), &tenant.key).send().await.unwrap();
    assert!(!from_replica(&own));
    assert_eq!(json_of(own, 200).await["number"], "INV-X-2");
    let (served_by_replica, numbers) = invoice_numbers(&second, &tenant.key).await;
    assert!(!served_by_replica);
    assert_eq!(numbers, ["INV-X-2", "INV-X-1"]);
    // ...while the other credential is served by the replica, which has not replayed it.
    let (served_by_replica, numbers) = invoice_numbers(&second, &reader).await;
    assert!(served_by_replica);
    assert_eq!(numbers, ["INV-X-1"]);
    pair.resume_replay().await;
}

#[test]
fn every_endpoint_says_which_database_it_uses() {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    let mut replica = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let description = operation["description"].as_str().unwrap_or_default();
            assert!(description.contains("**Database:**"), "{method} {path} does not say which database it uses");
            if description.contains("served by the replica") {
                assert_eq!(method, "get", "{path}");
                replica.push(path.as_str());
            }
        }
    }
    replica.sort_unstable();
    let mut listed = REPLICA_READS.to_vec();
    listed.sort_unstable();
    assert_eq!(replica, listed);
}
