//! Stripe's events as they arrive: the signature checked first (`Stripe-Signature`, HMAC-SHA256
//! of `"{t}.{raw body}"` keyed by the whole `whsec_…` secret, any `v1` of several, within a
//! tolerance of `t`), then the raw event kept in a durable inbox, unique by its id, so a
//! duplicate is a no-op and nothing answered 2xx is lost.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::PgConnection;
use subtle::ConstantTimeEq;

use super::{StripeError, apply, connection};
use crate::{
    db::tenant::{begin_platform, begin_tenant, end_read},
    domain::ids::TenantId,
    state::AppState,
};

pub use secrets::EndpointSecret;

/// How far `t` may be from now, either way: the tolerance Stripe's libraries default to.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a delivery's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or has no t= and v1=")]
    Malformed,
    #[error("the signature's timestamp is more than {TOLERANCE_SECONDS} s from now")]
    Stale,
    #[error("no v1 signature matches the endpoint's secret")]
    Mismatch,
}

/// Checks `header` against `body` with any of `secrets`, at `now` (Unix seconds).
pub fn verify(header: &str, body: &[u8], secrets: &[String], now: i64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value.to_owned()),
            // `v0` and any other scheme are ignored: accepting them would allow a downgrade.
            _ => {}
        }
    }
    let (Some(t), false) = (t, signatures.is_empty()) else { return Err(SignatureError::Malformed) };
    if (now - t).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { continue };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        if signatures.iter().any(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes()))) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Webhook,
    Poll,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Poll => "poll",
        }
    }
}

/// When Stripe created the event (now, if it does not say).
fn created_of(event: &Value) -> DateTime<Utc> {
    event["created"].as_i64().and_then(|s| DateTime::<Utc>::from_timestamp(s, 0)).unwrap_or_else(Utc::now)
}

/// Keeps a Stripe event in the connection's inbox; `false` when it was there already.
pub async fn keep(
    conn: &mut PgConnection,
    tenant: &TenantId,
    connection_id: &str,
    event: &Value,
    source: Source,
) -> Result<bool, sqlx::Error> {
    let kept = sqlx::query(
        "insert into stripe_events (tenant_id, connection_id, id, event_type, created, payload, source)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict do nothing",
    )
    .bind(tenant.as_str())
    .bind(connection_id)
    .bind(event["id"].as_str().unwrap_or_default())
    .bind(event["type"].as_str().unwrap_or_default())
    .bind(created_of(event))
    .bind(event)
    .bind(source.as_str())
    .execute(conn)
    .await?;
    Ok(kept.rows_affected() == 1)
}

/// The webhook signing secrets of connected accounts, opened, kept for a few seconds per
/// process so that a burst of Stripe's deliveries does not read and open the same secret for
/// each event. Safe with any number of instances: an entry is only a shortcut, checked against
/// the database by the write it leads to ([`super::keep_delivered`]): a connection disconnected
/// or given a new endpoint since is noticed there, the entry dropped and the delivery judged
/// again from the database, as without the cache.
pub mod secrets {
    use std::{
        collections::HashMap,
        sync::{Arc, LazyLock, Mutex, PoisonError},
        time::{Duration, Instant},
    };

    use secrecy::SecretString;

    use crate::domain::ids::TenantId;

    /// A connection's webhook endpoint secret, as read from its row.
    #[derive(Clone)]
    pub struct EndpointSecret {
        pub tenant: TenantId,
        pub connection_id: String,
        /// The secret as stored (sealed): the inbox write checks the connection still has it.
        pub sealed: String,
        pub secret: Arc<SecretString>,
    }

    /// Entries beyond which expired ones are swept on the next insert.
    const SWEEP_AT: usize = 1_024;

    static SECRETS: LazyLock<Mutex<HashMap<String, (Instant, EndpointSecret)>>> = LazyLock::new(Mutex::default);

    /// The secret of `connection_id` read less than `ttl` ago, if any.
    pub fn cached(connection_id: &str, ttl: Duration) -> Option<EndpointSecret> {
        let entries = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(connection_id).filter(|(at, _)| at.elapsed() < ttl).map(|(_, secret)| secret.clone())
    }

