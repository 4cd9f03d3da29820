//! GoCardless Bank Account Data: the typed client, its errors and wire types, and the choice of
//! which API and credentials a tenant's calls use.

mod client;
mod error;
pub mod types;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
pub use client::{Answer, Credentials, GoCardless, RetryPolicy};
pub use error::ProviderError;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::{
    auth::{Environment, TenantContext},
    crypto::{KeyRing, LazyKeyRing},
    db::tenant::begin_tenant,
    providers::Breaker,
    sandbox::gocardless::SandboxConfig,
};

/// How long an institution list is reused before asking the provider again.
const INSTITUTIONS_TTL: Duration = Duration::from_secs(3600);

/// Hands out clients: live-mode tenants get the real API with their own credentials or the
/// deployment's; test-mode tenants always get the sandbox. Clients (and so token caches) are
/// shared per credential set, breakers per base URL.
pub struct GoCardlessClients {
    http: reqwest::Client,
    db: PgPool,
    /// Seals the tenants' own credentials and the shared tokens.
    keys: Arc<LazyKeyRing>,
    live_url: String,
    sandbox_url: String,
    deployment: Option<Credentials>,
    retry: RetryPolicy,
    cooldown: Duration,
    clients: Mutex<HashMap<String, GoCardless>>,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    institutions: Mutex<HashMap<(String, String), CachedInstitutions>>,
}

/// An institution list and when it was fetched.
type CachedInstitutions = (Instant, Arc<Vec<types::Institution>>);

/// Why no client could be made for a tenant.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "GoCardless credentials are not configured: set GOCARDLESS_SECRET_ID and GOCARDLESS_SECRET_KEY, or PUT /api/v1/provider_credentials/gocardless"
    )]
    NotConfigured,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the stored GoCardless credentials cannot be decrypted: {0}")]
    Unreadable(#[from] crate::crypto::CryptoError),
    #[error("the encryption key ring cannot be loaded: {0}")]
    KeyRing(String),
}

impl GoCardlessClients {
    pub fn new(
        db: PgPool,
        keys: Arc<LazyKeyRing>,
        live_url: &str,
        sandbox_url: &str,
        deployment: Option<Credentials>,
        retry: RetryPolicy,
        cooldown: Duration,
    ) -> Self {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("payymo/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            http,
            db,
            keys,
            live_url: live_url.to_owned(),
            sandbox_url: sandbox_url.to_owned(),
            deployment,
            retry,
            cooldown,
            clients: Mutex::default(),
            breakers: Mutex::default(),
            institutions: Mutex::default(),
        }
    }

    /// The key ring sealing provider secrets.
    async fn keys(&self) -> Result<&KeyRing, ClientError> {
        self.keys.get().await.map_err(|e| ClientError::KeyRing(format!("{e:#}")))
    }

    /// The client `tenant`'s calls go through.
    pub async fn for_tenant(&self, tenant: &TenantContext) -> Result<GoCardless, ClientError> {
        if tenant.environment == Environment::Test {
            let sandbox = SandboxConfig::default();
            let credentials = Credentials {
                secret_id: SecretString::from(sandbox.secret_id),
                secret_key: SecretString::from(sandbox.secret_key),
            };
            return self.client(&self.sandbox_url, credentials).await;
        }
        let credentials = match self.tenant_credentials(tenant).await? {
            Some(own) => own,
            None => self.deployment.clone().ok_or(ClientError::NotConfigured)?,
        };
        self.client(&self.live_url, credentials).await
    }

