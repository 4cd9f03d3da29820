//! A tenant's own bank data provider credentials: set (checked against the provider first),
//! see which credentials are in use, remove. The secrets are stored sealed and never returned.

use axum::{Extension, extract::State};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::AuditResource,
    auth::{
        Needs,
        scopes::{BankConnectionsRead, BankConnectionsWrite},
    },
    error::{ApiError, ErrorCode, FieldError, Problem},
    json::ApiJson,
};
use crate::{
    auth::Principal,
    providers::gocardless::{CredentialSource, Credentials, ProviderError, SetCredentialsError},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get, put, delete))
}

/// Which GoCardless credentials the tenant's bank calls use. Secrets are never shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"provider": "gocardless", "source": "tenant", "secret_id_last4": "9f3c",
    "updated_at": "2026-11-21T09:30:00Z"}))]
pub struct ProviderCredentials {
    /// Always `gocardless`.
    pub provider: &'static str,
    /// `tenant`: your own, set here; `deployment`: the operator's; `sandbox`: a test-mode tenant,
    /// which always uses the sandbox; `none`: bank calls fail with `provider_not_configured`.
    pub source: &'static str,
    /// The last four characters of your `secret_id`, to tell credential sets apart (`tenant` only).
    pub secret_id_last4: Option<String>,
    /// When your credentials were last set (`tenant` only).
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<CredentialSource> for ProviderCredentials {
    fn from(source: CredentialSource) -> Self {
        let (source, secret_id_last4, updated_at) = match source {
            CredentialSource::Tenant { secret_id_last4, updated_at } => {
                ("tenant", Some(secret_id_last4), Some(updated_at))
            }
            CredentialSource::Deployment => ("deployment", None, None),
            CredentialSource::Sandbox => ("sandbox", None, None),
            CredentialSource::None => ("none", None, None),
        };
        Self { provider: "gocardless", source, secret_id_last4, updated_at }
    }
}

/// A GoCardless Bank Account Data user secret, from its portal ("User secrets").
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"secret_id": "1b6e4b4c-1d34-4c58-9a5e-07d7e6e49f3c", "secret_key": "8a4c…"}))]
pub struct SetProviderCredentials {
    pub secret_id: String,
    pub secret_key: String,
}

impl SetProviderCredentials {
    fn validate(self) -> Result<Credentials, ApiError> {
        let mut errors = Vec::new();
        for (field, value) in [("secret_id", &self.secret_id), ("secret_key", &self.secret_key)] {
            if value.is_empty() || value.len() > 512 || !value.bytes().all(|b| b.is_ascii_graphic()) {
                errors.push(FieldError {
                    field: field.into(),
                    message: "must be 1 to 512 printable characters without spaces, as GoCardless issued it".into(),
                });
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(Credentials {
            secret_id: SecretString::from(self.secret_id),
            secret_key: SecretString::from(self.secret_key),
        })
    }
}

/// Get provider credentials
///
/// Which GoCardless credentials this tenant's bank calls use: its own, the deployment's, the
/// sandbox's (test mode) or none. Secrets are never returned.
#[utoipa::path(
    get,
    path = "/provider_credentials/gocardless",
    tag = "bank_connections",
    responses((status = 200, body = ProviderCredentials)),
    security(("api_key" = ["bank_connections:read"]), ("bearer" = ["bank_connections:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<BankConnectionsRead>,
) -> Result<ApiJson<ProviderCredentials>, ApiError> {
    Ok(ApiJson(state.gocardless.credential_source(&principal.tenant).await?.into()))
}

/// Set provider credentials
///
/// Stores your own GoCardless `secret_id` and `secret_key`, used instead of the deployment's for
/// this live tenant's bank calls. They are first checked with GoCardless (a token is obtained);
/// refused credentials answer 422 and nothing changes. Stored encrypted; never returned.
/// Test-mode tenants always use the sandbox, so they are refused (409).
#[utoipa::path(
    put,
    path = "/provider_credentials/gocardless",
    tag = "bank_connections",
    request_body = SetProviderCredentials,
    responses(
        (status = 200, body = ProviderCredentials),
        (status = 409, description = "A test-mode tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed, or refused by GoCardless", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "GoCardless is unavailable; nothing changed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["bank_connections:write"]), ("bearer" = ["bank_connections:write"]))
)]
async fn put(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<BankConnectionsWrite>,
    ApiJson(body): ApiJson<SetProviderCredentials>,
) -> Result<(Extension<AuditResource>, ApiJson<ProviderCredentials>), ApiError> {
    let credentials = body.validate()?;
    let source = match state.gocardless.set_tenant_credentials(&principal.tenant, credentials).await {
        Ok(source) => source,
        Err(SetCredentialsError::TestMode) => {
            return Err(ApiError::new(ErrorCode::Conflict, SetCredentialsError::TestMode.to_string()));
        }
        Err(SetCredentialsError::Provider(ProviderError::Credentials(said))) => {
            return Err(ApiError::invalid_field(
                "secret_key",
                format!("GoCardless refused this secret_id and secret_key ({said}); copy both again from its portal"),
            ));
        }
        Err(SetCredentialsError::Provider(error)) => return Err(error.into()),
        Err(SetCredentialsError::Client(error)) => return Err(error.into()),
    };
    Ok((Extension(AuditResource::new("provider_credentials", "gocardless")), ApiJson(source.into())))
}

/// Remove provider credentials
///
/// Removes this tenant's own GoCardless credentials; its bank calls use the deployment's again
/// (or fail with `provider_not_configured` when there are none). Answers with what is in use now.
/// Removing when none are set is not an error.
#[utoipa::path(
    delete,
    path = "/provider_credentials/gocardless",
    tag = "bank_connections",
    responses((status = 200, body = ProviderCredentials)),
    security(("api_key" = ["bank_connections:write"]), ("bearer" = ["bank_connections:write"]))
)]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<BankConnectionsWrite>,
) -> Result<(Extension<AuditResource>, ApiJson<ProviderCredentials>), ApiError> {
    state.gocardless.delete_tenant_credentials(&principal.tenant).await?;
    let now = state.gocardless.credential_source(&principal.tenant).await?;
    Ok((Extension(AuditResource::new("provider_credentials", "gocardless")), ApiJson(now.into())))
}
