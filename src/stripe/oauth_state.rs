//! The `state` of a Stripe Connect OAuth authorization: everything the callback needs to finish
//! it (the tenant, its mode, the scope asked for, where to send the browser, a nonce, an expiry)
//! in the value itself, signed with HMAC-SHA256, so any instance can check a callback and none
//! keeps anything in memory. The browser carries it to Stripe and back; Stripe echoes it as is.
//!
//! Form: `base64url(JSON) "." base64url(HMAC-SHA256("payymo/stripe-connect-state/v1\n" + JSON))`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a state is accepted, in seconds: long enough to sign in to Stripe and approve.
pub const LIFETIME_SECS: i64 = 600;

/// What a state says. Short field names keep the URL short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationState {
    /// The tenant the account is connected to.
    #[serde(rename = "t")]
    pub tenant: String,
    /// Whether the tenant is live (so its platform is the live one).
    #[serde(rename = "l")]
    pub live: bool,
    /// `read_only` or `read_write`, as asked for.
    #[serde(rename = "s")]
    pub scope: String,
    /// Where the browser goes afterwards, when the caller gave a `return_url`.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// The day the account's history is read from, when the caller chose one.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub backfill_from: Option<chrono::NaiveDate>,
    /// Tells two authorizations apart; a callback runs once per nonce.
    #[serde(rename = "n")]
    pub nonce: String,
    /// Unix seconds after which the state is refused.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// Why a state was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// Not a state Payymo signed with this key: altered, truncated, or made up.
    Forged,
    /// Authentic but past its expiry; what it says can still be trusted (where to go back to).
    Expired(AuthorizationState),
}

fn mac(key: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"payymo/stripe-connect-state/v1\n");
    mac.update(payload);
    mac
}

/// The signed text of `state`.
pub fn sign(key: &[u8], state: &AuthorizationState) -> String {
    let payload = serde_json::to_vec(state).unwrap_or_default();
    let tag = mac(key, &payload).finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(tag))
}

/// The state `text` says, if Payymo signed it with `key` and it has not expired at `now`.
pub fn verify(key: &[u8], text: &str, now: i64) -> Result<AuthorizationState, StateError> {
    let (payload, tag) = text.split_once('.').ok_or(StateError::Forged)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| StateError::Forged)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| StateError::Forged)?;
    mac(key, &payload).verify_slice(&tag).map_err(|_| StateError::Forged)?;
    let state: AuthorizationState = serde_json::from_slice(&payload).map_err(|_| StateError::Forged)?;
    if now >= state.expires_at {
        return Err(StateError::Expired(state));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AuthorizationState {
        AuthorizationState {
            tenant: "ten_0192f3c4d5e6478fa1b2c3d4e5f60718".into(),
            live: false,
            scope: "read_write".into(),
            return_url: Some("https://portal.example.com/stripe?x=1".into()),
            backfill_from: chrono::NaiveDate::from_ymd_opt(2026, 6, 1),
            nonce: "5b0f1c2d3e4f".into(),
            expires_at: 1_000 + LIFETIME_SECS,
        }
    }

    #[test]
    fn a_state_verifies_with_its_key_until_it_expires() {
        let key = [7u8; 32];
        let signed = sign(&key, &state());
        assert_eq!(verify(&key, &signed, 1_000), Ok(state()));
        assert_eq!(verify(&key, &signed, 1_000 + LIFETIME_SECS), Err(StateError::Expired(state())));
        assert_eq!(verify(&[8u8; 32], &signed, 1_000), Err(StateError::Forged), "another deployment's key");
    }

    #[test]
    fn an_altered_state_is_forged() {
        let key = [7u8; 32];
        let signed = sign(&key, &state());
        let (payload, tag) = signed.split_once('.').unwrap();
        let mut other = state();
        other.tenant = "ten_ffffffffffffffffffffffffffffffff".into();
        let swapped = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap()));
        for text in [
            swapped.as_str(),
            payload,
            &signed[..signed.len() - 2],
            "",
            ".",
            "not base64!.x",
            &format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
        ] {
            assert_eq!(verify(&key, text, 1_000), Err(StateError::Forged), "{text}");
        }
    }
}
