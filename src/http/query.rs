//! `ApiQuery<T>`: query parameters, where every bad parameter is named at once in one 422: an
//! unknown one, a value of the wrong type or out of range, one breaking the text rule
//! ([`crate::domain::text`]) or not UTF-8, and what the type's own checks find in the others
//! (axum's `Query` answers in plain text, for the first problem only, without saying which).

use axum::{extract::FromRequestParts, http::request::Parts};
use percent_encoding::percent_decode;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};
use crate::domain::text;

#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

/// A struct of query parameters. `problems` reports what parsing alone cannot see (a range whose
/// end is before its start, a value that must be one of a list); the extractor refuses a value
/// that has any, together with every parameter that did not parse, so a handler only ever sees
/// parameters that passed its type's checks.
pub trait QueryParams: DeserializeOwned {
    fn problems(&self) -> Vec<FieldError> {
        Vec::new()
    }
}

impl<T: QueryParams, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

pub fn parse<T: QueryParams>(query: &str) -> Result<T, ApiError> {
    let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let text_problems: Vec<Option<FieldError>> = pairs.iter().map(|pair| text_problem(pair)).collect();
    if text_problems.iter().all(Option::is_none)
        && let Ok(value) = deserialize::<T>(query)
    {
        let problems = value.problems();
        return if problems.is_empty() { Ok(value) } else { Err(ApiError::validation(problems)) };
    }
    // Something is wrong: find every bad parameter, each one alone, not only the first.
    let mut errors = Vec::new();
    let mut good = Vec::new();
    for (pair, problem) in pairs.iter().zip(text_problems) {
        match problem.map_or_else(|| deserialize::<T>(pair).err(), Some) {
            Some(error) if error.message != "is required" => errors.push(error),
            _ => good.push(*pair),
        }
    }
    // Then what the type's own checks say of the parameters that were fine.
    match deserialize::<T>(&good.join("&")) {
        Ok(value) => {
            let problems: Vec<FieldError> =
                value.problems().into_iter().filter(|p| !errors.iter().any(|e| e.field == p.field)).collect();
            errors.extend(problems);
        }
        Err(error) if errors.is_empty() || error.message == "is required" => errors.push(error),
        Err(_) => {}
    }
    if errors.is_empty() {
        errors.push(FieldError { field: "query".into(), message: "is not a valid query string".into() });
    }
    Err(ApiError::validation(errors))
}

/// Deserializes `query`, naming the parameter of the first problem.
fn deserialize<T: DeserializeOwned>(query: &str) -> Result<T, FieldError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        if let Some(name) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
            FieldError { field: name.to_owned(), message: "is not a parameter of this endpoint".into() }
        } else if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            FieldError { field: name.to_owned(), message: "is required".into() }
        } else if path == "." {
            FieldError { field: "query".into(), message }
        } else {
            FieldError { field: path, message }
        }
    })
}

/// A `+`-for-space, percent-encoded component as UTF-8, or `None` when it is not UTF-8.
fn decode(component: &str) -> Option<String> {
    let spaced = component.replace('+', " ");
    percent_decode(spaced.as_bytes()).decode_utf8().ok().map(|c| c.into_owned())
}

/// What is wrong with the text of an `application/x-www-form-urlencoded` string's fields, each
/// by name: for forms, which are parsed elsewhere.
pub fn form_text_problems(form: &str) -> Vec<FieldError> {
    form.split('&').filter(|p| !p.is_empty()).filter_map(text_problem).collect()
}

/// What is wrong with one `name=value` pair's text, if anything.
fn text_problem(pair: &str) -> Option<FieldError> {
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    let Some(field) = decode(name) else {
        return Some(FieldError { field: "query".into(), message: "a parameter name is not valid UTF-8".into() });
    };
    let problem = match decode(value) {
        None => "is not valid UTF-8".to_owned(),
        Some(value) => match text::check(&field).and(text::check(&value)) {
            Ok(()) => return None,
            Err(unacceptable) => unacceptable.message(),
        },
    };
    let field = if text::check(&field).is_ok() { field } else { "query".into() };
    Some(FieldError { field, message: problem })
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
        from: Option<u32>,
        to: Option<u32>,
    }

    impl QueryParams for Params {
        fn problems(&self) -> Vec<FieldError> {
            match (self.from, self.to) {
                (Some(from), Some(to)) if to < from => {
                    vec![FieldError { field: "to".into(), message: "is before from".into() }]
                }
                _ => Vec::new(),
            }
        }
    }

    fn fields(query: &str) -> Vec<String> {
        match parse::<Params>(query).unwrap_err() {
            ApiError::Problem { errors, .. } => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_and_unknown_parameters_name_the_parameter() {
        assert_eq!(fields("limit=abc"), ["limit"]);
        assert_eq!(fields("limit=-1"), ["limit"]);
        assert_eq!(fields("colour=red"), ["colour"]);
        assert!(parse::<Params>("limit=5&outcome=success").is_ok());
        assert!(parse::<Params>("").is_ok());
    }

    #[test]
    fn every_bad_parameter_is_named_at_once() {
        assert_eq!(
            fields("bogus=1&also_bogus=2&limit=x&outcome=ok&from=5&to=1"),
            ["bogus", "also_bogus", "limit", "to"]
        );
        assert_eq!(fields("from=5&to=1"), ["to"]);
    }

    #[test]
    fn nul_over_long_and_non_utf8_values_are_refused_by_name() {
        assert_eq!(fields("outcome=a%00b&limit=x"), ["outcome", "limit"]);
        assert_eq!(fields(&format!("outcome={}", "x".repeat(text::MAX_CHARS + 1))), ["outcome"]);
        assert_eq!(fields("outcome=%ED%A0%80"), ["outcome"], "a lone surrogate, CESU-8 encoded");
        assert_eq!(fields("outcome=%FF"), ["outcome"]);
        assert!(parse::<Params>(&format!("outcome={}", "x".repeat(text::MAX_CHARS))).is_ok());
        assert!(parse::<Params>("outcome=caf%C3%A9+au+lait").is_ok());
    }
}
