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
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), StripeError> {
    let expires_at = now.timestamp() + oauth_state::LIFETIME_SECS;
    let claims = AuthorizationState {
        tenant: tenant.as_str().to_owned(),
        live: environment == Environment::Live,
        scope: scope.to_owned(),
        return_url,
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        expires_at,
    };
    let signed = oauth_state::sign(&signing_key(state).await?, &claims);
    Ok((signed, Utc.timestamp_opt(expires_at, 0).single().unwrap_or(now)))
}

/// The authorize URL for `tenant`, asking for `scope`; the browser comes back to `return_url`.
pub async fn authorize(
    state: &AppState,
    tenant: &TenantId,
    environment: Environment,
    scope: Option<&str>,
    return_url: Option<String>,
) -> Result<Authorization, StripeError> {
    let scope = scope.unwrap_or("read_only");
    if !SCOPES.contains(&scope) {
        return Err(StripeError::invalid("scope", "must be read_only (the default) or read_write"));
    }
    if let Some(url) = &return_url {
        check_return_url(url)?;
    }
    let platform = platform(state, environment == Environment::Live)?;
    let (signed, expires_at) = sign_state(state, tenant, environment, scope, return_url, Utc::now()).await?;
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

/// Finishes an authorization from Stripe's redirect.
pub async fn callback(state: &AppState, input: Callback<'_>) -> Result<Connected, Failed> {
    let fail = |return_url: Option<String>, reason, message: String| Failed {
        return_url,
        reason,
        error: StripeError::Authorization(message),
    };
    let restart = "start again with GET /api/v1/stripe/connect";
    let Some(text) = input.state else {
        return Err(fail(None, "invalid_state", format!("state is missing: {restart}")));
    };
    let key = signing_key(state).await.map_err(|error| Failed { return_url: None, reason: "unavailable", error })?;
    let claims = match oauth_state::verify(&key, text, Utc::now().timestamp()) {
        Ok(claims) => claims,
        Err(StateError::Forged) => {
            let message = format!("state is not one Payymo issued (altered, or from another deployment): {restart}");
            return Err(fail(None, "invalid_state", message));
        }
        Err(StateError::Expired(claims)) => {
            let message = format!("the authorization expired (a state lasts 10 minutes): {restart}");
            return Err(fail(claims.return_url, "expired_state", message));
        }
    };
    let return_url = claims.return_url.clone();
    let tenant = TenantId::parse(&claims.tenant)
        .ok_or_else(|| fail(None, "invalid_state", format!("state names no tenant: {restart}")))?;
    if let Some(error) = input.error {
        let said = input.error_description.unwrap_or(error);
        let (reason, message) = if error == "access_denied" {
            ("access_denied", format!("the Stripe account holder declined to connect ({said}); {restart} to retry"))
        } else {
            ("failed", format!("Stripe could not authorize the connection ({error}: {said}); {restart}"))
        };
        return Err(fail(return_url, reason, message));
    }
    let Some(code) = input.code.filter(|c| !c.is_empty()) else {
        return Err(fail(return_url, "failed", format!("Stripe sent no code: {restart}")));
    };
    let with_return = |error: StripeError, reason| Failed { return_url: return_url.clone(), reason, error };
    if let Some(done) = claim(state, &tenant, &claims).await.map_err(|e| with_return(e, "unavailable"))? {
        // The same callback again (a reload): what the first one made, if it made anything.
        return match done {
            Some(connection) => Ok(Connected { connection, new: false, return_url }),
            None => Err(fail(return_url, "already_used", format!("this authorization was already used: {restart}"))),
        };
    }
    let live = claims.live;
    let environment = if live { Environment::Live } else { Environment::Test };
    let platform = platform(state, live).map_err(|e| with_return(e, "failed"))?;
    let token = platform.exchange(code).await.map_err(|error| match error {
        OAuthCallError::Refused { error, description } if error == "invalid_grant" => fail(
            return_url.clone(),
            "invalid_grant",
            format!("Stripe refused the authorization code ({description}); {restart}"),
        ),
        OAuthCallError::Refused { error, description } => with_return(
            StripeError::Refused(format!("Stripe refused the code exchange ({error}: {description})")),
            "failed",
        ),
        other => with_return(StripeError::Unavailable(other.to_string()), "unavailable"),
    })?;
    if token.livemode != live {
        platform.deauthorize(&token.stripe_user_id).await.ok();
        let message = "Stripe connected an account of the other mode than the tenant's".to_owned();
        return Err(with_return(StripeError::Refused(message), "failed"));
    }
    let key = secrecy::ExposeSecret::expose_secret(&token.access_token).to_owned();
    let account = token.stripe_user_id.clone();
    let stored =
        connect::store(state, &tenant, environment, &key, StripeConnectionMethod::OAuth, Some(&account), None).await;
    let (connection, new) = match stored {
        Ok(stored) => stored,
        Err(error) => {
            // Payymo keeps nothing, so it should hold no grant either.
            deauthorize(state, live, &account).await;
            let reason = if matches!(error, StripeError::Unavailable(_)) { "unavailable" } else { "failed" };
            return Err(with_return(error, reason));
        }
    };
    record_connection(state, &tenant, &claims.nonce, &connection.id).await.map_err(|e| with_return(e, "failed"))?;
    Ok(Connected { connection, new, return_url })
}

/// Marks the state's nonce used; `Some` when it already was, with the connection its first use
/// made (if that is still the tenant's, connected).
async fn claim(
    state: &AppState,
    tenant: &TenantId,
    claims: &AuthorizationState,
) -> Result<Option<Option<StripeConnection>>, StripeError> {
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
        return Ok(None);
    }
    let made: Option<String> =
        sqlx::query_scalar("select connection_id from stripe_oauth_states where tenant_id = $1 and nonce = $2")
            .bind(tenant.as_str())
            .bind(&claims.nonce)
            .fetch_one(&mut *tx)
            .await?;
    let current = connection::current(&mut tx, tenant).await?;
    end_read(tx);
    Ok(Some(current.filter(|c| {
        Some(&c.id) == made.as_ref()
            && c.method == StripeConnectionMethod::OAuth
            && c.status == connection::StripeConnectionStatus::Connected
    })))
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
