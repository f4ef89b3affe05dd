//! Country codes: ISO 3166-1 alpha-2, the API's `nat` codes, and the country names it sends in
//! `location.country`.

/// Every officially assigned ISO 3166-1 alpha-2 code.
const ISO_3166_ALPHA2: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA \
RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// The ISO code for a nationality code (upper case): itself when it is one, and "GB" for the
/// "UK" that many systems (though not the API so far) use.
pub fn iso_for_nat(nat: &str) -> Option<&'static str> {
    if nat == "UK" {
        return Some("GB");
    }
    if nat.len() != 2 {
        return None;
    }
    // The list is sorted with every code at a multiple of 3 bytes: a binary search by position.
    let codes = (ISO_3166_ALPHA2.len() + 1) / 3;
    let code_at = |index: usize| &ISO_3166_ALPHA2[3 * index..3 * index + 2];
    let (mut low, mut high) = (0, codes);
    while low < high {
        let middle = (low + high) / 2;
        match code_at(middle).cmp(nat) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => return Some(code_at(middle)),
        }
    }
    None
}

/// The ISO code for a `location.country` name, compared case-insensitively: the names the API
/// sends for its 21 nationalities, plus the common alternatives.
pub fn iso_for_country_name(name: &str) -> Option<&'static str> {
    let name = name.trim().to_lowercase();
    COUNTRY_NAMES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, code)| code)
}

const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("australia", "AU"),
    ("brazil", "BR"),
    ("brasil", "BR"),
    ("canada", "CA"),
    ("switzerland", "CH"),
    ("germany", "DE"),
    ("deutschland", "DE"),
    ("denmark", "DK"),
    ("spain", "ES"),
    ("finland", "FI"),
    ("france", "FR"),
    ("united kingdom", "GB"),
    ("great britain", "GB"),
    ("uk", "GB"),
    ("ireland", "IE"),
    ("india", "IN"),
    ("iran", "IR"),
    ("mexico", "MX"),
    ("netherlands", "NL"),
    ("the netherlands", "NL"),
    ("norway", "NO"),
    ("new zealand", "NZ"),
    ("serbia", "RS"),
    ("turkey", "TR"),
    ("türkiye", "TR"),
    ("ukraine", "UA"),
    ("united states", "US"),
    ("united states of america", "US"),
    ("usa", "US"),
];

/// Countries whose postcodes are a fixed number of digits, and where the API generates that
/// many: a shorter all-digit postcode lost its leading zeros by being sent as a JSON number
/// (e.g. AU `800` for Darwin's `0800`). Countries where the API's length differs from the real
/// one (BR, DK, IE, IN, IR, NZ) are deliberately absent: padding there would invent digits.
pub fn postcode_digits(country_code: &str) -> Option<usize> {
    match country_code {
        "AU" | "CH" | "NO" => Some(4),
        "DE" | "ES" | "FI" | "FR" | "MX" | "RS" | "TR" | "UA" | "US" => Some(5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iso_list_is_complete_and_well_formed() {
        let codes: Vec<&str> = ISO_3166_ALPHA2.split(' ').collect();
        assert_eq!(codes.len(), 249);
        assert!(
            codes.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted, no duplicates"
        );
        assert!(codes
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())));
        // The binary search finds every code, and nothing between, before or after them.
        for code in &codes {
            assert_eq!(iso_for_nat(code), Some(*code));
        }
        for other in ["AA", "AB", "ZZ", "A", "ADE", "", "ad", " AD", "Ä"] {
            assert_eq!(iso_for_nat(other), None, "{other:?}");
        }
    }

    #[test]
    fn nat_codes() {
        for nat in [
            "AU", "BR", "CA", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE", "IN", "IR", "MX",
            "NL", "NO", "NZ", "RS", "TR", "UA", "US",
        ] {
            assert_eq!(iso_for_nat(nat), Some(nat));
        }
        assert_eq!(iso_for_nat("UK"), Some("GB"));
        assert_eq!(iso_for_nat("LEGO"), None);
        assert_eq!(iso_for_nat("XX"), None);
    }

    #[test]
    fn country_names() {
        assert_eq!(iso_for_country_name("United Kingdom"), Some("GB"));
        assert_eq!(iso_for_country_name(" new zealand "), Some("NZ"));
        assert_eq!(iso_for_country_name("Atlantis"), None);
        for &(_, code) in COUNTRY_NAMES {
            assert_eq!(iso_for_nat(code), Some(code));
        }
    }
}
