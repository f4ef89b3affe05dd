//! The Confluent wire format: magic byte `0`, the schema id as 4 bytes big-endian, then the Avro
//! binary body (no Avro container header, no fingerprint).

use crate::error::Retryable;

/// The only magic byte the Confluent format defines.
const MAGIC_BYTE: u8 = 0;

/// Bytes in front of the Avro body: the magic byte and the 4-byte schema id.
pub const WIRE_HEADER_LEN: usize = 5;

/// Why a Kafka value is not a Confluent wire-format frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty value: expected a Confluent wire-format frame (magic byte 0 + 4-byte schema id + Avro body)")]
    Empty,
    #[error("value of {len} byte(s) is shorter than the 5-byte Confluent wire-format header")]
    TooShort { len: usize },
    #[error("wrong magic byte 0x{found:02x} at offset 0: expected 0x00 (Confluent wire format)")]
    WrongMagicByte { found: u8 },
}

impl Retryable for WireError {
    /// The bytes will not change on a retry.
    fn is_retryable(&self) -> bool {
        false
    }
}

/// Frames an Avro body written with the schema registered as `schema_id`.
pub fn encode_wire(schema_id: u32, avro_body: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(WIRE_HEADER_LEN + avro_body.len());
    encode_wire_header(schema_id, &mut framed);
    framed.extend_from_slice(avro_body);
    framed
}

/// Appends the header for `schema_id`; the Avro body follows it.
pub fn encode_wire_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a frame into its schema id and Avro body. The body may be empty: whether that is a
/// valid datum is for the schema to say.
pub fn parse_wire(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    let Some((&magic, rest)) = bytes.split_first() else {
        return Err(WireError::Empty);
    };
    // The magic byte is checked first: garbage that happens to be short is still reported as
    // "not this format" rather than "too short".
    if magic != MAGIC_BYTE {
        return Err(WireError::WrongMagicByte { found: magic });
    }
    let Some((id, body)) = rest.split_first_chunk::<4>() else {
        return Err(WireError::TooShort { len: bytes.len() });
    };
    Ok((u32::from_be_bytes(*id), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_id_and_body() {
        let framed = encode_wire(0x0102_0304, b"body");
        assert_eq!(framed, [0, 1, 2, 3, 4, b'b', b'o', b'd', b'y']);
        assert_eq!(parse_wire(&framed), Ok((0x0102_0304, &b"body"[..])));
    }

    #[test]
    fn header_only_is_an_empty_body() {
        let framed = encode_wire(u32::MAX, &[]);
        assert_eq!(parse_wire(&framed), Ok((u32::MAX, &[][..])));
    }

    #[test]
    fn empty_value_is_empty() {
        assert_eq!(parse_wire(&[]), Err(WireError::Empty));
    }

    #[test]
    fn one_to_four_bytes_are_too_short() {
        for len in 1..WIRE_HEADER_LEN {
            let bytes = vec![0u8; len];
            assert_eq!(
                parse_wire(&bytes),
                Err(WireError::TooShort { len }),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn wrong_magic_byte_is_named() {
        assert_eq!(
            parse_wire(&[1, 0, 0, 0, 7, 2]),
            Err(WireError::WrongMagicByte { found: 1 })
        );
        assert_eq!(
            parse_wire(b"{\"json\": true}"),
            Err(WireError::WrongMagicByte { found: b'{' })
        );
        let message = WireError::WrongMagicByte { found: 0xff }.to_string();
        assert!(message.contains("0xff"), "{message}");
    }

    #[test]
    fn no_wire_error_is_retryable() {
        assert!(!WireError::Empty.is_retryable());
        assert!(!WireError::TooShort { len: 2 }.is_retryable());
        assert!(!WireError::WrongMagicByte { found: 9 }.is_retryable());
    }
}
