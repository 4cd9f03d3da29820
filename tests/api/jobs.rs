//! The durable job queue against a real database: claiming, retries, dead jobs, panics, crashed
//! workers, concurrent runners and LISTEN/NOTIFY wake-ups.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use payymo::jobs::{Backoff, JobId, NewJob, Runner, queue};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::support::TestCluster;

async fn pool() -> PgPool {
    PgPool::connect_with(TestCluster::get().await.fresh_database().await).await.unwrap()
}

/// Counts handler calls per job id.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<i64, usize>>>);

impl Calls {
    fn record(&self, id: JobId) {
        *self.0.lock().unwrap().entry(id.0).or_default() += 1;
    }
    fn of(&self, id: JobId) -> usize {
        self.0.lock().unwrap().get(&id.0).copied().unwrap_or(0)
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    status: String,
    attempts: i32,
    run_at: DateTime<Utc>,
    last_error: Option<String>,
    locked_by: Option<String>,
    finished_at: Option<DateTime<Utc>>,
}

async fn row(pool: &PgPool, id: JobId) -> Row {
    sqlx::query_as("select status, attempts, run_at, last_error, locked_by, finished_at from jobs where id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Makes a retried job due now instead of waiting out its backoff.
async fn make_due(pool: &PgPool, id: JobId) {
    sqlx::query("update jobs set run_at = now() where id = $1").bind(id).execute(pool).await.unwrap();
}

fn counting_runner(pool: &PgPool, worker: &str, kind: &str, calls: &Calls) -> Runner {
    let calls = calls.clone();
    Runner::new(pool.clone(), worker).register(kind, move |job| {
        let calls = calls.clone();
        async move {
            calls.record(job.id);
            Ok(())
        }
    })
}

#[tokio::test]
async fn an_enqueued_job_runs_once_and_is_marked_done() {
    let pool = pool().await;
    let calls = Calls::default();
    let runner = counting_runner(&pool, "w1", "greet", &calls);
    let id = queue::enqueue(&pool, &NewJob::new("greet", json!({"name": "Ada"}))).await.unwrap().unwrap();

    assert_eq!(runner.run_once().await.unwrap(), 1);
    assert_eq!(runner.run_once().await.unwrap(), 0);

    assert_eq!(calls.of(id), 1);
    let job = row(&pool, id).await;
    assert_eq!((job.status.as_str(), job.attempts), ("done", 1));
    assert!(job.finished_at.is_some());
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_exists() {
    let pool = pool().await;
    let mut tx = pool.begin().await.unwrap();
    queue::enqueue(&mut *tx, &NewJob::new("greet", json!({}))).await.unwrap().unwrap();
    tx.rollback().await.unwrap();

    let count: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_dedup_key_enqueues_once_while_pending() {
    let pool = pool().await;
    let daily = || NewJob::new("report", json!({})).dedup_key("2026-11-21");
    // Every instance schedules the periodic job at once: one wins.
    let attempts = futures_util::future::join_all((0..5).map(|_| {
        let pool = pool.clone();
        async move { queue::enqueue(&pool, &daily()).await.unwrap() }
    }))
    .await;
    let ids: Vec<JobId> = attempts.into_iter().flatten().collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(queue::enqueue(&pool, &daily()).await.unwrap(), None);
    // Another key, or another kind with the same key, is another job.
    assert!(queue::enqueue(&pool, &daily().dedup_key("2026-11-22")).await.unwrap().is_some());
    assert!(queue::enqueue(&pool, &NewJob::new("other", json!({})).dedup_key("2026-11-21")).await.unwrap().is_some());

    let calls = Calls::default();
    counting_runner(&pool, "w1", "report", &calls).run_once().await.unwrap();
    assert_eq!(calls.of(ids[0]), 1);
    // Once done, the key is free for the next period's run.
    assert!(queue::enqueue(&pool, &daily()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_failing_job_retries_with_backoff_then_dies_with_its_last_error() {
    let pool = pool().await;
    let calls = Calls::default();
    let counter = calls.clone();
    // A base of an hour: the jittered delay cannot round down to "due already".
    let backoff = Backoff { base: Duration::from_secs(3600), cap: Duration::from_secs(86_400) };
    let runner = Runner::new(pool.clone(), "w1").backoff(backoff).register("flaky", move |job| {
        let counter = counter.clone();
        async move {
            counter.record(job.id);
            anyhow::bail!("upstream said no (attempt {})", job.attempts)
        }
    });
    let id = queue::enqueue(&pool, &NewJob::new("flaky", json!({})).max_attempts(3)).await.unwrap().unwrap();

    let before = Utc::now();
    assert_eq!(runner.run_once().await.unwrap(), 1);
    let job = row(&pool, id).await;
    assert_eq!((job.status.as_str(), job.attempts), ("queued", 1));
    assert!(job.run_at > before, "the retry waits: {job:?}");
    assert!(job.run_at <= Utc::now() + chrono::Duration::hours(1), "within the first ceiling: {job:?}");
    assert_eq!(job.last_error.as_deref(), Some("upstream said no (attempt 1)"));
    // Not due yet: nothing to claim.
    assert_eq!(runner.run_once().await.unwrap(), 0);

    make_due(&pool, id).await;
    assert_eq!(runner.run_once().await.unwrap(), 1);
    assert_eq!(row(&pool, id).await.attempts, 2);

    make_due(&pool, id).await;
    assert_eq!(runner.run_once().await.unwrap(), 1);
    let job = row(&pool, id).await;
    assert_eq!((job.status.as_str(), job.attempts), ("dead", 3));
    assert_eq!(job.last_error.as_deref(), Some("upstream said no (attempt 3)"));
    assert!(job.finished_at.is_some());

    // Dead jobs are kept for inspection and never run again.
    make_due(&pool, id).await;
    assert_eq!(runner.run_once().await.unwrap(), 0);
    assert_eq!(calls.of(id), 3);
}

#[tokio::test]
async fn a_panicking_handler_is_a_failed_attempt_and_the_runner_survives() {
    let pool = pool().await;
    let calls = Calls::default();
    let counter = calls.clone();
    let runner = Runner::new(pool.clone(), "w1").register("fragile", move |job| {
        let counter = counter.clone();
        async move {
            if job.payload["explode"] == true {
                panic!("kaboom");
            }
            counter.record(job.id);
            Ok(())
        }
    });
    let bomb = queue::enqueue(&pool, &NewJob::new("fragile", json!({"explode": true}))).await.unwrap().unwrap();
    let fine = queue::enqueue(&pool, &NewJob::new("fragile", json!({}))).await.unwrap().unwrap();

    assert_eq!(runner.run_once().await.unwrap(), 2);

    let job = row(&pool, bomb).await;
    assert_eq!((job.status.as_str(), job.attempts), ("queued", 1));
    assert_eq!(job.last_error.as_deref(), Some("panicked: kaboom"));
    assert_eq!(row(&pool, fine).await.status, "done");

    let later = queue::enqueue(&pool, &NewJob::new("fragile", json!({}))).await.unwrap().unwrap();
    // The bomb's retry may be due again by now on a slow machine (its backoff is short): the
    // runner takes it too, and survives it again.
    assert!(runner.run_once().await.unwrap() >= 1);
    assert_eq!(calls.of(later), 1);
}

#[tokio::test]
async fn a_crashed_workers_job_is_claimed_again_after_its_lease_and_its_late_outcome_is_ignored() {
    let pool = pool().await;
    let id = queue::enqueue(&pool, &NewJob::new("sync", json!({}))).await.unwrap().unwrap();
    let kinds = ["sync".to_owned()];

    // The crashed worker claims with a short lease and never reports back.
    let stale = queue::claim(&pool, &kinds, "crashed", Duration::from_millis(200), 10).await.unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].id, id);
    // While the lease holds, nobody else gets it.
    assert!(queue::claim(&pool, &kinds, "other", Duration::from_secs(60), 10).await.unwrap().is_empty());

    tokio::time::sleep(Duration::from_millis(400)).await;
    let calls = Calls::default();
    assert_eq!(counting_runner(&pool, "rescuer", "sync", &calls).run_once().await.unwrap(), 1);
    assert_eq!(calls.of(id), 1);

    // The stale worker wakes up: neither outcome touches the job any more.
    assert!(!queue::complete(&pool, &stale[0]).await.unwrap());
    assert!(!queue::fail(&pool, &stale[0], "late", &Backoff::default()).await.unwrap());
    let job = row(&pool, id).await;
    assert_eq!((job.status.as_str(), job.attempts), ("done", 2));
    assert_eq!(job.locked_by.as_deref(), Some("rescuer"));
    assert_eq!(job.last_error, None);
}

#[tokio::test]
async fn a_job_whose_last_attempt_lease_expires_is_declared_dead() {
    let pool = pool().await;
    let id = queue::enqueue(&pool, &NewJob::new("sync", json!({})).max_attempts(1)).await.unwrap().unwrap();
    let kinds = ["sync".to_owned()];
    assert_eq!(queue::claim(&pool, &kinds, "crashed", Duration::from_millis(100), 10).await.unwrap().len(), 1);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(queue::claim(&pool, &kinds, "other", Duration::from_secs(60), 10).await.unwrap().is_empty());
    let job = row(&pool, id).await;
    assert_eq!((job.status.as_str(), job.attempts), ("dead", 1));
    assert!(job.last_error.unwrap().contains("lease"));
}

#[tokio::test]
async fn a_dead_job_is_handed_to_its_kinds_dead_job_handler_whether_its_worker_died_or_it_failed() {
    let pool = pool().await;
    let crashed = queue::enqueue(&pool, &NewJob::new("fragile", json!({})).max_attempts(1)).await.unwrap().unwrap();
    let kinds = ["fragile".to_owned()];
    assert_eq!(queue::claim(&pool, &kinds, "crashed", Duration::from_millis(100), 10).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failing = queue::enqueue(&pool, &NewJob::new("fragile", json!({})).max_attempts(1)).await.unwrap().unwrap();

    let buried = Calls::default();
    let runner = Runner::new(pool.clone(), "rescuer").register("fragile", |_job| async { panic!("always") }).on_dead(
        "fragile",
        {
            let buried = buried.clone();
            move |job| {
                let buried = buried.clone();
                async move {
                    assert_eq!(job.attempts, 1);
                    buried.record(job.id);
                    Ok(())
                }
            }
        },
    );
    // One claim declares the crashed one dead and runs (and fails) the other's only attempt.
    assert_eq!(runner.run_once().await.unwrap(), 1);
    assert_eq!((buried.of(crashed), buried.of(failing)), (1, 1));
    for id in [crashed, failing] {
        assert_eq!(row(&pool, id).await.status, "dead");
    }
    assert_eq!(runner.run_once().await.unwrap(), 0);
    assert_eq!((buried.of(crashed), buried.of(failing)), (1, 1), "buried once each");
}

#[tokio::test]
async fn two_runners_draining_together_run_each_job_exactly_once() {
    let pool = pool().await;
    let mut tx = pool.begin().await.unwrap();
    let mut ids = Vec::new();
    for n in 0..200 {
        ids.push(queue::enqueue(&mut *tx, &NewJob::new("bulk", json!({ "n": n }))).await.unwrap().unwrap());
    }
    tx.commit().await.unwrap();

    let calls = Calls::default();
    let drain = |worker: &'static str| {
        let calls = calls.clone();
        let runner = Runner::new(pool.clone(), worker).batch_size(7).register("bulk", move |job| {
            let calls = calls.clone();
            async move {
                calls.record(job.id);
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(())
            }
        });
        tokio::spawn(async move {
            let mut total = 0;
            loop {
                match runner.run_once().await.unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        })
    };
    let (a, b) = (drain("a"), drain("b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());

    assert_eq!(a + b, 200);
    assert!(a > 0 && b > 0, "both runners took part: {a} and {b}");
    for id in &ids {
        assert_eq!(calls.of(*id), 1, "job {id}");
    }
    let done: i64 = sqlx::query_scalar("select count(*) from jobs where status = 'done' and attempts = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(done, 200);
}

#[tokio::test]
async fn run_until_is_woken_by_a_new_job_long_before_its_poll() {
    let pool = pool().await;
    let ran = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let counter = ran.clone();
    let runner = Runner::new(pool.clone(), "w1").poll_interval(Duration::from_secs(30)).register("ping", move |job| {
        let (counter, tx) = (counter.clone(), tx.clone());
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tx.send(job.id).unwrap();
            Ok(())
        }
    });
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(runner.run_until(shutdown.clone()));

    // The first job proves the runner is up (listening, first drain done) …
    let first = queue::enqueue(&pool, &NewJob::new("ping", json!({}))).await.unwrap().unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap(), Some(first));

    // … then a new job can only reach it through the notification: the next poll is 30 s away.
    let started = Instant::now();
    let second = queue::enqueue(&pool, &NewJob::new("ping", json!({}))).await.unwrap().unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.unwrap(), Some(second));
    eprintln!("woken and ran in {:?}", started.elapsed());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), worker).await.unwrap().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    // run_until returns only once its current batch's outcomes are recorded.
    let status: String =
        sqlx::query_scalar("select status from jobs where id = $1").bind(second).fetch_one(&pool).await.unwrap();
    assert_eq!(status, "done");
}
