use std::collections::BTreeSet;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::fields::{Field, Kind, ValueProblem};
use super::*;
use crate::error::Retryable;
use crate::model::UserRecord;

const ID: u32 = 7;

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap()
}

fn full_user() -> UserRecord {
    UserRecord {
        id: "f4b1c3a2-9d7e-4c61-8a0b-2e5f6d7c8b9a".into(),
        gender: Some("female".into()),
        title: Some("Ms".into()),
        first_name: Some("Jennie".into()),
        last_name: Some("Nichols".into()),
        email: Some("jennie.nichols@example.com".into()),
        username: Some("yellowpeacock117".into()),
        date_of_birth: Some(Utc.with_ymd_and_hms(1992, 3, 8, 15, 13, 16).unwrap()),
        registered_at: Some(at(1_165_152_855_231_000)),
        phone: Some("(272) 790-0888".into()),
        cell: Some("(489) 330-2385".into()),
        street_number: Some("8929".into()),
        street_name: Some("Valwood Pkwy".into()),
        city: Some("Billings".into()),
        state: Some("Michigan".into()),
        country: Some("United States".into()),
        postcode: Some("63104".into()),
        latitude: Some(-69.8246),
        longitude: Some(134.8719),
        timezone_offset: Some("+9:30".into()),
        timezone_description: Some("Adelaide, Darwin".into()),
        national_id_name: Some("SSN".into()),
        national_id_value: Some("405-88-3636".into()),
        picture_large: Some("https://randomuser.me/api/portraits/women/75.jpg".into()),
        picture_medium: Some("https://randomuser.me/api/portraits/med/women/75.jpg".into()),
        picture_thumbnail: Some("https://randomuser.me/api/portraits/thumb/women/75.jpg".into()),
        nat: Some("US".into()),
        source_api_version: Some("1.4".into()),
        age: Some(33),
        id_source: Some("login_uuid".into()),
    }
}

fn empty_user() -> UserRecord {
    UserRecord::with_id("00000000-0000-0000-0000-000000000000")
}

fn persian_user() -> UserRecord {
    UserRecord {
        id: "6b0c3f5e-1a2d-4e8f-9c7b-3d2e1f0a9b8c".into(),
        gender: Some("female".into()),
        title: Some("Miss".into()),
        first_name: Some("  مریم ".into()),
        last_name: Some("رضایی".into()),
        email: Some("mrym.rdyy@example.com".into()),
        username: Some("bigleopard592".into()),
        date_of_birth: Some(at(-631_152_000_000_001)),
        registered_at: Some(at(1_420_070_400_123_456)),
        phone: Some("017-49765458".into()),
        cell: Some("0913-432-6075".into()),
        street_number: Some("6435".into()),
        street_name: Some("پارک شریعتی".into()),
        city: Some("تهران".into()),
        state: Some("خراسان رضوی".into()),
        country: Some("Iran".into()),
        postcode: Some("12345".into()),
        latitude: Some(35.6892),
        longitude: Some(51.3890),
        timezone_offset: Some("+3:30".into()),
        timezone_description: Some("Tehran".into()),
        national_id_name: Some("".into()),
        national_id_value: None,
        picture_large: None,
        picture_medium: None,
        picture_thumbnail: None,
        nat: Some("IR".into()),
        source_api_version: Some("1.0".into()),
        age: Some(i64::MAX),
        id_source: Some("email_dob".into()),
    }
}

fn decoder() -> Decoder {
    let mut decoder = Decoder::new().unwrap();
    decoder.register_writer(ID, USER_SCHEMA).unwrap();
    decoder
}

fn round_trip(user: &UserRecord) -> UserRecord {
    let message = Encoder::new().unwrap().encode_message(ID, user).unwrap();
    let decoded = decoder().decode(&message).unwrap();
    assert_eq!(decoded.schema_id, ID);
    decoded.record
}

/// Writes `fields` with a test-only writer schema, bypassing `UserRecord`.
fn write_with(schema_json: &str, fields: Vec<(&str, Value)>) -> Vec<u8> {
    let schema = Schema::parse_str(schema_json).unwrap();
    let writer = GenericDatumWriter::builder(&schema).build().unwrap();
    let value = Value::Record(fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect());
    writer.write_value_to_vec(value).unwrap()
}

fn some(value: Value) -> Value {
    Value::Union(1, Box::new(value))
}

fn null() -> Value {
    Value::Union(0, Box::new(Value::Null))
}

// ---- the schema and the struct agree ----

#[test]
fn newest_schema_describes_exactly_user_record() {
    let Schema::Record(record) = Schema::parse_str(USER_SCHEMA).unwrap() else {
        panic!("the value schema must be a record");
    };
    assert_eq!(record.name.fullname(None), "io.userstream.User");
    let schema_names: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
    let mapped_names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(
        schema_names, mapped_names,
        "schema fields vs. UserRecord fields, in order"
    );

    // serde sees the struct's real field list, independent of the mapping in `fields.rs`.
    let serde_names: BTreeSet<String> = match serde_json::to_value(full_user()).unwrap() {
        serde_json::Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("UserRecord serialized as {other}"),
    };
    let schema_set: BTreeSet<String> = schema_names.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        serde_names, schema_set,
        "UserRecord fields vs. schema fields"
    );

    for (field, mapped) in record.fields.iter().zip(Field::ALL) {
        assert!(
            field.doc.as_deref().is_some_and(|d| !d.is_empty()),
            "{} has no doc",
            field.name
        );
        match mapped.kind() {
            Kind::RequiredString => assert!(field.default.is_none(), "{}", field.name),
            _ => assert_eq!(
                field.default,
                Some(serde_json::Value::Null),
                "{}",
                field.name
            ),
        }
    }
    // Each field's type is what the Rust type needs; the decoder refuses a reader otherwise.
    Decoder::new().unwrap();
}

