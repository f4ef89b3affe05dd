//! The user id: `login.uuid`, or a UUID v5 derived from the record where the API sent none
//! (1.0, 1.1, legacy 0.x, and `inc=` subsets without `login`).
//!
//! The derived id must be the same every time the same person is fetched, and should survive
//! changes to the person's mutable data (address, phone, picture). So it is built from the
//! first of these the record has:
//!
//! 1. `login.uuid` — used as is (canonical lower-case hyphenated form).
//! 2. [`IdSource::UsernameRegistered`] — the username and the registration instant: what a
//!    login system itself keys an account by; neither changes over an account's life, and the
//!    API generates usernames like `purplefrog560` whose collisions the registration time
//!    (to the second) separates.
//! 3. [`IdSource::EmailDob`] — the e-mail (trimmed, lower-case) and the date of birth instant.
//! 4. [`IdSource::Content`] — nothing identifying was sent (e.g. `inc=name,email,picture`, or the
//!    2013 captures, which have neither username nor dates): a hash of the person's fields
//!    (gender, name, e-mail, phones, address, national id, picture), listed explicitly so that
//!    adding a field to the model never changes an id. The same record still always gets the
//!    same id, but a change to any of those fields gives a new one — there is nothing stable to
//!    key on, and merging two different people would be worse than splitting one.
//!
//! The v5 name is a JSON array `[tier, values...]`, so no choice of values can make two tiers
//! or two value lists produce the same name.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::record::{Fault, RejectReason};
use crate::model::UserRecord;

/// The v5 namespace of derived ids: `uuid5(NAMESPACE_URL, "https://randomuser.me/#userstream-user-id")`.
/// Changing it changes every derived id.
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0xf6676f7a_f16a_5656_8557_265eb9b3f8e0);

/// Where a record's id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdSource {
    LoginUuid,
    UsernameRegistered,
    EmailDob,
    Content,
}

impl IdSource {
    /// A short, fixed label for metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            IdSource::LoginUuid => "login_uuid",
            IdSource::UsernameRegistered => "username_registered",
            IdSource::EmailDob => "email_dob",
            IdSource::Content => "content",
        }
    }
}

/// The id of a record whose other fields are already mapped.
pub(super) fn derive(
    login_uuid: Option<&str>,
    record: &UserRecord,
) -> Result<(String, IdSource), Fault> {
    if let Some(text) = login_uuid {
        return Uuid::parse_str(text.trim())
            .map(|uuid| (uuid.hyphenated().to_string(), IdSource::LoginUuid))
            .map_err(|error| {
                Fault::new(
                    "login.uuid",
                    RejectReason::InvalidUuid,
                    format!("{text:?}: {error}"),
                )
            });
    }
    let username = non_blank(record.username.as_deref());
    let email = non_blank(record.email.as_deref()).map(str::to_lowercase);
    let (source, values): (IdSource, Vec<Option<String>>) =
        match (username, record.registered_at, email, record.date_of_birth) {
            (Some(username), Some(registered), _, _) => (
                IdSource::UsernameRegistered,
                vec![Some(username.to_owned()), Some(instant(registered))],
            ),
            (_, _, Some(email), Some(dob)) => {
                (IdSource::EmailDob, vec![Some(email), Some(instant(dob))])
            }
            _ => (IdSource::Content, content(record)),
        };
    let mut name = vec![Some(source.as_str().to_owned())];
    name.extend(values);
    // Serializing a list of optional strings cannot fail; the fallback only keeps this total.
    let bytes = serde_json::to_vec(&name).unwrap_or_default();
    Ok((
        Uuid::new_v5(&ID_NAMESPACE, &bytes).hyphenated().to_string(),
        source,
    ))
}

fn non_blank(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|text| !text.is_empty())
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The person's fields, in a fixed order that does not follow the model's.
fn content(record: &UserRecord) -> Vec<Option<String>> {
    [
        &record.gender,
        &record.title,
        &record.first_name,
        &record.last_name,
        &record.email,
        &record.phone,
        &record.cell,
        &record.street_number,
        &record.street_name,
        &record.city,
        &record.state,
        &record.postcode,
        &record.country,
        &record.national_id_name,
        &record.national_id_value,
        &record.picture_large,
    ]
    .into_iter()
    .cloned()
    .collect()
}
