//! Connecting a tenant's Stripe account with Stripe Connect OAuth, for deployments that are a
//! Connect platform: the authorize URL with a signed `state` ([`super::oauth_state`]), and the
//! callback that checks the state, exchanges the code for the account's access token and stores
//! the connection exactly as a key is stored ([`super::connect`]). Test-mode tenants connect
//! through the Stripe simulator's platform, live ones through the configured one.

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{
    StripeError, connect,
    connection::{self, StripeConnection, StripeConnectionMethod},
    oauth_state::{self, AuthorizationState, StateError},
};
use crate::{
    auth::Environment,
    db::tenant::{begin_tenant, end_read},
    domain::ids::TenantId,
    providers::stripe::{ConnectPlatform, OAuthCallError},
    state::AppState,
};

/// Where to send a Stripe user to connect their account.
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub expires_at: DateTime<Utc>,
}

/// The scopes Stripe grants platforms.
pub const SCOPES: &[&str] = &["read_only", "read_write"];

/// The callback Stripe sends the browser to.
pub fn callback_url(state: &AppState) -> String {
    format!("{}/api/v1/stripe/connect/callback", state.public_url)
}

/// The platform for a tenant of this mode, or why there is none.
fn platform(state: &AppState, live: bool) -> Result<ConnectPlatform, StripeError> {
    state.stripe.platform(live).ok_or_else(|| {
        StripeError::NotConfigured(
            "this deployment is not a Stripe Connect platform for live tenants (STRIPE_CONNECT_CLIENT_ID and \
             STRIPE_PLATFORM_SECRET_KEY are unset); connect with a key: PUT /api/v1/stripe/connection"
                .into(),
        )
    })
}

/// The key states are signed with: derived from the deployment's token signing secret (as list
/// cursors' is), so every instance has it and nothing else shares it.
async fn signing_key(state: &AppState) -> Result<[u8; 32], StripeError> {
    let jwt = state.auth.jwt().await?;
    let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(jwt.cursor_key())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    derive.update(b"payymo/stripe-connect-state-key/v1");
    Ok(derive.finalize().into_bytes().into())
}

/// Checks a `return_url`: an absolute http(s) URL without credentials.
fn check_return_url(url: &str) -> Result<(), StripeError> {
    let ok = url.len() <= 2000
        && reqwest::Url::parse(url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none()
        });
    if ok {
        Ok(())
    } else {
        Err(StripeError::invalid(
            "return_url",
            "must be an absolute http or https URL without credentials, at most 2000 characters",
        ))
    }
}

/// Signs a state for `tenant`, issued at `now`. Public so tests can mint one in the past.
pub async fn sign_state(
    state: &AppState,
    tenant: &TenantId,
    environment: Environment,
    scope: &str,
    return_url: Option<String>,
    backfill_from: Option<chrono::NaiveDate>,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), StripeError> {
    let expires_at = now.timestamp() + oauth_state::LIFETIME_SECS;
    let claims = AuthorizationState {
        tenant: tenant.as_str().to_owned(),
        live: environment == Environment::Live,
        scope: scope.to_owned(),
        return_url,
        backfill_from,
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        expires_at,
    };
    let signed = oauth_state::sign(&signing_key(state).await?, &claims);
    Ok((signed, Utc.timestamp_opt(expires_at, 0).single().unwrap_or(now)))
}

/// The authorize URL for `tenant`, asking for `scope`; the browser comes back to `return_url`.
/// The account's history is read from `backfill_from` (default 90 days back).
pub async fn authorize(
    state: &AppState,
    tenant: &TenantId,
    environment: Environment,
    scope: Option<&str>,
    return_url: Option<String>,
    backfill_from: Option<chrono::NaiveDate>,
) -> Result<Authorization, StripeError> {
    let scope = scope.unwrap_or("read_only");
    if !SCOPES.contains(&scope) {
        return Err(StripeError::invalid("scope", "must be read_only (the default) or read_write"));
    }
    if let Some(url) = &return_url {
        check_return_url(url)?;
    }
    if let Some(day) = backfill_from {
        connect::backfill_start(day)?;
    }
    let platform = platform(state, environment == Environment::Live)?;
    let (signed, expires_at) =
        sign_state(state, tenant, environment, scope, return_url, backfill_from, Utc::now()).await?;
    let url = platform.authorize_url(scope, &signed, &callback_url(state));
    Ok(Authorization { url, state: signed, expires_at })
}