#[test]
fn no_schema_version_carries_credentials() {
    for schema in USER_SCHEMA_VERSIONS {
        let lower = schema.to_lowercase();
        for secret in ["password", "salt", "md5", "sha1", "sha256"] {
            assert!(!lower.contains(secret), "a schema mentions {secret}");
        }
    }
}

#[test]
fn every_schema_version_parses_and_the_newest_reads_them_all() {
    let mut decoder = Decoder::new().unwrap();
    for (index, schema) in USER_SCHEMA_VERSIONS.iter().enumerate() {
        decoder.register_writer(index as u32 + 1, schema).unwrap();
    }
    assert_eq!(decoder.cached_writers(), USER_SCHEMA_VERSIONS.len());
}

#[test]
fn reader_field_of_the_wrong_type_is_refused() {
    let reader = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"},
        {"name": "latitude", "type": ["null", "string"], "default": null}]}"#;
    let error = Decoder::with_reader_schema(reader).unwrap_err();
    assert!(matches!(&error, DecodeError::ReaderField { field, .. } if field == "latitude"));
    assert_eq!(error.kind(), "reader_schema");

    let reader = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"}, {"name": "password", "type": "string"}]}"#;
    let error = Decoder::with_reader_schema(reader).unwrap_err();
    assert!(matches!(&error, DecodeError::ReaderField { field, .. } if field == "password"));
}

// ---- round trips ----

#[test]
fn real_looking_users_round_trip() {
    for user in [full_user(), empty_user(), persian_user()] {
        assert_eq!(round_trip(&user), user);
    }
}

#[test]
fn persian_text_survives_byte_for_byte() {
    let back = round_trip(&persian_user());
    assert_eq!(back.first_name.as_deref(), Some("  مریم "));
    assert_eq!(back.state.as_deref(), Some("خراسان رضوی"));
    assert_eq!(back.national_id_name.as_deref(), Some(""));
}

#[test]
fn extreme_coordinates_round_trip_bit_for_bit() {
    let pairs = [
        (90.0, 180.0),
        (-90.0, -180.0),
        (-0.0, 0.0),
        (f64::MIN_POSITIVE, -f64::MIN_POSITIVE),
        (f64::MAX, f64::MIN),
        (5e-324, f64::INFINITY),
    ];
    for (latitude, longitude) in pairs {
        let user = UserRecord {
            latitude: Some(latitude),
            longitude: Some(longitude),
            ..full_user()
        };
        let back = round_trip(&user);
        assert_eq!(back.latitude.map(f64::to_bits), Some(latitude.to_bits()));
        assert_eq!(back.longitude.map(f64::to_bits), Some(longitude.to_bits()));
    }
}

#[test]
fn extreme_timestamps_round_trip() {
    for instant in [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        at(0),
        at(-1),
    ] {
        let instant = at(instant.timestamp_micros());
        let user = UserRecord {
            date_of_birth: Some(instant),
            registered_at: Some(instant),
            ..empty_user()
        };
        assert_eq!(round_trip(&user), user);
    }
}

#[test]
fn encoded_body_is_plain_avro_behind_the_wire_header() {
    let encoder = Encoder::new().unwrap();
    let user = full_user();
    let body = encoder.encode(&user).unwrap();
    let message = encoder.encode_message(0x0102_0304, &user).unwrap();
    assert_eq!(&message[..WIRE_HEADER_LEN], [0, 1, 2, 3, 4]);
    assert_eq!(&message[WIRE_HEADER_LEN..], body);
    // Avro string: zig-zag length (36 → 72) then UTF-8; the id is the first field.
    assert_eq!(body[0], 72);
    assert_eq!(&body[1..37], user.id.as_bytes());
}

// ---- wire-format errors through the decoder ----

#[test]
fn wire_errors_are_reported_as_wire_format() {
    let decoder = decoder();
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (vec![], WireError::Empty),
        (vec![0], WireError::TooShort { len: 1 }),
        (vec![0, 0], WireError::TooShort { len: 2 }),
        (vec![0, 0, 0], WireError::TooShort { len: 3 }),
        (vec![0, 0, 0, 7], WireError::TooShort { len: 4 }),
        (vec![1, 0, 0, 0, 7], WireError::WrongMagicByte { found: 1 }),
        (
            b"garbage!".to_vec(),
            WireError::WrongMagicByte { found: b'g' },
        ),
    ];
    for (bytes, expected) in cases {
        let error = decoder.decode(&bytes).unwrap_err();
        assert!(
            matches!(&error, DecodeError::Wire(e) if *e == expected),
            "{bytes:?}: {error}"
        );
        assert_eq!(error.kind(), "wire_format");
    }
}

