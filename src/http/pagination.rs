//! Cursor pagination: `limit` (default 25, at most 100) and an opaque `cursor`; lists answer
//! `{data, has_more, next_cursor}`. Cursors encode the last id seen, and ids are time-ordered, so a
//! page boundary never skips or repeats a row while new rows arrive.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 25;
pub const MAX_LIMIT: u32 = 100;

/// The query parameters of every list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl super::query::QueryParams for PageParams {}

/// A page size, 1 to [`MAX_LIMIT`]: it can only be built valid, so a bad `limit` is named by the
/// query parser together with every other bad parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u32::deserialize(deserializer) {
            Ok(n @ 1..=MAX_LIMIT) => Ok(Limit(n)),
            _ => Err(serde::de::Error::custom(format!("must be a whole number between 1 and {MAX_LIMIT}"))),
        }
    }
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The page size asked for, or the default.
pub fn limit(requested: Option<Limit>) -> u32 {
    requested.map_or(DEFAULT_LIMIT, |Limit(n)| n)
}

/// The id a cursor continues after, checked to be the kind of id this list holds (a cursor from
/// another list, or an edited one, is refused).
pub fn after<T>(cursor: Option<&str>, parse_id: impl Fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    let Some(cursor) = cursor else { return Ok(None) };
    let invalid = || ApiError::invalid_field("cursor", "is not a cursor this list issued; start again without it");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let id = text.strip_prefix("v1:").ok_or_else(invalid)?;
    parse_id(id).map(Some).ok_or_else(invalid)
}

/// Builds a page from `limit + 1` fetched rows.
pub fn page<T>(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> String) -> Page<T> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor =
        if has_more { rows.last().map(|last| URL_SAFE_NO_PAD.encode(format!("v1:{}", id_of(last)))) } else { None };
    Page { data: rows, has_more, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ApiKeyId;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let id = ApiKeyId::generate();
        let p = page(vec![id.clone(), ApiKeyId::generate()], 1, |i| i.to_string());
        assert!(p.has_more);
        let cursor = p.next_cursor.unwrap();
        assert_eq!(after(Some(&cursor), ApiKeyId::parse).unwrap(), Some(id));
        assert!(after(Some("garbage"), ApiKeyId::parse).is_err());
        let other = URL_SAFE_NO_PAD.encode(format!("v1:{}", crate::domain::ids::UserId::generate()));
        assert!(after(Some(&other), ApiKeyId::parse).is_err(), "a cursor of another list");
    }

    #[test]
    fn limits_are_bounded() {
        let parse = |text: &str| serde_json::from_str::<Limit>(text);
        assert_eq!(limit(None), 25);
        assert!(parse("0").is_err());
        assert!(parse("101").is_err());
        assert!(parse("-1").is_err());
        assert_eq!(limit(Some(parse("100").unwrap())), 100);
    }
}
