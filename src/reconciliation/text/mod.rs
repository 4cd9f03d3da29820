//! The text side of matching, pure: reference keys and where they occur in remittance text,
//! one-typo comparison, ISO 11649 creditor references ([`rf_references`]) and company names
//! ([`normalize_name`], [`name_similarity`]).
//!
//! References are compared as *ref keys*: uppercase ASCII letters and digits only, exactly what
//! the SQL function `payymo_ref_key` stores in `invoices.number_key`, so "inv-2026/0104" and
//! "INV 2026 0104" are both `INV20260104` on either side.

mod names;
mod rf;

pub use names::{NormalizedName, jaro_winkler, name_similarity, normalize_name};
pub use rf::{rf_is_valid, rf_references};

/// The shortest keys compared with one typo allowed: below this one character is too large a
/// share of the key, and short numbers one apart are simply different invoices.
pub const TYPO_MIN_LEN: usize = 8;

/// Uppercase ASCII letters and digits only; the same as the SQL function `payymo_ref_key`
/// (`nullif(upper(regexp_replace(value, '[^A-Za-z0-9]', '', 'g')), '')`), with "" for SQL null.
/// Non-ASCII characters are dropped, as the SQL drops them.
pub fn ref_key(value: &str) -> String {
    value.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

/// Whether a key may be a reference at all: at least 4 characters, at least one digit, and not a
/// number of 4 digits or fewer (an amount, a year, a date part or a house number, never a
/// reference worth trusting). Keys that fail are never looked for in text.
pub fn is_reference_like(key: &str) -> bool {
    let digits = key.bytes().filter(u8::is_ascii_digit).count();
    key.len() >= 4 && digits > 0 && (digits < key.len() || key.len() >= 5)
}

/// The shortest key without a digit that may still be a code someone quotes: a payment
/// reference such as `PR-BBSNMMZB`, a Stripe trace id.
pub const LETTER_CODE_MIN_LEN: usize = 8;

/// Whether a key of letters only is long enough to be a code ([`LETTER_CODE_MIN_LEN`]). Such a
/// key is looked up, but it only ever counts when it *equals* a counterpart's own code (never as
/// an invoice number, never one typo away), so a word of the text ("TRANSFER", a payer's name)
/// is no reference unless an invoice's payment reference is that very word.
pub fn is_letter_code(key: &str) -> bool {
    key.len() >= LETTER_CODE_MIN_LEN && key.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Candidate reference keys in remittance text: each token's ref key plus the concatenations of
/// 2 and 3 adjacent tokens ("INV 2026 0104" and "inv-2026/0104" both yield `INV20260104`),
/// deduplicated, in the order found, reference-like or letter codes only. Two numbers joined by
/// a single `.` or `,` are one decimal number ("1,250.00"), so they are not concatenated into a
/// key.
pub fn candidate_keys(text: &str) -> Vec<String> {
    candidate_keys_in(&RemittanceText::new(text))
}

/// [`candidate_keys`] of text already tokenised.
pub fn candidate_keys_in(tokens: &RemittanceText) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for start in 0..tokens.len() {
        for end in start + 1..=(start + 3).min(tokens.len()) {
            let Some(key) = tokens.span(start, end) else { break };
            if (is_reference_like(key) || is_letter_code(key)) && !keys.iter().any(|k| k == key) {
                keys.push(key.to_owned());
            }
        }
    }
    keys
}

/// Whether `a` and `b` (ref keys) are at most one edit apart: a substitution, an insertion, a
/// deletion or a transposition of two adjacent characters. Callers use it only when both keys
/// have at least [`TYPO_MIN_LEN`] characters.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let same = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if short.len() < long.len() {
        return short[same..] == long[same + 1..];
    }
    if same == short.len() {
        return true;
    }
    let substituted = short[same + 1..] == long[same + 1..];
    let transposed = same + 1 < short.len()
        && short[same] == long[same + 1]
        && short[same + 1] == long[same]
        && short[same + 2..] == long[same + 2..];
    substituted || transposed
}

/// How a reference key occurs in remittance text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch<'t> {
    /// Exactly, as a run of adjacent tokens.
    Exact,
    /// As this key of the text, one edit away (both at least [`TYPO_MIN_LEN`] long).
    OneEdit(&'t str),
}

