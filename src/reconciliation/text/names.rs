//! Company and person names as banks print them ("ACME WIDGETS LTD", "FP Müller GmbH & Co")
//! compared with the names invoices carry: folded to plain lowercase words first, then compared
//! word by word and as a whole with Jaro-Winkler, which forgives the truncation bank text is
//! full of ("ACME WIDG").

/// Legal forms, dropped from the start and end of a name: they say nothing about who paid.
const LEGAL_FORMS: &[&str] = &[
    "ab",
    "ag",
    "as",
    "bv",
    "co",
    "company",
    "corp",
    "corporation",
    "gmbh",
    "inc",
    "incorporated",
    "kg",
    "limited",
    "llc",
    "llp",
    "lp",
    "ltd",
    "nv",
    "oy",
    "plc",
    "pty",
    "sa",
    "sarl",
    "sas",
    "spa",
    "srl",
];

/// Words bank text adds around a payer's name, dropped anywhere.
const NOISE: &[&str] = &["bacs", "ct", "faster", "fp", "from", "payment", "ref", "sepa"];

/// Words at least this similar (Jaro-Winkler) count as the same word.
const SAME_WORD: f64 = 0.92;

/// A name normalised once for many comparisons: lowercase ASCII words joined by single spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedName {
    joined: String,
}

impl NormalizedName {
    /// Folds Latin accents (é→e, ü→u, ß→ss, ø→o), drops other punctuation and non-Latin
    /// letters, reads "&" as "and", drops bank noise words anywhere and legal forms at either
    /// end ("Acme Widgets Limited" → "acme widgets"; a name that is only a legal form keeps it).
    pub fn new(name: &str) -> Self {
        let mut words: Vec<String> = vec![String::new()];
        for c in name.chars().flat_map(char::to_lowercase) {
            match c {
                'a'..='z' | '0'..='9' => words.last_mut().into_iter().for_each(|w| w.push(c)),
                // Inside abbreviations and names ("A.C.M.E.", "O'Brien"), and combining accents.
                '.' | '\'' | '’' | '\u{300}'..='\u{36f}' => {}
                '&' => words.extend(["and".to_owned(), String::new()]),
                _ => match fold(c) {
                    Some(folded) => words.last_mut().into_iter().for_each(|w| w.push_str(folded)),
                    None if c.is_alphanumeric() => {}
                    None => words.push(String::new()),
                },
            }
        }
        words.retain(|w| !w.is_empty() && !NOISE.contains(&w.as_str()));
        let is_legal = |w: &String| LEGAL_FORMS.contains(&w.as_str());
        let start = words.iter().take_while(|w| is_legal(w)).count();
        let mut end = words.len();
        // "& Co" and "and Company" go with the legal form.
        while end > start && (is_legal(&words[end - 1]) || (words[end - 1] == "and" && end < words.len())) {
            end -= 1;
        }
        let kept = if start < end { &words[start..end] } else { &words[..] };
        Self { joined: kept.join(" ") }
    }

    pub fn as_str(&self) -> &str {
        &self.joined
    }

    pub fn is_empty(&self) -> bool {
        self.joined.is_empty()
    }

    /// Similarity in [0, 1]: the larger of the share of the shorter name's words found in the
    /// other (words [`SAME_WORD`]-similar count as found) and the Jaro-Winkler of the whole
    /// names. 0 when either is empty.
    pub fn similarity(&self, other: &NormalizedName) -> f64 {
        if self.is_empty() || other.is_empty() {
            return 0.0;
        }
        if self.joined == other.joined {
            return 1.0;
        }
        let (few, many) = if self.joined.split(' ').count() <= other.joined.split(' ').count() {
            (self, other)
        } else {
            (other, self)
        };
        let mut used = [false; 64];
        let mut common = 0;
        let mut total = 0;
        for word in few.joined.split(' ') {
            total += 1;
            let found = many.joined.split(' ').enumerate().take(used.len()).position(|(i, candidate)| {
                !used[i] && (candidate == word || jaro_winkler(word, candidate) >= SAME_WORD)
            });
            if let Some(i) = found {
                used[i] = true;
                common += 1;
            }
        }
        let words = f64::from(common) / f64::from(total);
        words.max(jaro_winkler(&self.joined, &other.joined))
    }
}

/// [`NormalizedName::new`] as a string: "ACME WIDGETS LTD" and "Acme Widgets Limited" both give
/// "acme widgets".
pub fn normalize_name(name: &str) -> String {
    NormalizedName::new(name).joined
}

/// Similarity of two names in [0, 1] after [`normalize_name`] (see
/// [`NormalizedName::similarity`]). Normalise once with [`NormalizedName`] when comparing one
/// name with many.
pub fn name_similarity(a: &str, b: &str) -> f64 {
    NormalizedName::new(a).similarity(&NormalizedName::new(b))
}