/// What Stripe sent the browser back with.
#[derive(Debug, Default)]
pub struct Callback<'a> {
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
}

/// A finished authorization: the connection, whether it is new, where the browser goes next.
pub struct Connected {
    pub connection: StripeConnection,
    pub new: bool,
    pub return_url: Option<String>,
}

/// An authorization that could not be finished, and where the browser goes (when the state,
/// being authentic, says).
#[derive(Debug)]
pub struct Failed {
    pub return_url: Option<String>,
    /// A stable word for the redirect: `invalid_state`, `expired_state`, `access_denied`,
    /// `invalid_grant`, `already_used`, `unavailable` or `failed`.
    pub reason: &'static str,
    pub error: StripeError,
}

const RESTART: &str = "start again with GET /api/v1/stripe/connect";

/// A failure the browser is told about in words (the other failures carry a `StripeError`).
fn refused(return_url: Option<String>, reason: &'static str, message: String) -> Failed {
    Failed { return_url, reason, error: StripeError::Authorization(message) }
}

/// Finishes an authorization from Stripe's redirect.
pub async fn callback(state: &AppState, input: Callback<'_>) -> Result<Connected, Failed> {
    let (claims, tenant) = verified(state, input.state).await?;
    let return_url = claims.return_url.clone();
    if let Some(error) = input.error {
        let said = input.error_description.unwrap_or(error);
        let (reason, message) = if error == "access_denied" {
            ("access_denied", format!("the Stripe account holder declined to connect ({said}); {RESTART} to retry"))
        } else {
            ("failed", format!("Stripe could not authorize the connection ({error}: {said}); {RESTART}"))
        };
        return Err(refused(return_url, reason, message));
    }
    let Some(code) = input.code.filter(|c| !c.is_empty()) else {
        return Err(refused(return_url, "failed", format!("Stripe sent no code: {RESTART}")));
    };
    let failed = |(error, reason)| Failed { return_url: return_url.clone(), reason, error };
    match claim(state, &tenant, &claims).await.map_err(|e| failed((e, "unavailable")))? {
        Claim::Fresh => {}
        // The same callback again (a reload): the connection the first one made.
        Claim::Reloaded(connection) => return Ok(Connected { connection: *connection, new: false, return_url }),
        Claim::Used => {
            return Err(refused(return_url, "already_used", format!("this authorization was already used: {RESTART}")));
        }
    }
    let (connection, new) =
        exchange_and_store(state, &tenant, claims.live, code, claims.backfill_from).await.map_err(failed)?;
    record_connection(state, &tenant, &claims.nonce, &connection.id).await.map_err(|e| failed((e, "failed")))?;
    Ok(Connected { connection, new, return_url })
}

/// The state's claims and tenant, if Payymo signed it and it has not expired.
async fn verified(state: &AppState, text: Option<&str>) -> Result<(AuthorizationState, TenantId), Failed> {
    let Some(text) = text else {
        return Err(refused(None, "invalid_state", format!("state is missing: {RESTART}")));
    };
    let key = signing_key(state).await.map_err(|error| Failed { return_url: None, reason: "unavailable", error })?;
    let forged = || {
        let message = format!("state is not one Payymo issued (altered, or from another deployment): {RESTART}");
        refused(None, "invalid_state", message)
    };
    match oauth_state::verify(&key, text, Utc::now().timestamp()) {
        Ok(claims) => {
            let tenant = TenantId::parse(&claims.tenant).ok_or_else(forged)?;
            Ok((claims, tenant))
        }
        Err(StateError::Forged) => Err(forged()),
        Err(StateError::Expired(claims)) => {
            let message = format!("the authorization expired (a state lasts 10 minutes): {RESTART}");
            Err(refused(claims.return_url, "expired_state", message))
        }
    }
}

