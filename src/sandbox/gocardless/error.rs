//! The API's error body: `{summary, detail, status_code, type?}`, with optional extra headers.

use axum::{
    Json,
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An error answered in the reference format.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    summary: String,
    detail: String,
    kind: Option<&'static str>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with this status, summary and detail.
    pub(crate) fn new(status: StatusCode, summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { status, summary: summary.into(), detail: detail.into(), kind: None, headers: Vec::new() }
    }

    /// The summary and detail, in words.
    pub(crate) fn describe(&self) -> String {
        format!("{}: {}", self.summary, self.detail)
    }

    /// A 400 Bad Request.
    pub(crate) fn bad_request(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, summary, detail)
    }

    /// A 404 Not Found.
    pub(crate) fn not_found(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, summary, detail)
    }

    /// The 401 answered for a missing, invalid or expired access token.
    pub(crate) fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid token", "Token is invalid or expired")
    }

    /// Sets the optional `type` field.
    pub(crate) fn with_type(mut self, kind: &'static str) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Adds response headers.
    pub(crate) fn with_headers(mut self, headers: Vec<(HeaderName, HeaderValue)>) -> Self {
        self.headers.extend(headers);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"summary": self.summary, "detail": self.detail, "status_code": self.status.as_u16()});
        if let Some(kind) = self.kind {
            body["type"] = json!(kind);
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

/// The answer for any path the simulator does not know.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("Not found.", "Not found.")
}
