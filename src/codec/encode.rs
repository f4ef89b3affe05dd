//! `UserRecord` → Avro binary with the newest value schema (what the CDC poller produces).

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use ouroboros::self_referencing;

use super::fields::to_avro_fields;
use super::wire::encode_wire;
use super::USER_SCHEMA;
use crate::error::Retryable;
use crate::model::UserRecord;

/// Why a record could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The schema handed to [`Encoder::with_schema`] (or the embedded newest one) does not parse.
    #[error("invalid writer schema")]
    Schema(#[source] apache_avro::Error),
    /// The record does not fit the writer schema: the schema and `UserRecord` disagree.
    #[error("user {id:?} does not fit the writer schema")]
    Value {
        id: String,
        #[source]
        source: apache_avro::Error,
    },
}

impl Retryable for EncodeError {
    /// A schema or a record that does not fit now will not fit later either.
    fn is_retryable(&self) -> bool {
        false
    }
}

/// Encodes records with one writer schema, parsed and name-resolved once (building the writer
/// per message is the slow path: apache/avro-rs issue 371).
pub struct Encoder {
    inner: EncoderInner,
}

#[self_referencing]
struct EncoderInner {
    schema: Schema,
    #[borrows(schema)]
    #[covariant]
    writer: GenericDatumWriter<'this>,
}

impl Encoder {
    /// An encoder for the newest schema under `schemas/`.
    pub fn new() -> Result<Self, EncodeError> {
        Self::with_schema(USER_SCHEMA)
    }

    /// An encoder for another version of the `User` schema (tests of schema evolution).
    pub fn with_schema(schema_json: &str) -> Result<Self, EncodeError> {
        let schema = Schema::parse_str(schema_json).map_err(EncodeError::Schema)?;
        let inner = EncoderInnerTryBuilder {
            schema,
            writer_builder: |schema: &Schema| GenericDatumWriter::builder(schema).build(),
        }
        .try_build()
        .map_err(EncodeError::Schema)?;
        Ok(Self { inner })
    }

    /// The writer schema, e.g. to register it.
    pub fn schema(&self) -> &Schema {
        self.inner.borrow_schema()
    }

    /// The Avro binary body of `record` (no wire-format header).
    pub fn encode(&self, record: &UserRecord) -> Result<Vec<u8>, EncodeError> {
        let value = Value::Record(to_avro_fields(record));
        let mut body = Vec::with_capacity(256);
        self.inner
            .borrow_writer()
            .write_value_ref(&mut body, &value)
            .map_err(|source| EncodeError::Value {
                id: record.id.clone(),
                source,
            })?;
        Ok(body)
    }

    /// `record` as a complete Kafka value: the wire-format header for `schema_id`, then the body.
    pub fn encode_message(
        &self,
        schema_id: u32,
        record: &UserRecord,
    ) -> Result<Vec<u8>, EncodeError> {
        Ok(encode_wire(schema_id, &self.encode(record)?))
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("schema", &self.schema().name())
            .finish_non_exhaustive()
    }
}
