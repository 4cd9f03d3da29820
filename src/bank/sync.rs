//! Syncing one bank account: fetch from the last booked date minus an overlap window, then, in
//! one tenant-bound transaction, insert what is new, update what changed, turn pending entries
//! into their booked successors instead of duplicating them, cancel pending entries the bank
//! dropped, and record an event for each change.
//!
//! Re-running a sync (a retry, or a worker killed mid-way whose job is claimed again after its
//! lease) changes nothing that is already right: rows are keyed by (tenant, account, provider
//! key) and the whole write is one transaction, so a killed sync leaves nothing half-written.

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use sqlx::PgConnection;

use super::{
    budget::{self, Endpoint},
    connections,
    model::Transaction,
    normalize::{Incoming, PendingRow, is_successor, normalize},
};
use crate::{
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{TenantId, TransactionId},
        states::{ConnectionStatus, Direction, MatchStatus, TransactionStatus},
    },
    events,
    jobs::{NewJob, queue},
    providers::gocardless::ProviderError,
    state::AppState,
    transactions::rules::{Candidate, CompiledRule, RuleSet},
};

/// The job kind that syncs one account (payload `{"account_id": "ba_…"}`).
pub const SYNC_JOB: &str = "bank.sync_account";
/// Days re-read before the last booked date: banks book late and correct recent entries.
pub const OVERLAP_DAYS: u64 = 7;
/// Rows per insert statement.
const BATCH: usize = 5_000;

/// Queues a sync of `account_id`, unless one is already queued or running.
pub async fn enqueue(conn: &mut PgConnection, tenant: &TenantId, account_id: &str) -> Result<(), sqlx::Error> {
    let job = NewJob::new(SYNC_JOB, json!({ "account_id": account_id }))
        .tenant(tenant.clone())
        .dedup_key(format!("{tenant}/{account_id}"));
    queue::enqueue(conn, &job).await.map(drop)
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub fetched: usize,
    pub created: usize,
    pub updated: usize,
    pub cancelled: usize,
    pub rejected: usize,
    /// Why nothing was fetched, when nothing was.
    pub skipped: Option<&'static str>,
}

/// The account as the sync needs it.
#[derive(sqlx::FromRow)]
struct AccountRow {
    provider_account_id: String,
    connection_id: String,
    connection_status: ConnectionStatus,
    last_booked_date: Option<NaiveDate>,
}

