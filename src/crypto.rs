//! Encryption at rest for secrets we must be able to read back (provider credentials, provider
//! tokens): AES-256-GCM under a key ring, so keys can rotate.
//!
//! A sealed value is `<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`; the key id travels with the
//! ciphertext, so after a rotation old values still open with the old key while new ones are
//! sealed with the new active key. Each value is bound to a context (`tenant/purpose`) as
//! associated data: a ciphertext copied into another tenant's row does not open.

use std::{collections::HashMap, fmt};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

/// The deployment's key ring, loaded on first use: from `PAYYMO_ENCRYPTION_KEYS`, or the key
/// kept in the database (so the server can start, and report not ready, before migrations have
/// run). One per process, on `AppState`: provider credentials and tokens, and webhook signing
/// secrets, are sealed with it.
pub struct LazyKeyRing {
    configured: Option<SecretString>,
    db: PgPool,
    ring: tokio::sync::OnceCell<KeyRing>,
}

impl LazyKeyRing {
    pub fn new(configured: Option<SecretString>, db: PgPool) -> Self {
        Self { configured, db, ring: tokio::sync::OnceCell::new() }
    }

    /// The key ring, loading it if this is the first use; an error (the database unreachable)
    /// is tried again on the next call.
    pub async fn get(&self) -> anyhow::Result<&KeyRing> {
        self.ring.get_or_try_init(|| KeyRing::load(self.configured.as_ref(), &self.db)).await
    }
}

/// The keys that open sealed values, and the one that seals new ones.
#[derive(Clone)]
pub struct KeyRing {
    active: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing").field("active", &self.active).field("key_ids", &ids).finish()
    }
}

/// Why a key ring or a sealed value was refused.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("{0}")]
    BadKeyRing(String),
    #[error("the sealed value names key {0:?}, which is not in the key ring")]
    UnknownKey(String),
    #[error("the sealed value is malformed, was tampered with, or belongs to another context")]
    Unreadable,
}

impl KeyRing {
    /// Parses `id:base64key,id:base64key,…` (each key 32 bytes); the first key seals new values.
    pub fn parse(spec: &str) -> Result<Self, CryptoError> {
        let mut active = None;
        let mut keys = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, key) = entry
                .split_once(':')
                .ok_or_else(|| CryptoError::BadKeyRing(format!("entry {:?} is not id:base64key", redact(entry))))?;
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(CryptoError::BadKeyRing(format!("key id {id:?} must be letters, digits, - or _")));
            }
            let bytes = STANDARD
                .decode(key)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| CryptoError::BadKeyRing(format!("key {id:?} must be 32 bytes, base64-encoded")))?;
            if keys.insert(id.to_owned(), cipher(&bytes)?).is_some() {
                return Err(CryptoError::BadKeyRing(format!("key id {id:?} appears twice")));
            }
            active.get_or_insert_with(|| id.to_owned());
        }
        let active = active.ok_or_else(|| CryptoError::BadKeyRing("no keys given".to_owned()))?;
        Ok(Self { active, keys })
    }

    /// A ring holding one key.
    pub fn single(id: &str, key: &[u8; 32]) -> Result<Self, CryptoError> {
        Self::parse(&format!("{id}:{}", STANDARD.encode(key)))
    }

    /// `PAYYMO_ENCRYPTION_KEYS` when set; otherwise a key generated once and kept in the
    /// database, shared by every instance. That fallback protects nothing from someone who can
    /// read the database: it exists so development needs no set-up, and start-up warns about it.
    pub async fn load(configured: Option<&SecretString>, pool: &PgPool) -> anyhow::Result<Self> {
        if let Some(spec) = configured {
            return Ok(Self::parse(spec.expose_secret())?);
        }
        tracing::warn!(
            "PAYYMO_ENCRYPTION_KEYS is not set: provider credentials are encrypted with a key kept in the database itself; set it in production"
        );
        let generated: [u8; 32] = random();
        sqlx::query("insert into encryption_keys (kid, secret) values ('db1', $1) on conflict (kid) do nothing")
            .bind(&generated[..])
            .execute(pool)
            .await?;
        let (kid, secret): (String, Vec<u8>) =
            sqlx::query_as("select kid, secret from encryption_keys where kid = 'db1'").fetch_one(pool).await?;
        let key: [u8; 32] =
            secret.try_into().map_err(|_| CryptoError::BadKeyRing("stored key is not 32 bytes".to_owned()))?;
        Ok(Self::single(&kid, &key)?)
    }

    /// Encrypts `plaintext` for `context` with the active key.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, CryptoError> {
        let cipher = self.keys.get(&self.active).ok_or_else(|| CryptoError::UnknownKey(self.active.clone()))?;
        let nonce: [u8; 12] = random();
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .map_err(|_| CryptoError::Unreadable)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{}:{}", self.active, STANDARD.encode(bytes)))
    }

    /// Decrypts a value sealed for `context` by any key in the ring.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let (id, data) = sealed.split_once(':').ok_or(CryptoError::Unreadable)?;
        let cipher = self.keys.get(id).ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let bytes = STANDARD.decode(data).map_err(|_| CryptoError::Unreadable)?;
        if bytes.len() < 12 + 16 {
            return Err(CryptoError::Unreadable);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| CryptoError::Unreadable)
    }

    /// Whether `sealed` was sealed with an older key and should be re-sealed.
    pub fn is_stale(&self, sealed: &str) -> bool {
        sealed.split_once(':').is_none_or(|(id, _)| id != self.active)
    }
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm, CryptoError> {
    Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::BadKeyRing("keys must be 32 bytes".to_owned()))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is not recoverable; a zero nonce must never be used.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("the operating system's random source failed: {e}"));
    bytes
}

