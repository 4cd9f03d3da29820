//! The audit log: one append-only row per mutating API call, authentication failure and security
//! incident, each chained to its tenant's previous row by SHA-256, so that editing, inserting or
//! removing a row breaks the chain where it happened.
//!
//! `hash = SHA-256(prev_hash || canonical(row))`, where `canonical` is a JSON array of the row's
//! fields in a fixed order with object keys sorted (Postgres's jsonb reorders keys, so the
//! canonical form must not depend on the order they were written in). Appends for one tenant are
//! serialised by locking the tenant's chain head.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

use crate::{
    db::tenant::begin_tenant,
    domain::canonical_json::canonical_json,
    domain::ids::{AuditLogId, TenantId},
};

/// What happened to the attempted action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    /// Refused for lack of authentication, scope or permission.
    Denied,
    /// An attempt to reach another tenant's data, or a reused refresh token.
    SecurityIncident,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
            Outcome::SecurityIncident => "security_incident",
        }
    }
}

/// One thing to record.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub credential_id: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: Option<Outcome>,
    pub status: Option<i32>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: Value,
}

/// Appends `entry` to `tenant`'s log in a transaction of its own.
/// A tenant's chain head: the last entry's sequence number and hash.
#[derive(sqlx::FromRow)]
struct ChainHead {
    seq: i64,
    hash: Vec<u8>,
}

pub async fn append(pool: &PgPool, tenant: &TenantId, entry: Entry) -> Result<AuditLogId, sqlx::Error> {
    let mut tx = begin_tenant(pool, tenant).await?;
    let id = append_in(&mut tx, tenant, entry).await?;
    tx.commit().await?;
    Ok(id)
}

