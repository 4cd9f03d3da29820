//! The outermost middleware, in one layer because every request passes through it: the request
//! id (`X-Request-Id`, taken from the request when sane, echoed on every response), the client's
//! IP address (through trusted proxies), a tracing span with the route template, request metrics,
//! and the security headers.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, header},
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;
use tracing::Instrument;

use super::{
    auth::ClientIp,
    request_id::{RequestId, X_REQUEST_ID},
};
use crate::{
    auth::authenticator::client_ip,
    metrics::{Metrics, UNMATCHED_ROUTE},
};

/// What the edge needs.
pub struct Edge {
    pub metrics: Arc<Metrics>,
    pub trusted_proxies: Vec<IpNet>,
}

/// Set on every response that does not set its own.
const SECURITY_HEADERS: &[(HeaderName, &str)] = &[
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
    (header::CACHE_CONTROL, "no-store"),
];

pub async fn middleware(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    let id_header = HeaderValue::from_str(&id.0).ok();
    let ip = client_ip(peer.ip(), request.headers(), &edge.trusted_proxies);
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, |p| p.as_str()).to_owned();
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http.request",
        method = %method,
        route = %route,
        request_id = %id.0,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    request.extensions_mut().insert(id);
    request.extensions_mut().insert(ClientIp(ip));

    let started = std::time::Instant::now();
    let in_flight = edge.metrics.start();
    let mut response = next.run(request).instrument(span.clone()).await;
    drop(in_flight);
    let elapsed = started.elapsed();

    let status = response.status().as_u16();
    span.record("status", status);
    span.record("latency_ms", elapsed.as_secs_f64() * 1e3);
    span.in_scope(|| tracing::info!("request completed"));
    edge.metrics.record(&method, &route, status, elapsed);

    let headers = response.headers_mut();
    if let Some(id) = id_header {
        headers.insert(X_REQUEST_ID.clone(), id);
    }
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
    }
    response
}
