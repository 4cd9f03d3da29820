//! Stripe's error answers: `{"error": {type, code, param, message, doc_url, …}}` with Stripe's
//! status for each kind of failure.

use serde_json::{Value, json};

/// A failed request, as Stripe answers it (boxed: it travels in every `Result`).
#[derive(Debug, Clone)]
pub struct StripeError(Box<Failure>);

/// What a [`StripeError`] holds.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<String>,
    pub message: String,
    /// Extra fields of the error object (`decline_code`, `charge`, `payment_intent`).
    pub extra: serde_json::Map<String, Value>,
    /// `Stripe-Should-Retry`, when the answer says.
    pub should_retry: Option<bool>,
}

impl std::ops::Deref for StripeError {
    type Target = Failure;

    fn deref(&self) -> &Failure {
        &self.0
    }
}

impl std::ops::DerefMut for StripeError {
    fn deref_mut(&mut self) -> &mut Failure {
        &mut self.0
    }
}

impl StripeError {
    fn new(status: u16, kind: &'static str, code: Option<&'static str>, message: impl Into<String>) -> Self {
        Self(Box::new(Failure {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
            extra: serde_json::Map::new(),
            should_retry: None,
        }))
    }

    /// This error with another HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// This error about one parameter.
    fn about(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    /// A 400 about one parameter.
    pub fn invalid(param: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", Some(code), message).about(param)
    }

    /// A required parameter is missing.
    pub fn missing(param: &str) -> Self {
        Self::invalid(param, "parameter_missing", format!("Missing required param: {param}."))
    }

    /// A parameter that is not an accepted value.
    pub fn bad_value(param: &str, value: &str) -> Self {
        Self::invalid(param, "parameter_invalid_string", format!("Invalid value for {param}: {value:?}."))
    }

    /// An id that names nothing on this account.
    pub fn no_such(kind: &str, id: &str, param: &str) -> Self {
        Self::new(404, "invalid_request_error", Some("resource_missing"), format!("No such {kind}: '{id}'"))
            .about(param)
    }

    /// A request the object's state does not allow.
    pub fn unexpected_state(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", Some("payment_intent_unexpected_state"), message)
    }

    pub fn unknown_route(method: &str, path: &str) -> Self {
        Self::new(404, "invalid_request_error", None, format!("Unrecognized request URL ({method}: {path})."))
    }

    pub fn no_key() -> Self {
        Self::new(
            401,
            "invalid_request_error",
            None,
            "You did not provide an API key. You need to provide your API key in the Authorization header, \
             using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    }

    pub fn bad_key(key: &str) -> Self {
        let shown: String = key.chars().take(12).collect();
        Self::new(
            401,
            "invalid_request_error",
            Some("api_key_invalid"),
            format!("Invalid API Key provided: {shown}****"),
        )
    }

    pub fn expired_key() -> Self {
        Self::new(401, "invalid_request_error", Some("api_key_expired"), "Expired API Key provided.")
    }

    pub fn forbidden(permission: &str) -> Self {
        Self::new(
            403,
            "invalid_request_error",
            Some("secret_key_required"),
            format!(
                "The provided key does not have the required permissions for this endpoint: it needs {permission}."
            ),
        )
    }

    pub fn card(code: &'static str, decline_code: &str, message: &str) -> Self {
        let mut error = Self::new(402, "card_error", Some(code), message);
        error.extra.insert("decline_code".into(), json!(decline_code));
        error
    }

    pub fn idempotency(message: impl Into<String>) -> Self {
        Self::new(400, "idempotency_error", None, message)
    }

    pub fn in_flight(key: &str) -> Self {
        Self::new(
            409,
            "idempotency_error",
            None,
            format!(
                "There is currently another in-progress request using this Idempotent Key: {key}. Please try again later."
            ),
        )
    }

    /// An injected fault: a 429 (rate limit), or a server error.
    pub fn fault(status: u16, should_retry: Option<bool>) -> Self {
        let mut error = if status == 429 {
            Self::new(429, "invalid_request_error", Some("rate_limit"), "Request rate limit exceeded.")
        } else {
            Self::new(status, "api_error", None, "An unknown error occurred (injected by the simulator).")
        };
        error.should_retry = should_retry;
        error
    }

    /// The error's JSON body.
    pub fn body(&self) -> Value {
        let mut error = serde_json::Map::new();
        error.insert("type".into(), json!(self.kind));
        if let Some(code) = self.code {
            error.insert("code".into(), json!(code));
            error.insert(
                "doc_url".into(),
                json!(format!("https://docs.stripe.com/error-codes/{}", code.replace('_', "-"))),
            );
        }
        error.insert("message".into(), json!(self.message));
        error.insert("param".into(), json!(self.param));
        error.insert("request_log_url".into(), Value::Null);
        for (key, value) in &self.extra {
            error.insert(key.clone(), value.clone());
        }
        json!({ "error": error })
    }
}