#[test]
fn unknown_schema_id_is_named_and_registering_it_fixes_the_message() {
    let mut decoder = Decoder::new().unwrap();
    let message = Encoder::new()
        .unwrap()
        .encode_message(42, &full_user())
        .unwrap();
    let error = decoder.decode(&message).unwrap_err();
    assert!(matches!(error, DecodeError::UnknownSchemaId(42)), "{error}");
    assert_eq!(error.kind(), "unknown_schema");
    assert!(!decoder.knows(42));

    decoder.register_writer(42, USER_SCHEMA).unwrap();
    assert!(decoder.knows(42));
    assert_eq!(decoder.decode(&message).unwrap().record, full_user());
}

// ---- truncated, padded and corrupt bodies ----

/// What apache-avro 0.22 itself does, which the decoder must not pass on: a body cut at a field
/// boundary decodes as `Ok` with every optional field after the cut null; a body cut inside its
/// last string field decodes as `Ok` with that string null; bytes after a complete datum are left
/// unread without complaint.
#[test]
fn apache_avro_reads_a_cut_body_as_nulls_and_ignores_trailing_bytes() {
    let schema = Schema::parse_str(USER_SCHEMA).unwrap();
    let reader = GenericDatumReader::builder(&schema).build().unwrap();
    let body = Encoder::new().unwrap().encode(&full_user()).unwrap();

    // 37 bytes = the id (1-byte length + 36 characters): everything after it is missing.
    let mut after_id = &body[..37];
    let Value::Record(fields) = reader.read_value(&mut after_id).unwrap() else {
        panic!("not a record");
    };
    assert_eq!(fields[0].1, Value::String(full_user().id));
    assert!(
        fields[1..].iter().all(|(_, value)| *value == null()),
        "{fields:?}"
    );

    let mut cut = &body[..body.len() - 1];
    let Value::Record(fields) = reader.read_value(&mut cut).unwrap() else {
        panic!("not a record");
    };
    assert_eq!(
        fields.last().unwrap(),
        &("id_source".to_owned(), some(Value::Null))
    );

    let mut padded = body.clone();
    padded.extend_from_slice(b"extra");
    let mut rest = &padded[..];
    reader.read_value(&mut rest).unwrap();
    assert_eq!(rest, b"extra");
}

#[test]
fn every_truncation_of_a_body_is_an_error_naming_a_field() {
    let decoder = decoder();
    let encoder = Encoder::new().unwrap();
    let field_names: BTreeSet<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    for user in [full_user(), empty_user(), persian_user()] {
        let body = encoder.encode(&user).unwrap();
        for cut in 0..body.len() {
            let message = encode_wire(ID, &body[..cut]);
            match decoder.decode(&message) {
                Err(DecodeError::TruncatedBody {
                    field, schema_id, ..
                }) => {
                    assert_eq!(schema_id, ID);
                    assert!(
                        field_names.contains(field.as_str()),
                        "cut {cut}: field {field}"
                    );
                }
                other => panic!("cut at {cut} of {}: {other:?}", body.len()),
            }
        }
    }
}

#[test]
fn truncation_names_the_field_it_happened_in() {
    let decoder = decoder();
    let user = full_user();
    let body = Encoder::new().unwrap().encode(&user).unwrap();
    // Inside the id (the first field), right after it, and inside `id_source` (the last).
    for (cut, expected) in [(10, "id"), (37, "gender"), (body.len() - 1, "id_source")] {
        let error = decoder.decode(&encode_wire(ID, &body[..cut])).unwrap_err();
        assert_eq!(error.kind(), "avro_body");
        assert!(
            matches!(&error, DecodeError::TruncatedBody { field, .. } if field == expected),
            "cut {cut}: {error}"
        );
        assert!(error.to_string().contains(expected), "{error}");
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let decoder = decoder();
    let mut message = Encoder::new()
        .unwrap()
        .encode_message(ID, &full_user())
        .unwrap();
    message.push(0);
    let error = decoder.decode(&message).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::TrailingBytes {
                schema_id: ID,
                count: 1
            }
        ),
        "{error}"
    );
    assert_eq!(error.kind(), "avro_body");
}

#[test]
fn corrupt_bodies_are_invalid_at_the_field() {
    let decoder = decoder();
    // id = "x", then `gender`'s union index 10 (zig-zag 20): no such branch.
    let error = decoder
        .decode(&encode_wire(ID, &[2, b'x', 20]))
        .unwrap_err();
    assert!(
        matches!(&error, DecodeError::InvalidBody { field, source: BodyProblem::UnionBranch { index: 10, branches: 2 }, .. } if field == "gender"),
        "{error}"
    );
    assert_eq!(error.kind(), "avro_body");

    // id = one byte that is not UTF-8.
    let error = decoder.decode(&encode_wire(ID, &[2, 0xff])).unwrap_err();
    assert!(
        matches!(&error, DecodeError::InvalidBody { field, source: BodyProblem::NotUtf8, .. } if field == "id"),
        "{error}"
    );
}

// ---- schema resolution ----

/// An older writer: fewer fields, `latitude` as a float, and a field the reader does not know.
const OLD_WRITER: &str = r#"{
  "type": "record", "name": "User", "namespace": "io.userstream",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "first_name", "type": ["null", "string"], "default": null},
    {"name": "legacy_rank", "type": "int"},
    {"name": "latitude", "type": ["null", "float"], "default": null},
    {"name": "registered_at", "type": ["null", "long"], "default": null}
  ]
}"#;

