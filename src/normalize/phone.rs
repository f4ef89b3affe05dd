//! National phone numbers → E.164 (`+` calling code, national significant number).
//!
//! The check is structural — the characters, the trunk prefix, the number's length and, for
//! the North American plan, the leading digits — not whether a number is allocated: the API's
//! numbers are random digits in each country's layout.
//!
//! 1. Only digits and the separators space, `-`, `.`, `/`, `(`, `)` are allowed, with an optional
//!    leading `+`. A letter (the API sends UA numbers like "(096) G52-8383" and some CA ones like
//!    "M62 E17-6409") or any other character makes the number invalid.
//! 2. With a leading `+`, the digits must start with the country's calling code, which is
//!    removed. Otherwise the country's trunk prefix ("0" in most of Europe, "1" in North
//!    America) is removed when present.
//! 3. What is left, the national significant number, must have one of the country's lengths and
//!    must not start with 0 (a leading 0 is always a trunk or international prefix). In the
//!    North American plan the area code and the exchange must start with 2–9.

/// How one country writes its numbers.
struct Plan {
    calling_code: &'static str,
    trunk_prefix: Option<char>,
    /// Lengths of the national significant number, inclusive.
    min_len: usize,
    max_len: usize,
    north_american: bool,
}

const fn plan(calling_code: &'static str, trunk: Option<char>, min: usize, max: usize) -> Plan {
    Plan {
        calling_code,
        trunk_prefix: trunk,
        min_len: min,
        max_len: max,
        north_american: false,
    }
}

const NORTH_AMERICA: Plan = Plan {
    calling_code: "1",
    trunk_prefix: Some('1'),
    min_len: 10,
    max_len: 10,
    north_american: true,
};

/// The numbering plans of the API's 21 nationalities.
fn plan_for(country_code: &str) -> Option<Plan> {
    let zero = Some('0');
    Some(match country_code {
        "AU" => plan("61", zero, 9, 9),
        "BR" => plan("55", zero, 10, 11),
        "CA" | "US" => NORTH_AMERICA,
        "CH" => plan("41", zero, 9, 9),
        "DE" => plan("49", zero, 6, 13),
        "DK" => plan("45", None, 8, 8),
        "ES" => plan("34", None, 9, 9),
        "FI" => plan("358", zero, 5, 12),
        "FR" => plan("33", zero, 9, 9),
        "GB" => plan("44", zero, 9, 10),
        "IE" => plan("353", zero, 7, 9),
        "IN" => plan("91", zero, 10, 10),
        "IR" => plan("98", zero, 10, 10),
        "MX" => plan("52", None, 10, 10),
        "NL" => plan("31", zero, 9, 9),
        "NO" => plan("47", None, 8, 8),
        "NZ" => plan("64", zero, 8, 10),
        "RS" => plan("381", zero, 8, 10),
        "TR" => plan("90", zero, 10, 10),
        "UA" => plan("380", zero, 9, 9),
        _ => return None,
    })
}

/// Why a number has no E.164 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneProblem {
    Letters,
    InvalidCharacter,
    /// No numbering plan is known for the country.
    UnknownCountry,
    /// A `+` number of another country.
    ForeignCallingCode,
    LeadingZero,
    Length,
    /// Area code or exchange starting with 0 or 1 in the North American plan.
    NorthAmericanPlan,
}

