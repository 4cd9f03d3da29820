//! Exact money: integer minor units with an ISO 4217 currency. Providers that send decimal
//! strings (GoCardless: `"-5.50"`) are converted with the currency's exponent, and anything that
//! does not fit (too many decimals, overflow, not a number) is refused rather than rounded.

use std::fmt;

/// An uppercase ISO 4217 currency code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// The currencies ISO 4217 lists, sorted (metals, funds, test and settlement codes left out).
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC",
    "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC",
    "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

impl Currency {
    /// Three ASCII letters, any case (`"eur"` → `EUR`).
    pub fn parse(code: &str) -> Option<Self> {
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_alphabetic).then(|| Self(bytes.map(|b| b.to_ascii_uppercase())))
    }

    /// Whether the code is a currency ISO 4217 lists today (not a precious metal, a fund or a
    /// test code): what invoices may be issued in.
    pub fn is_iso4217(&self) -> bool {
        ISO_4217.binary_search(&self.as_str()).is_ok()
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from three ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point in the currency's minor unit (ISO 4217). Currencies not
    /// listed as exceptions have two.
    pub fn exponent(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
            | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a decimal amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{0:?} is not a decimal amount")]
    NotADecimal(String),
    #[error("{amount:?} has more decimal places than {currency} allows ({exponent})")]
    TooPrecise { amount: String, currency: Currency, exponent: u32 },
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Converts a decimal string (`"-5.50"`, `"12"`, `"+0.5"`) to minor units of `currency`.
/// Trailing zeros beyond the exponent are accepted (`"5.500"` EUR is 550); significant digits
/// beyond it are refused, never rounded.
pub fn parse_minor_units(amount: &str, currency: Currency) -> Result<i64, AmountError> {
    let not_decimal = || AmountError::NotADecimal(amount.to_owned());
    let (negative, digits) = match amount.as_bytes().first() {
        Some(b'-') => (true, &amount[1..]),
        Some(b'+') => (false, &amount[1..]),
        _ => (false, amount),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || (digits.contains('.') && fraction.is_empty())
    {
        return Err(not_decimal());
    }
    let exponent = currency.exponent();
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > exponent as usize {
        return Err(AmountError::TooPrecise { amount: amount.to_owned(), currency, exponent });
    }
    let overflow = || AmountError::Overflow(amount.to_owned());
    let whole = whole.trim_start_matches('0');
    let mut minor: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| overflow())? };
    minor = minor.checked_mul(10_i64.pow(exponent)).ok_or_else(overflow)?;
    if !fraction.is_empty() {
        let scale = 10_i64.pow(exponent - fraction.len() as u32);
        let cents: i64 = fraction.parse().map_err(|_| not_decimal())?;
        minor = minor.checked_add(cents * scale).ok_or_else(overflow)?;
    }
    Ok(if negative { -minor } else { minor })
}

/// Minor units as a decimal string with the currency's exponent: `-550` EUR → `"-5.50"`.
pub fn format_minor_units(minor: i64, currency: Currency) -> String {
    let exponent = currency.exponent();
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10_u64.pow(exponent);
    format!("{sign}{}.{:0width$}", magnitude / scale, magnitude % scale, width = exponent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iso_4217_list_is_sorted_and_knows_real_currencies_only() {
        assert!(ISO_4217.windows(2).all(|pair| pair[0] < pair[1]), "binary search needs it sorted");
        for code in ["GBP", "EUR", "USD", "JPY", "XOF"] {
            assert!(Currency::parse(code).unwrap().is_iso4217(), "{code}");
        }
        for code in ["XYZ", "GBX", "XAU", "XXX"] {
            assert!(!Currency::parse(code).unwrap().is_iso4217(), "{code}");
        }
    }

    fn currency(code: &str) -> Currency {
        Currency::parse(code).unwrap_or_else(|| panic!("{code}"))
    }

    #[test]
    fn decimal_strings_convert_exactly() {
        let eur = currency("eur");
        assert_eq!(eur.as_str(), "EUR");
        for (text, minor) in [
            ("-5.50", -550),
            ("5.5", 550),
            ("12", 1200),
            ("+0.07", 7),
            ("0.10", 10),
            ("5.500", 550),
            ("-0.01", -1),
            ("1000000.99", 100_000_099),
            ("0", 0),
        ] {
            assert_eq!(parse_minor_units(text, eur), Ok(minor), "{text}");
        }
        assert_eq!(parse_minor_units("1500", currency("JPY")), Ok(1500));
        assert_eq!(parse_minor_units("1.234", currency("KWD")), Ok(1234));
    }

    #[test]
    fn anything_inexact_or_malformed_is_refused() {
        let eur = currency("EUR");
        assert!(matches!(parse_minor_units("5.505", eur), Err(AmountError::TooPrecise { .. })));
        assert!(matches!(parse_minor_units("1.5", currency("JPY")), Err(AmountError::TooPrecise { .. })));
        for bad in ["", "-", ".5", "5.", "1e3", "1,00", " 1", "NaN", "--1", "0x10", "1.2.3"] {
            assert!(matches!(parse_minor_units(bad, eur), Err(AmountError::NotADecimal(_))), "{bad:?}");
        }
        assert!(matches!(parse_minor_units("92233720368547758.08", eur), Err(AmountError::Overflow(_))));
        assert_eq!(parse_minor_units("92233720368547758.07", eur), Ok(i64::MAX));
    }

    #[test]
    fn formatting_round_trips() {
        for (minor, code, text) in
            [(-550, "EUR", "-5.50"), (7, "GBP", "0.07"), (1500, "JPY", "1500"), (1234, "KWD", "1.234")]
        {
            assert_eq!(format_minor_units(minor, currency(code)), text);
            assert_eq!(parse_minor_units(text, currency(code)), Ok(minor));
        }
    }

    #[test]
    fn currency_codes_are_three_letters() {
        for bad in ["", "EU", "EURO", "E1R", "€UR"] {
            assert_eq!(Currency::parse(bad), None, "{bad}");
        }
    }
}
