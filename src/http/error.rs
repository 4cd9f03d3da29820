//! One error type for the whole API, rendered as `application/problem+json` (RFC 9457).
//!
//! Handlers return [`ApiError`]; its `IntoResponse` puts a [`Problem`] in the response's
//! extensions, and the problem middleware (`http::problem`) writes the body with the request id.
//! Responses that axum or tower produce themselves (unknown route, wrong method, body too large)
//! are turned into the same shape there, so no failure path answers in another format.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The stable, machine-readable error codes. Clients branch on these, never on `title` or
/// `detail`; `docs/errors.md` describes each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed (query string, headers).
    InvalidRequest,
    /// 400: the body is not valid JSON; `detail` says where.
    MalformedJson,
    /// 401: the credential is missing, malformed, unknown, expired or revoked.
    Unauthenticated,
    /// 401: wrong email, password or tenant at sign-in.
    InvalidCredentials,
    /// 403: the credential is valid but lacks the scope named in `required_scope`.
    InsufficientScope,
    /// 403: the API key may not be used from this IP address.
    IpNotAllowed,
    /// 403: the signed-in user is not a member of the tenant asked for.
    NotAMember,
    /// 404: no such route or resource (another tenant's resource answers this too).
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 413: the body is larger than the limit.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 409: the request conflicts with the current state (a duplicate, the last owner).
    Conflict,
    /// 409: a request with this `Idempotency-Key` is still being processed.
    IdempotencyKeyInUse,
    /// 409: the bank connection's consent has expired; the account holder must re-authorise.
    BankConnectionExpired,
    /// 409: the bank connection is not linked (still pending, rejected, suspended or deleted).
    BankConnectionNotLinked,
    /// 409: no GoCardless credentials are configured for this tenant or deployment.
    ProviderNotConfigured,
    /// 429: the bank's daily call budget for this account is spent; `Retry-After` says until when.
    SyncBudgetExhausted,
    /// 502: the bank data provider refused or garbled the request; `detail` says what it said.
    ProviderError,
    /// 503: the bank data provider is unavailable right now; retry later.
    ProviderUnavailable,
    /// 422: the JSON is well-formed but a field is missing or invalid; see `errors`.
    ValidationFailed,
    /// 422: this `Idempotency-Key` was used with different parameters.
    IdempotencyKeyReused,
    /// 402: the card was declined; `detail` says why in the card network's words.
    PaymentDeclined,
    /// 429: too many requests for this credential; wait `Retry-After` seconds.
    RateLimited,
    /// 500: something failed on our side; the cause is logged under the request id.
    InternalError,
    /// 503: the database cannot be reached right now; retry with backoff.
    DatabaseUnavailable,
    /// 503: the database schema is older than this build (migrations pending).
    MigrationsPending,
    /// 503: the request took longer than the server's request timeout.
    RequestTimeout,
    /// 503: the instance is shutting down; retry against another one.
    ShuttingDown,
}

impl ErrorCode {
    /// Every code, for the catalogue test and documentation.
    pub const ALL: &'static [ErrorCode] = &[
        Self::InvalidRequest,
        Self::MalformedJson,
        Self::Unauthenticated,
        Self::InvalidCredentials,
        Self::InsufficientScope,
        Self::IpNotAllowed,
        Self::NotAMember,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::Conflict,
        Self::IdempotencyKeyInUse,
        Self::BankConnectionExpired,
        Self::BankConnectionNotLinked,
        Self::ProviderNotConfigured,
        Self::SyncBudgetExhausted,
        Self::ProviderError,
        Self::ProviderUnavailable,
        Self::ValidationFailed,
        Self::IdempotencyKeyReused,
        Self::PaymentDeclined,
        Self::RateLimited,
        Self::InternalError,
        Self::DatabaseUnavailable,
        Self::MigrationsPending,
        Self::RequestTimeout,
        Self::ShuttingDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::MalformedJson => "malformed_json",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InsufficientScope => "insufficient_scope",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::NotAMember => "not_a_member",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Conflict => "conflict",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
            Self::BankConnectionExpired => "bank_connection_expired",
            Self::BankConnectionNotLinked => "bank_connection_not_linked",
            Self::ProviderNotConfigured => "provider_not_configured",
            Self::SyncBudgetExhausted => "sync_budget_exhausted",
            Self::ProviderError => "provider_error",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ValidationFailed => "validation_failed",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::PaymentDeclined => "payment_declined",
            Self::RateLimited => "rate_limited",
            Self::InternalError => "internal_error",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::MigrationsPending => "migrations_pending",
            Self::RequestTimeout => "request_timeout",
            Self::ShuttingDown => "shutting_down",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest | Self::MalformedJson => StatusCode::BAD_REQUEST,
            Self::Unauthenticated | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope | Self::IpNotAllowed | Self::NotAMember => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict
            | Self::IdempotencyKeyInUse
            | Self::BankConnectionExpired
            | Self::BankConnectionNotLinked
            | Self::ProviderNotConfigured => StatusCode::CONFLICT,
            Self::SyncBudgetExhausted => StatusCode::TOO_MANY_REQUESTS,
            Self::ProviderError => StatusCode::BAD_GATEWAY,
            Self::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::ValidationFailed | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::PaymentDeclined => StatusCode::PAYMENT_REQUIRED,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::DatabaseUnavailable | Self::MigrationsPending | Self::RequestTimeout | Self::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "Invalid request",
            Self::MalformedJson => "Malformed JSON",
            Self::Unauthenticated => "Unauthenticated",
            Self::InvalidCredentials => "Invalid credentials",
            Self::InsufficientScope => "Insufficient scope",
            Self::IpNotAllowed => "IP address not allowed",
            Self::NotAMember => "Not a member",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::Conflict => "Conflict",
            Self::IdempotencyKeyInUse => "Idempotency key in use",
            Self::BankConnectionExpired => "Bank connection expired",
            Self::BankConnectionNotLinked => "Bank connection not linked",
            Self::ProviderNotConfigured => "Provider not configured",
            Self::SyncBudgetExhausted => "Sync budget exhausted",
            Self::ProviderError => "Provider error",
            Self::ProviderUnavailable => "Provider unavailable",
            Self::ValidationFailed => "Validation failed",
            Self::IdempotencyKeyReused => "Idempotency key reused",
            Self::PaymentDeclined => "Payment declined",
            Self::RateLimited => "Rate limited",
            Self::InternalError => "Internal error",
            Self::DatabaseUnavailable => "Database unavailable",
            Self::MigrationsPending => "Migrations pending",
            Self::RequestTimeout => "Request timeout",
            Self::ShuttingDown => "Shutting down",
        }
    }

    /// Whether the same request may succeed if simply sent again later.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::DatabaseUnavailable
                | Self::MigrationsPending
                | Self::RequestTimeout
                | Self::ShuttingDown
                | Self::RateLimited
                | Self::IdempotencyKeyInUse
                | Self::SyncBudgetExhausted
                | Self::ProviderUnavailable
        )
    }
}