/// An entry with its key hidden, for error messages.
fn redact(entry: &str) -> String {
    entry.chars().take(4).chain("…".chars()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(spec: &str) -> KeyRing {
        KeyRing::parse(spec).unwrap_or_else(|e| panic!("{e}"))
    }

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn sealed_values_open_in_their_context_only() {
        let ring = ring(&format!("k1:{}", key(1)));
        let sealed = ring.seal("ten_a/gocardless", b"secret-key").unwrap_or_default();
        assert!(sealed.starts_with("k1:"));
        assert!(!sealed.contains("secret-key"));
        assert_eq!(ring.open("ten_a/gocardless", &sealed).ok(), Some(b"secret-key".to_vec()));
        assert!(matches!(ring.open("ten_b/gocardless", &sealed), Err(CryptoError::Unreadable)));
        let mut tampered = sealed.clone();
        tampered.replace_range(tampered.len() - 3..tampered.len() - 2, "A");
        if tampered != sealed {
            assert!(ring.open("ten_a/gocardless", &tampered).is_err());
        }
        assert_ne!(ring.seal("c", b"x").ok(), ring.seal("c", b"x").ok(), "fresh nonce every time");
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = ring(&format!("k1:{}", key(1)));
        let sealed = old.seal("ctx", b"value").unwrap_or_default();
        let rotated = ring(&format!("k2:{},k1:{}", key(2), key(1)));
        assert_eq!(rotated.open("ctx", &sealed).ok(), Some(b"value".to_vec()));
        assert!(rotated.is_stale(&sealed));
        let resealed = rotated.seal("ctx", b"value").unwrap_or_default();
        assert!(resealed.starts_with("k2:") && !rotated.is_stale(&resealed));
        let dropped = ring(&format!("k2:{}", key(2)));
        assert!(matches!(dropped.open("ctx", &sealed), Err(CryptoError::UnknownKey(id)) if id == "k1"));
    }

    #[test]
    fn bad_key_rings_are_refused_without_echoing_keys() {
        for bad in ["", "k1", "k1:short", &format!("k1:{},k1:{}", key(1), key(2)), &format!("bad id:{}", key(1))] {
            let error = KeyRing::parse(bad).map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!error.is_empty(), "{bad:?} accepted");
            assert!(!error.contains(&key(1)), "{error}");
        }
        assert!(format!("{:?}", ring(&format!("k1:{}", key(1)))).contains("k1"));
        assert!(!format!("{:?}", ring(&format!("k1:{}", key(1)))).contains(&key(1)));
    }
}