#[test]
fn older_writer_decodes_with_the_readers_defaults() {
    let mut decoder = Decoder::new().unwrap();
    decoder.register_writer(3, OLD_WRITER).unwrap();
    let body = write_with(
        OLD_WRITER,
        vec![
            ("id", Value::String("u-1".into())),
            ("first_name", some(Value::String("Ada".into()))),
            ("legacy_rank", Value::Int(5)),
            ("latitude", some(Value::Float(-33.5))),
            ("registered_at", some(Value::Long(1_700_000_000_000_001))),
        ],
    );
    let decoded = decoder.decode(&encode_wire(3, &body)).unwrap();
    assert_eq!(decoded.schema_id, 3);
    let expected = UserRecord {
        id: "u-1".into(),
        first_name: Some("Ada".into()),
        latitude: Some(-33.5),
        registered_at: Some(at(1_700_000_000_000_001)),
        ..empty_user()
    };
    assert_eq!(decoded.record, expected);
}

#[test]
fn renamed_field_is_found_through_the_readers_alias() {
    let writer = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"},
        {"name": "surname", "type": ["null", "string"], "default": null}]}"#;
    let reader = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"},
        {"name": "last_name", "aliases": ["surname"], "type": ["null", "string"], "default": null}]}"#;
    let mut decoder = Decoder::with_reader_schema(reader).unwrap();
    decoder.register_writer(1, writer).unwrap();
    let body = write_with(
        writer,
        vec![
            ("id", Value::String("u-2".into())),
            ("surname", some(Value::String("Lovelace".into()))),
        ],
    );
    let record = decoder.decode(&encode_wire(1, &body)).unwrap().record;
    assert_eq!(record.last_name.as_deref(), Some("Lovelace"));
}

#[test]
fn newer_writer_decodes_under_an_older_reader() {
    let reader = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"},
        {"name": "email", "type": ["null", "string"], "default": null}]}"#;
    let mut decoder = Decoder::with_reader_schema(reader).unwrap();
    decoder.register_writer(9, USER_SCHEMA).unwrap();
    let message = Encoder::new()
        .unwrap()
        .encode_message(9, &full_user())
        .unwrap();
    let record = decoder.decode(&message).unwrap().record;
    let expected = UserRecord {
        id: full_user().id,
        email: full_user().email,
        ..empty_user()
    };
    assert_eq!(record, expected);
}

#[test]
fn writer_the_reader_cannot_read_is_refused_and_remembered() {
    let writer = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"},
        {"name": "latitude", "type": "string"}]}"#;
    let mut decoder = Decoder::new().unwrap();
    let error = decoder.register_writer(5, writer).unwrap_err();
    assert_eq!(error.kind(), "schema_resolution");
    let DecodeError::RefusedWriter { source, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        matches!(
            **source,
            DecodeError::IncompatibleWriter { schema_id: 5, .. }
        ),
        "{source}"
    );

    let body = write_with(
        writer,
        vec![
            ("id", Value::String("u".into())),
            ("latitude", Value::String("north".into())),
        ],
    );
    let error = decoder.decode(&encode_wire(5, &body)).unwrap_err();
    assert!(
        matches!(error, DecodeError::RefusedWriter { schema_id: 5, .. }),
        "{error}"
    );
    assert_eq!(error.kind(), "schema_resolution");
    assert_eq!(decoder.cached_writers(), 1);
}

#[test]
fn writer_without_the_required_id_is_incompatible() {
    let writer = r#"{"type": "record", "name": "User", "fields": [
        {"name": "email", "type": ["null", "string"], "default": null}]}"#;
    let error = Decoder::new()
        .unwrap()
        .register_writer(6, writer)
        .unwrap_err();
    assert_eq!(error.kind(), "schema_resolution");
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn unparsable_writer_schema_is_a_resolution_error() {
    let error = Decoder::new()
        .unwrap()
        .register_writer(8, "{not json")
        .unwrap_err();
    assert_eq!(error.kind(), "schema_resolution");
    let DecodeError::RefusedWriter { source, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(matches!(
        **source,
        DecodeError::InvalidWriterSchema { schema_id: 8, .. }
    ));
}

#[test]
fn writer_with_union_branches_the_reader_lacks_is_refused() {
    // Some values would resolve (a non-null id, a null latitude), others never: refused up
    // front, as the registry's BACKWARD check would, rather than failing message by message.
    let writers = [
        r#"{"type": "record", "name": "User", "fields": [
            {"name": "id", "type": ["null", "string"], "default": null}]}"#,
        r#"{"type": "record", "name": "User", "fields": [
            {"name": "id", "type": "string"},
            {"name": "latitude", "type": ["null", "string"], "default": null}]}"#,
    ];
    for (id, writer) in (20..).zip(writers) {
        let error = Decoder::new()
            .unwrap()
            .register_writer(id, writer)
            .unwrap_err();
        assert_eq!(error.kind(), "schema_resolution");
        let DecodeError::RefusedWriter { source, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(
            matches!(**source, DecodeError::PartlyCompatibleWriter { schema_id } if schema_id == id),
            "{source}"
        );
    }
}