pub use crate::domain::validation::FieldError;

impl From<crate::tenancy::TenancyError> for ApiError {
    fn from(error: crate::tenancy::TenancyError) -> Self {
        use crate::tenancy::TenancyError;
        match error {
            TenancyError::Invalid(errors) => ApiError::validation(errors),
            TenancyError::Conflict(detail) => ApiError::new(ErrorCode::Conflict, detail),
            TenancyError::Database(error) => error.into(),
            TenancyError::Internal(error) => ApiError::Internal(error),
        }
    }
}

impl From<crate::invoices::InvoiceError> for ApiError {
    fn from(error: crate::invoices::InvoiceError) -> Self {
        use crate::invoices::InvoiceError;
        match error {
            InvoiceError::Invalid(errors) => ApiError::validation(errors),
            InvoiceError::Conflict(detail) => ApiError::new(ErrorCode::Conflict, detail),
            InvoiceError::Database(error) => error.into(),
        }
    }
}

impl From<crate::reconciliation::ReconciliationError> for ApiError {
    fn from(error: crate::reconciliation::ReconciliationError) -> Self {
        use crate::reconciliation::ReconciliationError;
        match error {
            ReconciliationError::Invalid(errors) => ApiError::validation(errors),
            ReconciliationError::NotFound(what) => ApiError::new(ErrorCode::NotFound, format!("no such {what}")),
            ReconciliationError::Conflict(detail) => ApiError::new(ErrorCode::Conflict, detail),
            ReconciliationError::Database(error) => error.into(),
        }
    }
}