/// Remittance text split into tokens once, so several keys can be looked for without
/// allocating: the tokens' ref keys sit end to end in one buffer, so a run of adjacent tokens is
/// a slice of it.
#[derive(Debug, Clone)]
pub struct RemittanceText {
    keys: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    /// Whether it may be concatenated with the token before it (false inside "1,250.00").
    joins_previous: bool,
}

impl RemittanceText {
    /// Tokens are runs of letters and digits (any script; non-ASCII is dropped from the keys).
    pub fn new(text: &str) -> Self {
        let mut keys = String::with_capacity(text.len());
        let mut tokens: Vec<Token> = Vec::new();
        let mut start = 0;
        let mut separator = String::new();
        let mut in_token = false;
        let push = |keys: &String, tokens: &mut Vec<Token>, start: usize, separator: &str| {
            if keys.len() == start {
                return;
            }
            let digits = |t: &Token| keys[t.start..t.end].bytes().all(|b| b.is_ascii_digit());
            let token = Token { start, end: keys.len(), joins_previous: true };
            let decimal = matches!(separator, "." | ",");
            let joins_previous = !(decimal && digits(&token) && tokens.last().is_some_and(digits));
            tokens.push(Token { joins_previous, ..token });
        };
        for c in text.chars() {
            if c.is_alphanumeric() {
                if !in_token {
                    in_token = true;
                    start = keys.len();
                }
                if c.is_ascii_alphanumeric() {
                    keys.push(c.to_ascii_uppercase());
                }
            } else {
                if in_token {
                    push(&keys, &mut tokens, start, &separator);
                    separator.clear();
                    in_token = false;
                }
                if separator.len() < 2 {
                    separator.push(c);
                }
            }
        }
        if in_token {
            push(&keys, &mut tokens, start, &separator);
        }
        Self { keys, tokens }
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The key of tokens `start..end`, if they may be concatenated.
    fn span(&self, start: usize, end: usize) -> Option<&str> {
        let joined = self.tokens[start + 1..end].iter().all(|t| t.joins_previous);
        joined.then(|| &self.keys[self.tokens[start].start..self.tokens[end - 1].end])
    }

    /// Whether `key` is a run of adjacent tokens (any number of them, so a long reference printed
    /// in groups is found too).
    pub fn contains(&self, key: &str) -> bool {
        !key.is_empty()
            && (0..self.len()).any(|start| {
                (start + 1..=self.len())
                    .map_while(|end| self.span(start, end).filter(|span| key.starts_with(span)))
                    .any(|span| span.len() == key.len())
            })
    }

    /// Where `key` occurs: exactly, or else as the first key [`RemittanceText::near`] gives.
    pub fn find(&self, key: &str) -> Option<KeyMatch<'_>> {
        if self.contains(key) {
            return Some(KeyMatch::Exact);
        }
        self.near(key).next().map(KeyMatch::OneEdit)
    }

