//! Recording outcomes: each batch of attempts, their deliveries' next state and their endpoints'
//! health, in one transaction.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{Dispatcher, lanes::Answered, send::Outcome};
use crate::{
    db::tenant::begin_platform,
    domain::states::DeliveryStatus,
    webhooks::health::{self, Answer, Verdict},
};

/// Most outcomes written in one transaction.
const RECORD_BATCH: usize = 512;
impl Dispatcher {
    /// Writes outcomes as they arrive, many per transaction, until every sender is gone.
    pub(super) async fn record_until_closed(self: Arc<Self>, mut received: mpsc::UnboundedReceiver<Outcome>) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while received.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            let mut delay = Duration::from_millis(100);
            let started = Instant::now();
            loop {
                match self.record(&batch).await {
                    Ok(()) => break,
                    // Past the lease the rows are due again elsewhere; these outcomes no longer count.
                    Err(error) if started.elapsed() > self.settings.lease() => {
                        tracing::warn!(%error, count = batch.len(), "cannot record webhook attempts; they will be sent again");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot record webhook attempts yet; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            for outcome in batch.drain(..) {
                let answered =
                    Answered { latency_ms: outcome.latency_ms, succeeded: outcome.verdict == Verdict::Succeeded };
                self.lanes.release(&outcome.endpoint_id, Some(answered));
            }
            self.wake.notify_one();
        }
    }

    /// Records a batch of attempts and their consequences in one transaction.
    async fn record(&self, batch: &[Outcome]) -> Result<(), sqlx::Error> {
        let max_attempts = self.settings.max_attempts();
        let mut next: Vec<(DeliveryStatus, Option<DateTime<Utc>>)> = Vec::with_capacity(batch.len());
        for outcome in batch {
            let retry = || {
                let after = self.settings.retry_delay(outcome.attempt)?;
                let after = match outcome.verdict {
                    Verdict::Throttled(wait) => after.max(wait),
                    _ => after,
                };
                Some(Utc::now() + chrono::Duration::from_std(after).ok()?)
            };
            next.push(match outcome.verdict {
                Verdict::Succeeded => (DeliveryStatus::Succeeded, None),
                Verdict::Gone => (DeliveryStatus::Failed, None),
                Verdict::Failed | Verdict::Throttled(_) if outcome.attempt >= max_attempts => {
                    (DeliveryStatus::Failed, None)
                }
                Verdict::Failed | Verdict::Throttled(_) => match retry() {
                    Some(at) => (DeliveryStatus::Pending, Some(at)),
                    None => (DeliveryStatus::Failed, None),
                },
            });
        }
        let column = |f: &dyn Fn(&Outcome) -> String| batch.iter().map(f).collect::<Vec<_>>();
        let tenants = column(&|o| o.tenant_id.clone());
        let deliveries = column(&|o| o.delivery_id.clone());
        let attempt: Vec<i32> = batch.iter().map(|o| o.attempt).collect();
        let started: Vec<DateTime<Utc>> = batch.iter().map(|o| o.started_at).collect();
        let latency: Vec<i32> = batch.iter().map(|o| o.latency_ms).collect();
        let status_code: Vec<Option<i32>> = batch.iter().map(|o| o.status_code).collect();
        let succeeded: Vec<bool> = batch.iter().map(|o| o.verdict == Verdict::Succeeded).collect();
        let error: Vec<Option<String>> = batch.iter().map(|o| o.error.clone()).collect();
        let body: Vec<Option<String>> = batch.iter().map(|o| o.response_body.clone()).collect();
        let new_status: Vec<&str> = next.iter().map(|(s, _)| s.as_str()).collect();
        let next_at: Vec<Option<DateTime<Utc>>> = next.iter().map(|(_, at)| *at).collect();

        let mut tx = begin_platform(&self.db).await?;
        sqlx::query(
            "insert into webhook_attempts (tenant_id, delivery_id, attempt, started_at, latency_ms, status_code,
                 succeeded, error, response_body)
             select * from unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::int[],
                 $7::bool[], $8::text[], $9::text[]) as u(tenant_id, delivery_id)
             -- An endpoint deleted mid-attempt took its deliveries with it: nothing to record.
             where exists (select 1 from webhook_deliveries d where d.tenant_id = u.tenant_id and d.id = u.delivery_id)
             on conflict do nothing",
        )
        .bind(&tenants)
        .bind(&deliveries)
        .bind(&attempt)
        .bind(&started)
        .bind(&latency)
        .bind(&status_code)
        .bind(&succeeded)
        .bind(&error)
        .bind(&body)
        .execute(&mut *tx)
        .await?;
        // Only while this dispatcher still holds the attempt: after its lease ran out another may
        // have claimed the row, and that attempt's outcome is the one that counts. The claim
        // (locked_by, attempts) names one attempt, whose outcome is written once, so the row is
        // still pending; saying `status = 'pending'` as well lets the planner pick the partial due
        // index on tenant_id alone (the tenant's whole queue per outcome) while statistics still
        // show few pending rows, as they do after every burst. (Bench finding.)
        sqlx::query(
            "update webhook_deliveries d set
                 status = u.status,
                 next_attempt_at = coalesce(u.next_at, d.next_attempt_at),
                 completed_at = case when u.status = 'pending' then null else now() end,
                 last_status_code = u.status_code,
                 last_error = u.error
             from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::timestamptz[], $6::int[], $7::text[])
                  as u(tenant_id, id, attempt, status, next_at, status_code, error)
             where d.tenant_id = u.tenant_id and d.id = u.id
               and d.attempts = u.attempt and d.locked_by = $8",
        )
        .bind(&tenants)
        .bind(&deliveries)
        .bind(&attempt)
        .bind(&new_status)
        .bind(&next_at)
        .bind(&status_code)
        .bind(&error)
        .bind(&self.worker_id)
        .execute(&mut *tx)
        .await?;
        let answers: Vec<Answer<'_>> = batch
            .iter()
            .map(|o| Answer { tenant: &o.tenant_id, endpoint: &o.endpoint_id, verdict: o.verdict })
            .collect();
        health::record(&mut tx, &answers, self.settings.disable_after).await?;
        tx.commit().await?;

        for (outcome, (status, _)) in batch.iter().zip(&next) {
            let label = match (outcome.verdict, *status) {
                (Verdict::Succeeded, _) => "succeeded",
                (Verdict::Gone, _) => "gone",
                (_, DeliveryStatus::Pending) => "retrying",
                _ => "failed",
            };
            self.metrics.webhooks.attempt(label, f64::from(outcome.latency_ms) / 1000.0);
        }
        Ok(())
    }
}
