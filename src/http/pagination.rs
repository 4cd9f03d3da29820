//! Cursor pagination: `limit` (default 25, at most 100) and an opaque `cursor`; lists answer
//! `{data, has_more, next_cursor}`. Cursors encode the last id seen, and ids are time-ordered, so a
//! page boundary never skips or repeats a row while new rows arrive.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
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

/// Issues and reads the cursors of every list but transactions' (which bind theirs to the
/// filters too): `base64url("v1:" + position) "." base64url(HMAC-SHA256(position)[..16])`, under
/// the key every instance derives from the token signing secret. A cursor that was edited,
/// forged, or issued by another list or tenant's list of a different kind is refused.
pub struct Cursors {
    key: [u8; 32],
}

impl Cursors {
    pub async fn of(state: &crate::state::AppState) -> Result<Self, ApiError> {
        Ok(Self::new(*state.auth.jwt().await?.cursor_key()))
    }

    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"payymo/page-cursor/v1\n");
        mac.update(payload.as_bytes());
        mac
    }

    /// The position a cursor continues after, checked to be signed by us and to be the kind
    /// of position this list holds.
    pub fn after<T>(
        &self,
        cursor: Option<&str>,
        parse_position: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        let Some(cursor) = cursor else { return Ok(None) };
        let invalid = || ApiError::invalid_field("cursor", "is not a cursor this list issued; start again without it");
        let (payload, tag) = cursor.split_once('.').ok_or_else(invalid)?;
        let payload =
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        self.mac(&payload).verify_truncated_left(&tag).map_err(|_| invalid())?;
        let position = payload.strip_prefix("v1:").ok_or_else(invalid)?;
        parse_position(position).map(Some).ok_or_else(invalid)
    }

    /// Builds a page from `limit + 1` fetched rows, with a signed cursor after the last row kept.
    pub fn page<T>(&self, mut rows: Vec<T>, limit: u32, position_of: impl Fn(&T) -> String) -> Page<T> {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if has_more { rows.last().map(|last| self.cursor(&position_of(last))) } else { None };
        Page { data: rows, has_more, next_cursor }
    }

    /// Builds a page of a changes feed from `limit + 1` fetched rows. Its cursor is always set: after
    /// the last row kept, or `from` again when there is nothing new, so a poller always has
    /// where to continue from.
    pub fn feed<T>(&self, mut rows: Vec<T>, limit: u32, from: &str, position_of: impl Fn(&T) -> String) -> Page<T> {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let position = rows.last().map_or_else(|| from.to_owned(), &position_of);
        Page { data: rows, has_more, next_cursor: Some(self.cursor(&position)) }
    }

    fn cursor(&self, position: &str) -> String {
        let payload = format!("v1:{position}");
        let tag = self.mac(&payload).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(&tag[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{ApiKeyId, UserId};

    #[test]
    fn cursors_round_trip_and_refuse_tampering_and_forgery() {
        let cursors = Cursors::new([7; 32]);
        let id = ApiKeyId::generate();
        let p = cursors.page(vec![id.clone(), ApiKeyId::generate()], 1, |i| i.to_string());
        assert!(p.has_more);
        let cursor = p.next_cursor.unwrap();
        assert_eq!(cursors.after(Some(&cursor), ApiKeyId::parse).unwrap(), Some(id));
        assert!(cursors.after(Some("garbage"), ApiKeyId::parse).is_err());
        assert!(Cursors::new([8; 32]).after(Some(&cursor), ApiKeyId::parse).is_err(), "another key");
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(format!("v1:{}", ApiKeyId::generate())),
            &cursor[cursor.find('.').unwrap() + 1..]
        );
        assert!(cursors.after(Some(&forged), ApiKeyId::parse).is_err(), "a forged position");
        let unsigned = URL_SAFE_NO_PAD.encode(format!("v1:{}", ApiKeyId::generate()));
        assert!(cursors.after(Some(&unsigned), ApiKeyId::parse).is_err(), "an unsigned cursor, as before");
        let other = cursors.page(vec![UserId::generate(), UserId::generate()], 1, |i| i.to_string());
        assert!(cursors.after(other.next_cursor.as_deref(), ApiKeyId::parse).is_err(), "a cursor of another list");
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
