//! Stripe's request encoding: `application/x-www-form-urlencoded` pairs whose keys nest with
//! brackets (`metadata[order]=42`, `expand[]=latest_charge`, `items[0][price]=x`), read into a
//! JSON tree. The query string and the body are merged, as Stripe merges them.

use serde_json::{Map, Value};

/// Why a parameter could not be read; names the parameter as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError {
    pub param: String,
    pub message: String,
}

/// Decodes form pairs into an object. Scalars stay strings, as on the wire; an empty value is an
/// empty string (which unsets a metadata key).
pub fn decode(pairs: &[(String, String)]) -> Result<Map<String, Value>, FormError> {
    let mut root = Value::Object(Map::new());
    for (key, value) in pairs {
        let path = split(key)?;
        insert(&mut root, &path, value.clone(), key)?;
    }
    match root {
        Value::Object(map) => Ok(map),
        _ => unreachable!("the root is always an object"),
    }
}

/// Decodes a raw query or body.
pub fn decode_str(text: &str) -> Result<Map<String, Value>, FormError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes()).into_owned().collect();
    decode(&pairs)
}

/// One step of a key's path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    /// `[]`: the next element of an array.
    Push,
}

fn split(key: &str) -> Result<Vec<Step>, FormError> {
    let bad = || FormError { param: key.to_owned(), message: format!("Invalid parameter name: {key}") };
    let (head, mut rest) = match key.find('[') {
        Some(at) => (&key[..at], &key[at..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(bad());
    }
    let mut steps = vec![Step::Key(head.to_owned())];
    while !rest.is_empty() {
        let close = rest.find(']').ok_or_else(bad)?;
        if !rest.starts_with('[') {
            return Err(bad());
        }
        let inner = &rest[1..close];
        steps.push(if inner.is_empty() {
            Step::Push
        } else if inner.bytes().all(|b| b.is_ascii_digit()) && inner.len() < 6 {
            Step::Index(inner.parse().map_err(|_| bad())?)
        } else {
            Step::Key(inner.to_owned())
        });
        rest = &rest[close + 1..];
    }
    Ok(steps)
}

fn insert(node: &mut Value, path: &[Step], value: String, key: &str) -> Result<(), FormError> {
    let conflict = || FormError {
        param: key.to_owned(),
        message: format!("Invalid parameter: {key} mixes an object and a value"),
    };
    let Some((step, rest)) = path.split_first() else {
        *node = Value::String(value);
        return Ok(());
    };
    match step {
        Step::Key(name) => {
            if node.is_null() {
                *node = Value::Object(Map::new());
            }
            // An object keyed by digits (`metadata[0]`) is still an object.
            let Value::Object(map) = node else { return Err(conflict()) };
            let child = map.entry(name.clone()).or_insert(Value::Null);
            if rest.is_empty() && (child.is_object() || child.is_array()) {
                return Err(conflict());
            }
            insert(child, rest, value, key)
        }
        Step::Index(index) => {
            if node.is_null() {
                *node = Value::Array(Vec::new());
            }
            match node {
                Value::Array(items) => {
                    while items.len() <= *index {
                        items.push(Value::Null);
                    }
                    insert(&mut items[*index], rest, value, key)
                }
                // `metadata[0]=x` on an object already holding keys: a key named "0".
                Value::Object(map) => insert(map.entry(index.to_string()).or_insert(Value::Null), rest, value, key),
                _ => Err(conflict()),
            }
        }
        Step::Push => {
            if node.is_null() {
                *node = Value::Array(Vec::new());
            }
            let Value::Array(items) = node else { return Err(conflict()) };
            items.push(Value::Null);
            let last = items.len() - 1;
            insert(&mut items[last], rest, value, key)
        }
    }
}

/// Stripe's canonical form of parameters, for comparing an idempotent retry with the original.
pub fn fingerprint(params: &Map<String, Value>) -> String {
    crate::domain::canonical_json::canonical_json(&Value::Object(params.clone()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn brackets_nest_into_objects_and_arrays() {
        let form = "amount=2000&currency=eur&metadata[order]=42&metadata[note]=&expand[]=latest_charge\
                    &expand[]=customer&items[0][price]=p1&items[1][price]=p2&items[1][quantity]=3";
        let params = decode_str(form).unwrap();
        assert_eq!(
            Value::Object(params),
            json!({"amount": "2000", "currency": "eur", "metadata": {"order": "42", "note": ""},
                "expand": ["latest_charge", "customer"], "items": [{"price": "p1"}, {"price": "p2", "quantity": "3"}]})
        );
    }

    #[test]
    fn ranges_and_encoded_values_are_read() {
        let params = decode_str("created%5Bgte%5D=1700000000&description=caf%C3%A9+latte").unwrap();
        assert_eq!(params["created"]["gte"], "1700000000");
        assert_eq!(params["description"], "café latte");
    }

    #[test]
    fn broken_keys_are_refused_naming_the_parameter() {
        assert_eq!(decode_str("metadata[a=1").unwrap_err().param, "metadata[a");
        assert!(decode_str("[a]=1").is_err());
        assert!(decode_str("a=1&a[b]=2").is_err(), "a value and an object under one name");
    }
}
