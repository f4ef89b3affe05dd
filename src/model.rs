//! The user as userstream carries it between stages: the typed columns of PostgreSQL's `users`
//! table, and the fields of the Avro `User` value on Kafka.
//!
//! It is built from one randomuser.me API record by [`crate::randomuser`]; everything the API
//! sends is kept in PostgreSQL's `raw` JSON, but only these fields travel further. The API's
//! credentials (`login.password`, `salt`, `md5`, `sha1`, `sha256`) are deliberately absent:
//! they never leave PostgreSQL.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One user, as captured from the API (not yet normalized: values are as the API sent them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// `login.uuid`, or for API versions without one a deterministic id derived from the record.
    pub id: String,
    pub gender: Option<String>,
    pub title: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// `login.username` (not a credential).
    pub username: Option<String>,
    pub date_of_birth: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub phone: Option<String>,
    pub cell: Option<String>,
    /// Street number as sent (API ≥ 1.3 sends a number; older versions fold it into the name).
    pub street_number: Option<String>,
    pub street_name: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    /// Always text: the API sends a number for most nationalities and a string for CA/GB/NL/NO.
    pub postcode: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// As sent, e.g. "+5:30".
    pub timezone_offset: Option<String>,
    pub timezone_description: Option<String>,
    /// `id.name`, e.g. "SSN"; `id.value` may be null in the API.
    pub national_id_name: Option<String>,
    pub national_id_value: Option<String>,
    pub picture_large: Option<String>,
    pub picture_medium: Option<String>,
    pub picture_thumbnail: Option<String>,
    /// Nationality code as sent, e.g. "GB".
    pub nat: Option<String>,
    /// The API version that served the record (`info.version`, or a legacy record's own
    /// `version`), e.g. "1.4". Schema v2 called it `api_version`.
    pub source_api_version: Option<String>,
    /// `dob.age` in years as the API computed it when serving the record (an `int` in schema v2).
    pub age: Option<i64>,
    /// How `id` was obtained: [`crate::randomuser::IdSource::as_str`], e.g. "login_uuid".
    pub id_source: Option<String>,
}

impl UserRecord {
    /// A user with only an id, every other field absent: the starting point for building one
    /// field by field.
    pub fn with_id(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            gender: None,
            title: None,
            first_name: None,
            last_name: None,
            email: None,
            username: None,
            date_of_birth: None,
            registered_at: None,
            phone: None,
            cell: None,
            street_number: None,
            street_name: None,
            city: None,
            state: None,
            country: None,
            postcode: None,
            latitude: None,
            longitude: None,
            timezone_offset: None,
            timezone_description: None,
            national_id_name: None,
            national_id_value: None,
            picture_large: None,
            picture_medium: None,
            picture_thumbnail: None,
            nat: None,
            source_api_version: None,
            age: None,
            id_source: None,
        }
    }
}

/// What a change carries of the version it replaced: the fields the key of the user's
/// `users_by_country` row is computed from (see `normalize`), so that the processor can retire
/// that row without reading it. Set for updates and deletes, absent for a create.
///
/// On Kafka it travels as headers (a delete's value is a tombstone), one per non-null field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeforeImage {
    pub nat: Option<String>,
    pub country: Option<String>,
    pub national_id_name: Option<String>,
    pub registered_at: Option<DateTime<Utc>>,
}

impl BeforeImage {
    pub const NAT_HEADER: &'static str = "before_nat";
    pub const COUNTRY_HEADER: &'static str = "before_country";
    pub const NATIONAL_ID_NAME_HEADER: &'static str = "before_national_id_name";
    /// Microseconds since the Unix epoch, like `source_ts_us`.
    pub const REGISTERED_AT_HEADER: &'static str = "before_registered_at_us";

    /// The image as a user with only these fields, ready to be normalized like any version.
    pub fn to_record(&self, id: &str) -> UserRecord {
        UserRecord {
            nat: self.nat.clone(),
            country: self.country.clone(),
            national_id_name: self.national_id_name.clone(),
            registered_at: self.registered_at,
            ..UserRecord::with_id(id)
        }
    }
}