#[test]
fn timestamp_outside_chrono_range_is_an_invalid_value() {
    let writer = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"},
        {"name": "registered_at", "type": ["null", "long"], "default": null}]}"#;
    let mut decoder = Decoder::new().unwrap();
    decoder.register_writer(4, writer).unwrap();
    let body = write_with(
        writer,
        vec![
            ("id", Value::String("u".into())),
            ("registered_at", some(Value::Long(i64::MAX))),
        ],
    );
    let error = decoder.decode(&encode_wire(4, &body)).unwrap_err();
    assert!(
        matches!(
            &error,
            DecodeError::InvalidValue {
                field: "registered_at",
                problem: ValueProblem::TimestampOutOfRange { micros: i64::MAX },
                ..
            }
        ),
        "{error}"
    );
}

// ---- the per-id cache ----

#[test]
fn resolution_is_prepared_once_per_schema_id() {
    let mut decoder = Decoder::new().unwrap();
    assert_eq!(decoder.cached_writers(), 0);
    decoder.register_writer(ID, USER_SCHEMA).unwrap();
    let message = Encoder::new()
        .unwrap()
        .encode_message(ID, &full_user())
        .unwrap();
    for _ in 0..2 {
        assert_eq!(decoder.decode(&message).unwrap().record, full_user());
    }
    // A second registration of a known id keeps the prepared entry instead of re-resolving:
    // even a schema text that would be refused does not replace it.
    decoder.register_writer(ID, "{not json").unwrap();
    assert_eq!(decoder.cached_writers(), 1);
    assert_eq!(decoder.decode(&message).unwrap().record, full_user());
}

// ---- errors ----

#[test]
fn no_codec_error_is_retryable() {
    let mut decoder = Decoder::new().unwrap();
    let refused = decoder.register_writer(1, "[").unwrap_err();
    let errors = [
        decoder.decode(&[]).unwrap_err(),
        decoder.decode(&[0, 0, 0, 0, 9]).unwrap_err(),
        refused,
    ];
    for error in &errors {
        assert!(!error.is_retryable(), "{error}");
    }
    let encode_error = Encoder::with_schema("[").unwrap_err();
    assert!(!encode_error.is_retryable());
}

#[test]
fn encoder_refuses_a_schema_user_record_cannot_fill_up_front() {
    // `legacy_rank` is no `UserRecord` field; `latitude` is a float where the record has f64.
    let error = Encoder::with_schema(OLD_WRITER).unwrap_err();
    assert!(
        matches!(&error, EncodeError::UnsupportedField { field, .. } if field == "legacy_rank"),
        "{error}"
    );
    let float_latitude = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"},
        {"name": "latitude", "type": ["null", "float"], "default": null}]}"#;
    let error = Encoder::with_schema(float_latitude).unwrap_err();
    assert!(
        matches!(&error, EncodeError::UnsupportedField { field, .. } if field == "latitude"),
        "{error}"
    );
    assert!(error.to_string().contains("latitude"), "{error}");
}

// ---- properties ----

fn text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(any::<String>())
}

fn instant() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    let range =
        DateTime::<Utc>::MIN_UTC.timestamp_micros()..=DateTime::<Utc>::MAX_UTC.timestamp_micros();
    proptest::option::of(range.prop_map(at))
}

fn coordinate() -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(any::<f64>().prop_filter("NaN never equals itself", |x| !x.is_nan()))
}

