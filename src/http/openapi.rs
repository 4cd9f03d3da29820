//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and doc
//! comments, plus the catalogue of webhook events under the top-level `webhooks` (one entry per
//! event type, its payload schema and an example). It is served at `/api/v1/openapi.json` and
//! committed at `openapi/openapi.json`; a test fails when the two drift.

use axum::{extract::State, http::header, response::IntoResponse};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::error::{ErrorCode, FieldError, Problem};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Payymo core API",
        description = "Payment reconciliation: bank feeds, Stripe payments and payouts, matching, and signed webhooks.\n\n\
Every error answers `application/problem+json` (see the `Problem` schema); the `code` field is stable and catalogued at `/docs/errors`. \
Every response carries `X-Request-Id`.",
    ),
    modifiers(&SecuritySchemes),
    components(schemas(
        Problem,
        FieldError,
        ErrorCode,
        crate::domain::states::Direction,
        crate::domain::states::TransactionStatus,
        crate::domain::states::MatchStatus,
        crate::transactions::query::Sort
    )),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "auth", description = "OAuth2 client credentials, user sessions, who am I"),
        (name = "api_keys", description = "API keys for server-to-server use"),
        (name = "members", description = "Users of this tenant and their roles"),
        (name = "audit_logs", description = "The tamper-evident audit log"),
        (name = "bank_connections", description = "Banks, and accounts connected through open-banking consent"),
        (name = "transactions", description = "Bank transactions synced from the bank connections"),
        (name = "invoices", description = "Customers and invoices: what the money should pay, with their changes feeds"),
        (name = "stripe", description = "Stripe: the tenant's connected account"),
        (name = "reconciliation", description = "Matching bank credits to the invoices and Stripe payouts they pay: matches, suggestions, runs, settings, rules, the end-of-day report"),
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
    let (_, mut spec) = super::api_router().split_for_parts();
    unique_operation_ids(&mut spec);
    let document = Document { spec: &spec, webhooks: Webhooks };
    // The document is built from static annotations; it always serialises.
    #[allow(clippy::expect_used)]
    let mut document = serde_json::to_value(&document).expect("the OpenAPI document serialises");
    super::error_responses::document(&mut document);
    super::reads::document(&mut document);
    #[allow(clippy::expect_used)]
    let mut json = serde_json::to_string_pretty(&document).expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

/// Operation ids must be unique in a document (client generators name methods after them), but
/// utoipa takes each handler's function name, and many modules have a `list` or a `get`. Each id
/// used more than once gets its resource's path appended: `list` on `/api/v1/webhook_endpoints`
/// becomes `list_webhook_endpoints`, `get` on `/api/v1/webhook_endpoints/{id}` becomes
/// `get_webhook_endpoints`.
fn unique_operation_ids(spec: &mut utoipa::openapi::OpenApi) {
    fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
    }
    let mut uses: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in spec.paths.paths.values_mut() {
        for id in operations(item).filter_map(|op| op.operation_id.clone()) {
            *uses.entry(id).or_default() += 1;
        }
    }
    for (path, item) in &mut spec.paths.paths {
        let resource: Vec<&str> = path
            .trim_start_matches("/api/v1/")
            .trim_start_matches("/admin/v1/")
            .split('/')
            .filter(|segment| !segment.is_empty() && !segment.starts_with('{'))
            .collect();
        let admin = if path.starts_with("/admin/") { "admin_" } else { "" };
        for op in operations(item) {
            if let Some(id) = &op.operation_id
                && uses.get(id).copied().unwrap_or(0) > 1
            {
                op.operation_id = Some(format!("{admin}{id}_{}", resource.join("_")));
            }
        }
    }
}

/// The document utoipa builds, with OpenAPI 3.1's top-level `webhooks` beside it: utoipa 5 has no
/// field for them (juhaku/utoipa#686), so they are serialised next to its fields.
#[derive(Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    spec: &'a utoipa::openapi::OpenApi,
    webhooks: Webhooks,
}

/// The `webhooks` map: event type → a Path Item whose `post` is the delivery, in catalogue order.
struct Webhooks;

impl Serialize for Webhooks {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer
            .collect_map(catalogue().into_iter().map(|event| (event.event_type, json!({"post": event.operation()}))))
    }
}

/// One event type as the catalogue describes it.
struct WebhookEvent {
    event_type: &'static str,
    /// When it is sent, in a few words (the operation's summary).
    summary: &'static str,
    /// What `data` holds and what to do with it.
    description: &'static str,
    /// The schema of `data`.
    data: Value,
    /// An example of `data`.
    example: Value,
}

