//! [`UserRecord`] (values as the API sent them) → [`NormalizedUser`] (the values written to
//! Cassandra's `users_by_id` and `users_by_country`).
//!
//! Pure and total: [`normalize`] never panics, and returns with the user every change it made
//! ([`Repair`]) and every value it had to drop ([`Warning`]), so the caller counts them
//! (`normalize_repaired_total{field,reason}`, `normalize_warnings_total{field,reason}`) without
//! this module touching a metrics registry. The only records refused ([`ValidationError`]) are
//! those without an id or a country code, the partition key of `users_by_country`.
//!
//! Normalization is idempotent: [`NormalizedUser::to_record`] turns a result back into a
//! `UserRecord`, and normalizing that gives the same user with no repairs. The user id is
//! never changed. The rule for each column, with examples from the fixtures, is in
//! `docs/normalization.md`.

mod country;
mod names;
mod phone;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Retryable;
use crate::model::UserRecord;

pub use country::{iso_for_country_name, iso_for_nat};
pub use names::{title_case, Casing, PARTICLES};
pub use phone::{to_e164, PhoneProblem};

/// A user as written to Cassandra. Text columns are trimmed with whitespace runs collapsed to
/// one space, and `None` rather than empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedUser {
    /// The record's id, unchanged.
    pub id: String,
    /// ISO 3166-1 alpha-2: from `nat`, else from `location.country`, else "US" for a record with
    /// a US Social Security number (see [`CountrySource`]).
    pub country_code: String,
    /// The nationality code as sent, upper case; `None` when the API sent none.
    pub nat: Option<String>,
    /// Lower case, as sent ("female", "male").
    pub gender: Option<String>,
    /// Title case, like the names.
    pub title: Option<String>,
    /// Unicode-aware title case; see [`title_case`].
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Lower case, exactly one `@` with text on both sides; `None` (with a warning) otherwise.
    pub email: Option<String>,
    pub username: Option<String>,
    /// The UTC calendar date of the API's date-of-birth instant.
    pub date_of_birth: Option<NaiveDate>,
    /// Millisecond precision, Cassandra's `timestamp`.
    pub registered_at: Option<DateTime<Utc>>,
    /// As sent (trimmed).
    pub phone: Option<String>,
    /// `phone` in E.164 for `country_code`; `None` (with a warning) when it has no valid form.
    pub phone_e164: Option<String>,
    pub cell: Option<String>,
    pub cell_e164: Option<String>,
    /// As sent, or the leading house number of an API ≤ 1.2 street string.
    pub street_number: Option<String>,
    pub street_name: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    /// The country name as sent.
    pub country: Option<String>,
    /// Always text; zero-padded where the API's JSON number lost leading zeros.
    pub postcode: Option<String>,
    /// Degrees, −90..=90; both coordinates are `None` if either is invalid.
    pub latitude: Option<f64>,
    /// Degrees, −180..=180.
    pub longitude: Option<f64>,
    /// Offset from UTC in minutes: "+5:30" → 330.
    pub timezone_offset_minutes: Option<i32>,
    pub timezone_description: Option<String>,
    pub national_id_name: Option<String>,
    /// `None` when the API's generator left "NaN" or "undefined" in it.
    pub national_id_value: Option<String>,
    pub picture_large: Option<String>,
    pub picture_medium: Option<String>,
    pub picture_thumbnail: Option<String>,
    /// The API version that served the record, as sent (trimmed); from value schema v2 on.
    pub source_api_version: Option<String>,
    /// Years, 0..=150 as the API computed them; `None` (with a warning) outside that range.
    pub age: Option<i32>,
    /// How the id was obtained, e.g. "login_uuid" (see `randomuser::IdSource`).
    pub id_source: Option<String>,
}

/// The result of normalizing one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub user: NormalizedUser,
    /// Where `user.country_code` came from.
    pub country_source: CountrySource,
    /// Values changed to meet the rules.
    pub repairs: Vec<Repair>,
    /// Values dropped (written as null) because they could not be made valid.
    pub warnings: Vec<Warning>,
}