/// Jaro-Winkler similarity (prefix scale 0.1, prefix up to 4) of two ASCII strings, compared on
/// their first 64 bytes; 0 when either is empty.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let a = &a.as_bytes()[..a.len().min(64)];
    let b = &b.as_bytes()[..b.len().min(64)];
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a == b {
        return 1.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let (mut a_matched, mut b_matched) = (0_u64, 0_u64);
    let mut matches = 0_u32;
    for (i, &ca) in a.iter().enumerate() {
        let from = i.saturating_sub(window);
        let to = (i + window + 1).min(b.len());
        if let Some(j) = (from..to).find(|&j| b_matched & (1 << j) == 0 && b[j] == ca) {
            a_matched |= 1 << i;
            b_matched |= 1 << j;
            matches += 1;
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let b_in_order = (0..b.len()).filter(|&j| b_matched & (1 << j) != 0).map(|j| b[j]);
    let a_in_order = (0..a.len()).filter(|&i| a_matched & (1 << i) != 0).map(|i| a[i]);
    let half_transpositions = a_in_order.zip(b_in_order).filter(|(x, y)| x != y).count() as f64;
    let m = f64::from(matches);
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + (m - half_transpositions / 2.0) / m) / 3.0;
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count() as f64;
    jaro + prefix * 0.1 * (1.0 - jaro)
}

/// Plain letters for the Latin accented ones (lowercase).
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'þ' => "th",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_forms_case_and_punctuation_do_not_matter() {
        assert_eq!(normalize_name("ACME WIDGETS LTD"), "acme widgets");
        assert_eq!(normalize_name("Acme Widgets Limited"), "acme widgets");
        assert_eq!(normalize_name("Acme Widgets Pty. Ltd."), "acme widgets");
        assert_eq!(normalize_name("Müller GmbH & Co. KG"), "muller");
        assert_eq!(normalize_name("SARL Dupont-Hervé"), "dupont herve");
        assert_eq!(normalize_name("A.C.M.E. Inc"), "acme");
        assert_eq!(normalize_name("O'Brien & Sons Ltd"), "obrien and sons");
        assert_eq!(normalize_name("Company"), "company", "a name that is only a legal form keeps it");
    }

    #[test]
    fn accents_fold_and_bank_noise_goes() {
        assert_eq!(normalize_name("Straße Ærø Øster Łódź"), "strasse aero oster lodz");
        assert_eq!(normalize_name("FP PAYMENT FROM JOSE\u{301} GARCÍA"), "jose garcia", "combining accents too");
        assert_eq!(normalize_name("SEPA CT Ref Bäckerei"), "backerei");
        assert_eq!(normalize_name("İSTANBUL"), "istanbul");
        assert_eq!(normalize_name("東京 Trading"), "trading");
        assert_eq!(normalize_name(""), "");
    }

    #[test]
    fn jaro_winkler_matches_the_textbook_values() {
        let close = |a: &str, b: &str, expected: f64| {
            let got = jaro_winkler(a, b);
            assert!((got - expected).abs() < 0.001, "{a} vs {b}: {got}");
        };
        close("martha", "marhta", 0.961);
        close("dwayne", "duane", 0.84);
        close("dixon", "dicksonx", 0.813);
        close("abc", "abc", 1.0);
        close("abc", "xyz", 0.0);
        close("", "abc", 0.0);
        assert_eq!(jaro_winkler("dwayne", "duane"), jaro_winkler("duane", "dwayne"), "symmetric");
    }

    #[test]
    fn names_compare_by_words_and_as_a_whole() {
        assert_eq!(name_similarity("ACME WIDGETS LTD", "Acme Widgets Limited"), 1.0);
        assert_eq!(name_similarity("Widgets Acme", "acme widgets"), 1.0, "word order is free");
        assert!(name_similarity("ACME W", "Acme Widgets") >= 0.8);
        assert!(name_similarity("ACME WIDG", "Acme Widgets Ltd") >= 0.9);
        assert!(name_similarity("Globex", "Initech") < 0.5);
        assert!(name_similarity("Globex Corporation", "Initech Ltd") < 0.5);
        assert_eq!(name_similarity("", "Acme"), 0.0);
        assert_eq!(name_similarity("Ltd", ""), 0.0);
    }

    #[test]
    fn a_normalized_name_is_reused_for_many_comparisons() {
        let payer = NormalizedName::new("FP ACME WIDGETS LTD");
        assert_eq!(payer.as_str(), "acme widgets");
        assert!(!payer.is_empty());
        let names = ["Acme Widgets plc", "Acme Gadgets", "Initech"].map(NormalizedName::new);
        let scores = names.map(|name| payer.similarity(&name));
        assert_eq!(scores[0], 1.0);
        assert!(scores[1] > scores[2], "{scores:?}");
        assert_eq!(payer.similarity(&NormalizedName::new("")), 0.0);
    }
}
