//! The worker loop: claim a batch, run each job in its own task, record each outcome.
//!
//! Wake-ups come from `LISTEN payymo_jobs`, but only as a latency optimisation: the runner also
//! polls, so a missed notification (or a lost listener connection) delays work by at most one
//! poll interval.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use futures_util::future::BoxFuture;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{Backoff, CHANNEL, Job, queue};

/// A job kind's handler: an error or a panic is a failed attempt. Also the type of a kind's
/// dead-job handler, whose errors are only logged.
type Handler = Arc<dyn Fn(Job) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Runs the jobs of the kinds it has handlers for. Any number of runners, in any number of
/// processes, may drain the same queue.
pub struct Runner {
    pool: PgPool,
    worker_id: String,
    handlers: HashMap<String, Handler>,
    on_dead: HashMap<String, Handler>,
    lease: Duration,
    batch_size: i64,
    poll_interval: Duration,
    backoff: Backoff,
}

impl Runner {
    /// A runner with no handlers yet, a 5-minute lease, batches of 10 and a 1-second poll.
    /// `worker_id` names this runner in `jobs.locked_by`; make it unique per process.
    pub fn new(pool: PgPool, worker_id: impl Into<String>) -> Self {
        Self {
            pool,
            worker_id: worker_id.into(),
            handlers: HashMap::new(),
            on_dead: HashMap::new(),
            lease: Duration::from_secs(300),
            batch_size: 10,
            poll_interval: Duration::from_secs(1),
            backoff: Backoff::default(),
        }
    }

    /// Runs jobs of `kind` with `handler`.
    pub fn register<F, Fut>(mut self, kind: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.handlers.insert(kind.into(), Arc::new(move |job| Box::pin(handler(job))));
        self
    }

    /// Calls `handler` once a job of `kind` is dead: its last attempt failed, panicked, or its
    /// worker died holding it (the lease ran out). The place to mark what the job was working on
    /// as failed, since its own handler may never get the chance.
    pub fn on_dead<F, Fut>(mut self, kind: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.on_dead.insert(kind.into(), Arc::new(move |job| Box::pin(handler(job))));
        self
    }

    /// How long a claim lasts. A job still running after it may be claimed again elsewhere, so
    /// it must exceed the slowest handler.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How many jobs one claim takes, and so how many run at once.
    pub fn batch_size(mut self, size: i64) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// How often [`Runner::run_until`] looks for due jobs without being woken.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The retry delays after a failure.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Claims one batch of due jobs, runs them concurrently and records their outcomes.
    /// Returns how many jobs it claimed. Tests drain the queue by calling this.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let kinds: Vec<String> = self.handlers.keys().cloned().collect();
        let (jobs, dead) =
            queue::claim_with_dead(&self.pool, &kinds, &self.worker_id, self.lease, self.batch_size).await?;
        for job in dead {
            tracing::warn!(job = %job.id, kind = %job.kind, "job declared dead: its last attempt's worker stopped");
            self.bury(job).await;
        }
        let claimed = jobs.len();
        let mut running = Vec::with_capacity(claimed);
        for job in jobs {
            let Some(handler) = self.handlers.get(&job.kind).cloned() else { continue };
            let input = job.clone();
            // Called inside the task, so even a handler that panics before its first await is caught.
            running.push((job, tokio::spawn(async move { handler(input).await })));
        }
        for (job, task) in running {
            let outcome = match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(format!("{error:#}")),
                Err(error) if error.is_panic() => Err(format!("panicked: {}", panic_message(error.into_panic()))),
                Err(error) => Err(format!("the job's task was cancelled: {error}")),
            };
            self.record(&job, outcome).await;
        }
        Ok(claimed)
    }

    /// Runs jobs until `shutdown` is cancelled, then returns once the current batch is recorded.
    pub async fn run_until(self, shutdown: CancellationToken) {
        // Listening starts before the first claim, so nothing enqueued meanwhile goes unnoticed.
        let mut listener = crate::db::notify::listen(&self.pool, CHANNEL).await;
        loop {
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                match self.run_once().await {
                    Ok(claimed) if claimed as i64 >= self.batch_size => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, worker = %self.worker_id, "cannot claim jobs");
                        break;
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.poll_interval) => {}
                woken = crate::db::notify::notification(&mut listener) => {
                    if let Err(error) = woken {
                        tracing::warn!(%error, "lost the job notification listener; polling meanwhile");
                        listener = None;
                    }
                }
            }
            if listener.is_none() {
                listener = crate::db::notify::listen(&self.pool, CHANNEL).await;
            }
        }
    }

    /// Records an attempt's outcome. If that fails, the lease expires and the job runs again.
    async fn record(&self, job: &Job, outcome: Result<(), String>) {
        let recorded = match &outcome {
            Ok(()) => queue::complete(&self.pool, job).await,
            Err(error) => {
                tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, %error, "job failed");
                queue::fail(&self.pool, job, error, &self.backoff).await
            }
        };
        match recorded {
            Ok(true) if job.attempts >= job.max_attempts && outcome.is_err() => {
                let last_error = outcome.err();
                self.bury(Job { last_error, ..job.clone() }).await
            }
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job = %job.id, "job outcome not recorded: its lease expired and it was claimed again")
            }
            Err(error) => tracing::warn!(job = %job.id, %error, "cannot record the job's outcome; it will run again"),
        }
    }
}

impl Runner {
    /// Runs the dead-job handler of `job`'s kind, if it has one; a failure is logged.
    async fn bury(&self, job: Job) {
        let Some(handler) = self.on_dead.get(&job.kind).cloned() else { return };
        let (id, kind) = (job.id, job.kind.clone());
        match tokio::spawn(async move { handler(job).await }).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(job = %id, %kind, error = %format!("{error:#}"), "dead-job handler failed")
            }
            Err(error) => tracing::warn!(job = %id, %kind, %error, "dead-job handler panicked"),
        }
    }
}

/// A panic's message, when it has one.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(|| "(no message)".to_owned(), |s| (*s).to_owned()),
    }
}
