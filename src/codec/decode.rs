//! Avro written with any registered writer schema → [`UserRecord`], resolved against the reader
//! schema (the newest under `schemas/`).
//!
//! Resolution is prepared once per writer schema id in [`Decoder::register_writer`]: the writer
//! schema is parsed and name-resolved, checked against the reader, and compiled into a
//! [`Plan`] saying, per writer field in the writer's order, which `UserRecord` field it feeds
//! (with which promotion) or that it is skipped, and which fields take the reader's default.
//! Decoding a message then reads the Avro binary body straight into the record, without an
//! `apache_avro::types::Value` tree: re-resolving per message is the known slow path
//! (apache/avro-rs issue 310), and building the value tree was most of the rest.
//!
//! The plan matches reader fields to writer fields by name and then by the reader field's
//! `aliases`, as the Avro specification says. (`apache_avro`'s own `Value::resolve` matches by
//! name only, so a field renamed through an alias would silently take its default.)
//!
//! A body must be exactly one datum: reading past its end is a truncation naming the field it
//! happened in, and bytes left after the datum are an error. (`apache_avro` 0.22 reads the end
//! of the input as `null` where a union index or a string should be, and ignores trailing
//! bytes; a test pins that behaviour down.) Lengths are checked against the bytes that remain
//! before anything is allocated.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::error::CompatibilityError;
use apache_avro::schema::RecordField;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::types::Value;
use apache_avro::Schema;

use super::binary::BodyProblem;
use super::fields::{promote, schema_for_kind, Field, Kind, ValueProblem};
use super::plan::{Plan, PlanError};
use super::wire::{parse_wire, WireError};
use super::USER_SCHEMA;
use crate::error::Retryable;
use crate::model::UserRecord;

/// One decoded Kafka value.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedChange {
    /// The writer schema's registry id, from the wire-format header.
    pub schema_id: u32,
    /// The user, as the reader schema sees it (fields the writer lacked hold the defaults).
    pub record: UserRecord,
}

/// Why a Kafka value could not become a [`UserRecord`].
///
/// None is retryable: they are all about the bytes or the schemas, which do not change. Fetching
/// an unknown writer schema is the caller's (retryable) I/O; [`DecodeError::UnknownSchemaId`]
/// only says that it is needed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Wire(#[from] WireError),
    /// No writer schema registered under this id yet: fetch it, [`Decoder::register_writer`] it,
    /// and decode again.
    #[error("unknown writer schema id {0}")]
    UnknownSchemaId(u32),
    /// The body ended before the datum did (or a length in it points past its end).
    #[error("truncated Avro body (schema id {schema_id}) at field `{field}`")]
    TruncatedBody { schema_id: u32, field: String },
    /// The body is not a datum of the writer schema (bad union index, invalid UTF-8, an
    /// over-long varint, …).
    #[error("invalid Avro body (schema id {schema_id}) at field `{field}`")]
    InvalidBody {
        schema_id: u32,
        field: String,
        #[source]
        source: BodyProblem,
    },
    /// A complete datum followed by more bytes: the frame holds something else than one record.
    #[error("{count} byte(s) after the end of the Avro datum (schema id {schema_id})")]
    TrailingBytes { schema_id: u32, count: usize },
    #[error("writer schema {schema_id} does not parse")]
    InvalidWriterSchema {
        schema_id: u32,
        #[source]
        source: apache_avro::Error,
    },
    /// The writer schema cannot be read with the reader schema under the Avro resolution rules.
    #[error("writer schema {schema_id} is incompatible with the reader schema")]
    IncompatibleWriter {
        schema_id: u32,
        #[source]
        source: CompatibilityError,
    },
    /// Only some values of the writer schema can be read (a union branch or an enum symbol the
    /// reader lacks); the registry's BACKWARD check refuses such a schema too.
    #[error("writer schema {schema_id} has values the reader schema cannot read (a union branch or enum symbol it lacks)")]
    PartlyCompatibleWriter { schema_id: u32 },
    /// A resolution rule the compatibility check let through but the plan cannot follow.
    #[error("writer schema {schema_id} cannot be resolved: {detail}")]
    Unresolvable { schema_id: u32, detail: String },
    /// This id's writer schema was refused earlier; the same refusal, without re-checking.
    #[error("writer schema {schema_id} was refused")]
    RefusedWriter {
        schema_id: u32,
        #[source]
        source: Arc<DecodeError>,
    },
    /// A well-formed value that cannot be the field it is for.
    #[error("invalid value of field `{field}` (schema id {schema_id})")]
    InvalidValue {
        schema_id: u32,
        field: &'static str,
        #[source]
        problem: ValueProblem,
    },
    #[error("invalid reader schema")]
    InvalidReaderSchema(#[source] apache_avro::Error),
    /// The reader schema does not describe `UserRecord`.
    #[error("reader schema field `{field}`: {detail}")]
    ReaderField { field: String, detail: String },
}