/// Syncs one account. Transient provider failures are errors (the job retries with backoff);
/// expired consent, suspension and a spent budget are outcomes, recorded and not retried.
pub async fn run(state: &AppState, tenant_id: &TenantId, account_id: &str) -> anyhow::Result<SyncReport> {
    let Some(tenant) = connections::tenant_context(state, tenant_id).await? else {
        return Ok(SyncReport { skipped: Some("tenant gone"), ..SyncReport::default() });
    };
    let mut tx = begin_tenant(&state.db, tenant_id).await?;
    let account: Option<AccountRow> = sqlx::query_as(
        "select a.provider_account_id, a.connection_id, c.status as connection_status, a.last_booked_date
         from bank_accounts a join bank_connections c on c.tenant_id = a.tenant_id and c.id = a.connection_id
         where a.tenant_id = $1 and a.id = $2",
    )
    .bind(tenant_id.as_str())
    .bind(account_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(account) = account else {
        return Ok(SyncReport { skipped: Some("account gone"), ..SyncReport::default() });
    };
    if account.connection_status != ConnectionStatus::Linked {
        return Ok(SyncReport { skipped: Some("connection not linked"), ..SyncReport::default() });
    }
    let transactions_left = budget::remaining(&mut tx, tenant_id, account_id, Endpoint::Transactions).await?;
    let balances_left = budget::remaining(&mut tx, tenant_id, account_id, Endpoint::Balances).await?;
    end_read(tx);
    if transactions_left <= 0 {
        return Ok(SyncReport { skipped: Some("daily budget spent"), ..SyncReport::default() });
    }

    let client = state.gocardless.for_tenant(&tenant).await?;
    let date_from = account.last_booked_date.and_then(|d| d.checked_sub_days(Days::new(OVERLAP_DAYS)));
    let answer = match client.transactions(&account.provider_account_id, date_from).await {
        Ok(answer) => answer,
        Err(ProviderError::AccessExpired) => {
            connections::mark(
                state,
                tenant_id,
                &account.connection_id,
                ConnectionStatus::Expired,
                "consent_expired",
                "the bank connection has expired: ask the account holder to re-authorise",
            )
            .await?;
            return Ok(SyncReport { skipped: Some("consent expired"), ..SyncReport::default() });
        }
        Err(ProviderError::Suspended) => {
            connections::mark(
                state,
                tenant_id,
                &account.connection_id,
                ConnectionStatus::Suspended,
                "account_suspended",
                "the bank suspended access after repeated errors: create a new bank connection",
            )
            .await?;
            return Ok(SyncReport { skipped: Some("suspended"), ..SyncReport::default() });
        }
        Err(ProviderError::BudgetSpent { .. }) => {
            let mut tx = begin_tenant(&state.db, tenant_id).await?;
            budget::record_spent(&mut tx, tenant_id, account_id, Endpoint::Transactions).await?;
            tx.commit().await?;
            return Ok(SyncReport { skipped: Some("daily budget spent"), ..SyncReport::default() });
        }
        Err(error) => return Err(error.into()),
    };
    // Balances are a bonus: a failure here never fails the sync.
    let balances = if balances_left > 0 {
        client
            .balances(&account.provider_account_id)
            .await
            .inspect_err(|error| tracing::info!(%error, account_id, "balances not refreshed"))
            .ok()
    } else {
        None
    };

    let lists = answer.body.transactions;
    let mut report = SyncReport { fetched: lists.booked.len() + lists.pending.len(), ..SyncReport::default() };
    let mut incoming = Vec::with_capacity(report.fetched);
    let mut seen = HashMap::new();
    for (raw, booked) in
        lists.booked.into_iter().map(|r| (r, true)).chain(lists.pending.into_iter().map(|r| (r, false)))
    {
        match normalize(raw, booked, &mut seen) {
            Ok(mut entry) => {
                // Lists order by date: an entry without any gets the day it was first seen.
                if entry.date().is_none() {
                    entry.value_date = Some(Utc::now().date_naive());
                }
                incoming.push(entry)
            }
            Err(reason) => {
                report.rejected += 1;
                tracing::warn!(account_id, %reason, "skipping a transaction the bank sent");
            }
        }
    }

    let mut tx = begin_tenant(&state.db, tenant_id).await?;
    let target = Target { tenant: tenant_id, account_id, connection_id: &account.connection_id };
    apply(&mut tx, &target, incoming, date_from, &mut report).await?;
    budget::record_use(&mut tx, tenant_id, account_id, Endpoint::Transactions, &answer.limits).await?;
    if let Some(balances) = &balances {
        budget::record_use(&mut tx, tenant_id, account_id, Endpoint::Balances, &balances.limits).await?;
        sqlx::query(
            "update bank_accounts set balances = $3, balances_fetched_at = now() where tenant_id = $1 and id = $2",
        )
        .bind(tenant_id.as_str())
        .bind(account_id)
        .bind(connections::balances_of(&balances.body.balances))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "update bank_accounts set last_synced_at = now(),
             last_booked_date = greatest(last_booked_date,
                 (select max(booking_date) from transactions
                  where tenant_id = $1 and account_id = $2 and status = 'booked'))
         where tenant_id = $1 and id = $2",
    )
    .bind(tenant_id.as_str())
    .bind(account_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("update bank_connections set last_synced_at = now() where tenant_id = $1 and id = $2")
        .bind(tenant_id.as_str())
        .bind(&account.connection_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(account_id, ?report, "bank account synced");
    Ok(report)
}

/// Where rows go.
struct Target<'a> {
    tenant: &'a TenantId,
    account_id: &'a str,
    connection_id: &'a str,
}

/// A stored row as the sync compares it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Stored {
    id: String,
    key: String,
    bank_transaction_id: Option<String>,
    status: TransactionStatus,
    amount: i64,
    currency: String,
    booking_date: Option<NaiveDate>,
    value_date: Option<NaiveDate>,
    description: Option<String>,
    counterparty_name: Option<String>,
    reference: Option<String>,
}

/// Writes one fetched batch: the heart of the sync.
async fn apply(
    tx: &mut PgConnection,
    target: &Target<'_>,
    incoming: Vec<Incoming>,
    date_from: Option<NaiveDate>,
    report: &mut SyncReport,
) -> Result<(), sqlx::Error> {
    let now: DateTime<Utc> = sqlx::query_scalar("select now()").fetch_one(&mut *tx).await?;
    let keys: Vec<&str> = incoming.iter().map(|i| i.key.as_str()).collect();
    let stored: Vec<Stored> = sqlx::query_as(
        "select id, provider_transaction_id as key, bank_transaction_id, status, amount, currency, booking_date,
                value_date, description, counterparty_name, reference
         from transactions
         where tenant_id = $1 and account_id = $2 and (provider_transaction_id = any($3) or status = 'pending')
         for update",
    )
    .bind(target.tenant.as_str())
    .bind(target.account_id)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_key: HashMap<String, Stored> = stored.iter().map(|s| (s.key.clone(), s.clone())).collect();
    let incoming_keys: std::collections::HashSet<&str> = keys.iter().copied().collect();
    // Pending rows not re-sent under their own key: candidates to have been booked.
    let mut orphans: Vec<Stored> = stored
        .into_iter()
        .filter(|s| s.status == TransactionStatus::Pending && !incoming_keys.contains(s.key.as_str()))
        .collect();

    let mut inserts: Vec<(String, Incoming)> = Vec::new();
    let mut updates: Vec<(Stored, Incoming)> = Vec::new();
    for entry in incoming {
        if let Some(existing) = by_key.remove(&entry.key) {
            if differs(&existing, &entry) {
                updates.push((existing, entry));
            }
            continue;
        }
        if entry.booked
            && let Some(index) = orphans.iter().position(|p| is_successor(&pending_row(p), &entry))
        {
            updates.push((orphans.swap_remove(index), entry));
            continue;
        }
        inserts.push((TransactionId::generate().as_str().to_owned(), entry));
    }

    insert(tx, target, &inserts, now, report).await?;
    for (existing, entry) in &updates {
        update(tx, target, existing, entry).await?;
        report.updated += 1;
    }
    // Pending entries the bank no longer lists, in the window it just listed: dropped unbooked.
    for gone in orphans {
        let covered = match (date_from, gone.value_date) {
            (Some(from), Some(day)) => day >= from,
            _ => true,
        };
        if covered {
            cancel(tx, target, &gone, now).await?;
            report.cancelled += 1;
        }
    }
    Ok(())
}

fn pending_row(stored: &Stored) -> PendingRow {
    PendingRow {
        bank_transaction_id: stored.bank_transaction_id.clone(),
        amount: stored.amount,
        currency: stored.currency.clone(),
        value_date: stored.value_date.or(stored.booking_date),
        description: stored.description.clone(),
        counterparty_name: stored.counterparty_name.clone(),
    }
}

fn status_of(entry: &Incoming) -> TransactionStatus {
    if entry.booked { TransactionStatus::Booked } else { TransactionStatus::Pending }
}

/// Whether the entry changes its stored row: a field the API shows (see [`previous_attributes`],
/// the one list of them), or the bank's own transaction id, which is stored but not shown.
fn differs(stored: &Stored, entry: &Incoming) -> bool {
    stored.bank_transaction_id != entry.bank_transaction_id
        || previous_attributes(stored, entry).as_object().is_some_and(|changed| !changed.is_empty())
}

/// The fields the API shows that changed, with their previous values (for `transaction.updated`).
fn previous_attributes(stored: &Stored, entry: &Incoming) -> Value {
    let mut previous = Map::new();
    if stored.status != status_of(entry) {
        previous.insert("status".into(), json!(stored.status));
    }
    if stored.amount != entry.amount {
        previous.insert("amount".into(), json!(stored.amount));
    }
    if stored.currency != entry.currency.as_str() {
        previous.insert("currency".into(), json!(stored.currency));
    }
    if stored.booking_date != entry.booking_date {
        previous.insert("booking_date".into(), json!(stored.booking_date));
    }
    if stored.value_date != entry.value_date {
        previous.insert("value_date".into(), json!(stored.value_date));
    }
    if stored.description != entry.description {
        previous.insert("description".into(), json!(stored.description));
    }
    if stored.counterparty_name != entry.counterparty_name {
        previous.insert("counterparty_name".into(), json!(stored.counterparty_name));
    }
    if stored.reference != entry.reference {
        previous.insert("reference".into(), json!(stored.reference));
    }
    Value::Object(previous)
}

/// The stored row as the API shows it: the incoming entry, plus the category a rule set.
fn api_view(
    id: &str,
    target: &Target<'_>,
    entry: &Incoming,
    category: Option<&str>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Transaction {
    Transaction {
        id: id.to_owned(),
        account_id: target.account_id.to_owned(),
        bank_connection_id: Some(target.connection_id.to_owned()),
        status: status_of(entry),
        amount: entry.amount,
        currency: entry.currency.as_str().to_owned(),
        booking_date: entry.booking_date,
        value_date: entry.value_date,
        description: entry.description.clone(),
        counterparty_name: entry.counterparty_name.clone(),
        reference: entry.reference.clone(),
        bank_transaction_code: entry.bank_transaction_code.clone(),
        direction: Direction::of(entry.amount),
        match_status: MatchStatus::Unmatched,
        category: category.map(str::to_owned),
        category_source: category.map(|_| "rule".to_owned()),
        notes: None,
        tags: Vec::new(),
        metadata: Default::default(),
        source: "bank_feed".to_owned(),
        external_id: None,
        created_at,
        updated_at: now,
    }
}

async fn insert(
    tx: &mut PgConnection,
    target: &Target<'_>,
    rows: &[(String, Incoming)],
    now: DateTime<Utc>,
    report: &mut SyncReport,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    // Categorisation rules, loaded and compiled once for the whole sync, in this transaction, are
    // evaluated on the incoming rows before they are written: each row is inserted with its
    // category (never written twice: an update would re-index it, trigram index included), and
    // its `transaction.created` event carries it. See `transactions::rules::categorize` for
    // writers that categorise rows already inserted.
    let rules = RuleSet::load(&mut *tx, target.tenant).await?;
    for chunk in rows.chunks(BATCH) {
        let column = |f: &dyn Fn(&Incoming) -> Option<String>| chunk.iter().map(|(_, e)| f(e)).collect::<Vec<_>>();
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let amounts: Vec<i64> = chunk.iter().map(|(_, e)| e.amount).collect();
        let booking: Vec<Option<NaiveDate>> = chunk.iter().map(|(_, e)| e.booking_date).collect();
        let value: Vec<Option<NaiveDate>> = chunk.iter().map(|(_, e)| e.value_date).collect();
        let raw: Vec<&Value> = chunk.iter().map(|(_, e)| &e.raw).collect();
        let rule_of: Vec<Option<&CompiledRule>> = chunk
            .iter()
            .map(|(_, e)| {
                let candidate = Candidate::new(
                    target.account_id,
                    e.amount,
                    e.description.as_deref(),
                    e.counterparty_name.as_deref(),
                );
                rules.first_match(&candidate)
            })
            .collect();
        let categories: Vec<Option<&str>> = rule_of.iter().map(|r| r.map(|r| r.category.as_str())).collect();
        let sources: Vec<Option<&str>> = rule_of.iter().map(|r| r.map(|_| "rule")).collect();
        let rule_ids: Vec<Option<&str>> = rule_of.iter().map(|r| r.map(|r| r.id.as_str())).collect();
        let inserted: Vec<String> = sqlx::query_scalar(
            "insert into transactions (tenant_id, id, account_id, connection_id, provider_transaction_id,
                 bank_transaction_id, status, amount, currency, booking_date, value_date, description,
                 counterparty_name, bank_transaction_code, raw, reference, category, category_source,
                 category_rule_id)
             select $1, t.id, $2, $3, t.key, t.bank_id, t.status, t.amount, t.currency, t.booking_date,
                    t.value_date, t.description, t.counterparty, t.code, t.raw, t.reference, t.category,
                    t.category_source, t.rule_id
             from unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::date[],
                         $11::date[], $12::text[], $13::text[], $14::text[], $15::jsonb[], $16::text[],
                         $17::text[], $18::text[], $19::text[])
                  as t(id, key, bank_id, status, amount, currency, booking_date, value_date, description,
                       counterparty, code, raw, reference, category, category_source, rule_id)
             on conflict (tenant_id, account_id, provider_transaction_id) do nothing
             returning id",
        )
        .bind(target.tenant.as_str())
        .bind(target.account_id)
        .bind(target.connection_id)
        .bind(&ids)
        .bind(column(&|e| Some(e.key.clone())))
        .bind(column(&|e| e.bank_transaction_id.clone()))
        .bind(column(&|e| Some(status_of(e).as_str().to_owned())))
        .bind(&amounts)
        .bind(column(&|e| Some(e.currency.as_str().to_owned())))
        .bind(&booking)
        .bind(&value)
        .bind(column(&|e| e.description.clone()))
        .bind(column(&|e| e.counterparty_name.clone()))
        .bind(column(&|e| e.bank_transaction_code.clone()))
        .bind(&raw)
        .bind(column(&|e| e.reference.clone()))
        .bind(&categories)
        .bind(&sources)
        .bind(&rule_ids)
        .fetch_all(&mut *tx)
        .await?;
        // Only rows this statement wrote get an event: a concurrent writer's rows already have theirs.
        let written: std::collections::HashSet<&str> = inserted.iter().map(String::as_str).collect();
        let payloads: Vec<Value> = chunk
            .iter()
            .zip(&categories)
            .filter(|((id, _), _)| written.contains(id.as_str()))
            .map(|((id, entry), category)| events::payload(api_view(id, target, entry, *category, now, now)))
            .collect::<Result<_, _>>()?;
        report.created += payloads.len();
        if !payloads.is_empty() {
            // New credits are pending reconciliation; the engine looks at them after this commits.
            crate::reconciliation::runs::queue_incremental(tx, target.tenant).await?;
        }
        events::record_many(tx, target.tenant, "transaction.created", payloads).await?;
    }
    Ok(())
}

