//! The Kafka value codec: [`UserRecord`](crate::model::UserRecord) ↔ Avro binary in the Confluent
//! wire format. Pure logic, no I/O: fetching writer schemas from the registry by id is the
//! caller's job ([`Decoder::register_writer`]).
//!
//! * [`wire`] — the 5-byte Confluent framing (magic byte 0, big-endian schema id).
//! * [`encode`] — [`Encoder`]: a record → Avro binary with the newest schema (what `cdc` writes).
//! * [`decode`] — [`Decoder`]: Avro written with *any* registered writer schema → a record, through
//!   a writer→reader resolution prepared once per schema id and cached.
//!
//! All errors here are about the bytes or the schemas, never about a service: none is retryable.
//! Each carries a stable [`DecodeError::kind`] for dead-letter headers and metric labels.

mod binary;
pub mod decode;
pub mod encode;
mod fields;
mod plan;
pub mod wire;

pub use binary::BodyProblem;
pub use decode::{DecodeError, DecodedChange, Decoder};
pub use encode::{to_avro_value, EncodeError, Encoder};
pub use fields::{record_from_value, InvalidField, ValueProblem};
pub use wire::{encode_wire, encode_wire_header, parse_wire, WireError, WIRE_HEADER_LEN};

/// Every version of the value schema, oldest first (see `schemas/README.md`).
pub const USER_SCHEMA_VERSIONS: &[&str] = &[
    include_str!("../../schemas/user-v1.avsc"),
    include_str!("../../schemas/user-v2.avsc"),
    include_str!("../../schemas/user-v3.avsc"),
];

/// The newest value schema: what the poller writes and the processor reads with.
pub const USER_SCHEMA: &str = USER_SCHEMA_VERSIONS[USER_SCHEMA_VERSIONS.len() - 1];

#[cfg(test)]
mod tests;
