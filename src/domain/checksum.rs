//! Check digits of bank and payment identifiers: IBANs (ISO 13616) and creditor references
//! (ISO 11649 `RF…`), both ISO 7064 MOD 97-10. Pure: parse, normalise and check, no I/O.

/// An IBAN's length per country (ISO 13616 registry), for the countries that issue them.
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// Whether `text` (already uppercase, no spaces) passes ISO 7064 MOD 97-10 once its first four
/// characters are moved to the end and letters read as numbers (A = 10 … Z = 35).
fn mod97_valid(text: &str) -> bool {
    let (head, tail) = text.split_at(4);
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        remainder = if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 };
    }
    remainder == 1
}

/// Uppercase, without spaces: how IBANs and references are stored and compared.
fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect()
}

/// An IBAN in electronic form (`GB82WEST12345698765432`), or why `text` is not one.
pub fn iban(text: &str) -> Result<String, String> {
    let iban = compact(text);
    if iban.len() < 5 || !iban.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("is not an IBAN: a country code, two check digits and the account, letters and digits only".into());
    }
    let country = &iban[..2];
    let Some((_, length)) = IBAN_LENGTHS.iter().find(|(code, _)| *code == country) else {
        return Err(format!("is not an IBAN: {country} is not a country that issues IBANs"));
    };
    if iban.len() != *length {
        return Err(format!("is not an IBAN: one from {country} has {length} characters, this has {}", iban.len()));
    }
    if !iban[2..4].chars().all(|c| c.is_ascii_digit()) || !mod97_valid(&iban) {
        return Err("is not an IBAN: its check digits do not match (a typo?)".into());
    }
    Ok(iban)
}

/// An ISO 11649 creditor reference in electronic form (`RF18539007547034`), or why `text` is
/// not one: `RF`, two check digits, and 1 to 21 letters or digits.
pub fn creditor_reference(text: &str) -> Result<String, String> {
    let reference = compact(text);
    let valid_shape = reference.len() >= 5
        && reference.len() <= 25
        && reference.starts_with("RF")
        && reference[2..4].chars().all(|c| c.is_ascii_digit())
        && reference[4..].chars().all(|c| c.is_ascii_alphanumeric());
    if !valid_shape {
        return Err(
            "is not an ISO 11649 creditor reference: RF, two check digits, then 1 to 21 letters or digits".into()
        );
    }
    if !mod97_valid(&reference) {
        return Err("is not an ISO 11649 creditor reference: its check digits do not match (a typo?)".into());
    }
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_are_checked_by_country_length_and_check_digits() {
        assert_eq!(iban("GB82 WEST 1234 5698 7654 32"), Ok("GB82WEST12345698765432".into()));
        assert_eq!(iban("de89370400440532013000"), Ok("DE89370400440532013000".into()));
        assert_eq!(iban("NO9386011117947"), Ok("NO9386011117947".into()));
        assert!(iban("GB82WEST12345698765433").unwrap_err().contains("check digits"), "one digit off");
        assert!(iban("GB28WEST12345698765432").unwrap_err().contains("check digits"), "check digits off");
        assert!(iban("GB82WEST1234569876543").unwrap_err().contains("22 characters"));
        assert!(iban("ZZ82WEST12345698765432").unwrap_err().contains("ZZ"));
        assert!(iban("GB82-WEST").is_err());
        assert!(iban("").is_err());
    }

    #[test]
    fn creditor_references_are_checked_by_shape_and_check_digits() {
        // ISO 11649's own example.
        assert_eq!(creditor_reference("RF18 5390 0754 7034"), Ok("RF18539007547034".into()));
        assert_eq!(creditor_reference("rf18000000000539007547034"), Ok("RF18000000000539007547034".into()));
        assert!(creditor_reference("RF19539007547034").unwrap_err().contains("check digits"));
        assert!(creditor_reference("RF18539007547035").unwrap_err().contains("check digits"));
        assert!(creditor_reference("XX18539007547034").is_err());
        assert!(creditor_reference("RF18").is_err());
        assert!(creditor_reference("RF180000000000005390075470341").is_err(), "over 25 characters");
    }
}