impl WebhookEvent {
    /// The Operation Object of a delivery of this event.
    fn operation(&self) -> Value {
        let envelope = json!({
            "allOf": [
                component("Event"),
                {"type": "object", "properties": {"event_type": {"const": self.event_type}, "data": self.data}},
            ]
        });
        let example = json!({
            "id": "evt_0192f3c4d5e6478fa1b2c3d4e5f60718",
            "event_type": self.event_type,
            "timestamp": "2026-11-21T09:30:00.120374Z",
            "tenant_id": "ten_0192f3c4d5e6478fa1b2c3d4e5f60718",
            "data": self.example,
        });
        json!({
            "tags": ["events"],
            "summary": self.summary,
            "description": format!(
                "{}\n\nVerify a signature over the raw body, reject a timestamp more than 5 minutes off, and \
                 de-duplicate on the event `id` (delivery is at least once, in no guaranteed order). See \
                 `docs/webhooks.md`.",
                self.description
            ),
            "parameters": delivery_headers(),
            "requestBody": {
                "description": "The event, in the envelope `GET /api/v1/events/{id}` returns.",
                "required": true,
                "content": {"application/json": {"schema": envelope, "example": example}},
            },
            "responses": {
                "2XX": {"description": "Received. Any 2xx within the timeout (15 s by default) acknowledges the delivery; the body is ignored (its first 1 KiB is kept on the attempt)."},
                "410": {"description": "Gone: the delivery fails without a retry and the endpoint is disabled, with `webhook_endpoint.disabled` (how Zapier unsubscribes a dead hook)."},
                "429": {"description": "Too many requests: with `Retry-After` (seconds or an HTTP date, at most 24 h) the whole endpoint is paused that long; the delivery is retried."},
                "503": {"description": "Unavailable: as 429, `Retry-After` pauses the endpoint; the delivery is retried."},
                "default": {"description": "Any other answer, a redirect (never followed), a timeout or a connection error: retried (by default after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, ±10 %), then the delivery is `failed` and can be re-sent."},
            },
        })
    }
}

/// The headers every delivery carries.
fn delivery_headers() -> Value {
    let header = |name: &str, description: &str, example: &str| {
        json!({"name": name, "in": "header", "required": true, "description": description,
               "schema": {"type": "string"}, "example": example})
    };
    json!([
        header(
            "webhook-id",
            "The event's `id`: the same on every retry and re-send of the event. De-duplicate on it.",
            "evt_0192f3c4d5e6478fa1b2c3d4e5f60718",
        ),
        header("webhook-timestamp", "Unix seconds when this attempt was signed (new on every attempt).", "1795243548"),
        header(
            "webhook-signature",
            "Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, keyed \
             with the base64-decoded part of the `whsec_…` secret. Space-separated entries while a rotated-out \
             secret still signs; accept any match. The `standardwebhooks` libraries verify it.",
            "v1,TY/DicJga9m0rES/IyC7lHAu0ndlPPVR8Yl1mB+jsM0=",
        ),
        header(
            "X-Webhook-Signature",
            "`t=<unix>,v1=<hex>`: hex HMAC-SHA256 of `{t}.{body}`, keyed with the whole secret string (`whsec_` \
             included), Stripe's scheme. One `v1=` per live secret; accept any match.",
            "t=1795243548,v1=bf455c29b07073055d73714105345147c2ed11bd48586e92967daabfcdd098da",
        ),
    ])
}

