//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and doc
//! comments. It is served at `/api/v1/openapi.json` and committed at `openapi/openapi.json`; a test
//! fails when the two drift.

use axum::{extract::State, http::header, response::IntoResponse};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::error::{ErrorCode, FieldError, Problem};
use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Payymo core API",
        description = "Payment reconciliation: bank feeds, Stripe payments and payouts, matching, and signed webhooks.\n\n\
Every error answers `application/problem+json` (see the `Problem` schema); the `code` field is stable and catalogued at `/docs/errors`. \
Every response carries `X-Request-Id`.",
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem, FieldError, ErrorCode)),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "auth", description = "OAuth2 client credentials, user sessions, who am I"),
        (name = "api_keys", description = "API keys for server-to-server use"),
        (name = "members", description = "Users of this tenant and their roles"),
        (name = "audit_logs", description = "The tamper-evident audit log"),
        (name = "bank_connections", description = "Banks, and accounts connected through open-banking consent"),
        (name = "transactions", description = "Bank transactions synced from the bank connections"),
        (name = "events", description = "What happened, newest first; the objects webhooks deliver"),
        (name = "webhooks", description = "Webhook endpoints, signed deliveries with retries, and re-sending what failed"),
        (name = "admin", description = "Platform administration (needs PAYYMO_ADMIN_TOKEN)"),
    )
)]
pub struct ApiDoc;

/// Adds the security schemes later resources name in their `security(...)`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "A secret API key. `Authorization: Bearer <key>` works too.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An OAuth2 access token or a user session token (JWT)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The platform admin token (PAYYMO_ADMIN_TOKEN), for /admin/v1 only."))
                    .build(),
            ),
        );
    }
}

/// The API's OpenAPI document, pretty-printed as committed.
pub fn spec_json() -> String {
    let (_, spec) = super::api_router().split_for_parts();
    // The document is built from static annotations; it always serialises.
    #[allow(clippy::expect_used)]
    let mut json = spec.to_pretty_json().expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

/// OpenAPI document
///
/// This API's OpenAPI 3.1 description, as JSON. Interactive docs are at `/docs`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi_json.to_string())
}
