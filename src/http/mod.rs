//! The HTTP layer: the router, the middleware every request passes through, and one module per
//! resource.

pub mod accounts;
pub mod admin;
pub mod api_keys;
pub mod audit_logs;
pub mod audit_trail;
pub mod auth;
pub mod bank_connections;
pub mod categorization_rules;
pub mod csv;
pub mod customers;
pub mod docs;
pub mod edge;
pub mod error;
pub mod error_responses;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod imports;
pub mod invoice_imports;
pub mod invoices;
pub mod json;
pub mod members;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod pagination;
pub mod path_id;
pub mod portal;
pub mod problem;
pub mod provider_credentials;
pub mod provider_errors;
pub mod query;
pub mod rate_limit;
pub mod reads;
pub mod reconciliation_matches;
pub mod reconciliation_report;
pub mod reconciliation_rules;
pub mod reconciliation_settings;
pub mod reconciliation_simulate;
pub mod reconciliation_suggestions;
pub mod request_id;
pub mod sessions;
pub mod stripe_connect;
pub mod stripe_connection;
pub mod stripe_payments;
pub mod stripe_payouts;
pub mod stripe_webhooks;
pub mod transactions;
pub mod webhook_endpoints;

use std::{any::Any, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
};
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{config::Config, state::AppState};
use error::ApiError;

/// Operations endpoints, outside the versioned API.
fn operations_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
}

/// `/api/v1` routes open to anyone: the spec, the token endpoint, sign-in.
fn public_v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi::openapi_json))
        .merge(oauth::public_router())
        .merge(sessions::public_router())
        .merge(bank_connections::public_router())
        .merge(stripe_webhooks::public_router())
        .merge(stripe_connect::public_router())
}

/// `/api/v1` routes that act for a tenant: every one authenticates, is rate limited, audited
/// when it mutates, and honours `Idempotency-Key`.
fn tenant_v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(api_keys::router())
        .merge(audit_logs::router())
        .merge(bank_connections::router())
        .merge(events::router())
        .merge(members::router())
        .merge(oauth::router())
        .merge(provider_credentials::router())
        .merge(sessions::router())
        .merge(transactions::router())
        .merge(categorization_rules::router())
        .merge(accounts::router())
        .merge(imports::router())
        .merge(webhook_endpoints::router())
        .merge(customers::router())
        .merge(invoices::router())
        .merge(invoice_imports::router())
        .merge(stripe_connection::router())
        .merge(stripe_connect::router())
        .merge(stripe_payments::router())
        .merge(stripe_payouts::router())
        .merge(reconciliation_matches::router())
        .merge(reconciliation_suggestions::router())
        .merge(reconciliation_simulate::router())
        .merge(reconciliation_settings::router())
        .merge(reconciliation_rules::router())
        .merge(reconciliation_report::router())
}

/// The documented routes: everything that appears in the OpenAPI document.
pub fn api_router() -> OpenApiRouter<AppState> {
    operations_routes().nest("/api/v1", public_v1_routes().merge(tenant_v1_routes())).merge(admin::router())
}

/// The whole application: documented routes, `/docs`, and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (operations, _) = operations_routes().split_for_parts();
    let (public_v1, _) = public_v1_routes().split_for_parts();
    let (tenant_v1, _) = tenant_v1_routes().split_for_parts();
    // Three layers: authentication (then the rate limit); the read replica's routing and
    // write marks (outside the next, so that an idempotent replay marks its caller too); and for
    // mutating calls the audit trail (around Idempotency-Key handling).
    let tenant_v1 = tenant_v1.route_layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(state.clone(), auth::authenticate))
            .layer(from_fn_with_state(state.clone(), reads::middleware))
            .layer(from_fn_with_state(state.clone(), audit_trail::middleware)),
    );
    let (admin, _) = admin::router().split_for_parts();
    let admin = admin.route_layer(from_fn_with_state(state.clone(), admin::guard));
    let routes = operations
        .nest("/api/v1", public_v1.merge(tenant_v1))
        .merge(admin)
        .merge(docs::router())
        .merge(portal::router())
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state.clone());
    with_middleware(routes, &state.config, state.metrics.clone())
}

/// Responses worth compressing: tower-http's default rule (not gRPC, images or event streams),
/// from 1 KiB up instead of its 32 bytes. Under that a body fits a packet either way, while a
/// compressor is still allocated and its tables zeroed for every response: CPU spent for
/// nothing on the smallest, most frequent answers.
fn worth_compressing() -> impl tower_http::compression::Predicate {
    use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
    DefaultPredicate::new().and(SizeAbove::new(1024))
}

/// Wraps routes in the middleware every request passes through, outermost first: the edge
/// (request id, client IP, span and metrics, security headers), CORS, compression, the problem
/// renderer with the request timeout, the panic catcher, and the body limit.
pub fn with_middleware(routes: Router, config: &Config, metrics: Arc<crate::metrics::Metrics>) -> Router {
    let cors = (!config.cors_origins.is_empty()).then(|| cors(&config.cors_origins));
    let edge = Arc::new(edge::Edge { metrics, trusted_proxies: config.trusted_proxies.clone() });
    routes.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(edge, edge::middleware))
            .option_layer(cors)
            .layer(CompressionLayer::new().compress_when(worth_compressing()))
            .layer(from_fn_with_state(config.request_timeout, problem::middleware))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(from_fn_with_state(config.body_limit, limit_body))
            .layer(DefaultBodyLimit::max(config.body_limit)),
    )
}

/// The request body limit: `PAYYMO_BODY_LIMIT` everywhere but the CSV upload path, which takes
/// files up to [`crate::imports::UPLOAD_LIMIT`]. A declared length over it is refused before the
/// body is read; a chunked body is cut off where it passes it.
async fn limit_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let limit = if imports::UPLOAD_PATHS.contains(&request.uri().path()) {
        limit.max(crate::imports::UPLOAD_LIMIT)
    } else {
        limit
    };
    let handler =
        tower::service_fn(move |request: axum::http::Request<tower_http::body::Limited<axum::body::Body>>| {
            let next = next.clone();
            async move { Ok::<_, std::convert::Infallible>(next.run(request.map(axum::body::Body::new)).await) }
        });
    match RequestBodyLimitLayer::new(limit).layer(handler).oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-api-key"),
            request_id::X_REQUEST_ID.clone(),
        ])
        .expose_headers([
            request_id::X_REQUEST_ID.clone(),
            header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
            HeaderName::from_static("x-rate-limit-limit"),
            HeaderName::from_static("x-rate-limit-remaining"),
            HeaderName::from_static("x-rate-limit-reset"),
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
        ])
        .max_age(Duration::from_secs(3600))
}

fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}
