//! API key secrets: `sk_live_…` or `sk_test_…` followed by 40 base62 characters (~238 bits).
//! The prefix tells live from test at a glance; only a SHA-256 digest is stored.

use super::Environment;
use crate::domain::secret::{random_base62, sha256};

const RANDOM_LEN: usize = 40;
/// How many random characters the displayed, non-secret prefix keeps.
const SHOWN_LEN: usize = 6;

/// A freshly generated key: the secret (shown once), its digest and its displayable prefix.
pub struct NewKey {
    pub secret: String,
    pub hash: Vec<u8>,
    pub prefix: String,
}

pub fn generate(environment: Environment) -> NewKey {
    let secret = format!("sk_{}_{}", environment.as_str(), random_base62(RANDOM_LEN));
    NewKey { hash: sha256(&secret), prefix: displayed_prefix(&secret), secret }
}

/// The environment a key's text claims, if it is shaped like one of our keys at all.
pub fn parse(secret: &str) -> Option<Environment> {
    let (environment, random) = if let Some(rest) = secret.strip_prefix("sk_live_") {
        (Environment::Live, rest)
    } else {
        (Environment::Test, secret.strip_prefix("sk_test_")?)
    };
    (random.len() == RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(environment)
}

/// `sk_live_` and the first characters of the random part: enough to recognise a key, useless
/// to an attacker.
pub fn displayed_prefix(secret: &str) -> String {
    secret.chars().take("sk_live_".len() + SHOWN_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_with_their_environment() {
        let key = generate(Environment::Test);
        assert!(key.secret.starts_with("sk_test_"));
        assert_eq!(parse(&key.secret), Some(Environment::Test));
        assert_eq!(key.prefix.len(), 14);
        assert!(key.secret.starts_with(&key.prefix));
        assert_eq!(parse(&generate(Environment::Live).secret), Some(Environment::Live));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let key = generate(Environment::Live).secret;
        assert_eq!(parse(&key[..key.len() - 1]), None);
        assert_eq!(parse(&key.replace("sk_live_", "sk_prod_")), None);
        assert_eq!(parse(&format!("{key}!")), None);
        assert_eq!(parse(""), None);
    }
}