    async fn tenant_credentials(&self, tenant: &TenantContext) -> Result<Option<Credentials>, ClientError> {
        let mut tx = begin_tenant(&self.db, &tenant.id).await?;
        #[derive(sqlx::FromRow)]
        struct Sealed {
            secret_id_sealed: String,
            secret_key_sealed: String,
        }
        let row: Option<Sealed> = sqlx::query_as(
            "select secret_id_sealed, secret_key_sealed from provider_credentials
             where tenant_id = $1 and provider = 'gocardless'",
        )
        .bind(tenant.id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        crate::db::tenant::end_read(tx);
        let Some(Sealed { secret_id_sealed: id, secret_key_sealed: key }) = row else { return Ok(None) };
        let keys = self.keys().await?;
        let open = |what: &str, sealed: &str| -> Result<SecretString, ClientError> {
            let bytes = keys.open(&credential_context(tenant, what), sealed)?;
            Ok(SecretString::from(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Some(Credentials { secret_id: open("secret_id", &id)?, secret_key: open("secret_key", &key)? }))
    }

    /// Where `tenant`'s live calls get their credentials from, and when its own were last set.
    pub async fn credential_source(&self, tenant: &TenantContext) -> Result<CredentialSource, ClientError> {
        if tenant.environment == Environment::Test {
            return Ok(CredentialSource::Sandbox);
        }
        let mut tx = begin_tenant(&self.db, &tenant.id).await?;
        #[derive(sqlx::FromRow)]
        struct Stored {
            secret_id_last4: String,
            updated_at: DateTime<Utc>,
        }
        let row: Option<Stored> = sqlx::query_as(
            "select secret_id_last4, updated_at from provider_credentials
             where tenant_id = $1 and provider = 'gocardless'",
        )
        .bind(tenant.id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        crate::db::tenant::end_read(tx);
        Ok(match row {
            Some(Stored { secret_id_last4, updated_at }) => CredentialSource::Tenant { secret_id_last4, updated_at },
            None if self.deployment.is_some() => CredentialSource::Deployment,
            None => CredentialSource::None,
        })
    }

    /// Checks `credentials` against the live API (by obtaining a token, which is then kept for
    /// the calls that follow) and stores them sealed as `tenant`'s own. Nothing is stored when
    /// the provider refuses them or cannot be reached.
    pub async fn set_tenant_credentials(
        &self,
        tenant: &TenantContext,
        credentials: Credentials,
    ) -> Result<CredentialSource, SetCredentialsError> {
        if tenant.environment == Environment::Test {
            return Err(SetCredentialsError::TestMode);
        }
        let probe = self.client(&self.live_url, credentials.clone()).await?;
        probe.verify().await.map_err(|error| {
            // A refused set must not linger in the client cache.
            self.forget_client(&self.live_url, &credentials);
            SetCredentialsError::Provider(error)
        })?;
        let keys = self.keys().await?;
        let seal = |what: &str, value: &SecretString| {
            keys.seal(&credential_context(tenant, what), value.expose_secret().as_bytes())
        };
        let id_sealed = seal("secret_id", &credentials.secret_id).map_err(ClientError::from)?;
        let key_sealed = seal("secret_key", &credentials.secret_key).map_err(ClientError::from)?;
        let last4: String = {
            let id = credentials.secret_id.expose_secret();
            id.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect()
        };
        let mut tx = begin_tenant(&self.db, &tenant.id).await.map_err(ClientError::from)?;
        let updated_at: DateTime<Utc> = sqlx::query_scalar(
            "insert into provider_credentials (tenant_id, provider, secret_id_sealed, secret_key_sealed, secret_id_last4)
             values ($1, 'gocardless', $2, $3, $4)
             on conflict (tenant_id, provider) do update set secret_id_sealed = excluded.secret_id_sealed,
                 secret_key_sealed = excluded.secret_key_sealed, secret_id_last4 = excluded.secret_id_last4
             returning updated_at",
        )
        .bind(tenant.id.as_str())
        .bind(id_sealed)
        .bind(key_sealed)
        .bind(&last4)
        .fetch_one(&mut *tx)
        .await
        .map_err(ClientError::from)?;
        tx.commit().await.map_err(ClientError::from)?;
        Ok(CredentialSource::Tenant { secret_id_last4: last4, updated_at })
    }

    /// Removes `tenant`'s own credentials; its calls fall back to the deployment's. Whether there
    /// were any.
    pub async fn delete_tenant_credentials(&self, tenant: &TenantContext) -> Result<bool, ClientError> {
        let mut tx = begin_tenant(&self.db, &tenant.id).await?;
        let deleted = sqlx::query("delete from provider_credentials where tenant_id = $1 and provider = 'gocardless'")
            .bind(tenant.id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// Clients are cached per base URL and credential set (the secret_key too, so a corrected key
    /// is never shadowed by a client holding the old one).
    fn client_key(base: &str, credentials: &Credentials) -> String {
        let digest = Sha256::digest(format!(
            "{base}\n{}\n{}",
            credentials.secret_id.expose_secret(),
            credentials.secret_key.expose_secret()
        ));
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn forget_client(&self, base: &str, credentials: &Credentials) {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).remove(&Self::client_key(base, credentials));
    }

    async fn client(&self, base: &str, credentials: Credentials) -> Result<GoCardless, ClientError> {
        let key = Self::client_key(base, &credentials);
        if let Some(client) = self.clients.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(client.clone());
        }
        let keys = self.keys().await?.clone();
        let breaker = self
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(base.to_owned())
            .or_insert_with(|| Arc::new(Breaker::new(5, self.cooldown)))
            .clone();
        // Another task may have made this client meanwhile: keep the first, and its token cache.
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let client = clients.entry(key).or_insert_with(|| {
            GoCardless::new(self.http.clone(), base, credentials, self.db.clone(), keys, breaker, self.retry)
        });
        Ok(client.clone())
    }

    /// Banks in `country`, reused for an hour per API.
    pub async fn institutions(
        &self,
        client: &GoCardless,
        country: &str,
    ) -> Result<Arc<Vec<types::Institution>>, ProviderError> {
        let key = (client.base_url().to_owned(), country.to_owned());
        if let Some((at, list)) = self.institutions.lock().unwrap_or_else(PoisonError::into_inner).get(&key)
            && at.elapsed() < INSTITUTIONS_TTL
        {
            return Ok(list.clone());
        }
        let list = Arc::new(client.institutions(country).await?);
        self.institutions.lock().unwrap_or_else(PoisonError::into_inner).insert(key, (Instant::now(), list.clone()));
        Ok(list)
    }
}

/// Where a tenant's live GoCardless calls take their credentials from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// The tenant's own, set through the API.
    Tenant { secret_id_last4: String, updated_at: DateTime<Utc> },
    /// The deployment's (`GOCARDLESS_SECRET_ID`/`GOCARDLESS_SECRET_KEY`).
    Deployment,
    /// A test-mode tenant: always the sandbox.
    Sandbox,
    /// None: bank calls fail with `provider_not_configured`.
    None,
}

/// Why a tenant's credentials were not stored.
#[derive(Debug, thiserror::Error)]
pub enum SetCredentialsError {
    #[error("test-mode tenants always use the GoCardless sandbox; set credentials on the live tenant")]
    TestMode,
    #[error(transparent)]
    Provider(ProviderError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The associated data sealing one half of a tenant's credentials.
pub fn credential_context(tenant: &TenantContext, what: &str) -> String {
    format!("{}/provider_credentials/gocardless/{what}", tenant.id)
}
