//! Writing a batch of checked rows into a manual account, inside the caller's tenant-bound
//! transaction: new external ids are inserted in one statement, known ones with other content
//! are updated in one statement, and each change records its event in the same transaction.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use sqlx::PgConnection;

use super::{
    Account,
    rows::{RowResult, RowStatus, ValidRow},
};
use crate::{
    bank::model::{TRANSACTION_COLUMNS, Transaction},
    domain::ids::{TenantId, TransactionId},
    events,
};

/// A stored imported row, as compared with an incoming one.
#[derive(sqlx::FromRow)]
struct Stored {
    id: String,
    amount: i64,
    booking_date: Option<NaiveDate>,
    value_date: Option<NaiveDate>,
    description: Option<String>,
    counterparty_name: Option<String>,
    reference: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StoredByExternalId {
    external_id: String,
    #[sqlx(flatten)]
    stored: Stored,
}

/// Writes `rows` (already checked, external ids distinct) and returns one result per row, in
/// row order. Imports into one account are serialised (a transaction-scoped advisory lock),
/// so two imports of the same file never race on an external id.
pub async fn apply(
    conn: &mut PgConnection,
    tenant: &TenantId,
    account: &Account,
    rows: Vec<ValidRow>,
) -> Result<Vec<RowResult>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 5))")
        .bind(format!("import:{tenant}/{}", account.id))
        .execute(&mut *conn)
        .await?;
    // New rows go in first: a unique-index probe per row, whatever the planner thinks of the
    // account's size (its statistics lag far behind an import that grows it by 100,000 rows).
    let rows: Vec<(String, ValidRow)> =
        rows.into_iter().map(|row| (TransactionId::generate().as_str().to_owned(), row)).collect();
    let inserted = insert(conn, tenant, account, &rows).await?;
    let mut results = Vec::with_capacity(rows.len());
    let mut known = Vec::new();
    for (id, row) in rows {
        if inserted.contains(&id) {
            results.push(RowResult::done(row.row, row.external_id, RowStatus::Created, id));
        } else {
            known.push(row);
        }
    }
    if known.is_empty() {
        return Ok(results);
    }

    // Rows whose external id was imported before: compare, and update those that changed.
    let external_ids: Vec<&str> = known.iter().map(|r| r.external_id.as_str()).collect();
    let mut stored: HashMap<String, Stored> = sqlx::query_as::<_, StoredByExternalId>(
        "select t.external_id, t.id, t.amount, t.booking_date, t.value_date, t.description, t.counterparty_name,
                t.reference
         from transactions t join unnest($3::text[]) as e(external_id) on t.external_id = e.external_id
         where t.tenant_id = $1 and t.account_id = $2 and t.external_id is not null
         for update of t",
    )
    .bind(tenant.as_str())
    .bind(&account.id)
    .bind(&external_ids)
    // Planned with the actual ids each time: a generic plan can loop over the whole account per id.
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| (row.external_id, row.stored))
    .collect();
    let mut updates: Vec<(Stored, ValidRow)> = Vec::new();
    for row in known {
        match stored.remove(&row.external_id) {
            Some(existing) if differs(&existing, &row) => updates.push((existing, row)),
            Some(existing) => {
                results.push(RowResult::done(row.row, row.external_id, RowStatus::Unchanged, existing.id))
            }
            // Only another transaction holding `import:<external_id>` as its provider key could do this.
            None => results.push(RowResult::rejected(
                row.row,
                Some(row.external_id),
                "external_id: conflicts with another transaction of this account",
            )),
        }
    }
    update(conn, tenant, &updates, &mut results).await?;
    results.sort_by_key(|r| r.row);
    Ok(results)
}

fn differs(stored: &Stored, row: &ValidRow) -> bool {
    stored.amount != row.amount
        || stored.booking_date != Some(row.booking_date)
        || stored.value_date != row.value_date
        || stored.description != row.description
        || stored.counterparty_name != row.counterparty_name
        || stored.reference != row.reference
}

/// The fields an update changes, with their previous values (for `transaction.updated`).
fn previous_attributes(stored: &Stored, row: &ValidRow) -> Value {
    let mut previous = Map::new();
    if stored.amount != row.amount {
        previous.insert("amount".into(), json!(stored.amount));
    }
    if stored.booking_date != Some(row.booking_date) {
        previous.insert("booking_date".into(), json!(stored.booking_date));
    }
    if stored.value_date != row.value_date {
        previous.insert("value_date".into(), json!(stored.value_date));
    }
    if stored.description != row.description {
        previous.insert("description".into(), json!(stored.description));
    }
    if stored.counterparty_name != row.counterparty_name {
        previous.insert("counterparty_name".into(), json!(stored.counterparty_name));
    }
    if stored.reference != row.reference {
        previous.insert("reference".into(), json!(stored.reference));
    }
    Value::Object(previous)
}