/// A reference to a component schema.
fn component(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A component schema with more properties.
fn extended(name: &str, properties: Value) -> Value {
    let required: Vec<&String> = properties.as_object().map(|p| p.keys().collect()).unwrap_or_default();
    json!({"allOf": [component(name), {"type": "object", "required": required, "properties": properties}]})
}

/// Every event type, in `events::EVENT_TYPES` order (a test holds the two together), with the
/// schema of its `data` and an example.
fn catalogue() -> Vec<WebhookEvent> {
    let key = json!({
        "id": "key_0192f3c4d5e6478fa1b2c3d4e5f60718", "label": "erp-sync",
        "scopes": ["transactions:read", "webhooks:read"], "prefix": "sk_live_AbC123", "allowed_networks": [],
        "expires_at": null, "revoked_at": null, "rotated_to": null, "last_used_at": null, "last_used_ip": null,
        "usage_count": 0, "created_at": "2026-11-21T09:30:00.120374Z"
    });
    let client = json!({
        "id": "cli_0192f3c4d5e6478fa1b2c3d4e5f60718", "name": "Partner ERP", "scopes": ["transactions:read"],
        "revoked_at": null, "last_used_at": null, "created_at": "2026-11-21T09:30:00.120374Z"
    });
    let stripe_connection = json!({
        "id": "sc_0192f3c4d5e6478fa1b2c3d4e5f60718", "status": "connected", "account_id": "acct_1PgafTB7WZ01zgkW",
        "account_name": "Acme Widgets Ltd", "livemode": false, "key_hint": "rk_test_…Xy7Q", "key_kind": "restricted",
        "missing_permissions": [], "error": null,
        "created_at": "2026-12-04T09:30:00.000000Z", "updated_at": "2026-12-04T09:30:00.000000Z"
    });
    let stripe_payment = json!({
        "id": "ch_3PgafuB7WZ01zgkWXYmPNZs8", "connection_id": "sc_0192f3c4d5e6478fa1b2c3d4e5f60718",
        "payment_intent_id": "pi_3PgafuB7WZ01zgkW1aBcDeFg", "status": "succeeded", "amount": 2000, "currency": "EUR",
        "fee": 88, "net": 1912, "amount_refunded": 0, "disputed": false, "customer": "cus_QXg1o8vcGmoR32",
        "description": "Order 1042", "metadata": {"order": "1042"}, "balance_transaction_id": "txn_3PgafuB7WZ01zgkW",
        "payout_id": null, "failure_code": null, "created": "2026-12-04T09:30:00Z",
        "updated_at": "2026-12-04T09:30:01.120374Z"
    });
    let stripe_payout = json!({
        "id": "po_1PgafuB7WZ01zgkWq2x4HmVb", "connection_id": "sc_0192f3c4d5e6478fa1b2c3d4e5f60718",
        "status": "paid", "amount": 9536, "currency": "EUR", "arrival_date": "2026-12-06", "automatic": true,
        "method": "standard", "statement_descriptor": "PAYYMO SANDBOX", "trace_id": "4821907735120046",
        "failure_code": null, "failure_message": null, "balance_transaction_id": "txn_1PgafuB7WZ01zgkWs0aPb3Ld",
        "summary": {"gross": 10000, "refunds": 0, "adjustments": 0, "fees": 464, "net": 9536,
                    "transaction_count": 5, "adds_up": true, "difference": 0},
        "created": "2026-12-04T00:00:00Z", "updated_at": "2026-12-06T00:00:01.120374Z"
    });
    let match_example = json!({
        "id": "match_0192f3c4d5e6478fa1b2c3d4e5f60718", "status": "active", "origin": "auto", "created_by": "engine",
        "suggestion_id": null, "score": 0.97,
        "reasons": [{"signal": "reference", "strength": 1.0, "weight": 0.45,
                     "detail": "reference INV-2026-0104 found in the remittance text"},
                    {"signal": "amount", "strength": 1.0, "weight": 0.3, "detail": "amount equal (1,250.00 GBP)"}],
        "note": null, "metadata": {},
        "transactions": [{"transaction_id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718", "amount": 125000, "currency": "GBP"}],
        "allocations": [{"target_type": "invoice", "target_id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718", "amount": 125000,
                         "currency": "GBP", "via_payout_id": null, "via_payment_id": null}],
        "adjustments": [], "unmatched_at": null, "unmatched_by": null, "unmatch_reason": null,
        "created_at": "2026-12-04T09:30:00.000000Z", "updated_at": "2026-12-04T09:30:00.000000Z"
    });
    let member = json!({
        "user_id": "usr_0192f3c4d5e6478fa1b2c3d4e5f60718", "email": "jo@acme.example", "name": "Jo Bloggs",
        "role": "admin", "created_at": "2026-11-20T15:02:11.402913Z"
    });
    let connection = json!({
        "id": "bc_0192f3c4d5e6478fa1b2c3d4e5f60718", "institution_id": "SANDBOXFINANCE_SFIN0000",
        "institution_name": "Sandbox Finance", "status": "linked", "consent_link": null,
        "redirect_url": "https://portal.example.com/banks/done", "max_historical_days": 90,
        "access_valid_for_days": 90, "linked_at": "2026-11-21T09:30:00.120374Z",
        "expires_at": "2027-02-19T09:30:00.120374Z", "expiring_in_days": null, "last_synced_at": null, "error": null,
        "accounts": [{
            "id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718", "bank_connection_id": "bc_0192f3c4d5e6478fa1b2c3d4e5f60718",
            "kind": "bank_feed", "status": "ready", "iban": "GB55SFIN10584905872560", "name": "Main account",
            "owner_name": "Jane Doe", "currency": "GBP",
            "balances": [{"type": "closingBooked", "amount": 40595475, "currency": "GBP", "reference_date": "2026-11-20"}],
            "balances_fetched_at": "2026-11-21T09:30:00.120374Z", "last_synced_at": null,
            "created_at": "2026-11-21T09:30:00.120374Z"
        }],
        "sync_budget": {"day_limit": 4, "transactions_remaining": 4, "balances_remaining": 3, "details_remaining": 3,
                        "resets_at": "2026-11-22T00:00:00Z"},
        "created_at": "2026-11-21T09:29:40.872310Z", "updated_at": "2026-11-21T09:30:00.120374Z"
    });
    // `base` with some fields replaced.
    let with = |base: &Value, changes: Value| {
        let mut value = base.clone();
        if let (Some(target), Value::Object(changes)) = (value.as_object_mut(), changes) {
            target.extend(changes);
        }
        value
    };
    let transaction = json!({
        "id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718", "account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718",
        "bank_connection_id": "bc_0192f3c4d5e6478fa1b2c3d4e5f60718", "status": "booked", "amount": 125000,
        "currency": "GBP", "booking_date": "2026-11-21", "value_date": "2026-11-21",
        "description": "Payment INV-2026-0042", "counterparty_name": "Acme Widgets Ltd", "reference": null,
        "bank_transaction_code": "PMNT-RCDT-ESCT", "direction": "credit", "match_status": "unmatched",
        "category": null, "category_source": null, "notes": null, "tags": [], "metadata": {},
        "source": "bank_feed", "external_id": null,
        "created_at": "2026-11-21T09:30:00.120374Z", "updated_at": "2026-11-21T09:30:00.120374Z"
    });
    let suggestion = json!({
        "id": "sug_0192f3c4d5e6478fa1b2c3d4e5f60718", "transaction_id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718",
        "rank": 1, "score": 0.8667, "target_type": "invoice", "target_ids": ["inv_0192f3c4d5e6478fa1b2c3d4e5f60718"],
        "reasons": [{"signal": "amount", "strength": 1.0, "weight": 0.3, "detail": "amount equal (1,250.00 GBP)"}],
        "allocations": [{"target_type": "invoice", "target_id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718",
                         "amount": 125000, "via_payout_id": null, "via_payment_id": null}],
        "adjustments": [], "status": "open", "decided_by": null, "decided_at": null, "match_id": null,
        "created_at": "2026-12-04T09:30:00.000000Z"
    });
    let endpoint = json!({
        "id": "we_0192f3c4d5e6478fa1b2c3d4e5f60718", "url": "https://erp.example.com/hooks/payymo",
        "description": "ERP sync", "event_types": ["transaction.created"], "metadata": {}, "enabled": false,
        "disabled_reason": "every attempt failed for 5 days without a break",
        "disabled_at": "2026-11-26T09:30:00.120374Z", "failing_since": "2026-11-21T09:29:12.004281Z", "paused_until": "2026-11-26T09:31:00.120374Z",
        "previous_secret_expires_at": null,
        "created_at": "2026-11-01T08:00:00.000000Z", "updated_at": "2026-11-26T09:30:00.120374Z"
    });
    let string = |description: &str| json!({"type": "string", "description": description});
    let customer = json!({
        "id": "cus_0192f3c4d5e6478fa1b2c3d4e5f60718", "name": "Acme Widgets Ltd", "email": "accounts@acme.example",
        "source": "hubspot", "external_id": "hs-4411", "aliases": ["ACME WIDGETS LTD"],
        "bank_accounts": [{"iban": "GB82WEST12345698765432", "account_number": null, "sort_code": null, "routing_number": null}],
        "metadata": {}, "created_at": "2026-12-03T09:30:00.120374Z", "updated_at": "2026-12-03T09:30:00.120374Z"
    });
    let invoice = json!({
        "id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718", "number": "INV-2026-0104", "source": "hubspot",
        "external_id": "hs-inv-88172", "customer_id": "cus_0192f3c4d5e6478fa1b2c3d4e5f60718", "currency": "GBP",
        "amount_total": 125000, "amount_tax": 20833, "amount_paid": 0, "amount_due": 125000,
        "issue_date": "2026-11-20", "due_date": "2026-12-20", "status": "open",
        "payment_reference": "INV-2026-0104", "rf_reference": "RF18539007547034", "lines": [], "metadata": {},
        "voided_at": null, "created_at": "2026-12-03T09:30:00.120374Z", "updated_at": "2026-12-03T09:30:00.120374Z"
    });
    let previous_attributes = json!({"previous_attributes": {
        "type": "object",
        "description": "The previous value of each field that changed, by field name.",
        "additionalProperties": true,
    }});

    vec![
        WebhookEvent {
            event_type: "api_key.created",
            summary: "An API key was created",
            description: "Sent when `POST /api/v1/api_keys` (or the admin API) creates a key. `data` is the key, \
                          without its secret.",
            data: component("ApiKey"),
            example: key.clone(),
        },
        WebhookEvent {
            event_type: "api_key.revoked",
            summary: "An API key was revoked",
            description: "Sent when an active key is revoked. `data` is the key, `revoked_at` set.",
            data: component("ApiKey"),
            example: with(&key, json!({"revoked_at": "2026-11-21T09:30:00.120374Z"})),
        },
        WebhookEvent {
            event_type: "api_key.rotated",
            summary: "An API key was rotated",
            description: "Sent when a key is rotated. `data` names the old key, the key that replaces it, and how \
                          long the old one keeps working.",
            data: json!({
                "type": "object",
                "required": ["id", "rotated_to", "overlap_seconds"],
                "properties": {
                    "id": string("The rotated (old) key, `key_…`."),
                    "rotated_to": string("The new key, `key_…`."),
                    "overlap_seconds": {"type": "integer", "minimum": 0, "description": "How long the old key keeps working."},
                },
            }),
            example: json!({"id": "key_0192f3c4d5e6478fa1b2c3d4e5f60718", "rotated_to": "key_0192f3c4d5e67c1d9a2b3c4d5e6f7081",
                            "overlap_seconds": 86400}),
        },
        WebhookEvent {
            event_type: "oauth_client.created",
            summary: "An OAuth client was registered",
            description: "Sent when `POST /api/v1/oauth_clients` registers a client. `data` is the client, without \
                          its secret.",
            data: component("OAuthClient"),
            example: client.clone(),
        },
        WebhookEvent {
            event_type: "oauth_client.revoked",
            summary: "An OAuth client was revoked",
            description: "Sent when an active client is revoked. `data` is the client, `revoked_at` set.",
            data: component("OAuthClient"),
            example: with(&client, json!({"revoked_at": "2026-11-21T09:30:00.120374Z"})),
        },
        WebhookEvent {
            event_type: "member.added",
            summary: "A user joined the tenant",
            description: "Sent when `POST /api/v1/members` (or the admin API) adds a member. `data` is the member.",
            data: component("Member"),
            example: with(&member, json!({"role": "member"})),
        },
        WebhookEvent {
            event_type: "member.updated",
            summary: "A member's role was set",
            description: "Sent on `PATCH /api/v1/members/{user_id}`. `data` is the member with the new `role`, and \
                          `previous_role`.",
            data: extended("Member", json!({"previous_role": component("Role")})),
            example: with(&member, json!({"previous_role": "member"})),
        },
        WebhookEvent {
            event_type: "member.removed",
            summary: "A member was removed",
            description: "Sent on `DELETE /api/v1/members/{user_id}`. `data` is the member as they were.",
            data: component("Member"),
            example: member,
        },
        WebhookEvent {
            event_type: "bank_connection.created",
            summary: "A bank connection was started",
            description: "Sent when `POST /api/v1/bank_connections` creates a connection. `data` is the connection, \
                          `pending`, with the `consent_link` to send the account holder to.",
            data: component("BankConnection"),
            example: with(
                &connection,
                json!({
                    "status": "pending", "consent_link": "https://ob.gocardless.com/psd2/start/6a14482e-4a4e-4eb1-b2bb-cc382067a80d",
                    "linked_at": null, "expires_at": null, "accounts": [], "sync_budget": null,
                    "updated_at": "2026-11-21T09:29:40.872310Z"
                }),
            ),
        },
        WebhookEvent {
            event_type: "bank_connection.updated",
            summary: "A bank connection's status changed",
            description: "Sent when a connection is linked (with its accounts), rejected (with an `error`), \
                          suspended by the provider, or deleted. `data` is the connection as it now is.",
            data: component("BankConnection"),
            example: connection.clone(),
        },
        WebhookEvent {
            event_type: "bank_connection.expiring",
            summary: "A bank connection's consent runs out soon",
            description: "Sent once each as a linked connection comes within 7, 3 and 1 days of `expires_at`. \
                          `data` is the connection; `expiring_in_days` is the whole days left, rounded down. Ask the \
                          account holder to re-authorise.",
            data: component("BankConnection"),
            example: with(
                &connection,
                json!({
                    "expires_at": "2026-11-28T09:00:00.000000Z", "expiring_in_days": 6,
                    "last_synced_at": "2026-11-21T09:00:04.551230Z"
                }),
            ),
        },
        WebhookEvent {
            event_type: "bank_connection.expired",
            summary: "A bank connection's consent ran out",
            description: "Sent when the consent runs out, or the bank reports it expired during a sync. `data` is the \
                          connection, `expired`, with `error.code` `consent_expired`. It syncs no more.",
            data: component("BankConnection"),
            example: with(
                &connection,
                json!({
                    "status": "expired", "expires_at": "2026-11-21T09:00:00.000000Z",
                    "error": {"code": "consent_expired", "detail": "the consent ran out: ask the account holder to re-authorise"}
                }),
            ),
        },
        WebhookEvent {
            event_type: "transaction.created",
            summary: "A transaction arrived",
            description: "Sent for each transaction a bank sync finds or an import creates. `data` is the transaction \
                          (minor units; negative is money out).",
            data: component("Transaction"),
            example: transaction.clone(),
        },
        WebhookEvent {
            event_type: "transaction.updated",
            summary: "A transaction changed",
            description: "Sent when the bank books or changes a transaction, drops a pending one (`cancelled`), a user \
                          changes it, a categorisation rule recategorises it, or an import updates it. `data` is the \
                          transaction as it now is, plus `previous_attributes`: the old values of the fields that \
                          changed.",
            data: extended(
                "Transaction",
                json!({"previous_attributes": {
                    "type": "object",
                    "description": "The previous value of each field that changed, by field name.",
                    "additionalProperties": true,
                }}),
            ),
            example: with(
                &transaction,
                json!({
                    "category": "sales", "category_source": "user", "notes": "Invoice 42, paid in full",
                    "updated_at": "2026-11-21T10:02:41.330127Z",
                    "previous_attributes": {"category": null, "category_source": null, "notes": null}
                }),
            ),
        },
        WebhookEvent {
            event_type: "transaction.matched",
            summary: "Bank transactions were matched",
            description: "Sent when a match is made: by the engine on its own (`origin: auto`), by a person accepting \
                          a suggestion (`suggestion`) or matching by hand (`manual`). `data` is the match: its \
                          transactions, what it pays (allocations), the adjustments, and the engine's score and \
                          reasons. The invoices it pays send `invoice.paid` or `invoice.partially_paid`.",
            data: component("Match"),
            example: match_example.clone(),
        },
        WebhookEvent {
            event_type: "transaction.unmatched",
            summary: "A match was undone",
            description: "Sent on `DELETE /api/v1/reconciliation/matches/{id}`. `data` is the match, `unmatched`, \
                          with who undid it and why; its transactions are `unmatched` again and the invoices it \
                          paid have their amounts back.",
            data: component("Match"),
            example: with(
                &match_example,
                json!({"status": "unmatched", "unmatched_at": "2026-12-04T11:00:00.000000Z",
                       "unmatched_by": "user:usr_0192f3c4d5e6478fa1b2c3d4e5f60718",
                       "unmatch_reason": "Paid by a different customer"}),
            ),
        },
        WebhookEvent {
            event_type: "transaction.needs_review",
            summary: "A credit needs a person",
            description: "Sent once per bank credit, the first time the engine has looked at it and could not match it \
                          on its own: it is left `suggested` (with suggestions to accept or reject) or `unmatched` \
                          (nothing came close). Looking at it again (a run, a new invoice) sends nothing more, and \
                          neither does unmatching it after a person matched it. `data` is the transaction, plus its \
                          open `suggestions`, best first (empty when `unmatched`).",
            data: extended(
                "Transaction",
                json!({"suggestions": {"type": "array", "items": component("Suggestion"),
                                       "description": "The open suggestions, best first; empty when none."}}),
            ),
            example: with(
                &transaction,
                json!({"description": "ACME WIDGETS PAYMENT", "match_status": "suggested",
                       "updated_at": "2026-12-04T09:30:00.120374Z", "suggestions": [suggestion.clone()]}),
            ),
        },
        WebhookEvent {
            event_type: "reconciliation.suggested",
            summary: "The engine suggests matches for a transaction",
            description: "Sent when the engine leaves a credit for a person with new or changed suggestions (it sends \
                          nothing when it suggests the same again). `data` holds the transaction's id and its open \
                          suggestions, best first, each with its score and reasons; accept or reject them with \
                          `POST /api/v1/reconciliation/suggestions/{id}/accept` or `/reject`.",
            data: json!({"type": "object", "required": ["transaction_id", "suggestions"], "properties": {
                "transaction_id": {"type": "string"},
                "suggestions": {"type": "array", "items": {"$ref": "#/components/schemas/Suggestion"}}
            }}),
            example: json!({"transaction_id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718", "suggestions": [suggestion]}),
        },
        WebhookEvent {
            event_type: "reconciliation.run.completed",
            summary: "A reconciliation run finished",
            description: "Sent when a run started with `POST /api/v1/reconciliation/runs` has looked at every credit in \
                          its range. `data` is the run, `succeeded`, with its counts.",
            data: component("ReconciliationRun"),
            example: json!({"id": "rrun_0192f3c4d5e6478fa1b2c3d4e5f60718", "status": "succeeded",
                "date_from": "2026-11-01", "date_to": "2026-11-30", "requested_by": "api_key:key_0192f3c4d5e6478fa1b2c3d4e5f60718",
                "total": 12500, "examined": 12500, "auto_matched": 10310, "suggested": 1520, "unmatched": 650,
                "excluded": 20, "error": null, "created_at": "2026-12-04T09:30:00Z",
                "started_at": "2026-12-04T09:30:01Z", "finished_at": "2026-12-04T09:31:12Z"}),
        },
        WebhookEvent {
            event_type: "customer.created",
            summary: "A customer was created",
            description: "Sent when `POST /api/v1/customers`, a batch, or an invoice's inline customer creates a \
                          customer. `data` is the customer.",
            data: component("Customer"),
            example: customer.clone(),
        },
        WebhookEvent {
            event_type: "customer.updated",
            summary: "A customer changed",
            description: "Sent when a `PATCH` or a batch row changes a customer (not when it sends the same values). \
                          `data` is the customer as it now is, plus `previous_attributes`: the old values of the \
                          fields that changed.",
            data: extended("Customer", previous_attributes.clone()),
            example: with(
                &customer,
                json!({"aliases": ["ACME WIDGETS LTD", "ACME W"], "previous_attributes": {"aliases": ["ACME WIDGETS LTD"]}}),
            ),
        },
        WebhookEvent {
            event_type: "customer.deleted",
            summary: "A customer was deleted",
            description: "Sent on `DELETE /api/v1/customers/{id}`. `data` is the customer as it was.",
            data: component("Customer"),
            example: customer,
        },
        WebhookEvent {
            event_type: "invoice.created",
            summary: "An invoice was created",
            description: "Sent when `POST /api/v1/invoices` or a batch row creates an invoice. `data` is the invoice \
                          (minor units).",
            data: component("Invoice"),
            example: invoice.clone(),
        },
        WebhookEvent {
            event_type: "invoice.updated",
            summary: "An invoice changed",
            description: "Sent when a `PATCH` or a batch row changes an invoice (not when it sends the same values), \
                          a draft is finalised or an invoice written off. `data` is the invoice as it now is, plus \
                          `previous_attributes`: the old values of the fields that changed.",
            data: extended("Invoice", previous_attributes.clone()),
            example: with(
                &invoice,
                json!({"due_date": "2027-01-15", "previous_attributes": {"due_date": "2026-12-20"}}),
            ),
        },
        WebhookEvent {
            event_type: "invoice.voided",
            summary: "An invoice was voided",
            description: "Sent on `POST /api/v1/invoices/{id}/void`. `data` is the invoice, `void`, with `voided_at`, \
                          and `previous_attributes.status`.",
            data: extended("Invoice", previous_attributes.clone()),
            example: with(
                &invoice,
                json!({"status": "void", "voided_at": "2026-12-04T10:00:00.000000Z",
                                          "previous_attributes": {"status": "open"}}),
            ),
        },
        WebhookEvent {
            event_type: "invoice.deleted",
            summary: "A draft invoice was deleted",
            description: "Sent on `DELETE /api/v1/invoices/{id}` (drafts only). `data` is the invoice as it was.",
            data: component("Invoice"),
            example: with(&invoice, json!({"status": "draft"})),
        },
        WebhookEvent {
            event_type: "invoice.paid",
            summary: "An invoice was paid in full",
            description: "Sent by reconciliation when matches pay the whole invoice. `data` is the invoice, `paid`, \
                          `amount_due` 0.",
            data: component("Invoice"),
            example: with(&invoice, json!({"status": "paid", "amount_paid": 125000, "amount_due": 0})),
        },
        WebhookEvent {
            event_type: "invoice.partially_paid",
            summary: "Part of an invoice was paid",
            description: "Sent by reconciliation when a match pays part of an invoice. `data` is the invoice, \
                          `partially_paid`, with what is paid and due.",
            data: component("Invoice"),
            example: with(&invoice, json!({"status": "partially_paid", "amount_paid": 50000, "amount_due": 75000})),
        },
        WebhookEvent {
            event_type: "stripe_connection.connected",
            summary: "A Stripe account was connected",
            description: "Sent when `PUT /api/v1/stripe/connection` connects an account or replaces its key. `data` \
                          is the connection (never the key), with the permissions a restricted key lacks.",
            data: component("StripeConnection"),
            example: stripe_connection.clone(),
        },
        WebhookEvent {
            event_type: "stripe_connection.failed",
            summary: "Stripe stopped accepting a connection's key",
            description: "Sent when a connected key is refused by Stripe (revoked, expired, its permissions removed) \
                          during sync. `data` is the connection, `failed`, with `error`. `PUT` a working key to \
                          reconnect.",
            data: component("StripeConnection"),
            example: with(
                &stripe_connection,
                json!({"status": "failed", "error": "Stripe refused the key: Expired API Key provided."}),
            ),
        },
        WebhookEvent {
            event_type: "stripe_connection.disconnected",
            summary: "A Stripe account was disconnected",
            description: "Sent on `DELETE /api/v1/stripe/connection`. `data` is the connection, `disconnected`; its \
                          key is forgotten.",
            data: component("StripeConnection"),
            example: with(&stripe_connection, json!({"status": "disconnected"})),
        },
        WebhookEvent {
            event_type: "stripe_payment.succeeded",
            summary: "A Stripe payment succeeded",
            description: "Sent when a card payment at the connected Stripe account is first seen succeeded. `data` is \
                          the payment, with Stripe's `fee` and the `net` that reaches the balance.",
            data: component("StripePayment"),
            example: stripe_payment.clone(),
        },
        WebhookEvent {
            event_type: "stripe_payment.failed",
            summary: "A Stripe payment failed",
            description: "Sent when a card payment is declined. `data` is the payment, `failed`, with its \
                          `failure_code`.",
            data: component("StripePayment"),
            example: with(
                &stripe_payment,
                json!({"status": "failed", "fee": null, "net": null, "failure_code": "card_declined"}),
            ),
        },
        WebhookEvent {
            event_type: "stripe_payment.refunded",
            summary: "A Stripe payment was refunded",
            description: "Sent each time more of a payment is refunded. `data` is the payment with the \
                          `amount_refunded` so far.",
            data: component("StripePayment"),
            example: with(&stripe_payment, json!({"amount_refunded": 500})),
        },
        WebhookEvent {
            event_type: "stripe_payment.disputed",
            summary: "A Stripe payment was disputed",
            description: "Sent when the card holder disputes a payment (a chargeback). `data` is the payment, \
                          `disputed: true`.",
            data: component("StripePayment"),
            example: with(&stripe_payment, json!({"disputed": true})),
        },
        WebhookEvent {
            event_type: "stripe_payout.paid",
            summary: "A Stripe payout reached the bank",
            description: "Sent when a payout of the connected account is `paid`: the bank has it, on its \
                          `arrival_date`, quoting its `statement_descriptor` and `trace_id`. `data` is the payout \
                          with its `summary` (its balance transactions summed, and whether they add up).",
            data: component("StripePayout"),
            example: stripe_payout.clone(),
        },
        WebhookEvent {
            event_type: "stripe_payout.failed",
            summary: "A Stripe payout failed",
            description: "Sent when the bank returned a payout. `data` is the payout, `failed`, with Stripe's \
                          `failure_code` and `failure_message`; the amount went back to the Stripe balance and a \
                          later payout carries it again.",
            data: component("StripePayout"),
            example: with(
                &stripe_payout,
                json!({"status": "failed", "failure_code": "account_closed",
                       "failure_message": "The bank account has been closed."}),
            ),
        },
        WebhookEvent {
            event_type: "webhook_endpoint.disabled",
            summary: "Payymo disabled a webhook endpoint",
            description: "Sent when an endpoint is disabled because it answered 410 Gone, or because every attempt to \
                          it failed for `PAYYMO_WEBHOOK_DISABLE_AFTER` (5 days) without a break. `data` is the \
                          endpoint with its `disabled_reason`; the disabled endpoint itself does not receive this. \
                          `PATCH {\"enabled\": true}` resumes it.",
            data: component("WebhookEndpoint"),
            example: endpoint,
        },
        WebhookEvent {
            event_type: "ping",
            summary: "A test event",
            description: "Sent by `POST /api/v1/webhook_endpoints/{id}/test` to that endpoint only; it cannot be \
                          subscribed to.",
            data: json!({
                "type": "object",
                "required": ["webhook_endpoint_id", "message"],
                "properties": {
                    "webhook_endpoint_id": string("The endpoint tested, `we_…`."),
                    "message": string("A fixed sentence."),
                },
            }),
            example: json!({"webhook_endpoint_id": "we_0192f3c4d5e6478fa1b2c3d4e5f60718",
                            "message": "A test event from Payymo."}),
        },
    ]
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::events::EVENT_TYPES;

    #[test]
    fn operation_ids_are_unique_and_every_ref_resolves() {
        let spec: Value = serde_json::from_str(&spec_json()).unwrap();
        let mut ids = Vec::new();
        for item in spec["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                    ids.push(id.to_owned());
                }
            }
        }
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "duplicate operationIds in {ids:?}");
        let mut found = Vec::new();
        refs(&spec, &mut found);
        let schemas = spec["components"]["schemas"].as_object().unwrap();
        for target in found {
            let name = target.strip_prefix("#/components/schemas/").unwrap_or(target);
            assert!(schemas.contains_key(name), "dangling $ref {target}");
        }
    }

    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target);
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn the_webhooks_catalogue_is_the_event_list() {
        let spec: Value = serde_json::from_str(&spec_json()).unwrap();
        let webhooks = spec["webhooks"].as_object().expect("a top-level webhooks map");
        let names: Vec<&str> = webhooks.keys().map(String::as_str).collect();
        assert_eq!(
            names.iter().copied().collect::<BTreeSet<_>>(),
            EVENT_TYPES.iter().copied().collect::<BTreeSet<_>>()
        );
        let listed: Vec<&str> = catalogue().iter().map(|e| e.event_type).collect();
        assert_eq!(listed, EVENT_TYPES, "the catalogue follows EVENT_TYPES' order");

        let schemas = spec["components"]["schemas"].as_object().unwrap();
        for (name, item) in webhooks {
            let post = &item["post"];
            assert!(post["summary"].as_str().is_some_and(|s| !s.is_empty()), "{name}: summary");
            let body = &post["requestBody"]["content"]["application/json"];
            assert_eq!(body["example"]["event_type"], name.as_str(), "{name}: example");
            assert_eq!(body["schema"]["allOf"][1]["properties"]["event_type"]["const"], name.as_str());
            let headers: Vec<&str> =
                post["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
            assert_eq!(headers, ["webhook-id", "webhook-timestamp", "webhook-signature", "X-Webhook-Signature"]);
            assert!(post["responses"]["2XX"].is_object() && post["responses"]["410"].is_object(), "{name}");
            let mut found = Vec::new();
            refs(item, &mut found);
            for target in found {
                let schema = target.strip_prefix("#/components/schemas/").unwrap_or(target);
                assert!(schemas.contains_key(schema), "{name} refers to {target}, which the document lacks");
            }
        }
    }

    #[test]
    fn docs_describe_every_event_type() {
        let docs = include_str!("../../docs/webhooks.md");
        for name in EVENT_TYPES {
            assert!(docs.contains(&format!("### `{name}`")), "docs/webhooks.md has no section for {name}");
        }
    }
}
