//! Writes one audit row per mutating API call (whatever its outcome), and records attempts to
//! reach another tenant's resources as security incidents.
//!
//! Handlers say which resource they acted on by putting an [`AuditResource`] in the response's
//! extensions; the middleware adds who, from where, the outcome and the request id.

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};

use super::{auth::ClientIp, request_id::RequestId};
use crate::{
    audit::{self, Outcome},
    auth::Principal,
    db::tenant::begin_platform,
    state::AppState,
};

/// The resource a mutating handler acted on.
#[derive(Debug, Clone)]
pub struct AuditResource {
    pub resource_type: &'static str,
    pub resource_id: String,
}

impl AuditResource {
    pub fn new(resource_type: &'static str, resource_id: impl ToString) -> Self {
        Self { resource_type, resource_id: resource_id.to_string() }
    }
}

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(principal) = request.extensions().get::<Principal>().cloned() else {
        return next.run(request).await;
    };
    let ip = request.extensions().get::<ClientIp>().map(|ip| ip.0.to_string());
    let request_id = request.extensions().get::<RequestId>().map(|id| id.0.clone());
    if !matches!(*request.method(), Method::POST | Method::PATCH | Method::PUT | Method::DELETE) {
        let response = next.run(request).await;
        let probe = response.extensions().get::<CrossTenantProbe>().cloned();
        record_probe(&state, &principal, probe, &ip, &request_id).await;
        return response;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path().to_owned(), |p| p.as_str().to_owned());
    let action = format!("{} {}", request.method(), route);

    // Idempotency runs inside, so a replayed response is audited as the call it answers.
    let response = super::idempotency::middleware(State(state.clone()), request, next).await;
    let probe = response.extensions().get::<CrossTenantProbe>().cloned();
    record_probe(&state, &principal, probe, &ip, &request_id).await;
    let status = response.status();
    let resource = response.extensions().get::<AuditResource>().cloned();
    let outcome = match status.as_u16() {
        200..=399 => Outcome::Success,
        401 | 403 => Outcome::Denied,
        _ => Outcome::Failure,
    };
    let entry = audit::Entry {
        actor_type: principal.actor.kind().into(),
        actor_id: Some(principal.actor.id().to_owned()),
        credential_id: Some(principal.credential_id().to_owned()),
        action,
        resource_type: resource.as_ref().map(|r| r.resource_type.to_owned()),
        resource_id: resource.map(|r| r.resource_id),
        outcome: Some(outcome),
        status: Some(i32::from(status.as_u16())),
        ip,
        request_id,
        detail: serde_json::json!({ "replayed": response.headers().contains_key("idempotent-replayed") }),
    };
    if let Err(error) = audit::append(&state.db, &principal.tenant.id, entry).await {
        tracing::error!(%error, "could not write the audit log entry for a mutating call");
    }
    response
}

/// The id a 404 answered, put on the response by [`ApiError::not_found_in`], so the middleware
/// can check whether another tenant owns it.
#[derive(Debug, Clone)]
pub struct CrossTenantProbe {
    pub probe: Probe,
    pub id: String,
}

/// Tenant-owned tables whose ids a caller may name in a path.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    ApiKeys,
    OAuthClients,
    Memberships,
    Events,
    BankConnections,
    Transactions,
    CategorizationRules,
    CategorizationRuleRuns,
    Accounts,
    Imports,
    InvoiceImports,
    WebhookEndpoints,
    Customers,
    Invoices,
    StripePayments,
    StripePayouts,
    ReconciliationMatches,
    ReconciliationRules,
    ReconciliationSuggestions,
    ReconciliationRuns,
}

