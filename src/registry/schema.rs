//! Parsing a submitted Avro schema and deciding when two submissions are "the same schema".
//!
//! Identity is the schema's *normalized JSON*: the schema as apache-avro parsed it, serialized
//! again with every object's attributes sorted and no whitespace. Whitespace, attribute order,
//! `{"type": "string"}` versus `"string"` and `"name": "a.B"` versus a separate namespace all
//! normalize away, so they get one id. Unlike Avro's Parsing Canonical Form this keeps
//! `default`, `aliases`, `doc`, `logicalType` and custom attributes: a schema that adds a
//! default (needed before a field can be removed) or changes `long` to `timestamp-millis` is a
//! new schema with its own id, as it is in Confluent's registry. Under the Parsing Canonical
//! Form those changes would silently be answered with the old id and the old text.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use apache_avro::Schema;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The only schema type this registry stores.
pub const AVRO: &str = "AVRO";

/// A submitted schema that parsed, with what identifies it.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    /// The schema as submitted; stored and returned as is when it is new.
    pub text: String,
    pub schema: Schema,
    /// Attribute-sorted compact JSON of the parsed schema (see the module documentation).
    pub normalized: String,
    /// SHA-256 of `normalized`, the key a schema is found by.
    pub fingerprint: [u8; 32],
}

/// Why a submitted schema was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidSchema {
    #[error("schemaType {0:?} is not supported: this registry stores AVRO schemas only")]
    UnsupportedType(String),
    #[error("schema references are not supported: submit the schema with its named types inlined")]
    References,
    #[error("the schema is empty")]
    Empty,
    #[error("invalid Avro schema")]
    Avro(#[source] apache_avro::Error),
    #[error("the parsed schema cannot be serialized again")]
    Serialize(#[source] serde_json::Error),
    #[error("the Avro parser failed on this schema")]
    ParserPanicked,
}

/// Parses `text` as an Avro schema of type `schema_type` (`None` means AVRO).
pub fn parse(text: &str, schema_type: Option<&str>) -> Result<ParsedSchema, InvalidSchema> {
    if let Some(kind) = schema_type {
        if !kind.eq_ignore_ascii_case(AVRO) {
            return Err(InvalidSchema::UnsupportedType(kind.to_owned()));
        }
    }
    if text.trim().is_empty() {
        return Err(InvalidSchema::Empty);
    }
    // The parser is third-party code fed with request input; a panic in it must become a refused
    // request, not a dropped connection.
    let schema = catch_unwind(AssertUnwindSafe(|| Schema::parse_str(text)))
        .map_err(|_| InvalidSchema::ParserPanicked)?
        .map_err(InvalidSchema::Avro)?;
    let json = serde_json::to_value(&schema).map_err(InvalidSchema::Serialize)?;
    let mut normalized = String::with_capacity(text.len());
    write_sorted(&json, &mut normalized);
    let fingerprint = Sha256::digest(normalized.as_bytes()).into();
    Ok(ParsedSchema {
        text: text.to_owned(),
        schema,
        normalized,
        fingerprint,
    })
}

/// Writes `value` as compact JSON with the keys of every object in sorted order.
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(':');
                write_sorted(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut String) {
    // Display of a serde_json scalar is its compact JSON; writing to a String cannot fail.
    let _ = write!(out, "{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(text: &str) -> String {
        parse(text, None).unwrap().normalized
    }

    #[test]
    fn whitespace_and_attribute_order_do_not_matter() {
        let a = r#"{"type":"record","name":"User","namespace":"x","fields":[{"name":"a","type":"int"}]}"#;
        let b = r#"{
            "fields": [ { "type": {"type": "int"}, "name": "a" } ],
            "name": "x.User",
            "type": "record"
        }"#;
        assert_eq!(normalized(a), normalized(b));
        assert_eq!(
            parse(a, None).unwrap().fingerprint,
            parse(b, Some("avro")).unwrap().fingerprint
        );
    }

    #[test]
    fn defaults_and_logical_types_make_a_different_schema() {
        let plain = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
        let with_default =
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long","default":0}]}"#;
        let logical = r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
        assert_ne!(normalized(plain), normalized(with_default));
        assert_ne!(normalized(plain), normalized(logical));
    }

    #[test]
    fn field_order_is_part_of_the_schema() {
        let ab = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
        let ba = r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int"},{"name":"a","type":"int"}]}"#;
        assert_ne!(normalized(ab), normalized(ba));
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        assert!(matches!(parse("", None), Err(InvalidSchema::Empty)));
        assert!(matches!(
            parse("{not json", None),
            Err(InvalidSchema::Avro(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"record","name":"R"}"#, None),
            Err(InvalidSchema::Avro(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"object"}"#, Some("JSON")),
            Err(InvalidSchema::UnsupportedType(kind)) if kind == "JSON"
        ));
    }

    #[test]
    fn primitive_schemas_are_accepted() {
        assert_eq!(normalized(r#""string""#), r#""string""#);
        assert_eq!(normalized(r#"{"type":"string"}"#), r#""string""#);
    }
}
