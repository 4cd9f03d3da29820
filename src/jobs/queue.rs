//! The queue's SQL: enqueue, claim under a lease, and record the outcome of a claim.
//!
//! Each function is one statement, so none holds a transaction open while a handler runs.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};

use super::{Backoff, Job, JobId, NewJob};
use crate::domain::states::JobStatus;

/// Adds a job, or does nothing when a job of the same kind and dedup key is still pending.
/// Pass a transaction (`&mut *tx`) to commit the job with the change that calls for it.
/// Returns the new job's id, `None` when deduplicated.
pub async fn enqueue(db: impl PgExecutor<'_>, job: &NewJob) -> Result<Option<JobId>, sqlx::Error> {
    sqlx::query_scalar(
        "insert into jobs (kind, tenant_id, payload, run_at, dedup_key, max_attempts)
         values ($1, $2, $3, coalesce($4, now()), $5, $6)
         on conflict (kind, dedup_key) where dedup_key is not null and status in ('queued', 'running')
         do nothing
         returning id",
    )
    .bind(&job.kind)
    .bind(job.tenant_id.as_ref().map(|t| t.as_str()))
    .bind(&job.payload)
    .bind(job.run_at)
    .bind(&job.dedup_key)
    .bind(job.max_attempts)
    .fetch_optional(db)
    .await
}

/// Like [`enqueue`], but when a job of the same kind and dedup key is queued for later (a retry
/// waiting out its backoff), it is made due now: for work the caller wants started at once.
pub async fn enqueue_now(db: &mut sqlx::PgConnection, job: &NewJob) -> Result<(), sqlx::Error> {
    if enqueue(&mut *db, job).await?.is_none() {
        sqlx::query(
            "update jobs set run_at = now()
             where kind = $1 and dedup_key = $2 and status = 'queued' and run_at > now()",
        )
        .bind(&job.kind)
        .bind(&job.dedup_key)
        .execute(db)
        .await?;
    }
    Ok(())
}

/// Claims up to `limit` jobs of `kinds` for `worker_id` for `lease`: queued jobs that are due,
/// and running jobs whose lease expired (their worker died). Rows other workers are claiming are
/// skipped, not waited for. A job whose lease expired on its last attempt is declared dead here
/// instead of being claimed, so a job that kills its worker cannot loop forever.
pub async fn claim(
    pool: &PgPool,
    kinds: &[String],
    worker_id: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Job>, sqlx::Error> {
    Ok(claim_with_dead(pool, kinds, worker_id, lease, limit).await?.0)
}

/// [`claim`], also returning the jobs it declared dead (their last attempt's lease expired), so
/// the caller can tell the resources they were working on.
pub async fn claim_with_dead(
    pool: &PgPool,
    kinds: &[String],
    worker_id: &str,
    lease: Duration,
    limit: i64,
) -> Result<(Vec<Job>, Vec<Job>), sqlx::Error> {
    let claimed: Vec<Job> = sqlx::query_as(
        "with due as (
             select id from jobs
             where kind = any($1)
               and ((status = 'queued' and run_at <= now())
                    or (status = 'running' and locked_until < now()))
             order by run_at, id
             limit $4
             for update skip locked
         ), claimed as (
             update jobs j set
                 status = case when j.attempts >= j.max_attempts then 'dead' else 'running' end,
                 attempts = least(j.attempts + 1, j.max_attempts),
                 locked_by = $2,
                 locked_until = case when j.attempts >= j.max_attempts then null
                                     else now() + make_interval(secs => $3) end,
                 finished_at = case when j.attempts >= j.max_attempts then now() end,
                 last_error = case when j.attempts >= j.max_attempts
                                   then 'the lease of the last attempt expired (did its worker crash?)'
                                   else j.last_error end
             from due where j.id = due.id
             returning j.*
         )
         select * from claimed order by run_at, id",
    )
    .bind(kinds)
    .bind(worker_id)
    .bind(lease.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(claimed.into_iter().partition(|job| job.status == JobStatus::Running))
}

/// Marks `job` done. Returns false, and changes nothing, when this claim no longer holds the job
/// (its lease expired and another worker claimed it again).
pub async fn complete(pool: &PgPool, job: &Job) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update jobs set status = 'done', finished_at = now(), locked_until = null, last_error = null
         where id = $1 and status = 'running' and locked_by = $2 and attempts = $3",
    )
    .bind(job.id)
    .bind(&job.locked_by)
    .bind(job.attempts)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a failed attempt: the job is queued again after a `backoff` delay, or declared dead
/// once it has had `max_attempts`. Returns false, and changes nothing, when this claim no longer
/// holds the job.
pub async fn fail(pool: &PgPool, job: &Job, error: &str, backoff: &Backoff) -> Result<bool, sqlx::Error> {
    let delay = backoff.sample(job.attempts);
    let failed = sqlx::query(
        "update jobs set
             status = case when attempts >= max_attempts then 'dead' else 'queued' end,
             run_at = case when attempts >= max_attempts then run_at
                           else now() + make_interval(secs => $4) end,
             finished_at = case when attempts >= max_attempts then now() end,
             locked_until = null,
             last_error = $5
         where id = $1 and status = 'running' and locked_by = $2 and attempts = $3",
    )
    .bind(job.id)
    .bind(&job.locked_by)
    .bind(job.attempts)
    .bind(delay.as_secs_f64())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(failed.rows_affected() == 1)
}