/// The E.164 form of `number` (already trimmed) as a number of `country_code`.
pub fn to_e164(number: &str, country_code: &str) -> Result<String, PhoneProblem> {
    let international = number.starts_with('+');
    let body = if international { &number[1..] } else { number };
    let mut digit_count = 0;
    for c in body.chars() {
        match c {
            '0'..='9' => digit_count += 1,
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            c if c.is_alphabetic() => return Err(PhoneProblem::Letters),
            _ => return Err(PhoneProblem::InvalidCharacter),
        }
    }
    // The digits are read from `body` again rather than collected: one allocation, the result.
    let digits = || body.bytes().filter(u8::is_ascii_digit);
    let plan = plan_for(country_code).ok_or(PhoneProblem::UnknownCountry)?;
    let first_digit = digits().next();
    let prefix_len = if international {
        let calling_code = plan.calling_code.as_bytes();
        if !digits()
            .take(calling_code.len())
            .eq(calling_code.iter().copied())
        {
            return Err(PhoneProblem::ForeignCallingCode);
        }
        calling_code.len()
    } else {
        match plan.trunk_prefix {
            // In North America the trunk "1" is only a prefix when the rest is a full number.
            Some(trunk) if plan.north_american => {
                usize::from(first_digit == Some(trunk as u8) && digit_count - 1 == plan.max_len)
            }
            Some(trunk) => usize::from(first_digit == Some(trunk as u8)),
            None => 0,
        }
    };
    let national = || digits().skip(prefix_len);
    let national_len = digit_count - prefix_len;
    if national().next() == Some(b'0') {
        return Err(PhoneProblem::LeadingZero);
    }
    if !(plan.min_len..=plan.max_len).contains(&national_len) {
        return Err(PhoneProblem::Length);
    }
    if plan.north_american {
        let mut leading = national();
        let area = leading.next();
        let exchange = leading.nth(2);
        if area < Some(b'2') || exchange < Some(b'2') {
            return Err(PhoneProblem::NorthAmericanPlan);
        }
    }
    let mut e164 = String::with_capacity(1 + plan.calling_code.len() + national_len);
    e164.push('+');
    e164.push_str(plan.calling_code);
    e164.extend(national().map(char::from));
    Ok(e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_layouts_of_each_country() {
        let cases = [
            ("AU", "02-1234-5678", "+61212345678"),
            ("AU", "0412-345-678", "+61412345678"),
            ("BR", "(11) 3456-7890", "+551134567890"),
            ("CH", "078 123 45 67", "+41781234567"),
            ("DE", "0171-2345678", "+491712345678"),
            ("DK", "31234567", "+4531234567"),
            ("ES", "912-345-678", "+34912345678"),
            ("FI", "02-123-456", "+3582123456"),
            ("FI", "041-123-45-67", "+358411234567"),
            ("FR", "01-23-45-67-89", "+33123456789"),
            ("GB", "016974 02531", "+441697402531"),
            ("GB", "0121 234 5678", "+441212345678"),
            ("IE", "011-962-7516", "+353119627516"),
            ("IN", "9876543210", "+919876543210"),
            ("IR", "0912-345-6789", "+989123456789"),
            ("MX", "(612) 345 6789", "+526123456789"),
            ("NL", "(020) 1234567", "+31201234567"),
            ("NO", "41234567", "+4741234567"),
            ("NZ", "(234)-567-8901", "+642345678901"),
            ("RS", "012-3456-789", "+381123456789"),
            ("TR", "(312)-345-6789", "+903123456789"),
            ("US", "(714) 951-5847", "+17149515847"),
            ("US", "1 (714) 951-5847", "+17149515847"),
            ("US", "+1 714 951 5847", "+17149515847"),
        ];
        for (country, number, e164) in cases {
            assert_eq!(
                to_e164(number, country).as_deref(),
                Ok(e164),
                "{country} {number}"
            );
        }
    }

    #[test]
    fn invalid_numbers_say_why() {
        let cases = [
            ("UA", "(096) G52-8383", PhoneProblem::Letters),
            ("CA", "M62 E17-6409", PhoneProblem::Letters),
            ("US", "714#951#5847", PhoneProblem::InvalidCharacter),
            ("JP", "03-1234-5678", PhoneProblem::UnknownCountry),
            ("US", "+44 20 7946 0958", PhoneProblem::ForeignCallingCode),
            ("US", "(089)-251-0228", PhoneProblem::LeadingZero),
            ("US", "(180)-955-1412", PhoneProblem::NorthAmericanPlan),
            ("US", "(308)-167-0995", PhoneProblem::NorthAmericanPlan),
            ("NL", "(656)-976-4980", PhoneProblem::Length),
            ("GB", "0112324 651 6009", PhoneProblem::Length),
            ("DK", "01234567", PhoneProblem::LeadingZero),
            ("TR", "(012)-345-6789", PhoneProblem::Length),
            ("AU", "00-1234-5678", PhoneProblem::LeadingZero),
            ("US", "", PhoneProblem::Length),
        ];
        for (country, number, problem) in cases {
            assert_eq!(to_e164(number, country), Err(problem), "{country} {number}");
        }
    }
}
