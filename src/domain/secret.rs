//! Secrets we hand out once (API keys, client secrets, refresh tokens): random, base62, with a
//! readable prefix, and stored only as a SHA-256 digest.

use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base62 characters (5.95 bits each).
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        // Bytes >= 248 (= 4 * 62) are skipped so every character is equally likely.
        for byte in random_bytes(64) {
            if byte < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    out
}

/// `count` random bytes.
pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes
}

pub fn sha256(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// A secret in a response, shown this once (a new API key, client secret or signing secret).
///
/// Serializing one also notes its value with [`revealed_while`], if a caller is collecting: so
/// whatever stores a response for later (the idempotency store) can strip every secret it holds
/// without each handler having to say which fields those are. In the OpenAPI document its
/// fields refer to the `SecretShownOnce` schema, which is how tests find every operation that
/// returns one.
#[derive(Clone, PartialEq, Eq)]
pub struct ShownOnce(pub String);

tokio::task_local! {
    static REVEALED: std::cell::RefCell<Vec<String>>;
}

/// Runs `work`, returning what it returned and every [`ShownOnce`] serialized while it ran.
pub async fn revealed_while<F: std::future::Future>(work: F) -> (F::Output, Vec<String>) {
    REVEALED
        .scope(std::cell::RefCell::new(Vec::new()), async move {
            let output = work.await;
            (output, REVEALED.with(|revealed| revealed.take()))
        })
        .await
}

impl serde::Serialize for ShownOnce {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let _ = REVEALED.try_with(|revealed| revealed.borrow_mut().push(self.0.clone()));
        serializer.serialize_str(&self.0)
    }
}

impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[shown once]")
    }
}

impl utoipa::PartialSchema for ShownOnce {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A secret, shown in this response only: store it now. Never stored by Payymo in the clear, and `null` when an `Idempotency-Key` replays the response."))
            .into()
    }
}

impl utoipa::ToSchema for ShownOnce {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("SecretShownOnce")
    }
}

/// A plain wrapper that keeps a secret out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted<T>(pub T);

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_has_the_length_and_alphabet_asked() {
        let s = random_base62(40);
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, random_base62(40));
    }

    #[tokio::test]
    async fn shown_once_secrets_are_collected_while_serialized_and_hidden_from_debug() {
        let secret = ShownOnce("sk_test_abc".into());
        assert_eq!(format!("{secret:?}"), "[shown once]");
        let (json, revealed) = revealed_while(async { serde_json::to_string(&[&secret]).unwrap() }).await;
        assert_eq!(json, r#"["sk_test_abc"]"#);
        assert_eq!(revealed, ["sk_test_abc"]);
        assert_eq!(serde_json::to_string(&secret).unwrap(), r#""sk_test_abc""#, "nobody collecting");
    }

    #[test]
    fn redacted_hides_its_value() {
        assert_eq!(format!("{:?}", Redacted("hunter2")), "[redacted]");
    }
}