prop_compose! {
    fn arbitrary_user()(
        (id, gender, title, first_name, last_name, email, username) in
            (any::<String>(), text(), text(), text(), text(), text(), text()),
        (date_of_birth, registered_at, phone, cell, street_number, street_name, city) in
            (instant(), instant(), text(), text(), text(), text(), text()),
        (state, country, postcode, latitude, longitude, timezone_offset, timezone_description) in
            (text(), text(), text(), coordinate(), coordinate(), text(), text()),
        (national_id_name, national_id_value, picture_large, picture_medium, picture_thumbnail, nat) in
            (text(), text(), text(), text(), text(), text()),
        (source_api_version, age, id_source) in
            (text(), proptest::option::of(any::<i64>()), text()),
    ) -> UserRecord {
        UserRecord {
            id, gender, title, first_name, last_name, email, username, date_of_birth,
            registered_at, phone, cell, street_number, street_name, city, state, country,
            postcode, latitude, longitude, timezone_offset, timezone_description,
            national_id_name, national_id_value, picture_large, picture_medium,
            picture_thumbnail, nat, source_api_version, age, id_source,
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_users_round_trip(user in arbitrary_user()) {
        prop_assert_eq!(round_trip(&user), user);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decoder().decode(&bytes);
    }

    #[test]
    fn arbitrary_bodies_never_panic_and_never_leave_bytes_unread(
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Ok(decoded) = decoder().decode(&encode_wire(ID, &body)) {
            // A successful decode consumed the whole body: re-encoding cannot be longer.
            let again = Encoder::new().unwrap().encode(&decoded.record).unwrap();
            prop_assert!(again.len() <= body.len());
        }
    }

    #[test]
    fn arbitrary_cut_of_an_arbitrary_user_is_an_error(user in arbitrary_user(), cut in any::<prop::sample::Index>()) {
        let body = Encoder::new().unwrap().encode(&user).unwrap();
        let cut = cut.index(body.len());
        let result = decoder().decode(&encode_wire(ID, &body[..cut]));
        prop_assert!(matches!(result, Err(DecodeError::TruncatedBody { .. })), "{:?}", result);
    }
}

// ---- the plan against apache-avro's resolution ----

/// What `apache_avro` makes of `body` (written with `writer`) read with the newest schema:
/// `from_avro_datum` with the reader schema, then the `Value` → `UserRecord` mapping.
fn apache_decode(writer: &Schema, body: &[u8]) -> UserRecord {
    let reader = Schema::parse_str(USER_SCHEMA).unwrap();
    let mut input = body;
    // What the deprecated `from_avro_datum(writer, body, Some(reader))` does.
    let value = GenericDatumReader::builder(writer)
        .reader_schema(&reader)
        .build()
        .unwrap()
        .read_value(&mut input)
        .unwrap();
    assert!(input.is_empty(), "apache-avro left {} byte(s)", input.len());
    record_from_value(value).unwrap()
}

/// What the deprecated `to_avro_datum(schema, value)` does.
fn apache_write(schema: &Schema, value: Value) -> apache_avro::AvroResult<Vec<u8>> {
    GenericDatumWriter::builder(schema)
        .build()?
        .write_value_to_vec(value)
}

/// `user` as the value of an older schema version: each writer field takes the `UserRecord`
/// field of its name or of the newest field whose aliases name it; an int takes the age.
fn value_for_version(schema: &Schema, user: &UserRecord) -> Value {
    let Schema::Record(record) = schema else {
        panic!("not a record");
    };
    let Value::Record(newest) = to_avro_value(user) else {
        panic!("not a record value");
    };
    let Schema::Record(newest_schema) = Schema::parse_str(USER_SCHEMA).unwrap() else {
        panic!("not a record");
    };
    let fields = record
        .fields
        .iter()
        .map(|field| {
            let source = newest_schema
                .fields
                .iter()
                .position(|f| f.name == field.name || f.aliases.contains(&field.name))
                .unwrap();
            let value = match (&field.schema, newest[source].1.clone()) {
                (Schema::Union(union), Value::Union(1, inner))
                    if union.variants()[1] == Schema::Int =>
                {
                    let Value::Long(long) = *inner else {
                        panic!("age is a long");
                    };
                    Value::Union(1, Box::new(Value::Int(i32::try_from(long).unwrap())))
                }
                (_, value) => value,
            };
            (field.name.clone(), value)
        })
        .collect();
    Value::Record(fields)
}

/// A user whose age fits the int of schema v2.
fn user_for_every_version() -> impl Strategy<Value = UserRecord> {
    (arbitrary_user(), proptest::option::of(any::<i32>())).prop_map(|(user, age)| UserRecord {
        age: age.map(i64::from),
        ..user
    })
}

#[test]
fn encoder_writes_what_apache_avro_writes_for_the_fixed_users() {
    let schema = Schema::parse_str(USER_SCHEMA).unwrap();
    let encoder = Encoder::new().unwrap();
    for user in [full_user(), empty_user(), persian_user()] {
        let apache = apache_write(&schema, to_avro_value(&user)).unwrap();
        assert_eq!(encoder.encode(&user).unwrap(), apache, "{}", user.id);
    }
}

#[test]
fn encoder_accepts_either_order_of_a_nullable_union() {
    let reordered = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"},
        {"name": "email", "type": ["string", "null"]},
        {"name": "age", "type": ["long", "null"]}]}"#;
    let schema = Schema::parse_str(reordered).unwrap();
    let encoder = Encoder::with_schema(reordered).unwrap();
    for user in [full_user(), empty_user()] {
        let value = Value::Record(vec![
            ("id".into(), Value::String(user.id.clone())),
            (
                "email".into(),
                match &user.email {
                    Some(email) => Value::Union(0, Box::new(Value::String(email.clone()))),
                    None => Value::Union(1, Box::new(Value::Null)),
                },
            ),
            (
                "age".into(),
                match user.age {
                    Some(age) => Value::Union(0, Box::new(Value::Long(age))),
                    None => Value::Union(1, Box::new(Value::Null)),
                },
            ),
        ]);
        let apache = apache_write(&schema, value).unwrap();
        assert_eq!(encoder.encode(&user).unwrap(), apache, "{}", user.id);
    }
}

#[test]
fn record_from_value_names_what_does_not_fit() {
    let error = record_from_value(Value::Record(vec![(
        "password".into(),
        Value::String("x".into()),
    )]))
    .unwrap_err();
    assert_eq!(error.field, "password");
    assert_eq!(error.problem, ValueProblem::UnknownField);
    let error = record_from_value(Value::Record(vec![])).unwrap_err();
    assert_eq!(error.problem, ValueProblem::RequiredNull);
    let error = record_from_value(Value::Null).unwrap_err();
    assert!(matches!(error.problem, ValueProblem::WrongType { .. }));
}

