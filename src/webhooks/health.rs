//! An endpoint's health: the one policy for when an endpoint is failing, paused, disabled and
//! healthy again, used by the dispatcher after each batch of attempts and by the API when a tenant
//! enables or disables an endpoint.
//!
//! - A success makes the endpoint healthy: no failure streak, no `failing_since`.
//! - A failure starts `failing_since` (if not started) and counts the streak. After
//!   [`BACKOFF_AFTER`] failures in a row the endpoint is paused 1 s, then 2 s, 4 s, … up to
//!   [`MAX_BACKOFF`] after each further failure, until one succeeds: its deliveries wait rather
//!   than use up their attempts on a receiver that is down.
//! - `429`/`503` with `Retry-After` pauses it for that long.
//! - Failing without a break for the configured `disable_after`, or answering `410 Gone`,
//!   disables it and announces `webhook_endpoint.disabled`.
//! - Enabled again by the tenant, it starts afresh: not failing, not paused, no reason kept.

use std::{collections::HashMap, time::Duration};

use sqlx::PgConnection;

use super::endpoints::{ENDPOINT_COLUMNS, WebhookEndpoint};
use crate::{domain::ids::TenantId, events};

/// Failed attempts in a row after which an endpoint backs off (see the module's docs).
pub const BACKOFF_AFTER: i32 = 10;
/// The longest pause of a failing endpoint between probes.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The reason kept for an endpoint the tenant disabled.
const DISABLED_BY_API: &str = "disabled through the API";

/// What an attempt's answer means for its delivery and its endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Succeeded,
    /// 410 Gone: the receiver unsubscribed; the endpoint is disabled.
    Gone,
    /// 429 or 503 with `Retry-After`: the whole endpoint waits that long.
    Throttled(Duration),
    Failed,
}

/// One attempt's answer, as the health policy reads it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub tenant: &'a str,
    pub endpoint: &'a str,
    pub verdict: Verdict,
}

