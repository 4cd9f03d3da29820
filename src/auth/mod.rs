//! Who is calling: credentials (API keys, OAuth2 client tokens, user sessions), verified into a
//! [`Principal`] that names the tenant, the actor and the scopes.

pub mod authenticator;
pub mod jwt;
pub mod keys;
pub mod password;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{
    ids::{ApiKeyId, OAuthClientId, TenantId, UserId},
    scope::{Role, Scopes},
};

/// Live tenants move real money; test tenants use the provider sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "live" => Some(Environment::Live),
            "test" => Some(Environment::Test),
            _ => None,
        }
    }
}

/// The plan sizes a tenant's rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Plan {
    Free,
    Standard,
    Premium,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Standard => "standard",
            Plan::Premium => "premium",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "free" => Some(Plan::Free),
            "standard" => Some(Plan::Standard),
            "premium" => Some(Plan::Premium),
            _ => None,
        }
    }
}

/// What a request knows about its tenant once authenticated.
#[derive(Debug, Clone)]
pub struct TenantContext {
    pub id: TenantId,
    pub environment: Environment,
    pub plan: Plan,
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(ApiKeyId),
    OAuthClient(OAuthClientId),
    User(UserId, Role),
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::ApiKey(_) => "api_key",
            Actor::OAuthClient(_) => "oauth_client",
            Actor::User(..) => "user",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Actor::ApiKey(id) => id.as_str(),
            Actor::OAuthClient(id) => id.as_str(),
            Actor::User(id, _) => id.as_str(),
        }
    }
}

/// An authenticated caller: the tenant its request is bound to, the actor, and its scopes.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantContext,
    pub actor: Actor,
    pub scopes: Scopes,
}

impl Principal {
    /// The credential that rate limits and idempotency keys are counted against.
    pub fn credential_id(&self) -> &str {
        self.actor.id()
    }
}