impl DecodeError {
    /// A short stable name for the dead-letter `error kind` header and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Wire(_) => "wire_format",
            Self::UnknownSchemaId(_) => "unknown_schema",
            Self::TruncatedBody { .. } | Self::InvalidBody { .. } | Self::TrailingBytes { .. } => {
                "avro_body"
            }
            Self::InvalidWriterSchema { .. }
            | Self::IncompatibleWriter { .. }
            | Self::PartlyCompatibleWriter { .. }
            | Self::Unresolvable { .. } => "schema_resolution",
            Self::RefusedWriter { source, .. } => source.kind(),
            Self::InvalidValue { .. } => "invalid_value",
            Self::InvalidReaderSchema(_) | Self::ReaderField { .. } => "reader_schema",
        }
    }
}

impl Retryable for DecodeError {
    /// Nothing here involves a service. `UnknownSchemaId` is not retryable *as is*: the caller
    /// must fetch the schema first (that fetch is what may be retried).
    fn is_retryable(&self) -> bool {
        false
    }
}

/// Decodes wire-format `User` values written with any registered writer schema.
pub struct Decoder {
    reader: ReaderSchema,
    /// The prepared resolution (or the refusal) per writer schema id. Registry ids are immutable,
    /// so an entry never goes stale.
    writers: HashMap<u32, Writer>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.writers.keys().collect();
        ids.sort_unstable();
        f.debug_struct("Decoder")
            .field("writer_ids", &ids)
            .finish_non_exhaustive()
    }
}

struct ReaderSchema {
    schema: Schema,
    /// The reader's record fields, each tied to the `UserRecord` field it fills.
    fields: Vec<(Field, RecordField)>,
}

enum Writer {
    Ready(Box<Plan>),
    Refused(Arc<DecodeError>),
}

impl Decoder {
    /// A decoder reading with the newest schema under `schemas/`.
    pub fn new() -> Result<Self, DecodeError> {
        Self::with_reader_schema(USER_SCHEMA)
    }

    /// A decoder reading with another version of the `User` schema. Every field it declares must
    /// be a `UserRecord` field of the matching type; `UserRecord` fields it lacks stay empty.
    pub fn with_reader_schema(schema_json: &str) -> Result<Self, DecodeError> {
        let schema = Schema::parse_str(schema_json).map_err(DecodeError::InvalidReaderSchema)?;
        let Schema::Record(record) = &schema else {
            return Err(DecodeError::ReaderField {
                field: String::new(),
                detail: "the reader schema must be a record".to_owned(),
            });
        };
        let renamed = renamed_fields()?;
        let mut fields = Vec::with_capacity(record.fields.len());
        for reader_field in &record.fields {
            let field = Field::from_name(&reader_field.name)
                .or_else(|| renamed.get(reader_field.name.as_str()).copied())
                .ok_or_else(|| DecodeError::ReaderField {
                    field: reader_field.name.clone(),
                    detail: "UserRecord has no such field".to_owned(),
                })?;
            if !kind_matches(field.kind(), &reader_field.schema) {
                return Err(DecodeError::ReaderField {
                    field: reader_field.name.clone(),
                    detail: format!("UserRecord needs {}", schema_for_kind(field.kind())),
                });
            }
            fields.push((field, reader_field.clone()));
        }
        Ok(Self {
            reader: ReaderSchema { schema, fields },
            writers: HashMap::new(),
        })
    }

    /// Prepares the resolution of the writer schema registered as `schema_id` (its JSON as the
    /// registry returns it). A refusal is remembered: later messages with this id fail with
    /// [`DecodeError::RefusedWriter`] without fetching the schema again. An id already known is
    /// kept as it is (registry ids never change meaning).
    pub fn register_writer(
        &mut self,
        schema_id: u32,
        schema_json: &str,
    ) -> Result<(), DecodeError> {
        if self.writers.contains_key(&schema_id) {
            return Ok(());
        }
        match self.prepare(schema_id, schema_json) {
            Ok(plan) => {
                self.writers
                    .insert(schema_id, Writer::Ready(Box::new(plan)));
                Ok(())
            }
            Err(error) => {
                let error = Arc::new(error);
                self.writers
                    .insert(schema_id, Writer::Refused(Arc::clone(&error)));
                Err(DecodeError::RefusedWriter {
                    schema_id,
                    source: error,
                })
            }
        }
    }

    /// Whether `schema_id` has been registered (prepared or refused).
    pub fn knows(&self, schema_id: u32) -> bool {
        self.writers.contains_key(&schema_id)
    }

    /// How many writer ids are cached (prepared or refused).
    pub fn cached_writers(&self) -> usize {
        self.writers.len()
    }

