//! `ApiQuery<T>`: query parameters, where a bad value or an unknown parameter is a 422 naming the
//! parameter (axum's `Query` answers in plain text without saying which).

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};

#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        let field = if let Some(name) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
            return ApiError::validation(vec![FieldError {
                field: name.to_owned(),
                message: "is not a parameter of this endpoint".into(),
            }]);
        } else if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            return ApiError::validation(vec![FieldError { field: name.to_owned(), message: "is required".into() }]);
        } else if path == "." {
            "query".to_owned()
        } else {
            path
        };
        ApiError::validation(vec![FieldError { field, message }])
    })
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        limit: Option<u32>,
        outcome: Option<String>,
    }

    fn field(query: &str) -> String {
        match parse::<Params>(query).unwrap_err() {
            ApiError::Problem { errors, .. } => errors[0].field.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_and_unknown_parameters_name_the_parameter() {
        assert_eq!(field("limit=abc"), "limit");
        assert_eq!(field("limit=-1"), "limit");
        assert_eq!(field("colour=red"), "colour");
        assert!(parse::<Params>("limit=5&outcome=success").is_ok());
        assert!(parse::<Params>("").is_ok());
    }
}