impl Probe {
    fn sql(self) -> &'static str {
        match self {
            Probe::ApiKeys => "select tenant_id from api_keys where id = $1",
            Probe::OAuthClients => "select tenant_id from oauth_clients where id = $1",
            Probe::Memberships => "select tenant_id from memberships where user_id = $1 limit 1",
            Probe::Events => "select tenant_id from events where id = $1 limit 1",
            Probe::BankConnections => "select tenant_id from bank_connections where id = $1 limit 1",
            Probe::Transactions => "select tenant_id from transactions where id = $1 limit 1",
            Probe::CategorizationRules => "select tenant_id from categorization_rules where id = $1 limit 1",
            Probe::CategorizationRuleRuns => "select tenant_id from categorization_rule_runs where id = $1 limit 1",
            Probe::Accounts => "select tenant_id from bank_accounts where id = $1 limit 1",
            Probe::Imports => "select tenant_id from imports where id = $1 and kind = 'transactions' limit 1",
            Probe::InvoiceImports => "select tenant_id from imports where id = $1 and kind = 'invoices' limit 1",
            Probe::WebhookEndpoints => "select tenant_id from webhook_endpoints where id = $1 limit 1",
            Probe::Customers => "select tenant_id from customers where id = $1 limit 1",
            Probe::Invoices => "select tenant_id from invoices where id = $1 limit 1",
            Probe::StripePayments => "select tenant_id from stripe_payments where id = $1 limit 1",
            Probe::StripePayouts => "select tenant_id from stripe_payouts where id = $1 limit 1",
            Probe::ReconciliationMatches => "select tenant_id from reconciliation_matches where id = $1 limit 1",
            Probe::ReconciliationRules => "select tenant_id from reconciliation_rules where id = $1 limit 1",
            Probe::ReconciliationSuggestions => {
                "select tenant_id from reconciliation_suggestions where id = $1 limit 1"
            }
            Probe::ReconciliationRuns => "select tenant_id from reconciliation_runs where id = $1 limit 1",
        }
    }

    fn resource_type(self) -> &'static str {
        match self {
            Probe::ApiKeys => "api_key",
            Probe::OAuthClients => "oauth_client",
            Probe::Memberships => "member",
            Probe::Events => "event",
            Probe::BankConnections => "bank_connection",
            Probe::Transactions => "transaction",
            Probe::CategorizationRules => "categorization_rule",
            Probe::CategorizationRuleRuns => "categorization_rule_run",
            Probe::Accounts => "bank_account",
            Probe::Imports => "transaction_import",
            Probe::InvoiceImports => "invoice_import",
            Probe::WebhookEndpoints => "webhook_endpoint",
            Probe::Customers => "customer",
            Probe::Invoices => "invoice",
            Probe::StripePayments => "stripe_payment",
            Probe::StripePayouts => "stripe_payout",
            Probe::ReconciliationMatches => "reconciliation_match",
            Probe::ReconciliationRules => "reconciliation_rule",
            Probe::ReconciliationSuggestions => "reconciliation_suggestion",
            Probe::ReconciliationRuns => "reconciliation_run",
        }
    }
}

/// When a 404's `probe` names an id that exists in another tenant, records the attempt in the
/// caller's audit log as a security incident. The answer stays the same 404, so a caller cannot
/// tell the two apart.
async fn record_probe(
    state: &AppState,
    principal: &Principal,
    probe: Option<CrossTenantProbe>,
    ip: &Option<String>,
    request_id: &Option<String>,
) {
    let Some(CrossTenantProbe { probe, id }) = probe else { return };
    let id = id.as_str();
    let owner: Result<Option<String>, sqlx::Error> = async {
        let mut tx = begin_platform(&state.db).await?;
        let owner = sqlx::query_scalar(probe.sql()).bind(id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(owner)
    }
    .await;
    match owner {
        Ok(Some(owner)) if owner != principal.tenant.id.as_str() => {
            tracing::warn!(resource = probe.resource_type(), id, "cross-tenant access attempt");
            let entry = audit::Entry {
                actor_type: principal.actor.kind().into(),
                actor_id: Some(principal.actor.id().to_owned()),
                credential_id: Some(principal.credential_id().to_owned()),
                action: "access.cross_tenant".into(),
                resource_type: Some(probe.resource_type().into()),
                resource_id: Some(id.to_owned()),
                outcome: Some(Outcome::SecurityIncident),
                status: Some(404),
                ip: ip.clone(),
                request_id: request_id.clone(),
                detail: serde_json::json!({}),
            };
            if let Err(error) = audit::append(&state.db, &principal.tenant.id, entry).await {
                tracing::error!(%error, "could not record a cross-tenant access attempt");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not check the owner of a missing resource"),
    }
}