/// A writer-only field of a recursive type: a crafted body nesting it deeper than the plan
/// allows is refused, not a stack overflow.
#[test]
fn deeply_nested_writer_only_values_are_refused_not_a_stack_overflow() {
    let writer = r#"{"type": "record", "name": "User", "namespace": "io.userstream", "fields": [
        {"name": "id", "type": "string"},
        {"name": "chain", "type": {"type": "record", "name": "Link", "fields": [
            {"name": "next", "type": ["null", "Link"]}]}}]}"#;
    let mut decoder = Decoder::new().unwrap();
    decoder.register_writer(30, writer).unwrap();
    let chain = |depth: usize| {
        let mut body = vec![2, b'u'];
        body.extend(std::iter::repeat_n(2, depth));
        body.push(0);
        encode_wire(30, &body)
    };
    assert_eq!(decoder.decode(&chain(10)).unwrap().record.id, "u");
    let error = decoder.decode(&chain(100_000)).unwrap_err();
    assert!(
        matches!(&error, DecodeError::InvalidBody { field, source: BodyProblem::TooDeep(_), .. } if field == "chain"),
        "{error}"
    );
}

#[test]
fn bogus_counts_and_lengths_in_skipped_values_are_errors_without_work() {
    let writer = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "string"},
        {"name": "nothings", "type": {"type": "array", "items": "null"}},
        {"name": "tags", "type": {"type": "map", "values": "string"}}]}"#;
    let mut decoder = Decoder::new().unwrap();
    decoder.register_writer(31, writer).unwrap();
    let long = |value: i64, out: &mut Vec<u8>| super::binary::write_long(out, value);

    // 2^62 nulls take no bytes and no time; then an empty map.
    let mut body = vec![2, b'u'];
    long(1 << 62, &mut body);
    long(0, &mut body);
    long(0, &mut body);
    assert_eq!(
        decoder.decode(&encode_wire(31, &body)).unwrap().record.id,
        "u"
    );

    // A map block claiming 2^62 entries in a few bytes: truncated at once.
    let mut body = vec![2, b'u', 0];
    long(1 << 62, &mut body);
    let error = decoder.decode(&encode_wire(31, &body)).unwrap_err();
    assert!(
        matches!(&error, DecodeError::TruncatedBody { field, .. } if field == "tags"),
        "{error}"
    );

    // A string length near i64::MAX: truncated, nothing allocated.
    let mut body = vec![];
    long(i64::MAX, &mut body);
    let error = decoder.decode(&encode_wire(31, &body)).unwrap_err();
    assert!(
        matches!(&error, DecodeError::TruncatedBody { field, .. } if field == "id"),
        "{error}"
    );
}

/// One writer field of a random evolution of the newest schema, and a value for it.
struct EvolvedField {
    name: String,
    schema: String,
    value: Value,
}

fn random_text(rng: &mut StdRng) -> String {
    let alphabet = ['a', 'Z', ' ', 'é', 'ß', 'م', '7', '\u{1F600}'];
    (0..rng.random_range(0..12))
        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
        .collect()
}

