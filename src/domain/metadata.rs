//! `metadata`: a client's own string key-value pairs on a resource, with Stripe's rules.

use std::collections::BTreeMap;

use super::validation::FieldError;

/// Most keys a `metadata` object holds.
pub const MAX_KEYS: usize = 50;

/// Applies Stripe-style metadata changes to `current`: a key set to a string is set, a key set to
/// `null` or `""` is removed. Keys are 1 to 40 characters without `[` or `]`, values at most 500
/// characters, at most 50 keys in all; each violation is pushed to `errors`.
pub fn merge(
    current: &BTreeMap<String, String>,
    changes: BTreeMap<String, Option<String>>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, String> {
    let mut bad = |field: String, message: &str| errors.push(FieldError { field, message: message.into() });
    let mut merged = current.clone();
    for (key, value) in changes {
        if key.is_empty() || key.chars().count() > 40 || key.contains(['[', ']']) {
            bad(format!("metadata.{key}"), "keys are 1 to 40 characters, without [ or ]");
            continue;
        }
        match value.filter(|v| !v.is_empty()) {
            Some(value) if value.chars().count() > 500 => {
                bad(format!("metadata.{key}"), "values are at most 500 characters");
            }
            Some(value) => {
                merged.insert(key, value);
            }
            None => {
                merged.remove(&key);
            }
        }
    }
    if merged.len() > MAX_KEYS {
        bad("metadata".into(), "holds at most 50 keys");
    }
    merged
}

/// Checks a whole `metadata` object given on creation: the same rules as [`merge`], where an
/// empty value is simply left out.
pub fn check(given: BTreeMap<String, String>, errors: &mut Vec<FieldError>) -> BTreeMap<String, String> {
    merge(&BTreeMap::new(), given.into_iter().map(|(k, v)| (k, Some(v))).collect(), errors)
}