/// Appends `entry` inside a transaction already bound to `tenant`.
pub async fn append_in(conn: &mut PgConnection, tenant: &TenantId, entry: Entry) -> Result<AuditLogId, sqlx::Error> {
    sqlx::query(
        "insert into audit_chain_heads (tenant_id, seq, hash) values ($1, 0, $2) on conflict (tenant_id) do nothing",
    )
    .bind(tenant.as_str())
    .bind(vec![0u8; 32])
    .execute(&mut *conn)
    .await?;
    let ChainHead { seq, hash: prev_hash } =
        sqlx::query_as("select seq, hash from audit_chain_heads where tenant_id = $1 for update")
            .bind(tenant.as_str())
            .fetch_one(&mut *conn)
            .await?;
    let row = Row {
        seq: seq + 1,
        id: AuditLogId::generate().to_string(),
        occurred_at: truncate_to_micros(Utc::now()),
        outcome: entry.outcome.unwrap_or(Outcome::Success).as_str().to_owned(),
        entry,
    };
    let hash = chain_hash(&prev_hash, tenant.as_str(), &row);
    sqlx::query(
        "insert into audit_logs (tenant_id, seq, id, occurred_at, actor_type, actor_id, credential_id, action,
                                 resource_type, resource_id, outcome, status, ip, request_id, detail, prev_hash, hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(tenant.as_str())
    .bind(row.seq)
    .bind(&row.id)
    .bind(row.occurred_at)
    .bind(&row.entry.actor_type)
    .bind(&row.entry.actor_id)
    .bind(&row.entry.credential_id)
    .bind(&row.entry.action)
    .bind(&row.entry.resource_type)
    .bind(&row.entry.resource_id)
    .bind(&row.outcome)
    .bind(row.entry.status)
    .bind(&row.entry.ip)
    .bind(&row.entry.request_id)
    .bind(&row.entry.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("update audit_chain_heads set seq = $2, hash = $3 where tenant_id = $1")
        .bind(tenant.as_str())
        .bind(row.seq)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    Ok(AuditLogId::from_db(row.id))
}

/// Appends `entries` in order inside a transaction already bound to `tenant`, chained as
/// [`append_in`] would one by one, with the chain head locked once and the rows written in one
/// statement: for the reconciliation engine's thousands of decisions per batch.
pub async fn append_many_in(
    conn: &mut PgConnection,
    tenant: &TenantId,
    entries: Vec<Entry>,
) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into audit_chain_heads (tenant_id, seq, hash) values ($1, 0, $2) on conflict (tenant_id) do nothing",
    )
    .bind(tenant.as_str())
    .bind(vec![0u8; 32])
    .execute(&mut *conn)
    .await?;
    let ChainHead { mut seq, hash: mut prev_hash } =
        sqlx::query_as("select seq, hash from audit_chain_heads where tenant_id = $1 for update")
            .bind(tenant.as_str())
            .fetch_one(&mut *conn)
            .await?;
    let occurred_at = truncate_to_micros(Utc::now());
    let mut rows = Vec::with_capacity(entries.len());
    let mut hashes = Vec::with_capacity(entries.len());
    let mut prev_hashes = Vec::with_capacity(entries.len());
    for entry in entries {
        seq += 1;
        let row = Row {
            seq,
            id: AuditLogId::generate().to_string(),
            occurred_at,
            outcome: entry.outcome.unwrap_or(Outcome::Success).as_str().to_owned(),
            entry,
        };
        let hash = chain_hash(&prev_hash, tenant.as_str(), &row);
        prev_hashes.push(std::mem::replace(&mut prev_hash, hash.clone()));
        hashes.push(hash);
        rows.push(row);
    }
    let column = |f: fn(&Row) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "insert into audit_logs (tenant_id, seq, id, occurred_at, actor_type, actor_id, credential_id, action,
                                 resource_type, resource_id, outcome, status, ip, request_id, detail, prev_hash, hash)
         select $1, r.seq, r.id, $2, r.actor_type, r.actor_id, r.credential_id, r.action, r.resource_type,
                r.resource_id, r.outcome, r.status, r.ip, r.request_id, r.detail, r.prev_hash, r.hash
         from unnest($3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                     $11::text[], $12::int4[], $13::text[], $14::text[], $15::jsonb[], $16::bytea[], $17::bytea[])
             as r(seq, id, actor_type, actor_id, credential_id, action, resource_type, resource_id, outcome, status,
                  ip, request_id, detail, prev_hash, hash)",
    )
    .bind(tenant.as_str())
    .bind(occurred_at)
    .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(column(|r| Some(r.id.clone())))
    .bind(column(|r| Some(r.entry.actor_type.clone())))
    .bind(column(|r| r.entry.actor_id.clone()))
    .bind(column(|r| r.entry.credential_id.clone()))
    .bind(column(|r| Some(r.entry.action.clone())))
    .bind(column(|r| r.entry.resource_type.clone()))
    .bind(column(|r| r.entry.resource_id.clone()))
    .bind(column(|r| Some(r.outcome.clone())))
    .bind(rows.iter().map(|r| r.entry.status).collect::<Vec<_>>())
    .bind(column(|r| r.entry.ip.clone()))
    .bind(column(|r| r.entry.request_id.clone()))
    .bind(rows.iter().map(|r| r.entry.detail.clone()).collect::<Vec<_>>())
    .bind(&prev_hashes)
    .bind(&hashes)
    .execute(&mut *conn)
    .await?;
    sqlx::query("update audit_chain_heads set seq = $2, hash = $3 where tenant_id = $1")
        .bind(tenant.as_str())
        .bind(seq)
        .bind(&prev_hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A row as hashed.
#[derive(Debug, Clone)]
struct Row {
    seq: i64,
    id: String,
    occurred_at: DateTime<Utc>,
    outcome: String,
    entry: Entry,
}

fn chain_hash(prev_hash: &[u8], tenant: &str, row: &Row) -> Vec<u8> {
    let e = &row.entry;
    let canonical = Value::Array(vec![
        Value::from(tenant),
        Value::from(row.seq),
        Value::from(row.id.as_str()),
        Value::from(row.occurred_at.timestamp_micros()),
        Value::from(e.actor_type.as_str()),
        Value::from(e.actor_id.clone()),
        Value::from(e.credential_id.clone()),
        Value::from(e.action.as_str()),
        Value::from(e.resource_type.clone()),
        Value::from(e.resource_id.clone()),
        Value::from(row.outcome.as_str()),
        Value::from(e.status),
        Value::from(e.ip.clone()),
        Value::from(e.request_id.clone()),
        e.detail.clone(),
    ]);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical_json(&canonical).as_bytes());
    hasher.finalize().to_vec()
}

fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// The result of checking a tenant's chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainReport {
    /// True when every row's hash matches its content and its predecessor.
    pub valid: bool,
    /// Rows checked.
    pub entries_checked: i64,
    /// The first row (by `seq`) whose content, link or position does not match, if any.
    pub first_invalid_seq: Option<i64>,
    /// Why that row failed.
    pub reason: Option<String>,
}

/// Recomputes `tenant`'s whole chain.
pub async fn verify(pool: &PgPool, tenant: &TenantId) -> Result<ChainReport, sqlx::Error> {
    type Stored = (
        i64,
        String,
        DateTime<Utc>,
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        String,
        Option<i32>,
        Option<String>,
        Option<String>,
        Value,
        Vec<u8>,
        Vec<u8>,
    );
    let mut tx = begin_tenant(pool, tenant).await?;
    let rows: Vec<Stored> = sqlx::query_as(
        "select seq, id, occurred_at, actor_type, actor_id, credential_id, action, resource_type, resource_id,
                outcome, status, ip, request_id, detail, prev_hash, hash
         from audit_logs where tenant_id = $1 order by seq",
    )
    .bind(tenant.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let head: Option<ChainHead> = sqlx::query_as("select seq, hash from audit_chain_heads where tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;

    let mut expected_prev = vec![0u8; 32];
    let mut checked = 0;
    let broken = |seq: i64, reason: &str, checked: i64| ChainReport {
        valid: false,
        entries_checked: checked,
        first_invalid_seq: Some(seq),
        reason: Some(reason.to_owned()),
    };
    for (index, stored) in rows.into_iter().enumerate() {
        let (
            seq,
            id,
            occurred_at,
            actor_type,
            actor_id,
            credential_id,
            action,
            resource_type,
            resource_id,
            outcome,
            status,
            ip,
            request_id,
            detail,
            prev_hash,
            hash,
        ) = stored;
        checked += 1;
        if seq != index as i64 + 1 {
            return Ok(broken(seq, "a row is missing before this one", checked));
        }
        if prev_hash != expected_prev {
            return Ok(broken(seq, "prev_hash does not match the previous row's hash", checked));
        }
        let row = Row {
            seq,
            id,
            occurred_at,
            outcome,
            entry: Entry {
                actor_type,
                actor_id,
                credential_id,
                action,
                resource_type,
                resource_id,
                outcome: None,
                status,
                ip,
                request_id,
                detail,
            },
        };
        if chain_hash(&prev_hash, tenant.as_str(), &row) != hash {
            return Ok(broken(seq, "the row's content does not match its hash", checked));
        }
        expected_prev = hash;
    }
    if let Some(ChainHead { seq: head_seq, hash: head_hash }) = head
        && (head_seq != checked || head_hash != expected_prev)
    {
        return Ok(broken(checked + 1, "rows after this point were removed", checked));
    }
    Ok(ChainReport { valid: true, entries_checked: checked, first_invalid_seq: None, reason: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_and_the_link() {
        let row = Row {
            seq: 1,
            id: "aud_1".into(),
            occurred_at: truncate_to_micros(Utc::now()),
            outcome: "success".into(),
            entry: Entry { actor_type: "api_key".into(), action: "POST /api/v1/api_keys".into(), ..Entry::default() },
        };
        let base = chain_hash(&[0; 32], "ten_a", &row);
        assert_ne!(base, chain_hash(&[1; 32], "ten_a", &row), "the link");
        assert_ne!(base, chain_hash(&[0; 32], "ten_b", &row), "the tenant");
        let mut changed = row.clone();
        changed.entry.ip = Some("192.0.2.1".into());
        assert_ne!(base, chain_hash(&[0; 32], "ten_a", &changed), "a field");
        assert_eq!(base, chain_hash(&[0; 32], "ten_a", &row), "deterministic");
    }
}