/// Where a country code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountrySource {
    /// The record's `nat`.
    Nat,
    /// The record's `location.country` name (records of `inc=` requests without `nat`).
    CountryName,
    /// Neither was sent, but the record carries a US Social Security number — the legacy 0.x
    /// API, which generated only US users, always sends one (`SSN`), and 1.x sends `id.name`
    /// "SSN" only for `nat` US.
    UsSsn,
}

impl CountrySource {
    pub fn as_str(self) -> &'static str {
        match self {
            CountrySource::Nat => "nat",
            CountrySource::CountryName => "country_name",
            CountrySource::UsSsn => "us_ssn",
        }
    }
}

/// A value the normalizer changed. `field` is the `NormalizedUser` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Repair {
    pub field: &'static str,
    pub reason: RepairReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairReason {
    /// Leading/trailing whitespace removed or inner runs collapsed.
    Whitespace,
    /// Case changed (title case for names, lower case for e-mail and gender, upper for `nat`).
    Case,
    /// An empty or all-whitespace value, written as null.
    Blank,
    /// The house number split off an API ≤ 1.2 street string.
    StreetNumberSplit,
    /// Leading zeros restored to an all-digit postcode.
    ZeroPadded,
    /// Sub-millisecond digits dropped to fit Cassandra's `timestamp`.
    SubMillisecond,
}

impl RepairReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairReason::Whitespace => "whitespace",
            RepairReason::Case => "case",
            RepairReason::Blank => "blank",
            RepairReason::StreetNumberSplit => "street_number_split",
            RepairReason::ZeroPadded => "zero_padded",
            RepairReason::SubMillisecond => "sub_millisecond",
        }
    }
}

/// A value written as null because it could not be made valid. `field` is the `NormalizedUser`
/// column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Warning {
    pub field: &'static str,
    pub reason: WarningReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningReason {
    EmailNoAt,
    EmailSeveralAt,
    EmailEmptyPart,
    EmailWhitespace,
    PhoneLetters,
    PhoneInvalidCharacter,
    PhoneUnknownCountry,
    PhoneForeignCallingCode,
    PhoneLeadingZero,
    PhoneLength,
    PhoneNorthAmericanPlan,
    OutOfRange,
    NotFinite,
    Unparseable,
    /// `nat` is not an ISO 3166 code (the API's "LEGO", a typo); it is kept, but not used for
    /// the country code.
    NotIso,
    /// "NaN" or "undefined" left in a value by the API's generator.
    GeneratorArtifact,
}

impl WarningReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WarningReason::EmailNoAt => "no_at",
            WarningReason::EmailSeveralAt => "several_at",
            WarningReason::EmailEmptyPart => "empty_part",
            WarningReason::EmailWhitespace => "whitespace",
            WarningReason::PhoneLetters => "letters",
            WarningReason::PhoneInvalidCharacter => "invalid_character",
            WarningReason::PhoneUnknownCountry => "unknown_country",
            WarningReason::PhoneForeignCallingCode => "foreign_calling_code",
            WarningReason::PhoneLeadingZero => "leading_zero",
            WarningReason::PhoneLength => "length",
            WarningReason::PhoneNorthAmericanPlan => "north_american_plan",
            WarningReason::OutOfRange => "out_of_range",
            WarningReason::NotFinite => "not_finite",
            WarningReason::Unparseable => "unparseable",
            WarningReason::NotIso => "not_iso",
            WarningReason::GeneratorArtifact => "generator_artifact",
        }
    }
}

/// A record that cannot be written to Cassandra at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {}", reason.describe())]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: ValidationReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidationReason {
    /// The id is empty.
    MissingId,
    /// No `nat`, known `location.country` name or US SSN to take a country code from.
    NoCountry,
}

impl ValidationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationReason::MissingId => "missing_id",
            ValidationReason::NoCountry => "no_country",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ValidationReason::MissingId => "the record has no id",
            ValidationReason::NoCountry => {
                "no ISO nationality, known location.country name or US SSN to derive it from"
            }
        }
    }
}

