//! A tenant's Stripe connection: a key checked against Stripe before it is kept (the account it
//! opens, and which of the reads Payymo needs a restricted key lacks), sealed with the key ring
//! and never shown again. One connection per tenant; replacing the key keeps its id. The key is
//! one the tenant gave (`api_key`) or the access token Stripe Connect OAuth gave (`oauth`).

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::StripeError;
use crate::{auth::Environment, crypto::KeyRing, domain::ids::TenantId, events};

pub use super::account::Checked;

/// The reads Payymo makes, as Stripe's restricted-key permissions name them, with the call that
/// proves each.
pub const READ_PERMISSIONS: &[(&str, &str)] = &[
    ("charges:read", "charges"),
    ("refunds:read", "refunds"),
    ("payment_intents:read", "payment_intents"),
    ("balance:read", "balance_transactions"),
    ("payouts:read", "payouts"),
    ("events:read", "events"),
];

crate::domain::states::states! {
    /// Where a Stripe connection stands.
    StripeConnectionStatus {
        /// The key works.
        Connected = "connected",
        /// Stripe refused the key since it was connected (revoked, expired); see `error`.
        Failed = "failed",
        /// The tenant disconnected the account; the key is gone.
        Disconnected = "disconnected",
    }
}

crate::domain::states::states! {
    /// How a Stripe connection got its key.
    StripeConnectionMethod {
        /// The tenant gave a restricted or secret key (`PUT /stripe/connection`).
        ApiKey = "api_key",
        /// The account holder approved Payymo's platform with Stripe Connect OAuth; the key is
        /// the access token Stripe gave.
        OAuth = "oauth",
    }
}

/// A tenant's connection to its Stripe account. The key itself is never shown.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[schema(example = json!({
    "id": "sc_0192f3c4d5e6478fa1b2c3d4e5f60718", "status": "connected", "account_id": "acct_1PgafTB7WZ01zgkW",
    "account_name": "Acme Widgets Ltd", "livemode": false, "key_hint": "rk_test_…Xy7Q", "key_kind": "restricted",
    "missing_permissions": [], "error": null, "webhook_status": "registered", "webhook_error": null, "method": "api_key",
    "backfill": {"status": "completed", "since": "2026-09-05T00:00:00Z",
                 "until": "2026-12-04T09:30:00.120374Z", "phase": "done", "charges": 1842,
                 "refunds": 12, "payouts": 61, "balance_transactions": 3770, "error": null,
                 "started_at": "2026-12-04T09:30:00.120374Z", "completed_at": "2026-12-04T09:31:12.503921Z"},
    "created_at": "2026-12-04T09:30:00.000000Z", "updated_at": "2026-12-04T09:30:00.000000Z"
}))]
pub struct StripeConnection {
    /// `sc_…`
    pub id: String,
    pub status: StripeConnectionStatus,
    /// The Stripe account (`acct_…`).
    pub account_id: String,
    /// The account's business name, as Stripe has it.
    pub account_name: Option<String>,
    /// Whether the key is a live key.
    pub livemode: bool,
    /// The key's kind and mode with its last four characters (`rk_live_…Xy7Q`).
    pub key_hint: String,
    /// `restricted` (`rk_…`, recommended) or `secret` (`sk_…`).
    pub key_kind: String,
    /// Reads a restricted key lacks (`payouts:read`): grant them in the Stripe Dashboard, then
    /// `PUT` the key again.
    pub missing_permissions: Vec<String>,
    /// Why a `failed` connection failed.
    pub error: Option<String>,
    /// `registered`: Stripe sends the account's events to Payymo's endpoint. `not_registered`:
    /// the key may not create webhook endpoints (see `webhook_error`); changes are still caught
    /// by polling.
    pub webhook_status: String,
    pub webhook_error: Option<String>,
    /// How far reading the account's history has come (null before it started).
    #[schema(value_type = Option<super::backfill::BackfillProgress>)]
    pub backfill: Option<sqlx::types::Json<super::backfill::BackfillProgress>>,
    /// `api_key`: connected with a key the tenant gave; `oauth`: with Stripe Connect OAuth
    /// (disconnecting also deauthorizes Payymo's platform at Stripe).
    pub method: StripeConnectionMethod,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, status, account_id, account_name, livemode, key_hint, key_kind, missing_permissions, \
                       error, webhook_status, webhook_error, method, (select to_jsonb(b) from stripe_backfills b \
                       where b.tenant_id = stripe_connections.tenant_id and b.connection_id = stripe_connections.id) \
                       as backfill, created_at, updated_at";

/// A key's kind and mode, read from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyShape {
    pub restricted: bool,
    pub live: bool,
}

