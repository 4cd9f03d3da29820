//! ISO 11649 creditor references ("RF18 5390 0754 7034"): a payer copies them from the invoice,
//! and their check digits tell a real one from a near miss, so a valid one found in the text is
//! as good as the invoice number.

/// The longest creditor reference: "RF", 2 check digits and up to 21 characters.
const MAX_LEN: usize = 25;

/// Whether `key` (a ref key) is a creditor reference with valid check digits: "RF", two digits
/// and 1 to 21 letters or digits, where moving the first four characters to the end and reading
/// letters as A=10 … Z=35 gives a number that is 1 mod 97.
pub fn rf_is_valid(key: &str) -> bool {
    let bytes = key.as_bytes();
    let shaped = (5..=MAX_LEN).contains(&bytes.len())
        && bytes.starts_with(b"RF")
        && bytes[2..4].iter().all(u8::is_ascii_digit)
        && bytes[4..].iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    shaped
        && bytes[4..].iter().chain(&bytes[..4]).fold(0_u32, |rest, &b| match b {
            b'0'..=b'9' => (rest * 10 + u32::from(b - b'0')) % 97,
            _ => (rest * 100 + u32::from(b - b'A') + 10) % 97,
        }) == 1
}

/// The valid creditor references in `text`, as ref keys, in order, deduplicated. Printed
/// references are grouped in fours ("RF18 5390 0754 7034"): after a token starting with "RF"
/// (any case) that is exactly four characters, following groups joined by single spaces are
/// added while each earlier group has four characters; the longest valid reading wins.
pub fn rf_references(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let bytes = text.as_bytes();
    for start in 0..bytes.len().saturating_sub(1) {
        let starts_token = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        if starts_token
            && bytes[start..start + 2].eq_ignore_ascii_case(b"RF")
            && let Some(key) = longest_valid_reading(&text[start..])
            && !found.contains(&key)
        {
            found.push(key);
        }
    }
    found
}

/// The longest valid reference at the start of `text`, reading groups as [`rf_references`] says.
fn longest_valid_reading(text: &str) -> Option<String> {
    let mut key = String::with_capacity(MAX_LEN);
    let mut readings = Vec::new();
    for group in text.split(' ') {
        let len = group.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if len == 0 || key.len() + len > MAX_LEN {
            break;
        }
        key.extend(group[..len].chars().map(|c| c.to_ascii_uppercase()));
        readings.push(key.len());
        // A group ends the reference when something other than a space follows it, or when it
        // is not a full group of four.
        if len < group.len() || len != 4 {
            break;
        }
    }
    readings.iter().rev().map(|&len| &key[..len]).find(|reading| rf_is_valid(reading)).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_are_verified_mod_97() {
        for key in ["RF18539007547034", "RF18000000000539007547034", "RF48INV20260104", "RF25A", "RF090104"] {
            assert!(rf_is_valid(key), "{key}");
        }
        for key in ["RF19539007547034", "RF18539007547043", "RF18", "RF1", "RF", "XX18539007547034", "rf25A"] {
            assert!(!rf_is_valid(key), "{key}");
        }
        assert!(!rf_is_valid("RF180000000005390075470340"), "longer than 25 characters");
        assert!(!rf_is_valid("RFAB0104"), "check digits are digits");
    }

    #[test]
    fn references_are_found_printed_in_groups_or_run_together() {
        assert_eq!(rf_references("Invoice RF18 5390 0754 7034 thanks"), ["RF18539007547034"]);
        assert_eq!(rf_references("ref:rf18539007547034."), ["RF18539007547034"]);
        assert_eq!(rf_references("RF48 INV2 0260 104"), ["RF48INV20260104"]);
        assert_eq!(rf_references("RF25A RF25A and RF09 0104"), ["RF25A", "RF090104"]);
    }

    #[test]
    fn invalid_or_embedded_references_are_ignored() {
        assert!(rf_references("RF19 5390 0754 7034").is_empty());
        assert!(rf_references("SURF18539007547034").is_empty(), "not at the start of a token");
        assert!(rf_references("RF18 5390 0754 70").is_empty(), "a group missing");
        assert!(rf_references("RF").is_empty());
        assert!(rf_references("").is_empty());
        assert!(rf_references("RF18  5390 0754 7034").is_empty(), "two spaces end the reference");
    }
}