/// A writer type the reader field `kind` can read (a promotion, a reordered or missing union,
/// `bytes` for text), and a value of it.
fn evolved_type(kind: Kind, rng: &mut StdRng) -> (String, Value) {
    let text = |rng: &mut StdRng| random_text(rng);
    let (plain, value): (&str, Value) = match (kind, rng.random_range(0..3)) {
        (Kind::RequiredString | Kind::OptionalString, 0) => {
            ("\"bytes\"", Value::Bytes(text(rng).into_bytes()))
        }
        (Kind::RequiredString | Kind::OptionalString, _) => {
            ("\"string\"", Value::String(text(rng)))
        }
        (Kind::OptionalLong, 0) => ("\"int\"", Value::Int(rng.random())),
        (Kind::OptionalLong, _) => ("\"long\"", Value::Long(rng.random())),
        (Kind::OptionalDouble, 0) => ("\"float\"", Value::Float(rng.random_range(-1e6..1e6))),
        (Kind::OptionalDouble, 1) => ("\"int\"", Value::Int(rng.random())),
        (Kind::OptionalDouble, _) => ("\"double\"", Value::Double(rng.random_range(-1e9..1e9))),
        (Kind::OptionalTimestampMicros, 0) => (
            "\"long\"",
            Value::Long(rng.random_range(-1_000_000_000_000_000..4_000_000_000_000_000)),
        ),
        (Kind::OptionalTimestampMicros, _) => (
            r#"{"type": "long", "logicalType": "timestamp-micros"}"#,
            Value::TimestampMicros(rng.random_range(-1_000_000_000_000_000..4_000_000_000_000_000)),
        ),
    };
    if kind == Kind::RequiredString {
        return (plain.to_owned(), value);
    }
    match rng.random_range(0..4) {
        0 => (plain.to_owned(), value),
        1 => (
            format!(r#"[{plain}, "null"]"#),
            if rng.random_bool(0.3) {
                Value::Union(1, Box::new(Value::Null))
            } else {
                Value::Union(0, Box::new(value))
            },
        ),
        _ => (
            format!(r#"["null", {plain}]"#),
            if rng.random_bool(0.3) {
                Value::Union(0, Box::new(Value::Null))
            } else {
                Value::Union(1, Box::new(value))
            },
        ),
    }
}

/// A field the reader does not know, of a type the plan must skip, and a value of it.
fn writer_only_field(index: usize, rng: &mut StdRng) -> EvolvedField {
    let (schema, value) = match rng.random_range(0..9) {
        0 => ("\"int\"".to_owned(), Value::Int(rng.random())),
        1 => ("\"boolean\"".to_owned(), Value::Boolean(rng.random())),
        2 => ("\"null\"".to_owned(), Value::Null),
        3 => (
            r#"{"type": "array", "items": "string"}"#.to_owned(),
            Value::Array(
                (0..rng.random_range(0..4))
                    .map(|_| Value::String(random_text(rng)))
                    .collect(),
            ),
        ),
        4 => (
            r#"{"type": "map", "values": "long"}"#.to_owned(),
            Value::Map(
                (0..rng.random_range(0..4))
                    .map(|_| (random_text(rng), Value::Long(rng.random())))
                    .collect(),
            ),
        ),
        5 => (
            format!(r#"{{"type": "enum", "name": "E{index}", "symbols": ["A", "B", "C"]}}"#),
            Value::Enum(1, "B".to_owned()),
        ),
        6 => (
            format!(r#"{{"type": "fixed", "name": "F{index}", "size": 3}}"#),
            Value::Fixed(3, vec![rng.random(), rng.random(), rng.random()]),
        ),
        7 => (
            format!(
                r#"{{"type": "record", "name": "R{index}", "fields": [
                    {{"name": "x", "type": ["null", "double"]}},
                    {{"name": "tags", "type": {{"type": "array", "items": "int"}}}}]}}"#
            ),
            Value::Record(vec![
                (
                    "x".into(),
                    Value::Union(1, Box::new(Value::Double(rng.random()))),
                ),
                (
                    "tags".into(),
                    Value::Array(vec![Value::Int(rng.random()), Value::Int(-1)]),
                ),
            ]),
        ),
        _ => (
            r#"["null", "string", "long"]"#.to_owned(),
            Value::Union(2, Box::new(Value::Long(rng.random()))),
        ),
    };
    EvolvedField {
        name: format!("legacy_{index}"),
        schema,
        value,
    }
}

/// A random writer schema the registry's BACKWARD rule accepts for the newest reader: some
/// reader fields left out (they take their defaults), promoted or reordered types, writer-only
/// fields of every kind of type, all in a shuffled order.
fn random_evolution(rng: &mut StdRng) -> Vec<EvolvedField> {
    let kept: Vec<Field> = Field::ALL
        .iter()
        .copied()
        .filter(|field| *field == Field::Id || rng.random_bool(0.8))
        .collect();
    let mut fields: Vec<EvolvedField> = kept
        .into_iter()
        .map(|field| {
            let (schema, value) = evolved_type(field.kind(), rng);
            EvolvedField {
                name: field.name().to_owned(),
                schema,
                value,
            }
        })
        .collect();
    for index in 0..rng.random_range(0..4) {
        fields.push(writer_only_field(index, rng));
    }
    fields.shuffle(rng);
    fields
}

proptest! {
    #[test]
    fn every_schema_version_decodes_like_apache_avro(user in user_for_every_version()) {
        let mut decoder = Decoder::new().unwrap();
        for (index, schema_json) in USER_SCHEMA_VERSIONS.iter().enumerate() {
            let id = index as u32 + 1;
            decoder.register_writer(id, schema_json).unwrap();
            let schema = Schema::parse_str(schema_json).unwrap();
            let body = apache_write(&schema, value_for_version(&schema, &user)).unwrap();
            let ours = decoder.decode(&encode_wire(id, &body)).unwrap().record;
            let mut expected = apache_decode(&schema, &body);
            if index == 1 {
                // apache-avro matches fields by name only: v2's `api_version` reaches the newest
                // reader's `source_api_version` through its alias in our plan alone.
                expected.source_api_version = user.source_api_version.clone();
            }
            prop_assert_eq!(ours, expected, "writer v{}", index + 1);
        }
    }

    #[test]
    fn encoder_writes_what_apache_avro_writes(user in arbitrary_user()) {
        let schema = Schema::parse_str(USER_SCHEMA).unwrap();
        let apache = apache_write(&schema, to_avro_value(&user)).unwrap();
        prop_assert_eq!(Encoder::new().unwrap().encode(&user).unwrap(), apache);
    }

    #[test]
    fn random_evolutions_decode_like_apache_avro(seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let fields = random_evolution(&mut rng);
        let schema_json = format!(
            r#"{{"type": "record", "name": "User", "namespace": "io.userstream", "fields": [{}]}}"#,
            fields
                .iter()
                .map(|f| format!(r#"{{"name": "{}", "type": {}}}"#, f.name, f.schema))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let schema = Schema::parse_str(&schema_json).unwrap();
        let value = Value::Record(fields.into_iter().map(|f| (f.name, f.value)).collect());
        let body = apache_write(&schema, value).unwrap();

        let mut decoder = Decoder::new().unwrap();
        decoder.register_writer(40, &schema_json).unwrap();
        let ours = decoder.decode(&encode_wire(40, &body));
        let expected = apache_decode(&schema, &body);
        prop_assert_eq!(ours.unwrap().record, expected, "{}", schema_json);

        // Every cut of the body is a truncation, never a panic or a record.
        for cut in 0..body.len() {
            let result = decoder.decode(&encode_wire(40, &body[..cut]));
            prop_assert!(matches!(result, Err(DecodeError::TruncatedBody { .. })), "cut {}: {:?}", cut, result);
        }
    }
}
