//! `X-Request-Id`: taken from the request when it is a sane token, generated otherwise, stored in
//! the request's extensions for logs and error bodies, and echoed on every response.

use axum::http::HeaderName;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    /// A caller's id is kept when it is 1–128 characters of letters, digits and `-_.:/+=`.
    pub fn parse(value: &str) -> Option<Self> {
        let sane = (1..=128).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b));
        sane.then(|| Self(value.to_owned()))
    }

    pub fn generate() -> Self {
        Self(format!("req_{}", uuid::Uuid::now_v7().simple()))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestId>().cloned().unwrap_or_else(RequestId::generate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_ids_are_kept_only_when_sane() {
        assert_eq!(RequestId::parse("abc-123_x.y:z").unwrap().0, "abc-123_x.y:z");
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse(&"a".repeat(129)).is_none());
        assert!(RequestId::parse("has space").is_none());
        assert!(RequestId::parse("new\nline").is_none());
    }

    #[test]
    fn generated_ids_are_unique_and_prefixed() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert!(a.0.starts_with("req_") && a.0 != b.0);
        assert!(RequestId::parse(&a.0).is_some());
    }
}
