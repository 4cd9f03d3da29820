//! The application's background work, in one place: every job kind with its handler, the
//! periodic tasks, and the loop that runs them on each instance.
//!
//! Periodic tasks run on every instance but happen once per period: each instance's ticker tries
//! to move the task's `next_run_at` forward in `periodic_tasks`, and only the one whose update
//! succeeds queues the work.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    bank,
    config::Config,
    jobs::{Job, NewJob, Runner, queue},
    state::AppState,
};

/// A job runner with the handler of every job kind the application queues.
pub fn runner(state: AppState, worker_id: String) -> Runner {
    let sync_state = state.clone();
    let rules_db = state.db.clone();
    Runner::new(state.db.clone(), worker_id)
        .register(bank::sync::SYNC_JOB, move |job: Job| {
            let state = sync_state.clone();
            async move {
                let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("a sync job needs a tenant"))?;
                let account = job.payload["account_id"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("a sync job needs payload.account_id"))?
                    .to_owned();
                bank::sync::run(&state, &tenant, &account).await.map(drop)
            }
        })
        .register(crate::transactions::rule_runs::APPLY_JOB, move |job: Job| {
            let db = rules_db.clone();
            async move { crate::transactions::rule_runs::handle(&db, job).await }
        })
        .on_dead(crate::transactions::rule_runs::APPLY_JOB, {
            let db = state.db.clone();
            move |job: Job| {
                let db = db.clone();
                async move { crate::transactions::rule_runs::abandon(&db, &job).await }
            }
        })
        .on_dead(crate::imports::job::IMPORT_JOB, {
            let state = state.clone();
            move |job: Job| {
                let state = state.clone();
                async move { crate::imports::job::abandon(&state, &job).await }
            }
        })
        .register(crate::imports::job::IMPORT_JOB, {
            let state = state.clone();
            move |job: Job| {
                let state = state.clone();
                async move { crate::imports::job::handle(&state, &job).await }
            }
        })
        .on_dead(crate::imports::job::INVOICE_IMPORT_JOB, {
            let state = state.clone();
            move |job: Job| {
                let state = state.clone();
                async move { crate::imports::job::abandon(&state, &job).await }
            }
        })
        .register(crate::imports::job::INVOICE_IMPORT_JOB, {
            let state = state.clone();
            move |job: Job| {
                let state = state.clone();
                async move { crate::imports::invoice_job::handle(&state, &job).await }
            }
        })
        .register(crate::stripe::poll::SCHEDULE_JOB, {
            let state = state.clone();
            move |_job: Job| {
                let state = state.clone();
                async move { crate::stripe::poll::schedule(&state).await }
            }
        })
        .register(crate::stripe::poll::POLL_JOB, {
            let state = state.clone();
            move |job: Job| {
                let state = state.clone();
                async move { crate::stripe::poll::handle(&state, &job).await }
            }
        })
        .register(crate::stripe::backfill::BACKFILL_JOB, {
            let state = state.clone();
            move |job: Job| {
                let state = state.clone();
                async move { crate::stripe::backfill::handle(&state, &job).await }
            }
        })
        .register(crate::stripe::apply::APPLY_JOB, {
            let state = state.clone();
            move |job: Job| {
                let state = state.clone();
                async move { crate::stripe::apply::handle(&state, &job).await }
            }
        })
        .register(crate::webhooks::retention::PRUNE_JOB, {
            let state = state.clone();
            move |_job: Job| {
                let state = state.clone();
                async move {
                    let deleted = crate::webhooks::retention::prune(&state.db, state.config.event_retention).await?;
                    tracing::info!(deleted, "pruned events past their retention");
                    Ok(())
                }
            }
        })
        .register(crate::reconciliation::runs::RUN_JOB, {
            let db = state.db.clone();
            move |job: Job| {
                let db = db.clone();
                async move { crate::reconciliation::runs::handle(&db, &job).await }
            }
        })
        .on_dead(crate::reconciliation::runs::RUN_JOB, {
            let db = state.db.clone();
            move |job: Job| {
                let db = db.clone();
                async move { crate::reconciliation::runs::abandon(&db, &job).await }
            }
        })
        .register(crate::reconciliation::runs::RECONCILE_JOB, {
            let db = state.db.clone();
            move |job: Job| {
                let db = db.clone();
                async move { crate::reconciliation::runs::handle_incremental(&db, &job).await }
            }
        })
        .register(crate::reconciliation::runs::SWEEP_JOB, {
            let db = state.db.clone();
            move |_job: Job| {
                let db = db.clone();
                async move { crate::reconciliation::runs::sweep(&db).await }
            }
        })
        .register(bank::schedule::SCHEDULE_JOB, move |_job: Job| {
            let state = state.clone();
            async move { bank::schedule::schedule(&state).await }
        })
}

/// Claims the periodic task `name` if its time has come; true for exactly one caller per period.
pub async fn claim_period(state: &AppState, name: &str, period: Duration) -> Result<bool, sqlx::Error> {
    sqlx::query("insert into periodic_tasks (name) values ($1) on conflict (name) do nothing")
        .bind(name)
        .execute(&state.db)
        .await?;
    let claimed = sqlx::query(
        "update periodic_tasks set next_run_at = now() + make_interval(secs => $2)
         where name = $1 and next_run_at <= now()",
    )
    .bind(name)
    .bind(period.as_secs_f64())
    .execute(&state.db)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// The periodic tasks, each queued once per period fleet-wide: bank scheduling (every
/// `PAYYMO_BANK_SCHEDULE_PERIOD`), Stripe polling, event retention, the reconciliation sweep.
fn periodic(config: &Config) -> [(&'static str, Duration); 4] {
    [
        (bank::schedule::SCHEDULE_JOB, config.bank_schedule_period),
        (crate::stripe::poll::SCHEDULE_JOB, crate::stripe::poll::SCHEDULE_PERIOD),
        (crate::webhooks::retention::PRUNE_JOB, crate::webhooks::retention::PRUNE_PERIOD),
        (crate::reconciliation::runs::SWEEP_JOB, crate::reconciliation::runs::SWEEP_PERIOD),
    ]
}

/// How often each instance's ticker looks for due periodic tasks, unless a period is shorter.
const TICK: Duration = Duration::from_secs(10);

/// Runs the workers until `shutdown`: the job runner, and a ticker that queues the periodic tasks.
pub async fn run_until(state: AppState, worker_id: String, shutdown: CancellationToken) {
    let ticker_state = state.clone();
    let ticker_shutdown = shutdown.clone();
    let tasks = periodic(&state.config);
    // Looking less often than a task's period would stretch the period to the tick.
    let every = tasks.iter().map(|(_, period)| *period).fold(TICK, Duration::min);
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = ticker_shutdown.cancelled() => return,
            }
            for (task, period) in &tasks {
                match claim_period(&ticker_state, task, *period).await {
                    Ok(true) => {
                        let job = NewJob::new(*task, serde_json::json!({})).dedup_key(*task).max_attempts(1);
                        if let Err(error) = queue::enqueue(&ticker_state.db, &job).await {
                            tracing::warn!(%error, task, "cannot queue a periodic task");
                        }
                    }
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, task, "cannot claim a periodic task"),
                }
            }
        }
    });
    runner(state, worker_id).run_until(shutdown).await;
    let _ = ticker.await;
}
