//! The worker that applies a connection's inbox: events oldest first (by Stripe's `created`),
//! each marked applied in the transaction that applies it, so a crash re-applies at most what
//! was not committed, and applying twice changes nothing. A charge event writes the payment as
//! Stripe has it now (fetched, with its balance transaction's fee), so out-of-order and
//! duplicated events converge, and emits `stripe_payment.*` to the outbox when it changed. A
//! payout event likewise writes the payout as it is now, reads the balance transactions it
//! carries into its summary, and emits `stripe_payout.paid` / `.failed`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::{
    StripeError, connection,
    payments::{self, Applied},
    payouts,
};
use crate::{
    db::tenant::begin_tenant,
    domain::ids::TenantId,
    events,
    jobs::{Job, NewJob, queue},
    providers::stripe::Stripe,
    state::AppState,
};

/// The job that applies a connection's inbox (payload `{"connection_id": "sc_…"}`).
pub const APPLY_JOB: &str = "stripe.apply";
/// Events applied per transaction.
const BATCH: i64 = 100;

/// Queues the apply job of `connection_id` (one per kept event: a job finding nothing left to
/// apply ends at once, and none is ever skipped while another runs).
pub async fn enqueue(
    conn: &mut PgConnection,
    tenant: &TenantId,
    connection_id: &str,
    event_id: &str,
) -> Result<(), sqlx::Error> {
    let job = NewJob::new(APPLY_JOB, json!({ "connection_id": connection_id }))
        .tenant(tenant.clone())
        .dedup_key(format!("{connection_id}/{event_id}"));
    queue::enqueue(conn, &job).await.map(drop)
}

/// The job handler.
pub async fn handle(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let tenant = job.tenant_id.clone().ok_or_else(|| anyhow::anyhow!("a Stripe apply job needs a tenant"))?;
    let connection_id = job.payload["connection_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("a Stripe apply job needs payload.connection_id"))?;
    run(state, &tenant, connection_id).await
}

/// Applies the connection's unapplied events until none is left.
pub async fn run(state: &AppState, tenant: &TenantId, connection_id: &str) -> anyhow::Result<()> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let Some(sealed) = connection::sealed_of(&mut tx, tenant).await?.filter(|s| s.id == connection_id) else {
        tx.commit().await?;
        return Ok(());
    };
    tx.commit().await?;
    let key = connection::key_of(&sealed.key_sealed, super::key_ring(state).await?, tenant)?;
    let stripe = state.stripe.client(sealed.livemode, key, &sealed.account_id);
    loop {
        let mut tx = begin_tenant(&state.db, tenant).await?;
        let events: Vec<(String, Value, DateTime<Utc>)> = sqlx::query_as(
            "select id, payload, created from stripe_events
             where tenant_id = $1 and connection_id = $2 and applied_at is null
             order by created, id limit $3 for update skip locked",
        )
        .bind(tenant.as_str())
        .bind(connection_id)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if events.is_empty() {
            tx.commit().await?;
            return Ok(());
        }
        for (id, event, created) in events {
            apply(&mut tx, &stripe, tenant, connection_id, &event, created).await?;
            sqlx::query(
                "update stripe_events set applied_at = now() where tenant_id = $1 and connection_id = $2 and id = $3",
            )
            .bind(tenant.as_str())
            .bind(connection_id)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
}

/// Applies one event. Event types Payymo does not keep yet are marked applied unchanged.
async fn apply(
    tx: &mut PgConnection,
    stripe: &Stripe,
    tenant: &TenantId,
    connection_id: &str,
    event: &Value,
    version: DateTime<Utc>,
) -> Result<(), StripeError> {
    let object = &event["data"]["object"];
    if object["object"] == "payout"
        && let Some(id) = object["id"].as_str()
    {
        return apply_payout(tx, stripe, tenant, connection_id, id, version).await;
    }
    // A charge event carries the charge; a dispute or refund event names it.
    let charge_id = match object["object"].as_str() {
        Some("charge") => object["id"].as_str(),
        Some("dispute" | "refund") => object["charge"].as_str(),
        _ => None,
    };
    let Some(id) = charge_id else { return Ok(()) };
    // Events arrive in any order, several within one second: the charge is fetched as it is
    // now (with its balance transaction, for the fee), so every event converges on the latest.
    let mut charge = stripe.get(&format!("charges/{id}"), &[("expand[]", "balance_transaction")]).await?;
    let fee = charge["balance_transaction"]["fee"].as_i64();
    if let Some(txn) = charge["balance_transaction"]["id"].as_str().map(str::to_owned) {
        charge["balance_transaction"] = Value::String(txn);
    }
    let version = version.max(Utc::now());
    let applied = payments::apply_charge(tx, tenant, connection_id, &charge, fee, version).await?;
    if let Applied::Changed { now, before } = applied {
        payments::announce(tx, tenant, &now, before.as_deref()).await?;
    }
    Ok(())
}

/// Applies a payout event: the payout as Stripe has it now, its balance transactions (read when
/// they were not yet, or when it reaches a final state), and its outbox events.
async fn apply_payout(
    tx: &mut PgConnection,
    stripe: &Stripe,
    tenant: &TenantId,
    connection_id: &str,
    id: &str,
    version: DateTime<Utc>,
) -> Result<(), StripeError> {
    let payout = stripe.get(&format!("payouts/{id}"), &[]).await?;
    let version = version.max(Utc::now());
    let Some((mut now, before)) = payouts::apply_payout(tx, tenant, connection_id, &payout, version).await? else {
        return Ok(());
    };
    let settled = matches!(now.status.as_str(), "paid" | "failed");
    if now.summary.is_none() || settled {
        let transactions = transactions_of(stripe, id).await?;
        if let Some(summed) = payouts::keep_transactions(tx, tenant, connection_id, id, &transactions).await? {
            now = summed;
        }
    }
    let newly = |status: &str| now.status == status && before.as_ref().is_none_or(|b| b.status != status);
    for (event_type, happened) in [("stripe_payout.paid", newly("paid")), ("stripe_payout.failed", newly("failed"))] {
        if happened {
            events::record(tx, tenant, event_type, &now).await?;
        }
    }
    if newly("paid") {
        crate::reconciliation::runs::payout_paid(tx, tenant, &now.currency, now.amount).await?;
    }
    Ok(())
}

/// Every balance transaction the payout carries, page by page.
pub(crate) async fn transactions_of(stripe: &Stripe, payout: &str) -> Result<Vec<Value>, StripeError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut params = vec![("payout", payout), ("limit", "100")];
        if let Some(after) = &after {
            params.push(("starting_after", after.as_str()));
        }
        let page = stripe.get("balance_transactions", &params).await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        after = data.last().and_then(|t| t["id"].as_str()).map(str::to_owned);
        all.extend(data);
        if page["has_more"] != true || after.is_none() {
            return Ok(all);
        }
    }
}
