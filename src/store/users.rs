//! Writing users: a page at a time, and single deletes.

use chrono::Datelike;
use futures::future::try_join_all;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::StoreError;
use crate::model::UserRecord;

const UPSERT_USER: &str = include_str!("sql/query/upsert_user.sql");

/// What one page did to `users`. The three counts add up to the page's length; a user that
/// appears twice in a page counts twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertOutcome {
    /// New users; each logged a `c` change.
    pub inserted: u64,
    /// Users whose typed columns or raw JSON changed; each logged a `u` change unless only the
    /// raw JSON changed (downstream sees the typed columns only).
    pub updated: u64,
    /// Users stored exactly as they were: not touched, nothing logged.
    pub unchanged: u64,
}

/// Checks that PostgreSQL can store `user` with its `raw` JSON as they are, naming the first
/// field that it could not. [`upsert_page`] refuses a page containing such a user, so a caller
/// that wants to reject single records rather than pages checks them with this first.
pub fn validate(user: &UserRecord, raw: &Value) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidUser {
        id: user.id.clone(),
        reason,
    };
    if user.id.is_empty() {
        return Err(invalid("the id is empty".into()));
    }
    for (field, value) in [("latitude", user.latitude), ("longitude", user.longitude)] {
        if let Some(value) = value.filter(|value| !value.is_finite()) {
            return Err(invalid(format!("{field} is {value}, not a finite number")));
        }
    }
    for (field, value) in [
        ("date_of_birth", user.date_of_birth),
        ("registered_at", user.registered_at),
    ] {
        // The change log carries times as RFC 3339 text and Kafka as Avro timestamps: a year
        // outside 1–9999 (which PostgreSQL would store) could not be read back from the log,
        // and that one change would stop the poller.
        if let Some(value) = value.filter(|value| !(1..=9999).contains(&value.year())) {
            return Err(invalid(format!(
                "{field} is {value}, outside the years 1 to 9999 the change log can carry"
            )));
        }
    }
    for (field, value) in text_fields(user) {
        if value.is_some_and(|value| value.contains('\0')) {
            return Err(invalid(format!(
                "{field} contains a NUL character, which PostgreSQL text cannot hold"
            )));
        }
    }
    if let Some(path) = nul_in_json(raw, &mut String::new()) {
        return Err(invalid(format!(
            "the raw JSON at {path} contains a NUL character, which PostgreSQL jsonb cannot hold"
        )));
    }
    Ok(())
}

/// Stores one page of users (each with the API record it came from) in one transaction: new
/// ids are inserted, changed users updated, unchanged ones left untouched. Either the whole
/// page is stored, with its changes logged, or none of it.
///
/// Refuses the page before writing anything if a user fails [`validate`].
pub async fn upsert_page(
    client: &mut Client,
    users: &[(UserRecord, Value)],
) -> Result<UpsertOutcome, StoreError> {
    for (user, raw) in users {
        validate(user, raw)?;
    }
    if users.is_empty() {
        return Ok(UpsertOutcome::default());
    }
    let transaction = client
        .transaction()
        .await
        .map_err(StoreError::postgres("begin the page transaction"))?;
    let statement = transaction
        .prepare(UPSERT_USER)
        .await
        .map_err(StoreError::postgres("prepare the user upsert"))?;
    // All statements are issued at once: the client pipelines them over the connection, in
    // order, so a page costs about one round trip rather than one per user.
    let writes = users.iter().map(|(user, raw)| {
        let statement = &statement;
        let transaction = &transaction;
        async move {
            transaction
                .execute(statement, &upsert_params(user, raw))
                .await
                .map_err(|source| StoreError::Upsert {
                    id: user.id.clone(),
                    source,
                })
        }
    });
    let written: u64 = try_join_all(writes).await?.into_iter().sum();
    // The trigger logs exactly one `c` per inserted row, in this transaction.
    let inserted: i64 = transaction
        .query_one(
            "SELECT count(*) FROM user_changes \
             WHERE op = 'c' AND xid = pg_current_xact_id_if_assigned()",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(StoreError::postgres("count the inserted users"))?;
    transaction
        .commit()
        .await
        .map_err(StoreError::postgres("commit the page"))?;

    let inserted = u64::try_from(inserted).unwrap_or_default();
    let outcome = UpsertOutcome {
        inserted,
        updated: written.saturating_sub(inserted),
        unchanged: (users.len() as u64).saturating_sub(written),
    };
    tracing::debug!(
        users = users.len(),
        inserted = outcome.inserted,
        updated = outcome.updated,
        unchanged = outcome.unchanged,
        "stored page"
    );
    Ok(outcome)
}

/// Deletes one user (its `d` change is logged with it); `false` when there was no such user.
pub async fn delete_user(client: &Client, id: &str) -> Result<bool, StoreError> {
    let deleted = client
        .execute("DELETE FROM users WHERE id = $1", &[&id])
        .await
        .map_err(StoreError::postgres("delete a user"))?;
    Ok(deleted > 0)
}

/// The parameters of `upsert_user.sql`, in its column order.
fn upsert_params<'a>(user: &'a UserRecord, raw: &'a Value) -> [&'a (dyn ToSql + Sync); 31] {
    // Destructured without `..` so that a field added to the model fails to compile here until
    // it has a column.
    let UserRecord {
        id,
        gender,
        title,
        first_name,
        last_name,
        email,
        username,
        date_of_birth,
        registered_at,
        phone,
        cell,
        street_number,
        street_name,
        city,
        state,
        country,
        postcode,
        latitude,
        longitude,
        timezone_offset,
        timezone_description,
        national_id_name,
        national_id_value,
        picture_large,
        picture_medium,
        picture_thumbnail,
        nat,
        source_api_version,
        age,
        id_source,
    } = user;
    [
        id,
        gender,
        title,
        first_name,
        last_name,
        email,
        username,
        date_of_birth,
        registered_at,
        phone,
        cell,
        street_number,
        street_name,
        city,
        state,
        country,
        postcode,
        latitude,
        longitude,
        timezone_offset,
        timezone_description,
        national_id_name,
        national_id_value,
        picture_large,
        picture_medium,
        picture_thumbnail,
        nat,
        raw,
        source_api_version,
        age,
        id_source,
    ]
}