impl Retryable for ValidationError {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// Normalizes one record. [`normalize_owned`] does the same without copying the record's text.
pub fn normalize(record: &UserRecord) -> Result<Normalized, ValidationError> {
    normalize_owned(record.clone())
}

/// Normalizes one record, moving its text into the result wherever it is already normal: the
/// hot path (the processor, the codec benchmark) owns the decoded record and needs it no more.
pub fn normalize_owned(record: UserRecord) -> Result<Normalized, ValidationError> {
    let mut notes = Notes::default();
    if record.id.trim().is_empty() {
        return Err(ValidationError {
            field: "id",
            reason: ValidationReason::MissingId,
        });
    }

    let nat = notes.text("nat", record.nat).map(|nat| {
        let (upper, changed) = to_case(
            nat,
            str::to_uppercase,
            str::make_ascii_uppercase,
            u8::is_ascii_lowercase,
        );
        if changed {
            notes.repair("nat", RepairReason::Case);
        }
        upper
    });
    let country = notes.text("country", record.country);
    let national_id_name = notes.text("national_id_name", record.national_id_name);
    let (country_code, country_source) = country_code(
        nat.as_deref(),
        country.as_deref(),
        national_id_name.as_deref(),
    )
    .ok_or(ValidationError {
        field: "country_code",
        reason: ValidationReason::NoCountry,
    })?;
    if nat.as_deref().is_some_and(|nat| iso_for_nat(nat).is_none()) {
        notes.warn("nat", WarningReason::NotIso);
    }
    let casing = Casing {
        turkic: matches!(country_code, "TR" | "AZ"),
    };

    let phone = notes.text("phone", record.phone);
    let phone_e164 = notes.phone("phone_e164", phone.as_deref(), country_code);
    let cell = notes.text("cell", record.cell);
    let cell_e164 = notes.phone("cell_e164", cell.as_deref(), country_code);

    let mut street_number = notes.text("street_number", record.street_number);
    let mut street_name = notes.text("street_name", record.street_name);
    if street_number.is_none() {
        if let Some((number, name)) = street_name.as_deref().and_then(split_house_number) {
            let (number, name) = (number.to_owned(), name.to_owned());
            street_number = Some(number);
            street_name = Some(name);
            notes.repair("street_number", RepairReason::StreetNumberSplit);
        }
    }

    let (latitude, longitude) = notes.coordinates(record.latitude, record.longitude);

    let user = NormalizedUser {
        id: record.id,
        country_code: country_code.to_owned(),
        nat,
        gender: notes.lower("gender", record.gender),
        title: notes.name("title", record.title, casing),
        first_name: notes.name("first_name", record.first_name, casing),
        last_name: notes.name("last_name", record.last_name, casing),
        email: notes.email(record.email),
        username: notes.text("username", record.username),
        date_of_birth: record.date_of_birth.map(|dob| dob.date_naive()),
        registered_at: notes.registered(record.registered_at),
        phone,
        phone_e164,
        cell,
        cell_e164,
        street_number,
        street_name,
        city: notes.text("city", record.city),
        state: notes.text("state", record.state),
        country,
        postcode: notes.postcode(record.postcode, country_code),
        latitude,
        longitude,
        timezone_offset_minutes: notes.timezone(record.timezone_offset),
        timezone_description: notes.text("timezone_description", record.timezone_description),
        national_id_name,
        national_id_value: notes.national_id(record.national_id_value),
        picture_large: notes.text("picture_large", record.picture_large),
        picture_medium: notes.text("picture_medium", record.picture_medium),
        picture_thumbnail: notes.text("picture_thumbnail", record.picture_thumbnail),
        source_api_version: notes.text("source_api_version", record.source_api_version),
        age: notes.age(record.age),
        id_source: notes.text("id_source", record.id_source),
    };
    Ok(Normalized {
        user,
        country_source,
        repairs: notes.repairs,
        warnings: notes.warnings,
    })
}

impl NormalizedUser {
    /// The normalized values as a [`UserRecord`]: what [`normalize`] maps back to this same
    /// user. The date of birth becomes midnight UTC, the offset "+H:MM".
    pub fn to_record(&self) -> UserRecord {
        UserRecord {
            id: self.id.clone(),
            gender: self.gender.clone(),
            title: self.title.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            email: self.email.clone(),
            username: self.username.clone(),
            date_of_birth: self
                .date_of_birth
                .map(|date| date.and_time(NaiveTime::MIN).and_utc()),
            registered_at: self.registered_at,
            phone: self.phone.clone(),
            cell: self.cell.clone(),
            street_number: self.street_number.clone(),
            street_name: self.street_name.clone(),
            city: self.city.clone(),
            state: self.state.clone(),
            country: self.country.clone(),
            postcode: self.postcode.clone(),
            latitude: self.latitude,
            longitude: self.longitude,
            timezone_offset: self.timezone_offset_minutes.map(format_offset),
            timezone_description: self.timezone_description.clone(),
            national_id_name: self.national_id_name.clone(),
            national_id_value: self.national_id_value.clone(),
            picture_large: self.picture_large.clone(),
            picture_medium: self.picture_medium.clone(),
            picture_thumbnail: self.picture_thumbnail.clone(),
            nat: self.nat.clone(),
            source_api_version: self.source_api_version.clone(),
            age: self.age.map(i64::from),
            id_source: self.id_source.clone(),
        }
    }
}

fn country_code(
    nat: Option<&str>,
    country: Option<&str>,
    national_id_name: Option<&str>,
) -> Option<(&'static str, CountrySource)> {
    if let Some(code) = nat.and_then(iso_for_nat) {
        return Some((code, CountrySource::Nat));
    }
    if let Some(code) = country.and_then(iso_for_country_name) {
        return Some((code, CountrySource::CountryName));
    }
    (national_id_name == Some("SSN")).then_some(("US", CountrySource::UsSsn))
}

/// "9278 new road" → ("9278", "new road").
fn split_house_number(street: &str) -> Option<(&str, &str)> {
    let (number, name) = street.split_once(' ')?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some((number, name))
}

/// "+5:30" → 330, "-3:30" → −210, "0:00" → 0. Hours may have one or two digits, minutes two.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => (1, text),
    };
    let (hours, minutes) = rest.split_once(':')?;
    let digits = |s: &str, lens: &[usize]| {
        (lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i32>().ok())
            .flatten()
    };
    let (hours, minutes) = (digits(hours, &[1, 2])?, digits(minutes, &[2])?);
    (minutes < 60).then_some(sign * (hours * 60 + minutes))
}