/// The error body of every failed request (RFC 9457 problem details).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "/docs/errors#validation_failed",
    "title": "Validation failed",
    "status": 422,
    "detail": "1 field is invalid",
    "code": "validation_failed",
    "request_id": "req_0192f3c4d5e6478fa1b2c3d4e5f60718",
    "retryable": false,
    "errors": [{"field": "amount", "message": "must be a positive integer"}]
}))]
pub struct Problem {
    /// A URI reference identifying the problem type; resolves to the code's entry in the error
    /// catalogue served at `/docs/errors`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    /// What went wrong with this request, for people.
    pub detail: String,
    pub code: ErrorCode,
    /// The `X-Request-Id` of this request; quote it when asking for support.
    pub request_id: String,
    /// True when sending the same request again later may succeed.
    pub retryable: bool,
    /// Per-field errors, for `validation_failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The scope the credential lacks, for `insufficient_scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_scope: Option<String>,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("/docs/errors#{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status().as_u16(),
            detail: detail.into(),
            code,
            request_id: String::new(),
            retryable: code.retryable(),
            errors: Vec::new(),
            required_scope: None,
        }
    }

    /// The full response: status, `application/problem+json`, and the body.
    pub fn into_response_with_id(mut self, request_id: &str) -> Response {
        self.request_id = request_id.to_owned();
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

/// The error every handler and extractor returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Problem { code: ErrorCode, detail: String, errors: Vec<FieldError>, extra: Box<Extra> },
    /// Anything unexpected: logged once with its cause, answered as a bare 500.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

/// What some problems carry besides their body: response headers, the missing scope.
#[derive(Debug, Default)]
pub struct Extra {
    pub headers: axum::http::HeaderMap,
    pub required_scope: Option<String>,
    /// On a 404 for a named id: checked by the audit middleware for a cross-tenant attempt.
    pub probe: Option<super::audit_trail::CrossTenantProbe>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Problem { code, detail: detail.into(), errors: Vec::new(), extra: Box::default() }
    }

    /// A 401 with the `WWW-Authenticate` challenge RFC 6750 asks for.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        // RFC 6750 §3: error_description is printable ASCII without quotes or backslashes.
        let description: String = detail
            .chars()
            .map(|c| if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' { c } else { '?' })
            .collect();
        let challenge =
            format!("Bearer realm=\"payymo\", error=\"invalid_token\", error_description=\"{}\"", description);
        Self::new(ErrorCode::Unauthenticated, detail).with_header(header::WWW_AUTHENTICATE, &challenge)
    }

    /// The 404 for `id`, which this tenant does not have. If another tenant owns it, the audit
    /// middleware records the attempt as a security incident; the answer is the same either way.
    pub fn not_found_in(probe: super::audit_trail::Probe, id: impl ToString) -> Self {
        Self::not_found().probing(probe, id)
    }

    /// This 404, marked as naming `id` of `probe`'s kind (see [`ApiError::not_found_in`]).
    pub fn probing(mut self, probe: super::audit_trail::Probe, id: impl ToString) -> Self {
        if let Self::Problem { extra, .. } = &mut self {
            extra.probe = Some(super::audit_trail::CrossTenantProbe { probe, id: id.to_string() });
        }
        self
    }

    /// A 403 naming the scope the credential lacks.
    pub fn insufficient_scope(scope: impl std::fmt::Display) -> Self {
        let scope = scope.to_string();
        let mut error = Self::new(ErrorCode::InsufficientScope, format!("this credential lacks the scope {scope}"));
        if let Self::Problem { extra, .. } = &mut error {
            extra.required_scope = Some(scope);
        }
        error
    }

    /// Adds a response header (ignored if the value is not a valid header value).
    pub fn with_header(mut self, name: axum::http::HeaderName, value: &str) -> Self {
        if let (Self::Problem { extra, .. }, Ok(value)) = (&mut self, HeaderValue::from_str(value)) {
            extra.headers.insert(name, value);
        }
        self
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => format!("{}: {}", errors[0].field, errors[0].message),
            n => format!("{n} fields are invalid"),
        };
        Self::Problem { code: ErrorCode::ValidationFailed, detail, errors, extra: Box::default() }
    }

    /// A validation error for one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError { field: field.into(), message: message.into() }])
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such resource")
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Problem { code, .. } => *code,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    fn into_problem(self) -> (Problem, axum::http::HeaderMap) {
        match self {
            Self::Problem { code, detail, errors, extra } => {
                let Extra { headers, required_scope, .. } = *extra;
                (Problem { errors, required_scope, ..Problem::new(code, detail) }, headers)
            }
            Self::Internal(cause) => {
                // The one place an internal error is logged: inside the request's span, so the
                // log line carries the request id that the client sees in the body.
                tracing::error!(error = ?cause, "internal error");
                let problem = Problem::new(
                    ErrorCode::InternalError,
                    "the request could not be completed because of an error on our side; quote the request_id when contacting support",
                );
                (problem, axum::http::HeaderMap::new())
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                tracing::warn!(%error, "database unavailable");
                Self::new(ErrorCode::DatabaseUnavailable, "the database is unavailable right now; retry with backoff")
            }
            _ => Self::Internal(error.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        let probe = match &mut self {
            Self::Problem { extra, .. } => extra.probe.take(),
            Self::Internal(_) => None,
        };
        let (problem, headers) = self.into_problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, headers).into_response();
        response.extensions_mut().insert(problem);
        if let Some(probe) = probe {
            response.extensions_mut().insert(probe);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name_and_an_error_status() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let response = ApiError::Internal(anyhow::anyhow!("password=hunter2 in connection string")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let problem = response.extensions().get::<Problem>().unwrap();
        assert!(!problem.detail.contains("hunter2"));
        let rendered = problem.clone().into_response_with_id("req_1");
        assert_eq!(rendered.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn validation_errors_list_fields() {
        let err = ApiError::validation(vec![FieldError { field: "amount".into(), message: "must be positive".into() }]);
        let (problem, _) = err.into_problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.detail, "amount: must be positive");
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["errors"][0]["field"], "amount");
        assert_eq!(json["type"], "/docs/errors#validation_failed");
    }

    #[test]
    fn lost_connections_are_retryable_503s() {
        let err = ApiError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(err.code(), ErrorCode::DatabaseUnavailable);
        assert!(err.code().retryable());
        assert_eq!(err.code().status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
