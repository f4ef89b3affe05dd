//! One element of `results` → [`UserRecord`].
//!
//! Fields are read by meaning, whatever the version:
//!
//! | field | 1.3–1.4 | 1.0–1.2 | legacy 0.x |
//! |---|---|---|---|
//! | street | `{"number": 2868, "name": "Miller Ave"}` | `"9278 new road"` (→ `street_name`) | as 1.0 |
//! | postcode | number or string | number or string | `location.zip`, number or string |
//! | `dob`, `registered` | `{"date": ISO-8601, "age"}` | Unix seconds (1.0), `"YYYY-MM-DD HH:MM:SS"` UTC (1.1), `{"date": ISO-8601}` (1.2) | Unix seconds, as a number or a digit string |
//! | username | `login.username` | `login.username` | top-level `username` |
//! | national id | `id.name` / `id.value` (value may be null) | same | top-level `SSN` (→ name `"SSN"`) |
//! | picture | `{"large", "medium", "thumbnail"}` | same | same, or one URL string (→ `picture_large`) |
//!
//! A missing member or `null` is an absent value (the `inc`/`exc` parameters leave out whole
//! members). A member of the wrong JSON type, an unreadable date, coordinate or `login.uuid`
//! rejects the record, naming the member. Credentials (`password`, `salt`, `md5`, `sha1`,
//! `sha256`, and the legacy `md5 hash`, `sha1 hash`, `sha256 hash`) are never read; unknown
//! members are ignored here and kept in the raw JSON.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::id::{self, IdSource};
use crate::model::UserRecord;

/// A record that could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Position of the record in the response's `results`.
    pub index: usize,
    /// The member at fault as a dotted path inside the user object, e.g. `"dob.date"`.
    pub field: &'static str,
    pub reason: RejectReason,
    /// What was found, for people reading the report.
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {}: {}: {} ({})",
            self.index,
            self.field,
            self.reason.as_str(),
            self.detail
        )
    }
}

/// Why a record was rejected: a small fixed set, usable as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The record (or the legacy `user` inside it) is not a JSON object.
    NotAnObject,
    /// A member has a JSON type the API never sends for it.
    WrongType,
    /// A date in none of the API's formats, or out of range.
    InvalidDate,
    /// A coordinate that is not a decimal number.
    InvalidNumber,
    /// `login.uuid` is not a UUID.
    InvalidUuid,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::WrongType => "wrong_type",
            RejectReason::InvalidDate => "invalid_date",
            RejectReason::InvalidNumber => "invalid_number",
            RejectReason::InvalidUuid => "invalid_uuid",
        }
    }
}

/// A rejection before its record index is known.
pub(super) struct Fault {
    field: &'static str,
    reason: RejectReason,
    detail: String,
}

impl Fault {
    fn wrong_type(field: &'static str, expected: &str, found: &Value) -> Fault {
        Fault {
            field,
            reason: RejectReason::WrongType,
            detail: format!("expected {expected}, found {}", kind(found)),
        }
    }

    pub(super) fn new(field: &'static str, reason: RejectReason, detail: String) -> Fault {
        Fault {
            field,
            reason,
            detail,
        }
    }
}

/// Maps element `index` of `results`.
pub(super) fn map(index: usize, element: &Value) -> Result<(UserRecord, IdSource), Rejection> {
    map_element(element).map_err(|fault| Rejection {
        index,
        field: fault.field,
        reason: fault.reason,
        detail: fault.detail,
    })
}

