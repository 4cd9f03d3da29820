//! Signing secrets and the two signatures every delivery carries, both over the exact bytes sent:
//!
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>`,
//!   an HMAC-SHA256 of `"{id}.{timestamp}.{body}"` keyed with the base64-decoded part of the
//!   `whsec_…` secret, so the public `standardwebhooks` libraries verify it.
//! - `X-Webhook-Signature: t=<unix>,v1=<hex>`: an HMAC-SHA256 of `"{t}.{body}"` keyed with the
//!   whole secret string (`whsec_…` included), the scheme Stripe's libraries verify.
//!
//! While a rotated-out secret is still live, each header carries one signature per secret
//! (space-separated in `webhook-signature`, repeated `v1=` in `X-Webhook-Signature`), so a
//! receiver holding either secret verifies every delivery.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::secret::{Redacted, random_bytes};

const PREFIX: &str = "whsec_";
/// Random bytes in a new secret (256 bits; the format allows 24 to 64).
const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret, `whsec_` + base64 of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSecret {
    text: Redacted<String>,
    key: Redacted<Vec<u8>>,
}

impl SigningSecret {
    pub fn generate() -> Self {
        let key = random_bytes(SECRET_BYTES);
        Self { text: Redacted(format!("{PREFIX}{}", STANDARD.encode(&key))), key: Redacted(key) }
    }

    /// Reads a secret in the Standard Webhooks format.
    pub fn parse(text: &str) -> Option<Self> {
        let key = STANDARD.decode(text.strip_prefix(PREFIX)?).ok()?;
        (24..=64).contains(&key.len()).then(|| Self { text: Redacted(text.to_owned()), key: Redacted(key) })
    }

    /// The secret as shown to the tenant (once) and stored sealed.
    pub fn expose(&self) -> &str {
        &self.text.0
    }
}

/// The signature headers of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    /// `webhook-signature`: `v1,<base64>` per live secret, space-separated.
    pub standard: String,
    /// `X-Webhook-Signature`: `t=<unix>,v1=<hex>[,v1=<hex>]`.
    pub payymo: String,
}

/// Signs `body`, sent as message `id` at `timestamp` (Unix seconds), with every live secret.
pub fn sign(secrets: &[SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> Signatures {
    let mut standard = Vec::with_capacity(secrets.len());
    let mut payymo = format!("t={timestamp}");
    for secret in secrets {
        let mut mac = hmac(&secret.key.0);
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        standard.push(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())));

        let mut mac = hmac(secret.expose().as_bytes());
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        payymo.push_str(",v1=");
        payymo.push_str(&hex(&mac.finalize().into_bytes()));
    }
    Signatures { standard: standard.join(" "), payymo }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    #[allow(clippy::expect_used)]
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference library.
    #[test]
    fn standard_signature_matches_the_reference_vector() {
        let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let signed = sign(&[secret], "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, body);
        assert_eq!(signed.standard, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn payymo_signature_is_the_stripe_scheme_keyed_with_the_whole_secret() {
        let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signed = sign(std::slice::from_ref(&secret), "msg_1", 1_700_000_000, b"{}");
        let mut mac = hmac(b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        mac.update(b"1700000000.{}");
        assert_eq!(signed.payymo, format!("t=1700000000,v1={}", hex(&mac.finalize().into_bytes())));
    }

    #[test]
    fn two_live_secrets_give_two_signatures_in_each_header() {
        let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
        let both = sign(&[new.clone(), old.clone()], "evt_1", 1_700_000_000, b"body");
        let only_new = sign(&[new], "evt_1", 1_700_000_000, b"body");
        let only_old = sign(&[old], "evt_1", 1_700_000_000, b"body");
        assert_eq!(both.standard, format!("{} {}", only_new.standard, only_old.standard));
        assert_eq!(both.payymo, format!("{},{}", only_new.payymo, only_old.payymo.trim_start_matches("t=1700000000,")));
    }

    #[test]
    fn generated_secrets_round_trip_and_bad_ones_are_refused() {
        let secret = SigningSecret::generate();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(secret.expose()), Some(secret));
        assert_eq!(SigningSecret::parse("whsec_c2hvcnQ="), None, "too short");
        assert_eq!(SigningSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD"), None, "no prefix");
        assert_eq!(SigningSecret::parse("whsec_not base64!"), None);
    }
}
