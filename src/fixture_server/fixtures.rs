//! The captured responses, loaded once at start-up and split into records kept byte for byte.

use std::path::{Path, PathBuf};

use super::raw_json::{self, Member, Span};
use super::Error;

/// One captured user record.
#[derive(Debug)]
pub(super) struct Record {
    /// `file#index`: stable across restarts and file moves, so a seed always gives the same order.
    pub id: String,
    /// The record exactly as captured (indentation, key order, escapes, CRLF and all).
    pub raw: String,
    /// The record's `nat`, upper-cased, when it has one.
    pub nat: Option<String>,
    /// The object `inc`/`exc` act on: the record itself, or its legacy `user` object.
    fields_at: Span,
    /// The members of that object, with spans into `raw`.
    fields: Vec<Member>,
}

impl Record {
    /// The record with only the top-level fields `keep` accepts; everything kept stays verbatim.
    pub fn filtered(&self, keep: impl Fn(&str) -> bool) -> String {
        let kept: Vec<&str> = self
            .fields
            .iter()
            .filter(|member| keep(&member.key))
            .map(|member| &self.raw[member.whole.clone()])
            .collect();
        format!(
            "{}{{{}}}{}",
            &self.raw[..self.fields_at.start],
            kept.join(","),
            &self.raw[self.fields_at.end..]
        )
    }

    fn parse(file: &str, index: usize, raw: String) -> Result<Self, String> {
        let whole = 0..raw.len();
        let members = raw_json::object_members(&raw, &whole)
            .ok_or_else(|| format!("record {index} of results is not a JSON object"))?;
        // Legacy responses (API 0.x and 2013) wrap each user as {"user": {...}, "seed": ...}.
        let user = members
            .iter()
            .find(|member| member.key == "user" && opens_with(&raw, &member.value, b'{'));
        let (fields_at, fields) = match user {
            Some(user) => {
                let fields = raw_json::object_members(&raw, &user.value).ok_or_else(|| {
                    format!("record {index} of results has a malformed user object")
                })?;
                (user.value.clone(), fields)
            }
            None => (whole, members),
        };
        let nat = fields
            .iter()
            .find(|member| member.key == "nat")
            .and_then(|member| serde_json::from_str::<String>(&raw[member.value.clone()]).ok())
            .map(|nat| nat.to_ascii_uppercase());
        Ok(Self {
            id: format!("{file}#{index}"),
            raw,
            nat,
            fields_at,
            fields,
        })
    }
}

#[cfg(test)]
impl Record {
    /// A record of `raw` under a chosen id, for tests of ordering and paging.
    pub fn for_test(id: &str, raw: &str) -> Self {
        let mut record = Self::parse("test.json", 0, raw.to_owned()).unwrap();
        record.id = id.to_owned();
        record
    }
}

/// Every record of every `*.json` file in `dir`, ordered by file name, then position.
pub(super) fn load(dir: &Path) -> Result<(Vec<Record>, usize), Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::ReadDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::NoFixtures {
            path: dir.to_owned(),
        });
    }
    files.sort();
    let mut records = Vec::new();
    for path in &files {
        records.extend(load_file(path)?);
    }
    Ok((records, files.len()))
}

fn load_file(path: &Path) -> Result<Vec<Record>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|source| Error::Parse {
        path: path.to_owned(),
        source,
    })?;
    let shape = |reason: String| Error::Shape {
        path: path.to_owned(),
        reason,
    };
    let document = raw_json::document(&text)
        .ok_or_else(|| shape("the JSON text could not be split into records".into()))?;
    let results = if opens_with(&text, &document, b'[') {
        document
    } else {
        raw_json::object_members(&text, &document)
            .and_then(|members| members.into_iter().find(|member| member.key == "results"))
            .filter(|results| opens_with(&text, &results.value, b'['))
            .map(|results| results.value)
            .ok_or_else(|| {
                shape("neither a JSON array nor an object with a \"results\" array".into())
            })?
    };
    let spans = raw_json::array_elements(&text, &results)
        .ok_or_else(|| shape("the results array could not be split into records".into()))?;
    let file = file_name(path);
    spans
        .into_iter()
        .enumerate()
        .map(|(index, span)| Record::parse(&file, index, text[span].to_owned()).map_err(shape))
        .collect()
}

fn opens_with(text: &str, span: &Span, byte: u8) -> bool {
    text.as_bytes().get(span.start) == Some(&byte)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| PathBuf::from(path).display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn record(raw: &str) -> Record {
        Record::parse("f.json", 0, raw.to_owned()).unwrap()
    }

    #[test]
    fn keeps_modern_records_verbatim_and_filters_their_fields() {
        let raw = "{\r\n  \"gender\": \"female\",\r\n  \"name\": {\"first\": \"Ad\\u00e8le\"},\r\n  \"nat\": \"fr\"\r\n}";
        let record = record(raw);
        assert_eq!(record.raw, raw);
        assert_eq!(record.nat.as_deref(), Some("FR"));
        let everything: Value = serde_json::from_str(&record.filtered(|_| true)).unwrap();
        assert_eq!(everything, serde_json::from_str::<Value>(raw).unwrap());
        let only_name = record.filtered(|key| key == "name");
        assert_eq!(only_name, "{\"name\": {\"first\": \"Ad\\u00e8le\"}}");
    }

    #[test]
    fn filters_inside_a_legacy_user_wrapper() {
        let record = record(
            "{\"user\":{\"gender\":\"male\",\"email\":\"a@example.com\"},\"seed\":\"s\",\"version\":\"0.3.2\"}",
        );
        assert_eq!(record.nat, None);
        let filtered: Value = serde_json::from_str(&record.filtered(|key| key != "email")).unwrap();
        assert_eq!(
            filtered,
            json!({"user": {"gender": "male"}, "seed": "s", "version": "0.3.2"})
        );
    }

    #[test]
    fn a_record_that_is_not_an_object_is_refused() {
        let error = Record::parse("f.json", 3, "[1]".into()).unwrap_err();
        assert!(error.contains("record 3"), "{error}");
    }
}