/// The text fields of a user with their column names.
fn text_fields(user: &UserRecord) -> [(&'static str, Option<&str>); 25] {
    [
        ("id", Some(user.id.as_str())),
        ("gender", user.gender.as_deref()),
        ("title", user.title.as_deref()),
        ("first_name", user.first_name.as_deref()),
        ("last_name", user.last_name.as_deref()),
        ("email", user.email.as_deref()),
        ("username", user.username.as_deref()),
        ("phone", user.phone.as_deref()),
        ("cell", user.cell.as_deref()),
        ("street_number", user.street_number.as_deref()),
        ("street_name", user.street_name.as_deref()),
        ("city", user.city.as_deref()),
        ("state", user.state.as_deref()),
        ("country", user.country.as_deref()),
        ("postcode", user.postcode.as_deref()),
        ("timezone_offset", user.timezone_offset.as_deref()),
        ("timezone_description", user.timezone_description.as_deref()),
        ("national_id_name", user.national_id_name.as_deref()),
        ("national_id_value", user.national_id_value.as_deref()),
        ("picture_large", user.picture_large.as_deref()),
        ("picture_medium", user.picture_medium.as_deref()),
        ("picture_thumbnail", user.picture_thumbnail.as_deref()),
        ("nat", user.nat.as_deref()),
        ("source_api_version", user.source_api_version.as_deref()),
        ("id_source", user.id_source.as_deref()),
    ]
}

/// The JSON path (`$.login.username`) of the first key or string holding a NUL, if any.
fn nul_in_json(value: &Value, path: &mut String) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(format!("${path}")),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let len = path.len();
            path.push_str(&format!("[{index}]"));
            let found = nul_in_json(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let len = path.len();
            path.push('.');
            path.push_str(key);
            let found = if key.contains('\0') {
                Some(format!("${path}"))
            } else {
                nul_in_json(item, path)
            };
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;

    fn user(id: &str) -> UserRecord {
        UserRecord::with_id(id)
    }

    fn reason(result: Result<(), StoreError>) -> String {
        match result {
            Err(StoreError::InvalidUser { reason, .. }) => reason,
            other => panic!("expected InvalidUser, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_plain_user() {
        validate(&user("a"), &json!({"login": {"uuid": "a"}})).unwrap();
    }

    #[test]
    fn names_what_postgresql_cannot_store() {
        assert_eq!(reason(validate(&user(""), &json!({}))), "the id is empty");

        let mut bad = user("a");
        bad.longitude = Some(f64::NAN);
        assert!(reason(validate(&bad, &json!({}))).starts_with("longitude is NaN"));

        let mut bad = user("a");
        bad.city = Some("Ber\0lin".into());
        assert!(reason(validate(&bad, &json!({}))).starts_with("city contains a NUL"));
        for (year, field) in [
            (10_000, "date_of_birth"),
            (0, "registered_at"),
            (-44, "date_of_birth"),
        ] {
            let mut bad = user("a");
            let when = Utc.with_ymd_and_hms(year, 3, 15, 0, 0, 0).unwrap();
            match field {
                "date_of_birth" => bad.date_of_birth = Some(when),
                _ => bad.registered_at = Some(when),
            }
            let why = reason(validate(&bad, &json!({})));
            assert!(
                why.starts_with(field) && why.contains("years 1 to 9999"),
                "{year}: {why}"
            );
        }

        let raw = json!({"location": {"street": [1, "x\u{0}y"]}});
        assert!(reason(validate(&user("a"), &raw)).contains("$.location.street[1]"));

        let raw = json!({"lo\u{0}gin": 1});
        assert!(reason(validate(&user("a"), &raw)).contains("$.lo\0gin"));
    }
}

/// A record the fetcher rejected, and where the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord<'a> {
    pub seed: &'a str,
    pub page: u32,
    pub page_size: u32,
    pub record_index: usize,
    pub field: &'a str,
    pub reason: &'a str,
    pub detail: &'a str,
}

/// Records rejected records; the same record rejected again (a re-fetched page) is kept once.
pub async fn record_rejections(
    client: &Client,
    rejections: &[RejectedRecord<'_>],
) -> Result<(), StoreError> {
    if rejections.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare(
            "INSERT INTO fetch_rejections (seed, page, page_size, record_index, field, reason, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (seed, page, page_size, record_index) DO NOTHING",
        )
        .await
        .map_err(StoreError::postgres("prepare the rejection insert"))?;
    for rejection in rejections {
        let page = i32::try_from(rejection.page).unwrap_or(i32::MAX);
        let page_size = i32::try_from(rejection.page_size).unwrap_or(i32::MAX);
        let index = i32::try_from(rejection.record_index).unwrap_or(i32::MAX);
        client
            .execute(
                &statement,
                &[
                    &rejection.seed,
                    &page,
                    &page_size,
                    &index,
                    &rejection.field,
                    &rejection.reason,
                    &rejection.detail,
                ],
            )
            .await
            .map_err(StoreError::postgres("record a rejected record"))?;
    }
    Ok(())
}