    /// Decodes one Kafka value (wire-format header + Avro body).
    pub fn decode(&self, bytes: &[u8]) -> Result<DecodedChange, DecodeError> {
        let (schema_id, body) = parse_wire(bytes)?;
        let record = match self.writers.get(&schema_id) {
            None => return Err(DecodeError::UnknownSchemaId(schema_id)),
            Some(Writer::Refused(error)) => {
                return Err(DecodeError::RefusedWriter {
                    schema_id,
                    source: Arc::clone(error),
                })
            }
            Some(Writer::Ready(plan)) => plan.decode(body).map_err(|error| match error {
                PlanError::Truncated { field } => DecodeError::TruncatedBody { schema_id, field },
                PlanError::Invalid { field, problem } => DecodeError::InvalidBody {
                    schema_id,
                    field,
                    source: problem,
                },
                PlanError::TrailingBytes { count } => {
                    DecodeError::TrailingBytes { schema_id, count }
                }
                PlanError::Value { field, problem } => DecodeError::InvalidValue {
                    schema_id,
                    field: field.name(),
                    problem,
                },
            })?,
        };
        Ok(DecodedChange { schema_id, record })
    }

    fn prepare(&self, schema_id: u32, schema_json: &str) -> Result<Plan, DecodeError> {
        let schema = Schema::parse_str(schema_json)
            .map_err(|source| DecodeError::InvalidWriterSchema { schema_id, source })?;
        match SchemaCompatibility::can_read(&schema, &self.reader.schema) {
            Ok(Compatibility::Full) => {}
            Ok(Compatibility::Partial) => {
                return Err(DecodeError::PartlyCompatibleWriter { schema_id })
            }
            Err(source) => return Err(DecodeError::IncompatibleWriter { schema_id, source }),
        }
        let unresolvable = |detail: String| DecodeError::Unresolvable { schema_id, detail };
        let Schema::Record(writer_record) = &schema else {
            return Err(unresolvable("the writer schema is not a record".to_owned()));
        };

        let mut writer_fields: Vec<Option<Field>> = vec![None; writer_record.fields.len()];
        let mut defaults = Vec::new();
        for (field, reader_field) in &self.reader.fields {
            let source = writer_record.lookup.get(&reader_field.name).or_else(|| {
                reader_field
                    .aliases
                    .iter()
                    .find_map(|alias| writer_record.lookup.get(alias))
            });
            match (source, &reader_field.default) {
                (Some(&index), _) => match writer_fields.get_mut(index) {
                    Some(target) => *target = Some(*field),
                    None => {
                        return Err(unresolvable(format!(
                            "writer field index {index} of `{}` is out of range",
                            reader_field.name
                        )))
                    }
                },
                (None, Some(default)) => {
                    let invalid_default = || {
                        unresolvable(format!(
                            "the reader's default for `{}` is not a valid value",
                            reader_field.name
                        ))
                    };
                    let value = Value::try_from(default.clone()).map_err(|_| invalid_default())?;
                    let typed = promote(*field, value).map_err(|_| invalid_default())?;
                    defaults.push((*field, typed));
                }
                (None, None) => {
                    return Err(unresolvable(format!(
                        "reader field `{}` has no writer field and no default",
                        reader_field.name
                    )))
                }
            }
        }

        Plan::new(&schema, &writer_fields, defaults).map_err(unresolvable)
    }
}

/// The older names of `UserRecord` fields: the `aliases` of the newest schema's fields, so that
/// an older reader schema (which uses the old name) still fills the field.
fn renamed_fields() -> Result<HashMap<String, Field>, DecodeError> {
    let newest = Schema::parse_str(USER_SCHEMA).map_err(DecodeError::InvalidReaderSchema)?;
    let Schema::Record(record) = newest else {
        return Ok(HashMap::new());
    };
    let mut renamed = HashMap::new();
    for field in &record.fields {
        if let Some(target) = Field::from_name(&field.name) {
            for alias in &field.aliases {
                renamed.insert(alias.clone(), target);
            }
        }
    }
    Ok(renamed)
}

/// Whether a reader field's schema is one `UserRecord`'s field type can hold: the type the
/// newest schema gives it, or for a long an older reader's narrower int.
fn kind_matches(kind: Kind, schema: &Schema) -> bool {
    let optional_of = |expected: &Schema| match schema {
        Schema::Union(union) => union.variants() == [Schema::Null, expected.clone()],
        _ => false,
    };
    match kind {
        Kind::RequiredString => *schema == Schema::String,
        Kind::OptionalString => optional_of(&Schema::String),
        Kind::OptionalLong => optional_of(&Schema::Long) || optional_of(&Schema::Int),
        Kind::OptionalDouble => optional_of(&Schema::Double),
        Kind::OptionalTimestampMicros => optional_of(&Schema::TimestampMicros),
    }
}
