//! Ids for tests that walk the OpenAPI document: a well-formed id of the kind a path names.

use payymo::domain::ids::{ApiKeyId, EventId, OAuthClientId, TenantId, UserId};

/// The collection an id path belongs to: `/api/v1/api_keys/{id}/revoke` → `api_keys`,
/// `/api/v1/categorization_rules/runs/{id}` → `categorization_rules/runs`.
pub fn collection(path: &str) -> &str {
    path.trim_start_matches("/api/v1/").trim_start_matches("/admin/v1/").split("/{").next().unwrap()
}

/// A well-formed id of the kind `path` names, that exists nowhere.
pub fn placeholder_id(path: &str) -> String {
    match collection(path) {
        "api_keys" => ApiKeyId::generate().to_string(),
        "oauth_clients" => OAuthClientId::generate().to_string(),
        "members" => UserId::generate().to_string(),
        "events" => EventId::generate().to_string(),
        "bank_connections" => payymo::domain::ids::BankConnectionId::generate().to_string(),
        "transactions" => payymo::domain::ids::TransactionId::generate().to_string(),
        "categorization_rules" => payymo::domain::ids::CategorizationRuleId::generate().to_string(),
        "categorization_rules/runs" => payymo::domain::ids::CategorizationRuleRunId::generate().to_string(),
        "accounts" => payymo::domain::ids::BankAccountId::generate().to_string(),
        "transactions/imports" => payymo::domain::ids::ImportId::generate().to_string(),
        "webhook_endpoints" => payymo::domain::ids::WebhookEndpointId::generate().to_string(),
        "tenants" => TenantId::generate().to_string(),
        "customers" => payymo::domain::ids::CustomerId::generate().to_string(),
        "invoices" => payymo::domain::ids::InvoiceId::generate().to_string(),
        "invoices/imports" => payymo::domain::ids::ImportId::generate().to_string(),
        "stripe/webhooks" => payymo::domain::ids::StripeConnectionId::generate().to_string(),
        "stripe/payments" => {
            format!("ch_{}", payymo::domain::ids::StripeConnectionId::generate().as_str()[3..].to_owned())
        }
        "stripe/payouts" => {
            format!("po_{}", payymo::domain::ids::StripeConnectionId::generate().as_str()[3..].to_owned())
        }
        "reconciliation/suggestions" => payymo::domain::ids::SuggestionId::generate().to_string(),
        "reconciliation/runs" => payymo::domain::ids::ReconciliationRunId::generate().to_string(),
        "reconciliation/matches" => payymo::domain::ids::MatchId::generate().to_string(),
        "reconciliation/rules" => payymo::domain::ids::ReconciliationRuleId::generate().to_string(),
        other => panic!("no placeholder id kind for `{other}`: add one to placeholder_id()"),
    }
}