    /// The text's reference-like keys (runs of 1 to 3 tokens) one edit away from `key`, in
    /// order; none when `key` is shorter than [`TYPO_MIN_LEN`].
    pub fn near<'s>(&'s self, key: &str) -> impl Iterator<Item = &'s str> {
        let long_enough = key.len() >= TYPO_MIN_LEN;
        (0..if long_enough { self.len() } else { 0 })
            .flat_map(move |start| (start + 1..=(start + 3).min(self.len())).map(move |end| (start, end)))
            .filter_map(|(start, end)| self.span(start, end))
            .filter(move |span| {
                span.len() >= TYPO_MIN_LEN
                    && span.len().abs_diff(key.len()) <= 1
                    && is_reference_like(span)
                    && within_one_edit(span, key)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_keys_keep_ascii_letters_and_digits_uppercased() {
        assert_eq!(ref_key("inv-2026/0104"), "INV20260104");
        assert_eq!(ref_key(" Rf18 5390 "), "RF185390");
        assert_eq!(ref_key("Müller-7"), "MLLER7", "non-ASCII is dropped like the SQL does");
        assert_eq!(ref_key("--"), "");
    }

    #[test]
    fn short_numbers_and_words_are_not_reference_like() {
        for key in ["INV1", "2026A", "12345", "INV20260104", "A1B2"] {
            assert!(is_reference_like(key), "{key}");
        }
        for key in ["", "A1", "104", "2026", "1234", "INVOICE", "THANKS"] {
            assert!(!is_reference_like(key), "{key}");
        }
    }

    #[test]
    fn long_runs_of_letters_are_codes_and_words_are_not() {
        for key in ["PRBBSNMMZB", "BBSNMMZB", "STGEANNMQMGRVQ", "TRANSFER"] {
            assert!(is_letter_code(key), "{key}");
        }
        for key in ["", "PAYMENT", "INVOICE", "THANKS", "INV20260104", "PRBBSNM2B"] {
            assert!(!is_letter_code(key), "{key}");
        }
    }

    #[test]
    fn candidate_keys_take_letter_codes_of_eight_and_more() {
        let keys = candidate_keys("PR-BBSNMMZB THANKS");
        assert_eq!(keys, ["PRBBSNMMZB", "PRBBSNMMZBTHANKS", "BBSNMMZB", "BBSNMMZBTHANKS"]);
        let keys = candidate_keys("payment invoice thanks");
        assert_eq!(keys, ["PAYMENTINVOICE", "PAYMENTINVOICETHANKS", "INVOICETHANKS"], "7-letter words alone never");
        assert!(!candidate_keys("INTEREST 104 DAYS").iter().any(|k| k == "104"), "a 3-digit fragment is no key");
    }

    #[test]
    fn candidate_keys_join_up_to_three_adjacent_tokens() {
        let keys = candidate_keys("payment inv 2026 0104 thanks");
        assert!(keys.contains(&"INV20260104".to_owned()), "{keys:?}");
        assert!(keys.contains(&"20260104".to_owned()), "{keys:?}");
        assert!(!keys.iter().any(|k| k == "2026" || k == "0104" || k == "PAYMENT"), "{keys:?}");
        assert_eq!(candidate_keys("inv-2026/0104"), ["INV2026", "INV20260104", "20260104"]);
        let keys = candidate_keys("INV20260104 INV20260104");
        assert_eq!(keys, ["INV20260104", "INV20260104INV20260104"], "deduplicated");
        assert!(candidate_keys("a b c d 1 2 3").is_empty());
    }

    #[test]
    fn decimal_numbers_are_not_concatenated_into_keys() {
        let keys = candidate_keys("paid 1,250.00 thanks");
        assert!(!keys.iter().any(|k| k.contains("125000") || k.contains("25000")), "{keys:?}");
        assert_eq!(candidate_keys("ref 12345.6"), ["REF12345", "12345"]);
        assert!(candidate_keys("2026-01-04").contains(&"20260104".to_owned()));
    }

    #[test]
    fn one_edit_covers_substitution_insertion_deletion_and_transposition() {
        let key = "INV20260104";
        for other in ["INV20260104", "INV20260105", "INV20260140", "INV2026104", "INV202601044", "NIV20260104"] {
            assert!(within_one_edit(key, other), "{other}");
            assert!(within_one_edit(other, key), "{other} (symmetric)");
        }
        for other in ["INV202601", "INV20260150", "INV20261040", "XNV20260105", "INV2026014X", ""] {
            assert!(!within_one_edit(key, other), "{other}");
            assert!(!within_one_edit(other, key), "{other} (symmetric)");
        }
    }

    #[test]
    fn a_reference_is_found_however_it_is_spaced_or_punctuated() {
        for text in ["payment inv 2026 0104 thanks", "INV20260104", "Inv/2026/0104", "INV 2026 01 04"] {
            assert_eq!(RemittanceText::new(text).find("INV20260104"), Some(KeyMatch::Exact), "{text}");
        }
        let text = RemittanceText::new("INV-2026-0104X");
        assert_eq!(text.find("INV20260104"), Some(KeyMatch::OneEdit("INV20260104X")), "not exact: tokens end");
        assert_eq!(RemittanceText::new("INV-2026-01 / 2026").find("INV20260104"), None);
        assert!(!text.contains(""));
    }

    #[test]
    fn a_reference_one_edit_away_is_reported_with_the_text_key() {
        let text = RemittanceText::new("payment INV-2026-0105 thanks");
        assert_eq!(text.find("INV20260104"), Some(KeyMatch::OneEdit("INV20260105")));
        let text = RemittanceText::new("inv 2026 0140");
        assert_eq!(text.find("INV20260104"), Some(KeyMatch::OneEdit("INV20260140")));
        assert_eq!(RemittanceText::new("INV-2026-01").find("INV20260104"), None);
        assert_eq!(RemittanceText::new("INV-105").find("INV104"), None, "short keys need exact matches");
        let text = RemittanceText::new("INV20260105 INV20260103");
        assert_eq!(text.near("INV20260104").collect::<Vec<_>>(), ["INV20260105", "INV20260103"]);
    }
}
