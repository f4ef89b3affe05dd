//! Rendering fixture records as "column: sent → normalized" lines, shared by the golden test
//! and the check of `docs/normalization.md`'s examples.

use std::path::PathBuf;

use serde_json::Value;
use userstream::model::UserRecord;
use userstream::normalize::{normalize, CountrySource, NormalizedUser};
use userstream::randomuser::{parse_response, IdSource, RecordOutcome};

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/randomuser")
}

pub fn fixture_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory")
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    files
}

/// The parsed records of one fixture file, with their id sources.
pub fn records(file: &str) -> Vec<(UserRecord, IdSource)> {
    let body = std::fs::read(fixtures_dir().join(file)).expect("fixture file");
    let response = parse_response(&body).expect("fixture parses");
    response
        .records
        .into_iter()
        .map(|outcome| match outcome {
            RecordOutcome::Accepted(parsed) => (parsed.record, parsed.id_source),
            RecordOutcome::Rejected(rejection) => panic!("{file}: {rejection}"),
        })
        .collect()
}

/// One column of one record: the value as sent (from the column's source field) and as
/// normalized, both as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub column: &'static str,
    pub sent: String,
    pub normalized: String,
}

impl Line {
    pub fn render(&self) -> String {
        if self.sent == self.normalized {
            format!("{:<24}{}", self.column, self.sent)
        } else {
            format!("{:<24}{} → {}", self.column, self.sent, self.normalized)
        }
    }
}

/// The columns of a normalized user with the record fields they come from.
const COLUMNS: &[(&str, &str)] = &[
    ("id", "id"),
    ("country_code", "nat"),
    ("nat", "nat"),
    ("gender", "gender"),
    ("title", "title"),
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("email", "email"),
    ("username", "username"),
    ("date_of_birth", "date_of_birth"),
    ("registered_at", "registered_at"),
    ("phone", "phone"),
    ("phone_e164", "phone"),
    ("cell", "cell"),
    ("cell_e164", "cell"),
    ("street_number", "street_number"),
    ("street_name", "street_name"),
    ("city", "city"),
    ("state", "state"),
    ("country", "country"),
    ("postcode", "postcode"),
    ("latitude", "latitude"),
    ("longitude", "longitude"),
    ("timezone_offset_minutes", "timezone_offset"),
    ("timezone_description", "timezone_description"),
    ("national_id_name", "national_id_name"),
    ("national_id_value", "national_id_value"),
    ("picture_large", "picture_large"),
    ("picture_medium", "picture_medium"),
    ("picture_thumbnail", "picture_thumbnail"),
    ("source_api_version", "source_api_version"),
    ("age", "age"),
    ("id_source", "id_source"),
];

fn json(value: &Value) -> String {
    serde_json::to_string(value).expect("JSON value renders")
}

/// Every column of a normalized record whose value, sent or normalized, is not null.
pub fn lines(
    record: &UserRecord,
    user: &NormalizedUser,
    country_source: CountrySource,
) -> Vec<Line> {
    let sent = serde_json::to_value(record).expect("record serializes");
    let normalized = serde_json::to_value(user).expect("user serializes");
    COLUMNS
        .iter()
        .map(|&(column, source)| {
            let source = match (column, country_source) {
                ("country_code", CountrySource::CountryName) => "country",
                ("country_code", CountrySource::UsSsn) => "national_id_name",
                _ => source,
            };
            Line {
                column,
                sent: json(&sent[source]),
                normalized: json(&normalized[column]),
            }
        })
        .filter(|line| line.sent != "null" || line.normalized != "null")
        .collect()
}

/// The block of one fixture record in the golden file.
pub fn render(file: &str, index: usize, record: &UserRecord, id_source: IdSource) -> String {
    let mut out = format!("=== {file}#{index}\n");
    match normalize(record) {
        Ok(normalized) => {
            out.push_str(&format!(
                "{:<24}id from {}, country_code from {}\n",
                "sources",
                id_source.as_str(),
                normalized.country_source.as_str()
            ));
            for line in lines(record, &normalized.user, normalized.country_source) {
                out.push_str(&line.render());
                out.push('\n');
            }
            let list = |items: Vec<String>| {
                if items.is_empty() {
                    "-".to_owned()
                } else {
                    items.join(", ")
                }
            };
            out.push_str(&format!(
                "{:<24}{}\n",
                "repairs",
                list(
                    normalized
                        .repairs
                        .iter()
                        .map(|r| format!("{} {}", r.field, r.reason.as_str()))
                        .collect()
                )
            ));
            out.push_str(&format!(
                "{:<24}{}\n",
                "warnings",
                list(
                    normalized
                        .warnings
                        .iter()
                        .map(|w| format!("{} {}", w.field, w.reason.as_str()))
                        .collect()
                )
            ));
        }
        Err(error) => {
            out.push_str(&format!(
                "{:<24}id from {}\n",
                "sources",
                id_source.as_str()
            ));
            out.push_str(&format!("{:<24}{error}\n", "INVALID"));
        }
    }
    out
}