    /// Remembers a secret just read from the database.
    pub fn remember(secret: EndpointSecret, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(secret.connection_id.clone(), (Instant::now(), secret));
    }

    /// Forgets the secret of `connection_id` (it proved stale).
    pub fn forget(connection_id: &str) {
        SECRETS.lock().unwrap_or_else(PoisonError::into_inner).remove(connection_id);
    }
}

/// Why a delivery is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No such connection, or none with a registered endpoint.
    #[error("no connected Stripe account {0} takes webhooks")]
    UnknownConnection(String),
    #[error("Stripe-Signature: {0}")]
    Signature(SignatureError),
    /// The body is not a Stripe event (the reason).
    #[error("{0}")]
    NotAnEvent(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

/// Takes one of Stripe's deliveries to connection `connection_id`: the signature checked against
/// the connection's endpoint secret (read and opened, or from [`secrets`] when it was a moment
/// ago), then the event kept in the inbox, then its application queued unless a job of the
/// connection is queued already ([`ensure_applying`]). Returns whether the event was new
/// (`false`: a duplicate, nothing changed).
pub async fn receive(state: &AppState, connection_id: &str, signature: &str, body: &[u8]) -> Result<bool, Refused> {
    let ttl = state.config.credential_cache_ttl;
    let mut cached = secrets::cached(connection_id, ttl);
    loop {
        // A cached secret that fails in any way is dropped and the delivery judged again from
        // the database, so the cache never changes an answer.
        let from_cache = cached.is_some();
        let endpoint = match cached.take() {
            Some(endpoint) => endpoint,
            None => endpoint_secret(state, connection_id).await?,
        };
        let secret = [endpoint.secret.expose_secret().to_owned()];
        if let Err(error) = verify(signature, body, &secret, Utc::now().timestamp()) {
            if from_cache {
                secrets::forget(connection_id);
                continue;
            }
            return Err(Refused::Signature(error));
        }
        let event = parse_event(body)?;
        let mut tx = begin_tenant(&state.db, &endpoint.tenant).await?;
        let Some(kept) = keep_delivered(&mut tx, &endpoint, &event).await? else {
            drop(tx);
            secrets::forget(connection_id);
            if from_cache {
                continue;
            }
            return Err(Refused::UnknownConnection(connection_id.to_owned()));
        };
        tx.commit().await?;
        if kept {
            let event_id = event["id"].as_str().unwrap_or_default();
            if let Err(error) = ensure_applying(state, &endpoint.tenant, connection_id, event_id).await {
                // The event is kept: the connection's next poll queues its application.
                tracing::warn!(%error, connection = connection_id, "could not queue the apply job of a kept event");
            }
        }
        if !from_cache {
            secrets::remember(endpoint, ttl);
        }
        return Ok(kept);
    }
}

/// The connection's endpoint secret, read and opened.
async fn endpoint_secret(state: &AppState, connection_id: &str) -> Result<EndpointSecret, Refused> {
    let unknown = || Refused::UnknownConnection(connection_id.to_owned());
    let mut tx = begin_platform(&state.db).await?;
    let found = connection::sealed_by_id(&mut tx, connection_id).await?;
    end_read(tx);
    let found = found.ok_or_else(unknown)?;
    let sealed = found.webhook_secret_sealed.ok_or_else(unknown)?;
    let tenant = TenantId::from_db(found.tenant_id);
    let secret = connection::webhook_secret_of(&sealed, super::key_ring(state).await?, &tenant, &found.id)?;
    Ok(EndpointSecret { tenant, connection_id: found.id, sealed, secret: Arc::new(secret) })
}

/// The body as an event: JSON with `object: "event"`, an `evt_…` id and a `type`.
fn parse_event(body: &[u8]) -> Result<Value, Refused> {
    let event: Value = serde_json::from_slice(body)
        .map_err(|e| Refused::NotAnEvent(format!("the body is not a Stripe event: {e}")))?;
    let is_event = event["object"] == "event"
        && event["id"].as_str().is_some_and(|id| id.starts_with("evt_"))
        && event["type"].is_string();
    if !is_event {
        return Err(Refused::NotAnEvent("the body is not a Stripe event (object, id, type)".into()));
    }
    Ok(event)
}

/// Keeps a delivered event in the inbox, in the same statement checking that the connection
/// still has the endpoint secret it was verified with (not disconnected, no new endpoint since
/// the secret was read): `None` when it has not, else whether the event was new.
pub async fn keep_delivered(
    conn: &mut PgConnection,
    endpoint: &EndpointSecret,
    event: &Value,
) -> Result<Option<bool>, sqlx::Error> {
    let (current, kept): (bool, bool) = sqlx::query_as(
        "with current as (
             select 1 from stripe_connections
             where tenant_id = $1 and id = $2 and status <> 'disconnected' and webhook_secret_sealed = $8
         ), kept as (
             insert into stripe_events (tenant_id, connection_id, id, event_type, created, payload, source)
             select $1, $2, $3, $4, $5, $6, $7 from current
             on conflict do nothing
             returning 1
         )
         select exists (select 1 from current), exists (select 1 from kept)",
    )
    .bind(endpoint.tenant.as_str())
    .bind(&endpoint.connection_id)
    .bind(event["id"].as_str().unwrap_or_default())
    .bind(event["type"].as_str().unwrap_or_default())
    .bind(created_of(event))
    .bind(event)
    .bind(Source::Webhook.as_str())
    .bind(&endpoint.sealed)
    .fetch_one(conn)
    .await?;
    Ok(current.then_some(kept))
}