fn map_element(element: &Value) -> Result<(UserRecord, IdSource), Fault> {
    let Value::Object(outer) = element else {
        return Err(Fault {
            field: "record",
            reason: RejectReason::NotAnObject,
            detail: format!("found {}", kind(element)),
        });
    };
    // Legacy records are `{"user": {...}, "seed": ..., "version": ...}`; a 1.x user never has a
    // `user` member.
    let user = match outer.get("user") {
        Some(Value::Object(user)) => user,
        Some(other) => {
            return Err(Fault {
                field: "user",
                reason: RejectReason::NotAnObject,
                detail: format!("found {}", kind(other)),
            })
        }
        None => outer,
    };
    let mut record = map_user(user)?;
    let login_uuid = object(user, "login", "login")?
        .map(|login| text(login.get("uuid"), "login.uuid"))
        .transpose()?
        .flatten();
    let (id, source) = id::derive(login_uuid.as_deref(), &record)?;
    record.id = id;
    record.id_source = Some(source.as_str().to_owned());
    // A legacy record carries the API version itself; for 1.x the caller takes it from `info`.
    if !std::ptr::eq(user, outer) {
        record.source_api_version = outer
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    Ok((record, source))
}

fn map_user(user: &Map<String, Value>) -> Result<UserRecord, Fault> {
    let name = object(user, "name", "name")?;
    let location = object(user, "location", "location")?;
    let login = object(user, "login", "login")?;
    let national_id = object(user, "id", "id")?;

    let (street_number, street_name) = match location.and_then(|l| l.get("street")) {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(street)) => (None, Some(street.clone())),
        Some(Value::Object(street)) => (
            scalar_text(street.get("number"), "location.street.number")?,
            text(street.get("name"), "location.street.name")?,
        ),
        Some(other) => {
            return Err(Fault::wrong_type(
                "location.street",
                "a string or an object",
                other,
            ))
        }
    };
    let postcode = match location {
        Some(l) if l.get("postcode").is_some_and(|v| !v.is_null()) => {
            scalar_text(l.get("postcode"), "location.postcode")?
        }
        Some(l) => scalar_text(l.get("zip"), "location.zip")?,
        None => None,
    };
    let coordinates = match location {
        Some(l) => object(l, "coordinates", "location.coordinates")?,
        None => None,
    };
    let timezone = match location {
        Some(l) => object(l, "timezone", "location.timezone")?,
        None => None,
    };
    let picture = match user.get("picture") {
        None | Some(Value::Null) => Picture::default(),
        Some(Value::String(url)) => Picture {
            large: Some(url.clone()),
            ..Picture::default()
        },
        Some(Value::Object(picture)) => Picture {
            large: text(picture.get("large"), "picture.large")?,
            medium: text(picture.get("medium"), "picture.medium")?,
            thumbnail: text(picture.get("thumbnail"), "picture.thumbnail")?,
        },
        Some(other) => return Err(Fault::wrong_type("picture", "a string or an object", other)),
    };
    let (national_id_name, national_id_value) = match national_id {
        Some(id) => (
            text(id.get("name"), "id.name")?,
            scalar_text(id.get("value"), "id.value")?,
        ),
        None => match scalar_text(user.get("SSN"), "SSN")? {
            Some(ssn) => (Some("SSN".to_owned()), Some(ssn)),
            None => (None, None),
        },
    };
    let username = match login {
        Some(login) => text(login.get("username"), "login.username")?,
        None => text(user.get("username"), "username")?,
    };

    Ok(UserRecord {
        // Set by the caller once every field is known (it may be derived from them).
        id: String::new(),
        gender: text(user.get("gender"), "gender")?,
        title: member_text(name, "title", "name.title")?,
        first_name: member_text(name, "first", "name.first")?,
        last_name: member_text(name, "last", "name.last")?,
        email: text(user.get("email"), "email")?,
        username,
        date_of_birth: date(user.get("dob"), "dob", "dob.date")?,
        registered_at: date(user.get("registered"), "registered", "registered.date")?,
        phone: text(user.get("phone"), "phone")?,
        cell: text(user.get("cell"), "cell")?,
        street_number,
        street_name,
        city: member_text(location, "city", "location.city")?,
        state: member_text(location, "state", "location.state")?,
        country: member_text(location, "country", "location.country")?,
        postcode,
        latitude: coordinates
            .map(|c| coordinate(c.get("latitude"), "location.coordinates.latitude"))
            .transpose()?
            .flatten(),
        longitude: coordinates
            .map(|c| coordinate(c.get("longitude"), "location.coordinates.longitude"))
            .transpose()?
            .flatten(),
        timezone_offset: member_text(timezone, "offset", "location.timezone.offset")?,
        timezone_description: member_text(
            timezone,
            "description",
            "location.timezone.description",
        )?,
        national_id_name,
        national_id_value,
        picture_large: picture.large,
        picture_medium: picture.medium,
        picture_thumbnail: picture.thumbnail,
        nat: text(user.get("nat"), "nat")?,
        // Set by the caller: the version is in the response's or the legacy wrapper's metadata.
        source_api_version: None,
        age: age(user.get("dob"))?,
        // Set by the caller together with the id.
        id_source: None,
    })
}