/// Checks a key's form and that its mode is the tenant's: test-mode tenants take test keys,
/// live tenants live keys.
pub fn check_key(key: &str, environment: Environment) -> Result<KeyShape, StripeError> {
    let live_tenant = environment == Environment::Live;
    if key.starts_with("pk_") {
        return Err(StripeError::invalid(
            "api_key",
            "is a publishable key; give a restricted key (rk_…) or a secret key (sk_…) from the Dashboard's API keys",
        ));
    }
    let shape = match key.get(..8) {
        Some("sk_test_") => KeyShape { restricted: false, live: false },
        Some("rk_test_") => KeyShape { restricted: true, live: false },
        Some("sk_live_") => KeyShape { restricted: false, live: true },
        Some("rk_live_") => KeyShape { restricted: true, live: true },
        _ => {
            return Err(StripeError::invalid(
                "api_key",
                "must be a Stripe restricted key (rk_test_… or rk_live_…, recommended) or secret key (sk_…)",
            ));
        }
    };
    if !(16..=255).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StripeError::invalid("api_key", "is not a well-formed Stripe key"));
    }
    match (shape.live, live_tenant) {
        (true, false) => Err(StripeError::invalid(
            "api_key",
            "is a live key, but this is a test-mode tenant: give a test key (rk_test_… or sk_test_…)",
        )),
        (false, true) => Err(StripeError::invalid(
            "api_key",
            "is a test key, but this is a live tenant: give a live key (rk_live_… or sk_live_…)",
        )),
        _ => Ok(shape),
    }
}

/// `rk_test_…Xy7Q`.
pub(super) fn hint(key: &str) -> String {
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{}…{tail}", &key[..8])
}

/// The tenant's connection, unless it was disconnected.
pub async fn current(conn: &mut PgConnection, tenant: &TenantId) -> Result<Option<StripeConnection>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from stripe_connections where tenant_id = $1 and status <> 'disconnected' for update"
    ))
    .bind(tenant.as_str())
    .fetch_optional(conn)
    .await
}

/// A key to store: the key itself (for its hint), sealed, and how it was obtained.
pub struct NewKey<'a> {
    pub key: &'a str,
    pub sealed: &'a str,
    pub method: StripeConnectionMethod,
}

/// Stores a checked key (and the webhook endpoint registered for it) as the connection `id`,
/// new or replacing the key of the current one, and records `stripe_connection.connected`.
/// Returns it and whether it is new.
pub async fn save(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &str,
    new_key: &NewKey<'_>,
    checked: &Checked,
    webhook: &Webhook,
) -> Result<(StripeConnection, bool), StripeError> {
    let existing = current(conn, tenant).await?;
    let kind = if checked.shape.restricted { "restricted" } else { "secret" };
    let update = format!(
        "update stripe_connections set status = 'connected', account_id = $3, account_name = $4, livemode = $5,
             key_hint = $6, key_kind = $7, key_sealed = $8, missing_permissions = $9, error = null,
             webhook_endpoint_id = $10, webhook_secret_sealed = $11, webhook_status = $12, webhook_error = $13,
             method = $14
         where tenant_id = $1 and id = $2
         returning {COLUMNS}"
    );
    let insert = format!(
        "insert into stripe_connections (tenant_id, id, account_id, account_name, livemode, key_hint, key_kind,
             key_sealed, missing_permissions, webhook_endpoint_id, webhook_secret_sealed, webhook_status, webhook_error,
             method)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         returning {COLUMNS}"
    );
    let (endpoint, secret, status, error) = match webhook {
        Webhook::Registered { endpoint_id, secret_sealed } => {
            (Some(endpoint_id.as_str()), Some(secret_sealed.as_str()), "registered", None)
        }
        Webhook::NotRegistered(reason) => (None, None, "not_registered", Some(reason.as_str())),
    };
    let saved: StripeConnection = sqlx::query_as(if existing.is_some() { &update } else { &insert })
        .bind(tenant.as_str())
        .bind(id)
        .bind(&checked.account_id)
        .bind(&checked.account_name)
        .bind(checked.shape.live)
        .bind(hint(new_key.key))
        .bind(kind)
        .bind(new_key.sealed)
        .bind(&checked.missing)
        .bind(endpoint)
        .bind(secret)
        .bind(status)
        .bind(error)
        .bind(new_key.method)
        .fetch_one(&mut *conn)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => StripeError::Conflict(
                "another request connected a Stripe account at the same moment; send this one again".into(),
            ),
            _ => error.into(),
        })?;
    events::record(conn, tenant, "stripe_connection.connected", &saved).await?;
    Ok((saved, existing.is_none()))
}

/// The webhook endpoint Payymo registered at the account, or why there is none.
#[derive(Debug, Clone)]
pub enum Webhook {
    Registered { endpoint_id: String, secret_sealed: String },
    NotRegistered(String),
}

/// What a stored connection keeps sealed, for calling Stripe and checking its deliveries, with
/// what the workers need besides.
#[derive(Debug, Clone, FromRow)]
pub struct Sealed {
    pub tenant_id: String,
    pub id: String,
    pub status: StripeConnectionStatus,
    pub livemode: bool,
    pub account_id: String,
    pub key_sealed: String,
    pub webhook_endpoint_id: Option<String>,
    pub webhook_secret_sealed: Option<String>,
    pub method: StripeConnectionMethod,
    /// The newest event id a poll has seen.
    pub events_polled_to: Option<String>,
    pub created_at: DateTime<Utc>,
}

