//! `ApiJson<T>`: axum's `Json`, but every rejection is a problem: 415 for a wrong content type,
//! 400 saying the line and column of a syntax error, 422 naming the field for a wrong or missing
//! value, 413 for a body over the limit.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::error::Category;

use super::error::{ApiError, ErrorCode, FieldError};
use crate::domain::text;

#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(_)
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than this server accepts")
            }
            other => ApiError::new(ErrorCode::InvalidRequest, format!("the request body could not be read: {other}")),
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be left out entirely (no body, or an empty one): then `T::default()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let declared_empty = request.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v == "0");
        if declared_empty
            || (!request.headers().contains_key(header::CONTENT_TYPE)
                && !request.headers().contains_key(header::TRANSFER_ENCODING))
        {
            return Ok(OptionalJson(T::default()));
        }
        ApiJson::<T>::from_request(request, state).await.map(|ApiJson(value)| OptionalJson(value))
    }
}

/// Room reserved for a response body before serializing: most answers fit, and a list page
/// grows from it in a few doublings.
const BODY_CAPACITY: usize = 4096;

impl<T: Serialize> IntoResponse for ApiJson<T> {
    /// serde_json writes a value in many small pieces. Into a `Vec` reserved up front each is a
    /// plain copy; axum's `Json` writes them through a `BytesMut` writer that starts at 128 bytes
    /// and regrows, which costs a list page noticeably (see bench/README.md).
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(BODY_CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
            Err(error) => {
                ApiError::Internal(anyhow::Error::new(error).context("serializing a response")).into_response()
            }
        }
    }
}

/// Parses a JSON body, telling syntax errors (400, with position) from data errors (422, per field).
/// Strings that break the text rule ([`text`]: a NUL, too long) are refused first, all at once,
/// each under its path, whatever the type wants.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if text::json_may_break(bytes)
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        let mut errors = Vec::new();
        text_problems(&value, "", &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            Category::Data => ApiError::validation(vec![data_error(&path, &inner)]),
            Category::Syntax | Category::Eof | Category::Io => malformed(&inner),
        }
    })?;
    deserializer.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

/// Every string in `value` (object keys included) that breaks the text rule, by path.
fn text_problems(value: &serde_json::Value, path: &str, errors: &mut Vec<FieldError>) {
    use serde_json::Value;
    let here = || if path.is_empty() { "body".to_owned() } else { path.to_owned() };
    match value {
        Value::String(text) => {
            if let Err(unacceptable) = text::check(text) {
                errors.push(FieldError { field: here(), message: unacceptable.message() });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                text_problems(item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match text::check(key) {
                    Ok(()) => text_problems(item, &child, errors),
                    Err(unacceptable) => {
                        let shown: String = key.replace('\0', "\\u0000").chars().take(40).collect();
                        let field = if path.is_empty() { shown } else { format!("{path}.{shown}") };
                        errors.push(FieldError { field, message: format!("as a key, {}", unacceptable.message()) });
                    }
                }
            }
        }
        _ => {}
    }
}

fn malformed(error: &serde_json::Error) -> ApiError {
    let message = strip_position(&error.to_string());
    ApiError::new(
        ErrorCode::MalformedJson,
        format!("the body is not valid JSON: {message} at line {} column {}", error.line(), error.column()),
    )
}

fn data_error(path: &str, error: &serde_json::Error) -> FieldError {
    let message = strip_position(&error.to_string());
    let parent = if path == "." { String::new() } else { format!("{path}.") };
    // serde reports a missing field at its parent's path; name the field itself.
    if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        return FieldError { field: format!("{parent}{name}"), message: "is required".to_owned() };
    }
    let field = if path == "." { "body".to_owned() } else { path.to_owned() };
    FieldError { field, message }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// For `PATCH` bodies, with `#[serde(default, deserialize_with = "crate::http::json::present")]` on
/// an `Option<Option<T>>` field: `None` when the field is absent, `Some(None)` for an explicit
/// `null`, `Some(Some(v))` for a value.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

pub use crate::domain::metadata::{MAX_KEYS as MAX_METADATA_KEYS, merge as merge_metadata};

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Payment {
        amount: i64,
        currency: String,
        lines: Vec<Line>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Line {
        amount: i64,
    }

    fn problem(body: &str) -> (ErrorCode, String, Vec<FieldError>) {
        match parse::<Payment>(body.as_bytes()).unwrap_err() {
            ApiError::Problem { code, detail, errors, .. } => (code, detail, errors),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_say_where() {
        let (code, detail, _) = problem("{\n  \"amount\": 12,,\n}");
        assert_eq!(code, ErrorCode::MalformedJson);
        assert!(detail.ends_with("at line 2 column 16"), "{detail}");
    }

    #[test]
    fn trailing_garbage_is_malformed() {
        let (code, _, _) = problem(r#"{"amount": 1, "currency": "EUR", "lines": []} x"#);
        assert_eq!(code, ErrorCode::MalformedJson);
    }

    #[test]
    fn data_errors_name_the_field() {
        let (code, _, errors) =
            problem(r#"{"amount": 1, "currency": "EUR", "lines": [{"amount": 1}, {"amount": "x"}]}"#);
        assert_eq!(code, ErrorCode::ValidationFailed);
        assert_eq!(errors[0].field, "lines[1].amount");
        assert!(errors[0].message.starts_with("invalid type: string"), "{}", errors[0].message);
    }

    #[test]
    fn missing_fields_are_named() {
        let (_, _, errors) = problem(r#"{"amount": 1, "lines": []}"#);
        assert_eq!(errors, vec![FieldError { field: "currency".into(), message: "is required".into() }]);
        let (_, _, errors) = problem(r#"{"amount": 1, "currency": "EUR", "lines": [{}]}"#);
        assert_eq!(errors[0].field, "lines[0].amount");
    }

    #[test]
    fn nul_and_over_long_strings_are_named_wherever_they_are() {
        let long = "x".repeat(text::MAX_CHARS + 1);
        let body = format!(
            r#"{{"amount": "not even a number", "currency": "EU\u0000R", "lines": [{{"amount": 1, "note": "{long}"}}], "m": {{"k\u0000": "v"}}}}"#
        );
        let (code, _, errors) = problem(&body);
        assert_eq!(code, ErrorCode::ValidationFailed);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["currency", "lines[0].note", "m.k\\u0000"]);
        assert!(errors[0].message.contains("NUL"), "{}", errors[0].message);
        let (code, _, _) = problem(r#"{"amount": 1, "currency": "\ud800", "lines": []}"#);
        assert_eq!(code, ErrorCode::MalformedJson, "a lone surrogate is not JSON text");
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "application/merge-patch+json".parse().unwrap());
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
    }
}
