//! The rule every string the API accepts obeys, wherever it arrives (a JSON body, a query
//! parameter, a form field): no NUL character, which PostgreSQL refuses in `text` and `jsonb`,
//! and at most [`MAX_CHARS`] characters. Fields with tighter limits check those on top.

/// The longest string any field or parameter takes, in characters (Stripe's bound too).
pub const MAX_CHARS: usize = 5_000;

/// Why a string is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unacceptable {
    Nul,
    TooLong,
}

impl Unacceptable {
    pub fn message(self) -> String {
        match self {
            Unacceptable::Nul => "must not contain the NUL character (U+0000)".to_owned(),
            Unacceptable::TooLong => format!("must be at most {MAX_CHARS} characters"),
        }
    }
}

/// Whether `text` may be accepted.
pub fn check(text: &str) -> Result<(), Unacceptable> {
    if text.contains('\0') {
        Err(Unacceptable::Nul)
    } else if text.len() > MAX_CHARS && text.chars().count() > MAX_CHARS {
        Err(Unacceptable::TooLong)
    } else {
        Ok(())
    }
}

/// Whether JSON text may hold a string (a key or a value) that breaks the rule: one whose source
/// is longer than [`MAX_CHARS`] bytes, or one with a `\u0000` escape. One pass over the bytes,
/// for every body; it never misses one, and a `true` is confirmed on the parsed value.
pub fn json_may_break(json: &[u8]) -> bool {
    let mut in_string = false;
    let mut start = 0;
    let mut i = 0;
    while i < json.len() {
        match (in_string, json[i]) {
            (false, b'"') => {
                in_string = true;
                start = i + 1;
            }
            (true, b'"') => {
                if i - start > MAX_CHARS {
                    return true;
                }
                in_string = false;
            }
            (true, b'\\') => {
                if json.get(i + 1..i + 6) == Some(b"u0000") {
                    return true;
                }
                // Skip the escaped character, which may be a quote.
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    // An unterminated string is a syntax error, reported by the parser.
    in_string && json.len() - start > MAX_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_over_long_strings_are_refused() {
        assert_eq!(check("plain"), Ok(()));
        assert_eq!(check("a\0b"), Err(Unacceptable::Nul));
        assert_eq!(check(&"x".repeat(MAX_CHARS)), Ok(()));
        assert_eq!(check(&"x".repeat(MAX_CHARS + 1)), Err(Unacceptable::TooLong));
        assert_eq!(check(&"é".repeat(MAX_CHARS)), Ok(()), "characters, not bytes");
    }

    #[test]
    fn the_json_scan_finds_every_suspect_and_passes_ordinary_bodies() {
        assert!(!json_may_break(br#"{"label":"a \"quoted\" \\u0000 text","n":[1,2]}"#), "an escaped backslash");
        assert!(json_may_break(br#"{"label":"a\u0000b"}"#));
        assert!(json_may_break(br#"{"a\u0000":1}"#), "keys too");
        assert!(json_may_break(format!(r#"{{"x":"{}"}}"#, "y".repeat(MAX_CHARS + 1)).as_bytes()));
        assert!(!json_may_break(format!(r#"{{"x":"{}"}}"#, "y".repeat(MAX_CHARS)).as_bytes()));
        assert!(json_may_break(format!(r#"{{"x":"{}"#, "y".repeat(MAX_CHARS + 1)).as_bytes()));
    }
}