const SEALED_COLUMNS: &str = "tenant_id, id, status, livemode, account_id, key_sealed, webhook_endpoint_id, \
                              webhook_secret_sealed, method, events_polled_to, created_at";

/// The sealed parts of a connection found by its id alone, whatever its tenant (the inbound
/// webhook route knows only the id): for a platform-scoped connection.
pub async fn sealed_by_id(conn: &mut PgConnection, id: &str) -> Result<Option<Sealed>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {SEALED_COLUMNS} from stripe_connections where id = $1 and status <> 'disconnected'"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The sealed parts of the tenant's current connection.
pub async fn sealed_of(conn: &mut PgConnection, tenant: &TenantId) -> Result<Option<Sealed>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {SEALED_COLUMNS} from stripe_connections where tenant_id = $1 and status <> 'disconnected'"
    ))
    .bind(tenant.as_str())
    .fetch_optional(conn)
    .await
}

/// The context a connection's webhook secret is sealed under.
pub fn webhook_seal_context(tenant: &TenantId, connection_id: &str) -> String {
    format!("stripe_webhook:{tenant}/{connection_id}")
}

/// Disconnects the tenant's account: the key is dropped and `stripe_connection.disconnected`
/// recorded.
pub async fn disconnect(conn: &mut PgConnection, tenant: &TenantId) -> Result<StripeConnection, StripeError> {
    let current = current(conn, tenant).await?.ok_or(StripeError::NotConnected)?;
    let gone: StripeConnection = sqlx::query_as(&format!(
        "update stripe_connections set status = 'disconnected', key_sealed = '', error = null,
             webhook_secret_sealed = null, webhook_endpoint_id = null, webhook_status = 'not_registered'
         where tenant_id = $1 and id = $2 returning {COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(&current.id)
    .fetch_one(&mut *conn)
    .await?;
    events::record(conn, tenant, "stripe_connection.disconnected", &gone).await?;
    Ok(gone)
}

/// Marks a connected account `failed` because Stripe refused its key, and records
/// `stripe_connection.failed` (once: a connection already failed is left as it is).
pub async fn fail(conn: &mut PgConnection, tenant: &TenantId, id: &str, reason: &str) -> Result<(), sqlx::Error> {
    let failed: Option<StripeConnection> = sqlx::query_as(&format!(
        "update stripe_connections set status = 'failed', error = $3
         where tenant_id = $1 and id = $2 and status = 'connected' returning {COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(id)
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(failed) = failed {
        events::record(conn, tenant, "stripe_connection.failed", &failed).await?;
    }
    Ok(())
}

/// The context a connection's key is sealed under.
pub fn seal_context(tenant: &TenantId) -> String {
    format!("stripe_connection:{tenant}")
}

/// The key of a stored connection, opened.
pub fn key_of(sealed: &str, keys: &KeyRing, tenant: &TenantId) -> Result<SecretString, StripeError> {
    open_text(keys, &seal_context(tenant), sealed)
}

/// The signing secret of the webhook endpoint registered for connection `id`, opened.
pub fn webhook_secret_of(
    sealed: &str,
    keys: &KeyRing,
    tenant: &TenantId,
    id: &str,
) -> Result<SecretString, StripeError> {
    open_text(keys, &webhook_seal_context(tenant, id), sealed)
}

/// A text sealed under `context`, opened.
fn open_text(keys: &KeyRing, context: &str, sealed: &str) -> Result<SecretString, StripeError> {
    String::from_utf8(keys.open(context, sealed)?).map(SecretString::from).map_err(|e| StripeError::Keys(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_secret_or_restricted_and_of_the_tenants_mode() {
        let test = Environment::Test;
        assert_eq!(check_key("rk_test_51AbCdEfGh12345678", test).unwrap(), KeyShape { restricted: true, live: false });
        assert_eq!(check_key("sk_test_51AbCdEfGh12345678", test).unwrap(), KeyShape { restricted: false, live: false });
        let refusal = |key: &str, environment| match check_key(key, environment) {
            Err(StripeError::Invalid(errors)) => errors[0].message.clone(),
            other => panic!("{key}: {other:?}"),
        };
        assert!(refusal("sk_live_51AbCdEfGh12345678", test).contains("test-mode tenant"));
        assert!(refusal("rk_test_51AbCdEfGh12345678", Environment::Live).contains("live tenant"));
        assert!(refusal("pk_test_51AbCdEfGh12345678", test).contains("publishable"));
        assert!(refusal("whsec_51AbCdEfGh12345678", test).contains("restricted key"));
        assert!(refusal("sk_test_a b", test).contains("well-formed"));
        assert_eq!(hint("rk_test_51AbCdEfGh1234Xy7Q"), "rk_test_…Xy7Q");
    }
}