/// The API's own spelling: "+5:30", "-3:30", "0:00".
fn format_offset(minutes: i32) -> String {
    let sign = match minutes.signum() {
        1 => "+",
        -1 => "-",
        _ => "",
    };
    let minutes = minutes.unsigned_abs();
    format!("{sign}{}:{:02}", minutes / 60, minutes % 60)
}

/// Whether `text` is already trimmed with its whitespace runs collapsed to single spaces (what
/// joining its `split_whitespace` words with spaces gives), so it needs no rebuilding.
fn is_collapsed(text: &str) -> bool {
    // Most values (ids, URLs, e-mail addresses, usernames) are ASCII without a space: a check
    // without branches per byte, which the compiler vectorizes, settles them.
    let bytes = text.as_bytes();
    if !bytes.is_empty()
        && bytes
            .iter()
            .fold(true, |plain, &b| plain & (b > b' ' && b < 0x80))
    {
        return true;
    }
    // One pass over the bytes while they are ASCII (the usual case), where only the space and
    // 0x09..=0x0D are whitespace.
    let mut after_space = true;
    let mut ascii = true;
    for &byte in bytes {
        match byte {
            b' ' if after_space => return false,
            b' ' => after_space = true,
            0x09..=0x0d => return false,
            0x80.. => {
                ascii = false;
                break;
            }
            _ => after_space = false,
        }
    }
    if ascii {
        return !after_space || text.is_empty();
    }
    after_space = true;
    for c in text.chars() {
        if c.is_whitespace() {
            if after_space || c != ' ' {
                return false;
            }
            after_space = true;
        } else {
            after_space = false;
        }
    }
    // Also true for "": blank either way.
    !after_space || text.is_empty()
}