/// Makes sure an apply job of the connection is queued, now that an event was committed: a
/// queued job that is due (not yet claimed, not backing off) will read it when it runs, so one
/// is enough; otherwise one is queued. Checked after the event's commit, not in its
/// transaction, so that a job seen queued cannot have read the inbox before the event was in
/// it. Not a job for every event, because every job insert sends a NOTIFY and PostgreSQL
/// serialises the commits of transactions that notify (a lock held through the commit's WAL
/// flush), so concurrent deliveries could not share a WAL flush. If the process dies between
/// the commit and this, the event waits for the connection's next poll, which queues an apply
/// job whenever events are left unapplied.
async fn ensure_applying(
    state: &AppState,
    tenant: &TenantId,
    connection_id: &str,
    event_id: &str,
) -> Result<(), sqlx::Error> {
    let mut conn = state.db.acquire().await?;
    let queued: bool = sqlx::query_scalar(
        "select exists (select 1 from jobs
                        where status = 'queued' and run_at <= now() and kind = $1
                          and tenant_id = $2 and payload = $3)",
    )
    .bind(apply::APPLY_JOB)
    .bind(tenant.as_str())
    .bind(json!({ "connection_id": connection_id }))
    .fetch_one(&mut *conn)
    .await?;
    if !queued {
        apply::enqueue(&mut conn, tenant, connection_id, event_id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_test","object":"event"}"#;
    const HEADER: &str = "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724";

    #[test]
    fn the_reference_vector_verifies_and_tampering_does_not() {
        let secrets = ["whsec_test_secret".to_owned()];
        assert_eq!(verify(HEADER, BODY, &secrets, 1_700_000_100), Ok(()));
        assert_eq!(
            verify(HEADER, br#"{"id":"evt_tests","object":"event"}"#, &secrets, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(HEADER, BODY, &["whsec_other".to_owned()], 1_700_000_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(HEADER, BODY, &secrets, 1_700_000_301), Err(SignatureError::Stale));
        assert_eq!(verify("v1=abc", BODY, &secrets, 1_700_000_000), Err(SignatureError::Malformed));
    }

    #[test]
    fn any_v1_of_several_and_any_secret_of_several_will_do_but_v0_never() {
        let two = format!("t=1700000000,v1=00,{}", &HEADER[13..]);
        let secrets = ["whsec_old".to_owned(), "whsec_test_secret".to_owned()];
        assert_eq!(verify(&two, BODY, &secrets, 1_700_000_000), Ok(()));
        let v0_only = HEADER.replace("v1=", "v0=");
        assert_eq!(verify(&v0_only, BODY, &secrets, 1_700_000_000), Err(SignatureError::Malformed));
    }
}