/// `dob.age`, sent by the API versions whose `dob` is an object (1.2 and later).
fn age(dob: Option<&Value>) -> Result<Option<i64>, Fault> {
    let Some(Value::Object(dob)) = dob else {
        return Ok(None);
    };
    match dob.get("age") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number.as_i64().map(Some).ok_or_else(|| {
            Fault::new(
                "dob.age",
                RejectReason::InvalidNumber,
                format!("{number} is not a whole number of years"),
            )
        }),
        Some(other) => Err(Fault::wrong_type("dob.age", "a number", other)),
    }
}

#[derive(Default)]
struct Picture {
    large: Option<String>,
    medium: Option<String>,
    thumbnail: Option<String>,
}

/// A member that must be an object when present.
fn object<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a Map<String, Value>>, Fault> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(Fault::wrong_type(field, "an object", other)),
    }
}

fn member_text(
    parent: Option<&Map<String, Value>>,
    key: &str,
    field: &'static str,
) -> Result<Option<String>, Fault> {
    match parent {
        Some(parent) => text(parent.get(key), field),
        None => Ok(None),
    }
}

/// A member that must be a string when present.
fn text(value: Option<&Value>, field: &'static str) -> Result<Option<String>, Fault> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(Fault::wrong_type(field, "a string", other)),
    }
}

/// A member the API sends as a string or a number (postcode, street number, national id): kept
/// as text, a number in its JSON spelling.
fn scalar_text(value: Option<&Value>, field: &'static str) -> Result<Option<String>, Fault> {
    match value {
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        other => text(other, field).map_err(|_| {
            Fault::wrong_type(field, "a string or a number", other.unwrap_or(&Value::Null))
        }),
    }
}

/// A coordinate: a decimal string (every version so far) or a JSON number.
fn coordinate(value: Option<&Value>, field: &'static str) -> Result<Option<f64>, Fault> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_f64()
            .map(Some)
            .ok_or_else(|| Fault::new(field, RejectReason::InvalidNumber, number.to_string())),
        Some(Value::String(text)) => match text.trim().parse::<f64>() {
            Ok(number) => Ok(Some(number)),
            Err(_) => Err(Fault::new(
                field,
                RejectReason::InvalidNumber,
                format!("{text:?} is not a decimal number"),
            )),
        },
        Some(other) => Err(Fault::wrong_type(field, "a string or a number", other)),
    }
}

/// `dob` / `registered` in any version's form. `field` names the member itself, `date_field`
/// the `date` inside the 1.2+ object.
fn date(
    value: Option<&Value>,
    field: &'static str,
    date_field: &'static str,
) -> Result<Option<DateTime<Utc>>, Fault> {
    match value {
        Some(Value::Object(object)) => date(object.get("date"), date_field, date_field),
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .map(Some)
            .ok_or_else(|| {
                Fault::new(
                    field,
                    RejectReason::InvalidDate,
                    format!("{number} is not a Unix time in seconds"),
                )
            }),
        Some(Value::String(text)) => parse_date_text(text.trim()).map(Some).ok_or_else(|| {
            Fault::new(
                field,
                RejectReason::InvalidDate,
                format!("{text:?} is in none of the API's date formats"),
            )
        }),
        Some(other) => Err(Fault::wrong_type(
            field,
            "a date string, a number or an object",
            other,
        )),
    }
}

/// ISO-8601 (1.2+), `YYYY-MM-DD HH:MM:SS` in UTC (1.1), or Unix seconds as digits (0.3).
fn parse_date_text(text: &str) -> Option<DateTime<Utc>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0));
    }
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Some(date.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|naive| naive.and_utc())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