/// `text` in another case, and whether that changed it. ASCII text is converted in place, and
/// ASCII text without a byte `needs_change` is not converted at all.
fn to_case(
    mut text: String,
    convert: impl Fn(&str) -> String,
    convert_ascii: impl Fn(&mut str),
    needs_change: impl Fn(&u8) -> bool,
) -> (String, bool) {
    if text.is_ascii() {
        if !text.bytes().any(|b| needs_change(&b)) {
            return (text, false);
        }
        convert_ascii(&mut text);
        return (text, true);
    }
    let converted = convert(&text);
    let changed = converted != text;
    (converted, changed)
}

/// Repairs and warnings as they are found.
#[derive(Default)]
struct Notes {
    repairs: Vec<Repair>,
    warnings: Vec<Warning>,
}

impl Notes {
    fn repair(&mut self, field: &'static str, reason: RepairReason) {
        self.repairs.push(Repair { field, reason });
    }

    fn warn(&mut self, field: &'static str, reason: WarningReason) {
        self.warnings.push(Warning { field, reason });
    }

    fn changed(&mut self, field: &'static str, before: &str, after: &str, reason: RepairReason) {
        if before != after {
            self.repair(field, reason);
        }
    }

    /// Trimmed, whitespace runs collapsed, blank → `None`.
    fn text(&mut self, field: &'static str, value: Option<String>) -> Option<String> {
        let value = value?;
        if is_collapsed(&value) {
            if value.is_empty() {
                self.repair(field, RepairReason::Blank);
                return None;
            }
            return Some(value);
        }
        let mut clean = String::with_capacity(value.len());
        for word in value.split_whitespace() {
            if !clean.is_empty() {
                clean.push(' ');
            }
            clean.push_str(word);
        }
        if clean.is_empty() {
            self.repair(field, RepairReason::Blank);
            return None;
        }
        self.repair(field, RepairReason::Whitespace);
        Some(clean)
    }

    fn lower(&mut self, field: &'static str, value: Option<String>) -> Option<String> {
        let text = self.text(field, value)?;
        let (lower, changed) = to_case(
            text,
            str::to_lowercase,
            str::make_ascii_lowercase,
            u8::is_ascii_uppercase,
        );
        if changed {
            self.repair(field, RepairReason::Case);
        }
        Some(lower)
    }

    fn name(
        &mut self,
        field: &'static str,
        value: Option<String>,
        casing: Casing,
    ) -> Option<String> {
        let mut text = self.text(field, value)?;
        if let Some(changed) = names::title_case_ascii_in_place(&mut text, casing) {
            if changed {
                self.repair(field, RepairReason::Case);
            }
            return Some(text);
        }
        let cased = title_case(&text, casing);
        self.changed(field, &text, &cased, RepairReason::Case);
        Some(cased)
    }