/// Exchanges `code` and stores the access token as the tenant's connection; on failure, the
/// error and the redirect's reason.
async fn exchange_and_store(
    state: &AppState,
    tenant: &TenantId,
    live: bool,
    code: &str,
    backfill_from: Option<chrono::NaiveDate>,
) -> Result<(StripeConnection, bool), (StripeError, &'static str)> {
    let platform = platform(state, live).map_err(|e| (e, "failed"))?;
    let since = backfill_from.map(connect::backfill_start).transpose().map_err(|e| (e, "failed"))?;
    let token = platform.exchange(code).await.map_err(|error| match error {
        OAuthCallError::Refused { error, description } if error == "invalid_grant" => {
            let message = format!("Stripe refused the authorization code ({description}); {RESTART}");
            (StripeError::Authorization(message), "invalid_grant")
        }
        OAuthCallError::Refused { error, description } => {
            (StripeError::Refused(format!("Stripe refused the code exchange ({error}: {description})")), "failed")
        }
        other => (StripeError::Unavailable(other.to_string()), "unavailable"),
    })?;
    let account = token.stripe_user_id.clone();
    if token.livemode != live {
        deauthorize(state, live, &account).await;
        return Err((StripeError::Refused("Stripe connected an account of the other mode".into()), "failed"));
    }
    let environment = if live { Environment::Live } else { Environment::Test };
    let key = secrecy::ExposeSecret::expose_secret(&token.access_token).to_owned();
    let method = StripeConnectionMethod::OAuth;
    match connect::store(state, tenant, environment, &key, method, Some(&account), since).await {
        Ok(stored) => Ok(stored),
        Err(error) => {
            // Payymo keeps nothing, so it should hold no grant either.
            deauthorize(state, live, &account).await;
            let reason = if matches!(error, StripeError::Unavailable(_)) { "unavailable" } else { "failed" };
            Err((error, reason))
        }
    }
}

/// Whether a state's callback may run.
enum Claim {
    /// Its first run.
    Fresh,
    /// It ran and connected this, still the tenant's connection.
    Reloaded(Box<StripeConnection>),
    /// It ran and connected nothing (or what it connected is gone).
    Used,
}

/// Records the state's nonce as used, unless it already was.
async fn claim(state: &AppState, tenant: &TenantId, claims: &AuthorizationState) -> Result<Claim, StripeError> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    sqlx::query("delete from stripe_oauth_states where tenant_id = $1 and expires_at < now() - interval '1 day'")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    let expires_at = Utc.timestamp_opt(claims.expires_at, 0).single().unwrap_or_else(Utc::now);
    let fresh = sqlx::query(
        "insert into stripe_oauth_states (tenant_id, nonce, expires_at) values ($1, $2, $3) on conflict do nothing",
    )
    .bind(tenant.as_str())
    .bind(&claims.nonce)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if fresh {
        tx.commit().await?;
        return Ok(Claim::Fresh);
    }
    let made: Option<String> =
        sqlx::query_scalar("select connection_id from stripe_oauth_states where tenant_id = $1 and nonce = $2")
            .bind(tenant.as_str())
            .bind(&claims.nonce)
            .fetch_one(&mut *tx)
            .await?;
    let current = connection::current(&mut tx, tenant).await?;
    end_read(tx);
    Ok(match current {
        Some(c)
            if Some(&c.id) == made.as_ref()
                && c.method == StripeConnectionMethod::OAuth
                && c.status == connection::StripeConnectionStatus::Connected =>
        {
            Claim::Reloaded(Box::new(c))
        }
        _ => Claim::Used,
    })
}

async fn record_connection(state: &AppState, tenant: &TenantId, nonce: &str, id: &str) -> Result<(), StripeError> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    sqlx::query("update stripe_oauth_states set connection_id = $3 where tenant_id = $1 and nonce = $2")
        .bind(tenant.as_str())
        .bind(nonce)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the platform's grant for `account` at Stripe; best effort: a failure is logged, as an
/// endpoint that cannot be removed is.
pub async fn deauthorize(state: &AppState, live: bool, account: &str) {
    let Some(platform) = state.stripe.platform(live) else {
        tracing::warn!(account, "cannot deauthorize: no Connect platform is configured for live tenants");
        return;
    };
    if let Err(error) = platform.deauthorize(account).await {
        tracing::warn!(%error, account, "could not deauthorize the Stripe account at Stripe");
    }
}