/// Per endpoint in `answers` (in the order they came): its last answer decides whether it is
/// healthy or failing; the failures after its last success extend its streak.
pub async fn record(tx: &mut PgConnection, answers: &[Answer<'_>], disable_after: Duration) -> Result<(), sqlx::Error> {
    let mut last: HashMap<(&str, &str), Verdict> = HashMap::new();
    // Per endpoint: failures after its last success in the batch, and whether it had one.
    let mut streak: HashMap<(&str, &str), (i32, bool)> = HashMap::new();
    for answer in answers {
        let key = (answer.tenant, answer.endpoint);
        last.insert(key, answer.verdict);
        let entry = streak.entry(key).or_default();
        *entry = if answer.verdict == Verdict::Succeeded { (0, true) } else { (entry.0 + 1, entry.1) };
    }
    let (mut healthy_t, mut healthy_e, mut failing_t, mut failing_e) = (vec![], vec![], vec![], vec![]);
    let (mut failures, mut reset) = (vec![], vec![]);
    for (&(tenant, endpoint), verdict) in &last {
        if *verdict == Verdict::Succeeded {
            healthy_t.push(tenant);
            healthy_e.push(endpoint);
        } else {
            failing_t.push(tenant);
            failing_e.push(endpoint);
            let (count, had_success) = streak[&(tenant, endpoint)];
            failures.push(count);
            reset.push(had_success);
        }
    }
    if !healthy_t.is_empty() {
        sqlx::query(
            "update webhook_endpoints w set failing_since = null, consecutive_failures = 0
             from unnest($1::text[], $2::text[]) as u(tenant_id, id)
             where w.tenant_id = u.tenant_id and w.id = u.id
               and (w.failing_since is not null or w.consecutive_failures > 0)",
        )
        .bind(&healthy_t)
        .bind(&healthy_e)
        .execute(&mut *tx)
        .await?;
    }
    if failing_t.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update webhook_endpoints w set
             failing_since = coalesce(w.failing_since, now()),
             consecutive_failures = s.failures,
             paused_until = case when s.failures < $5 then w.paused_until
                                 else greatest(w.paused_until, now() + make_interval(
                                     secs => least(power(2, least(s.failures - $5, 30)), $6))) end
         from (select u.tenant_id, u.id,
                      case when u.reset then 0 else e.consecutive_failures end + u.failures as failures
               from unnest($1::text[], $2::text[], $3::int[], $4::bool[]) as u(tenant_id, id, failures, reset)
               join webhook_endpoints e on e.tenant_id = u.tenant_id and e.id = u.id) s
         where w.tenant_id = s.tenant_id and w.id = s.id",
    )
    .bind(&failing_t)
    .bind(&failing_e)
    .bind(&failures)
    .bind(&reset)
    .bind(BACKOFF_AFTER)
    .bind(MAX_BACKOFF.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    let mut disable: Vec<(&str, &str, String)> = Vec::new();
    for (&(tenant, endpoint), verdict) in &last {
        match verdict {
            Verdict::Gone => disable.push((tenant, endpoint, "the receiver answered 410 Gone".to_owned())),
            Verdict::Throttled(wait) => {
                sqlx::query(
                    "update webhook_endpoints set paused_until = greatest(paused_until, now() + make_interval(secs => $3))
                     where tenant_id = $1 and id = $2",
                )
                .bind(tenant)
                .bind(endpoint)
                .bind(wait.as_secs_f64())
                .execute(&mut *tx)
                .await?;
            }
            Verdict::Succeeded | Verdict::Failed => {}
        }
    }
    #[derive(sqlx::FromRow)]
    struct Overdue {
        tenant_id: String,
        id: String,
    }
    let overdue: Vec<Overdue> = sqlx::query_as(
        "select w.tenant_id, w.id from webhook_endpoints w
         join unnest($1::text[], $2::text[]) as u(tenant_id, id) on w.tenant_id = u.tenant_id and w.id = u.id
         where w.enabled and w.failing_since < now() - make_interval(secs => $3)",
    )
    .bind(&failing_t)
    .bind(&failing_e)
    .bind(disable_after.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    let reason = format!("every attempt failed for {} without a break", spoken(disable_after));
    for row in &overdue {
        if !disable.iter().any(|(t, e, _)| *t == row.tenant_id && *e == row.id) {
            disable.push((&row.tenant_id, &row.id, reason.clone()));
        }
    }
    for (tenant, endpoint, reason) in disable {
        disable_failing(tx, tenant, endpoint, &reason).await?;
    }
    Ok(())
}

/// Disables an enabled endpoint that the policy gave up on, with `reason`, and announces it with
/// `webhook_endpoint.disabled`. False when it was disabled already.
pub async fn disable_failing(
    tx: &mut PgConnection,
    tenant: &str,
    endpoint: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let disabled: Option<WebhookEndpoint> = sqlx::query_as(&format!(
        "update webhook_endpoints set enabled = false, disabled_reason = $3, disabled_at = now()
         where tenant_id = $1 and id = $2 and enabled
         returning {ENDPOINT_COLUMNS}"
    ))
    .bind(tenant)
    .bind(endpoint)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(disabled) = disabled else { return Ok(false) };
    tracing::warn!(tenant, endpoint, reason, "webhook endpoint disabled");
    events::record(tx, &TenantId::from_db(tenant.to_owned()), "webhook_endpoint.disabled", &disabled).await?;
    Ok(true)
}

/// The tenant enables (`true`) or disables (`false`) `endpoint`, which `tx` holds locked (see
/// [`endpoints::load`]). Enabling one that was disabled, by the tenant or by the policy, starts it
/// afresh: not failing, not paused, no reason kept, and its waiting deliveries due again (the
/// dispatchers are woken when `tx` commits). Disabling an enabled one records that the tenant did.
/// Asking for the state it is in changes nothing.
pub async fn set_enabled(
    tx: &mut PgConnection,
    tenant: &TenantId,
    endpoint: WebhookEndpoint,
    enabled: bool,
) -> Result<WebhookEndpoint, sqlx::Error> {
    if endpoint.enabled == enabled {
        return Ok(endpoint);
    }
    let updated = if enabled {
        let updated = sqlx::query_as(&format!(
            "update webhook_endpoints set enabled = true, disabled_reason = null, disabled_at = null,
                 failing_since = null, paused_until = null, consecutive_failures = 0
             where tenant_id = $1 and id = $2 returning {ENDPOINT_COLUMNS}"
        ))
        .bind(tenant.as_str())
        .bind(&endpoint.id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("select pg_notify($1, '')").bind(super::dispatcher::CHANNEL).execute(&mut *tx).await?;
        updated
    } else {
        sqlx::query_as(&format!(
            "update webhook_endpoints set enabled = false, disabled_reason = $3, disabled_at = now()
             where tenant_id = $1 and id = $2 returning {ENDPOINT_COLUMNS}"
        ))
        .bind(tenant.as_str())
        .bind(&endpoint.id)
        .bind(DISABLED_BY_API)
        .fetch_one(&mut *tx)
        .await?
    };
    Ok(updated)
}

/// A duration as a person says it, in its largest whole unit: `5 days`, `36 hours`, `1 second`.
fn spoken(duration: Duration) -> String {
    let seconds = duration.as_secs().max(1);
    let (count, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")]
        .into_iter()
        .find(|(size, _)| seconds.is_multiple_of(*size))
        .map_or((seconds, "second"), |(size, unit)| (seconds / size, unit));
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_spoken_in_their_largest_whole_unit() {
        assert_eq!(spoken(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(spoken(Duration::from_secs(86_400)), "1 day");
        assert_eq!(spoken(Duration::from_secs(36 * 3_600)), "36 hours");
        assert_eq!(spoken(Duration::from_secs(90)), "90 seconds");
        assert_eq!(spoken(Duration::from_secs(1)), "1 second");
    }
}
