//! `UserRecord` → Avro binary with the newest value schema (what the CDC poller produces).

use apache_avro::types::Value;
use apache_avro::Schema;

use super::binary::{write_double, write_long, write_str};
use super::fields::{schema_for_kind, to_avro_fields, Field, FieldRef, Kind};
use super::wire::{encode_wire_header, WIRE_HEADER_LEN};
use super::USER_SCHEMA;
use crate::error::Retryable;
use crate::model::UserRecord;

/// Why an encoder could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The schema handed to [`Encoder::with_schema`] (or the embedded newest one) does not parse.
    #[error("invalid writer schema")]
    Schema(#[source] apache_avro::Error),
    /// The schema is not one `UserRecord` can be written with: a field `UserRecord` lacks, or a
    /// type other than the one the newest schema gives the field.
    #[error("writer schema field `{field}`: {detail}")]
    UnsupportedField { field: String, detail: String },
}

impl Retryable for EncodeError {
    /// A schema that does not fit now will not fit later either.
    fn is_retryable(&self) -> bool {
        false
    }
}

/// Encodes records with one writer schema, straight from the struct to Avro binary: the schema
/// is checked once, in [`Encoder::with_schema`], against `UserRecord`, so writing a record
/// cannot fail and needs no `apache_avro::types::Value`.
pub struct Encoder {
    schema: Schema,
    /// The `UserRecord` field of each writer field, in the writer's order, and how it is
    /// written.
    fields: Vec<(Field, Layout)>,
}

/// How one field's value is laid out: a plain value, or a `["null", T]` / `[T, "null"]` union.
#[derive(Debug, Clone, Copy)]
enum Layout {
    Plain,
    Optional { null_branch: i64, value_branch: i64 },
}

impl Encoder {
    /// An encoder for the newest schema under `schemas/`.
    pub fn new() -> Result<Self, EncodeError> {
        Self::with_schema(USER_SCHEMA)
    }

    /// An encoder for another version of the `User` schema (tests of schema evolution). Each of
    /// its fields must be a `UserRecord` field, of the type the newest schema gives it (a
    /// union's branches may come in either order); `UserRecord` fields it lacks are not written.
    pub fn with_schema(schema_json: &str) -> Result<Self, EncodeError> {
        let schema = Schema::parse_str(schema_json).map_err(EncodeError::Schema)?;
        let Schema::Record(record) = &schema else {
            return Err(EncodeError::UnsupportedField {
                field: String::new(),
                detail: "the writer schema must be a record".to_owned(),
            });
        };
        let fields = record
            .fields
            .iter()
            .map(|writer_field| {
                let unsupported = |detail: String| EncodeError::UnsupportedField {
                    field: writer_field.name.clone(),
                    detail,
                };
                let field = Field::from_name(&writer_field.name)
                    .ok_or_else(|| unsupported("UserRecord has no such field".to_owned()))?;
                let layout = layout(field.kind(), &writer_field.schema).ok_or_else(|| {
                    unsupported(format!(
                        "UserRecord writes {}",
                        schema_for_kind(field.kind())
                    ))
                })?;
                Ok((field, layout))
            })
            .collect::<Result<_, EncodeError>>()?;
        Ok(Self { schema, fields })
    }

    /// The writer schema, e.g. to register it.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The Avro binary body of `record` (no wire-format header). Infallible once the encoder
    /// exists; the `Result` keeps callers ready for a schema that could refuse a value.
    pub fn encode(&self, record: &UserRecord) -> Result<Vec<u8>, EncodeError> {
        let mut body = Vec::with_capacity(self.capacity_hint());
        self.write_body(record, &mut body);
        Ok(body)
    }

    /// `record` as a complete Kafka value: the wire-format header for `schema_id`, then the body.
    pub fn encode_message(
        &self,
        schema_id: u32,
        record: &UserRecord,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut message = Vec::with_capacity(WIRE_HEADER_LEN + self.capacity_hint());
        encode_wire_header(schema_id, &mut message);
        self.write_body(record, &mut message);
        Ok(message)
    }

    /// A typical body's size: room for the strings of a full record without regrowing.
    fn capacity_hint(&self) -> usize {
        self.fields.len() * 16 + 128
    }

    /// Appends the Avro binary body of `record` to `out`.
    pub fn write_body(&self, record: &UserRecord, out: &mut Vec<u8>) {
        for &(field, layout) in &self.fields {
            write_field(record, field, layout, out);
        }
    }
}

/// How a field of `kind` is written with `schema`, if it can be.
fn layout(kind: Kind, schema: &Schema) -> Option<Layout> {
    let value_schema = match kind {
        Kind::RequiredString => return (*schema == Schema::String).then_some(Layout::Plain),
        Kind::OptionalString => Schema::String,
        Kind::OptionalLong => Schema::Long,
        Kind::OptionalDouble => Schema::Double,
        Kind::OptionalTimestampMicros => Schema::TimestampMicros,
    };
    let Schema::Union(union) = schema else {
        return None;
    };
    match union.variants() {
        [Schema::Null, value] if *value == value_schema => Some(Layout::Optional {
            null_branch: 0,
            value_branch: 1,
        }),
        [value, Schema::Null] if *value == value_schema => Some(Layout::Optional {
            null_branch: 1,
            value_branch: 0,
        }),
        _ => None,
    }
}

/// One value: what `to_avro_fields` would give `apache_avro`'s writer, byte for byte.
#[inline]
fn write_field(record: &UserRecord, field: Field, layout: Layout, out: &mut Vec<u8>) {
    let optional = |present: bool, out: &mut Vec<u8>| match layout {
        Layout::Plain => true,
        Layout::Optional {
            null_branch,
            value_branch,
        } => {
            write_long(out, if present { value_branch } else { null_branch });
            present
        }
    };
    match field.value_of(record) {
        FieldRef::String(text) => write_str(out, text),
        FieldRef::OptionalString(text) => {
            if let (true, Some(text)) = (optional(text.is_some(), out), text) {
                write_str(out, text);
            }
        }
        FieldRef::OptionalLong(number) => {
            if let (true, Some(number)) = (optional(number.is_some(), out), number) {
                write_long(out, number);
            }
        }
        FieldRef::OptionalDouble(number) => {
            if let (true, Some(number)) = (optional(number.is_some(), out), number) {
                write_double(out, number);
            }
        }
        FieldRef::OptionalTimestamp(at) => {
            if let (true, Some(at)) = (optional(at.is_some(), out), at) {
                // Every chrono `DateTime` fits in i64 microseconds (±262,000 years < ±292,000).
                write_long(out, at.timestamp_micros());
            }
        }
    }
}

/// `record` as the `apache_avro` value the newest schema describes: the generic path, for
/// comparisons with `apache_avro`'s own writer (tests, the codec benchmark's baseline).
pub fn to_avro_value(record: &UserRecord) -> Value {
    Value::Record(to_avro_fields(record))
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("schema", &self.schema().name())
            .finish_non_exhaustive()
    }
}
