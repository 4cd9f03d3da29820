//! The problem middleware: the single place error bodies are written.
//!
//! It renders the [`Problem`] that [`ApiError`](super::error::ApiError) left in the response's
//! extensions, stamped with the request id, and turns any other error response (axum's 405,
//! tower's 413, a panic) into the same shape, keeping headers such as `Allow` and `Retry-After`.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{
    error::{ApiError, ErrorCode, PROBLEM_JSON, Problem},
    request_id::RequestId,
};

/// Put in a response's extensions to keep its error body as it is: for endpoints whose clients
/// expect another standard's error shape (RFC 6749 on the OAuth2 token endpoint).
#[derive(Debug, Clone, Copy)]
pub struct KeepErrorBody;

/// Renders problems, and bounds every request by the configured timeout (a timed-out request is
/// a `request_timeout` problem like any other).
pub async fn middleware(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_default();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let mut response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?timeout, "request timed out");
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!("the request did not complete within {}", humantime::format_duration(timeout)),
            )
            .into_response()
        }
    };

    if response.extensions().get::<KeepErrorBody>().is_some() {
        return response;
    }
    let problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        None if is_unshaped_error(&response) => stray_problem(&response, &method, &path),
        None => return response,
    };
    let rendered = problem.into_response_with_id(&request_id);
    let (mut parts, _) = response.into_parts();
    let (rendered_parts, body) = rendered.into_parts();
    parts.status = rendered_parts.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, Body::new(body))
}

fn is_unshaped_error(response: &Response) -> bool {
    let status = response.status();
    let shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    (status.is_client_error() || status.is_server_error()) && !shaped
}

/// A problem for an error response that our own code did not produce.
fn stray_problem(response: &Response, method: &axum::http::Method, path: &str) -> Problem {
    let status = response.status();
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, format!("no route matches {method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on {path}; the Allow header lists the methods that are"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            (ErrorCode::PayloadTooLarge, "the request body is larger than this server accepts".to_owned())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (ErrorCode::UnsupportedMediaType, "send the body as application/json".to_owned())
        }
        s if s.is_server_error() => {
            tracing::error!(status = s.as_u16(), "error response without a cause");
            (ErrorCode::InternalError, "the request could not be completed because of an error on our side".to_owned())
        }
        _ => (ErrorCode::InvalidRequest, status.canonical_reason().unwrap_or("invalid request").to_owned()),
    };
    Problem { status: status.as_u16(), ..Problem::new(code, detail) }
}