async fn update(
    tx: &mut PgConnection,
    target: &Target<'_>,
    existing: &Stored,
    entry: &Incoming,
) -> Result<(), sqlx::Error> {
    // The event carries the whole row as it now is: category, notes and metadata included.
    let transaction: Transaction = sqlx::query_as(&format!(
        "update transactions set provider_transaction_id = $3, bank_transaction_id = $4, status = $5, amount = $6,
             currency = $7, booking_date = $8, value_date = $9, description = $10, counterparty_name = $11,
             bank_transaction_code = $12, raw = $13, reference = $14
         where tenant_id = $1 and id = $2
         returning {}",
        super::model::TRANSACTION_COLUMNS
    ))
    .bind(target.tenant.as_str())
    .bind(&existing.id)
    .bind(&entry.key)
    .bind(&entry.bank_transaction_id)
    .bind(status_of(entry))
    .bind(entry.amount)
    .bind(entry.currency.as_str())
    .bind(entry.booking_date)
    .bind(entry.value_date)
    .bind(&entry.description)
    .bind(&entry.counterparty_name)
    .bind(&entry.bank_transaction_code)
    .bind(&entry.raw)
    .bind(&entry.reference)
    .fetch_one(&mut *tx)
    .await?;
    let mut data = events::payload(transaction)?;
    data["previous_attributes"] = previous_attributes(existing, entry);
    events::record(tx, target.tenant, "transaction.updated", data).await?;
    Ok(())
}

async fn cancel(
    tx: &mut PgConnection,
    target: &Target<'_>,
    gone: &Stored,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let transaction: Transaction = sqlx::query_as(&format!(
        "update transactions set status = 'cancelled' where tenant_id = $1 and id = $2
         returning {}",
        super::model::TRANSACTION_COLUMNS
    ))
    .bind(target.tenant.as_str())
    .bind(&gone.id)
    .fetch_one(&mut *tx)
    .await?;
    let mut data = events::payload(Transaction { updated_at: now, ..transaction })?;
    data["previous_attributes"] = json!({ "status": "pending" });
    events::record(tx, target.tenant, "transaction.updated", data).await?;
    Ok(())
}