/// The columns of a batch, for `unnest`.
struct Columns<'a> {
    external_ids: Vec<&'a str>,
    amounts: Vec<i64>,
    booking_dates: Vec<NaiveDate>,
    value_dates: Vec<Option<NaiveDate>>,
    descriptions: Vec<Option<&'a str>>,
    counterparties: Vec<Option<&'a str>>,
    references: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(rows: impl Iterator<Item = &'a ValidRow> + Clone) -> Self {
        Self {
            external_ids: rows.clone().map(|r| r.external_id.as_str()).collect(),
            amounts: rows.clone().map(|r| r.amount).collect(),
            booking_dates: rows.clone().map(|r| r.booking_date).collect(),
            value_dates: rows.clone().map(|r| r.value_date).collect(),
            descriptions: rows.clone().map(|r| r.description.as_deref()).collect(),
            counterparties: rows.clone().map(|r| r.counterparty_name.as_deref()).collect(),
            references: rows.map(|r| r.reference.as_deref()).collect(),
        }
    }
}

async fn insert(
    conn: &mut PgConnection,
    tenant: &TenantId,
    account: &Account,
    inserts: &[(String, ValidRow)],
) -> Result<HashSet<String>, sqlx::Error> {
    let ids: Vec<&str> = inserts.iter().map(|(id, _)| id.as_str()).collect();
    let raws: Vec<&Value> = inserts.iter().map(|(_, r)| &r.raw).collect();
    let c = Columns::of(inserts.iter().map(|(_, r)| r));
    let inserted: Vec<String> = sqlx::query_scalar(
        "insert into transactions (tenant_id, id, account_id, provider_transaction_id, status, amount, currency,
             booking_date, value_date, description, counterparty_name, reference, raw, source, external_id)
         select $1, t.id, $2, 'import:' || t.external_id, 'booked', t.amount, $3, t.booking_date, t.value_date,
                t.description, t.counterparty, t.reference, t.raw, 'import', t.external_id
         from unnest($4::text[], $5::text[], $6::bigint[], $7::date[], $8::date[], $9::text[], $10::text[],
                     $11::text[], $12::jsonb[])
              as t(id, external_id, amount, booking_date, value_date, description, counterparty, reference, raw)
         on conflict do nothing
         returning id",
    )
    .bind(tenant.as_str())
    .bind(&account.id)
    .bind(account.currency.as_str())
    .bind(&ids)
    .bind(&c.external_ids)
    .bind(&c.amounts)
    .bind(&c.booking_dates)
    .bind(&c.value_dates)
    .bind(&c.descriptions)
    .bind(&c.counterparties)
    .bind(&c.references)
    .bind(&raws)
    .fetch_all(&mut *conn)
    .await?;

    // The tenant's categorisation rules, in this transaction, so the created events carry the
    // category (an imported row has none of its own yet).
    crate::transactions::rules::categorize(&mut *conn, tenant, &inserted).await?;

    // The events carry each row as stored (with whatever categorisation set), read back in one query.
    let created: Vec<Transaction> = sqlx::query_as(&format!(
        "select {TRANSACTION_COLUMNS} from transactions where tenant_id = $1 and id = any($2)"
    ))
    .bind(tenant.as_str())
    .bind(&inserted)
    .fetch_all(&mut *conn)
    .await?;
    let payloads = created
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    if !payloads.is_empty() {
        // New credits are pending reconciliation; the engine looks at them after this commits.
        crate::reconciliation::runs::queue_incremental(conn, tenant).await?;
    }
    events::record_many(conn, tenant, "transaction.created", payloads).await?;

    Ok(inserted.into_iter().collect())
}

async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    updates: &[(Stored, ValidRow)],
    results: &mut Vec<RowResult>,
) -> Result<(), sqlx::Error> {
    if updates.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = updates.iter().map(|(s, _)| s.id.as_str()).collect();
    let raws: Vec<&Value> = updates.iter().map(|(_, r)| &r.raw).collect();
    let c = Columns::of(updates.iter().map(|(_, r)| r));
    let changed: Vec<Transaction> = sqlx::query_as(&format!(
        "update transactions set amount = u.n_amount, booking_date = u.n_booking_date, value_date = u.n_value_date,
             description = u.n_description, counterparty_name = u.n_counterparty, reference = u.n_reference,
             raw = u.n_raw
         from unnest($2::text[], $3::bigint[], $4::date[], $5::date[], $6::text[], $7::text[], $8::text[], $9::jsonb[])
              as u(n_id, n_amount, n_booking_date, n_value_date, n_description, n_counterparty, n_reference, n_raw)
         where tenant_id = $1 and id = u.n_id
         returning {TRANSACTION_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(&ids)
    .bind(&c.amounts)
    .bind(&c.booking_dates)
    .bind(&c.value_dates)
    .bind(&c.descriptions)
    .bind(&c.counterparties)
    .bind(&c.references)
    .bind(&raws)
    .fetch_all(&mut *conn)
    .await?;
    let previous: HashMap<&str, Value> =
        updates.iter().map(|(stored, row)| (stored.id.as_str(), previous_attributes(stored, row))).collect();
    let mut payloads = Vec::with_capacity(changed.len());
    for transaction in changed {
        let before = previous.get(transaction.id.as_str()).cloned().unwrap_or_else(|| json!({}));
        let mut data = serde_json::to_value(transaction).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        data["previous_attributes"] = before;
        payloads.push(data);
    }
    events::record_many(conn, tenant, "transaction.updated", payloads).await?;
    for (stored, row) in updates {
        results.push(RowResult::done(row.row, row.external_id.clone(), RowStatus::Updated, stored.id.clone()));
    }
    Ok(())
}