    fn email(&mut self, value: Option<String>) -> Option<String> {
        const FIELD: &str = "email";
        let value = value?;
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.repair(FIELD, RepairReason::Blank);
            return None;
        }
        let problem = if trimmed.chars().any(char::is_whitespace) {
            Some(WarningReason::EmailWhitespace)
        } else {
            let mut parts = trimmed.split('@');
            match (parts.next(), parts.next(), parts.next()) {
                (_, None, _) => Some(WarningReason::EmailNoAt),
                (Some(local), Some(domain), None) if local.is_empty() || domain.is_empty() => {
                    Some(WarningReason::EmailEmptyPart)
                }
                (_, Some(_), None) => None,
                (_, Some(_), Some(_)) => Some(WarningReason::EmailSeveralAt),
            }
        };
        if let Some(problem) = problem {
            self.warn(FIELD, problem);
            return None;
        }
        let trimmed = if trimmed.len() == value.len() {
            value
        } else {
            self.repair(FIELD, RepairReason::Whitespace);
            trimmed.to_owned()
        };
        let (lower, changed) = to_case(
            trimmed,
            str::to_lowercase,
            str::make_ascii_lowercase,
            u8::is_ascii_uppercase,
        );
        if changed {
            self.repair(FIELD, RepairReason::Case);
        }
        Some(lower)
    }

    fn phone(
        &mut self,
        field: &'static str,
        number: Option<&str>,
        country_code: &str,
    ) -> Option<String> {
        let problem = match to_e164(number?, country_code) {
            Ok(e164) => return Some(e164),
            Err(problem) => problem,
        };
        self.warn(
            field,
            match problem {
                PhoneProblem::Letters => WarningReason::PhoneLetters,
                PhoneProblem::InvalidCharacter => WarningReason::PhoneInvalidCharacter,
                PhoneProblem::UnknownCountry => WarningReason::PhoneUnknownCountry,
                PhoneProblem::ForeignCallingCode => WarningReason::PhoneForeignCallingCode,
                PhoneProblem::LeadingZero => WarningReason::PhoneLeadingZero,
                PhoneProblem::Length => WarningReason::PhoneLength,
                PhoneProblem::NorthAmericanPlan => WarningReason::PhoneNorthAmericanPlan,
            },
        );
        None
    }

    fn coordinates(
        &mut self,
        latitude: Option<f64>,
        longitude: Option<f64>,
    ) -> (Option<f64>, Option<f64>) {
        let mut check = |field, value: Option<f64>, limit: f64| match value {
            Some(v) if !v.is_finite() => {
                self.warn(field, WarningReason::NotFinite);
                false
            }
            Some(v) if v.abs() > limit => {
                self.warn(field, WarningReason::OutOfRange);
                false
            }
            _ => true,
        };
        let latitude_ok = check("latitude", latitude, 90.0);
        let longitude_ok = check("longitude", longitude, 180.0);
        if latitude_ok && longitude_ok {
            (latitude, longitude)
        } else {
            (None, None)
        }
    }

    fn registered(&mut self, at: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let at = at?;
        let millis = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
        if millis != at {
            self.repair("registered_at", RepairReason::SubMillisecond);
        }
        Some(millis)
    }

    fn postcode(&mut self, value: Option<String>, country_code: &str) -> Option<String> {
        let text = self.text("postcode", value)?;
        match country::postcode_digits(country_code) {
            Some(digits) if text.len() < digits && text.bytes().all(|b| b.is_ascii_digit()) => {
                self.repair("postcode", RepairReason::ZeroPadded);
                Some(format!("{text:0>digits$}"))
            }
            _ => Some(text),
        }
    }

    fn timezone(&mut self, value: Option<String>) -> Option<i32> {
        const FIELD: &str = "timezone_offset_minutes";
        let text = self.text(FIELD, value)?;
        let Some(minutes) = parse_offset(&text) else {
            self.warn(FIELD, WarningReason::Unparseable);
            return None;
        };
        // UTC−12:00 to UTC+14:00 are the offsets in use anywhere.
        if !(-12 * 60..=14 * 60).contains(&minutes) {
            self.warn(FIELD, WarningReason::OutOfRange);
            return None;
        }
        Some(minutes)
    }

    fn age(&mut self, years: Option<i64>) -> Option<i32> {
        let years = years?;
        // The API's generator stays well inside this; anything else is not an age.
        match i32::try_from(years) {
            Ok(years) if (0..=150).contains(&years) => Some(years),
            _ => {
                self.warn("age", WarningReason::OutOfRange);
                None
            }
        }
    }

    fn national_id(&mut self, value: Option<String>) -> Option<String> {
        const FIELD: &str = "national_id_value";
        let text = self.text(FIELD, value)?;
        if text.contains("NaN") || text.contains("undefined") {
            self.warn(FIELD, WarningReason::GeneratorArtifact);
            return None;
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests;
