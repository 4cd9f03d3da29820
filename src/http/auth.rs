//! Authentication middleware and the guards handlers name in their signatures:
//! `principal: Principal` (who calls, bound to which tenant) and `_: Needs<ApiKeysWrite>` (the
//! scope the handler requires, which is also what the OpenAPI document lists).

use std::marker::PhantomData;

use axum::{
    extract::{FromRequestParts, Request, State},
    http::request::Parts,
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{
    error::{ApiError, ErrorCode},
    request_id::RequestId,
};
use crate::{
    audit,
    auth::{
        Principal,
        authenticator::{AuthFailure, Outcome},
    },
    domain::scope::Scope,
    state::AppState,
};

/// The client's IP address (after trusted proxies), for allow-lists and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

/// Resolves the credential into a [`Principal`] for the handlers behind it, or answers 401/403,
/// then applies the credential's rate limit. Failures of a recognised credential are written to
/// its tenant's audit log.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(ClientIp(ip)) = request.extensions().get::<ClientIp>().copied() else {
        return ApiError::Internal(anyhow::anyhow!("the client IP middleware is not installed")).into_response();
    };
    match state.auth.authenticate(request.headers(), ip).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            // Rate limiting runs here rather than as a layer of its own: one layer fewer on the
            // hot path of every authenticated request.
            super::rate_limit::limit(State(state), request, next).await
        }
        Err(Outcome::Database(error)) => ApiError::from(error).into_response(),
        Err(Outcome::Failed(failure)) => {
            if let Some((tenant, credential)) = failure.attribution() {
                let entry = audit::Entry {
                    actor_type: "credential".into(),
                    credential_id: Some(credential.to_owned()),
                    action: "auth.failed".into(),
                    outcome: Some(audit::Outcome::Denied),
                    status: Some(if matches!(failure, AuthFailure::IpNotAllowed { .. }) { 403 } else { 401 }),
                    ip: Some(ip.to_string()),
                    request_id: request.extensions().get::<RequestId>().map(|id| id.0.clone()),
                    detail: serde_json::json!({ "reason": failure.message(), "path": request.uri().path() }),
                    ..audit::Entry::default()
                };
                if let Err(error) = audit::append(&state.db, tenant, entry).await {
                    tracing::warn!(%error, "could not audit an authentication failure");
                }
            }
            tracing::info!(reason = %failure.message(), "authentication failed");
            match failure {
                AuthFailure::IpNotAllowed { .. } => {
                    ApiError::new(ErrorCode::IpNotAllowed, failure.message()).into_response()
                }
                other => ApiError::unauthenticated(other.message()).into_response(),
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Fails closed: a route mounted without the middleware rejects every request.
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| ApiError::unauthenticated("authentication required"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("client IP not resolved")))
    }
}

/// A scope a handler requires.
pub trait ScopeRequirement {
    const SCOPE: Scope;
}

/// Extracts only when the caller holds `S::SCOPE`; otherwise 403 naming the scope.
pub struct Needs<S>(PhantomData<S>);

impl<S: ScopeRequirement, St: Send + Sync> FromRequestParts<St> for Needs<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if principal.scopes.grants(S::SCOPE) {
            Ok(Needs(PhantomData))
        } else {
            Err(ApiError::insufficient_scope(S::SCOPE))
        }
    }
}

macro_rules! scopes {
    ($($name:ident = $scope:expr;)*) => {
        /// Scope markers for [`Needs`].
        pub mod scopes {
            use crate::domain::scope::Scope;
            $(
                #[doc = concat!("Requires `", stringify!($scope), "`.")]
                pub struct $name;
                impl super::ScopeRequirement for $name {
                    const SCOPE: Scope = $scope;
                }
            )*
        }
    };
}

scopes! {
    ApiKeysRead = Scope::read("api_keys");
    ApiKeysWrite = Scope::write("api_keys");
    MembersRead = Scope::read("members");
    MembersWrite = Scope::write("members");
    AuditLogsRead = Scope::read("audit_logs");
    WebhooksRead = Scope::read("webhooks");
    WebhooksWrite = Scope::write("webhooks");
    BankConnectionsRead = Scope::read("bank_connections");
    BankConnectionsWrite = Scope::write("bank_connections");
    TransactionsRead = Scope::read("transactions");
    TransactionsWrite = Scope::write("transactions");
    InvoicesRead = Scope::read("invoices");
    InvoicesWrite = Scope::write("invoices");
    StripeRead = Scope::read("stripe");
    StripeWrite = Scope::write("stripe");
    ReconciliationRead = Scope::read("reconciliation");
    ReconciliationWrite = Scope::write("reconciliation");
}
