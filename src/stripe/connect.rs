//! Connecting and disconnecting a tenant's Stripe account end to end, whichever way its key came
//! (given by the tenant, or an access token from Connect OAuth): the key checked with Stripe,
//! Payymo's webhook endpoint registered at the account (and the one it replaces removed), the key
//! and the endpoint's secret sealed, the connection stored; on disconnect the endpoint removed
//! and an OAuth grant deauthorized before the key is forgotten.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use secrecy::ExposeSecret;

use super::{
    StripeError, account, backfill,
    connection::{self, NewKey, StripeConnection, StripeConnectionMethod, Webhook},
    oauth,
};
use crate::{
    auth::Environment,
    db::tenant::{begin_tenant, end_read},
    domain::ids::{StripeConnectionId, TenantId},
    state::AppState,
};

/// Connects `key` as the tenant's Stripe account; returns the connection and whether it is new.
/// The account's history is read from `backfill_from` (default [`backfill::DEFAULT_DAYS`] ago)
/// when the connection is new, when `backfill_from` is given, or when it has no backfill yet.
pub async fn connect(
    state: &AppState,
    tenant: &TenantId,
    environment: Environment,
    key: &str,
    backfill_from: Option<NaiveDate>,
) -> Result<(StripeConnection, bool), StripeError> {
    let since = match backfill_from {
        Some(day) => Some(backfill_start(day)?),
        None => None,
    };
    store(state, tenant, environment, key, StripeConnectionMethod::ApiKey, None, since).await
}

/// Checks `key` with Stripe and stores it as the tenant's connection, obtained by `method`;
/// `account`, when given, is the account the key must open (the one OAuth connected). The
/// account's history is read from `since` (default [`backfill::DEFAULT_DAYS`] ago) when the
/// connection is new, when `since` is given, or when it has no backfill yet.
pub(super) async fn store(
    state: &AppState,
    tenant: &TenantId,
    environment: Environment,
    key: &str,
    method: StripeConnectionMethod,
    account: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> Result<(StripeConnection, bool), StripeError> {
    let shape = connection::check_key(key, environment)?;
    let (checked, stripe) = account::check_with_stripe(&state.stripe, key, shape).await?;
    if let Some(expected) = account.filter(|a| *a != checked.account_id) {
        return Err(StripeError::Refused(format!(
            "Stripe's access token opens account {}, not the connected account {expected}",
            checked.account_id
        )));
    }
    let keys = super::key_ring(state).await?;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let previous = connection::sealed_of(&mut tx, tenant).await?;
    end_read(tx);
    let id = previous.as_ref().map_or_else(|| StripeConnectionId::generate().as_str().to_owned(), |p| p.id.clone());
    if let Some(previous) = &previous
        && previous.account_id == checked.account_id
        && let Some(endpoint) = &previous.webhook_endpoint_id
        && let Err(error) = account::unregister_endpoint(&stripe, endpoint).await
    {
        tracing::warn!(%error, endpoint, "could not remove the webhook endpoint a new key replaces");
    }
    if let Some(previous) = &previous
        && previous.method == StripeConnectionMethod::OAuth
        && previous.account_id != checked.account_id
    {
        // The grant of the account this one replaces is no longer Payymo's to keep.
        oauth::deauthorize(state, previous.livemode, &previous.account_id).await;
    }
    let url = format!("{}/api/v1/stripe/webhooks/{id}", state.public_url);
    let webhook = match account::register_endpoint(&stripe, &url, &id).await? {
        Ok(registered) => Webhook::Registered {
            endpoint_id: registered.endpoint_id,
            secret_sealed: keys
                .seal(&connection::webhook_seal_context(tenant, &id), registered.secret.expose_secret().as_bytes())?,
        },
        Err(_) if method == StripeConnectionMethod::OAuth => Webhook::NotRegistered(
            "a read_only grant may not create webhook endpoints; connect again with scope=read_write to receive \
             events at once. Until then changes are caught by polling."
                .into(),
        ),
        Err(reason) => Webhook::NotRegistered(reason),
    };
    let sealed = keys.seal(&connection::seal_context(tenant), key.as_bytes())?;
    let until = backfill::stripe_now(&stripe).await;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let new_key = NewKey { key, sealed: &sealed, method };
    let (saved, new) = connection::save(&mut tx, tenant, &id, &new_key, &checked, &webhook).await?;
    if new || since.is_some() || saved.backfill.is_none() {
        let since = since.unwrap_or_else(|| Utc::now() - Duration::days(backfill::DEFAULT_DAYS));
        backfill::start(&mut tx, tenant, &saved.id, since, until).await?;
    }
    let saved = connection::current(&mut tx, tenant).await?.unwrap_or(saved);
    tx.commit().await?;
    Ok((saved, new))
}

/// Disconnects the tenant's account: Payymo's webhook endpoint is removed at Stripe and an OAuth
/// grant deauthorized (best effort both: a key Stripe no longer takes cannot remove anything),
/// then the key is forgotten.
pub async fn disconnect(state: &AppState, tenant: &TenantId) -> Result<StripeConnection, StripeError> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let sealed = connection::sealed_of(&mut tx, tenant).await?.ok_or(StripeError::NotConnected)?;
    end_read(tx);
    if let Some(endpoint) = &sealed.webhook_endpoint_id {
        let keys = super::key_ring(state).await?;
        let key = connection::key_of(&sealed.key_sealed, keys, tenant)?;
        let stripe = state.stripe.client(sealed.livemode, key, &sealed.account_id);
        if let Err(error) = account::unregister_endpoint(&stripe, endpoint).await {
            tracing::warn!(%error, endpoint, "could not remove Payymo's webhook endpoint at Stripe on disconnect");
        }
    }
    if sealed.method == StripeConnectionMethod::OAuth {
        oauth::deauthorize(state, sealed.livemode, &sealed.account_id).await;
    }
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let gone = connection::disconnect(&mut tx, tenant).await?;
    tx.commit().await?;
    Ok(gone)
}

/// The instant a backfill from `day` starts at: a day in the past, not before Stripe existed.
pub(super) fn backfill_start(day: NaiveDate) -> Result<chrono::DateTime<Utc>, StripeError> {
    let earliest = NaiveDate::from_ymd_opt(2010, 1, 1).unwrap_or_default();
    if day > Utc::now().date_naive() {
        return Err(StripeError::invalid("backfill_from", "must not be in the future"));
    }
    if day < earliest {
        return Err(StripeError::invalid("backfill_from", "must be 2010-01-01 or later"));
    }
    Ok(day.and_time(chrono::NaiveTime::MIN).and_utc())
}
