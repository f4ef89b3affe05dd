//! Decode throughput with the writer→reader resolution prepared once per schema id (what the
//! processor does) against resolving both schemas for every message, as `from_avro_datum` does
//! (apache/avro-rs issue 310) — measured in the same run, on the same message. Encode throughput
//! (the CDC poller's side) for reference.
//!
//! `cargo bench -p userstream --bench codec`. Criterion prints its statistics per benchmark; a
//! summary with records/s and the cached/baseline ratio follows.

use std::hint::black_box;
use std::time::{Duration, Instant};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;
use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput};
use userstream::codec::{encode_wire, Decoder, Encoder, USER_SCHEMA, WIRE_HEADER_LEN};
use userstream::model::UserRecord;

const SCHEMA_ID: u32 = 1;

fn user() -> UserRecord {
    UserRecord {
        id: "0b6e4c1e-7f7d-4b8e-9a51-3c2d1e0f9a8b".into(),
        gender: Some("female".into()),
        title: Some("Mrs".into()),
        first_name: Some("Nazanin".into()),
        last_name: Some("Karimi".into()),
        email: Some("nazanin.karimi@example.com".into()),
        username: Some("purplebird412".into()),
        date_of_birth: Utc.with_ymd_and_hms(1987, 11, 2, 4, 23, 51).single(),
        registered_at: Utc.with_ymd_and_hms(2014, 6, 19, 13, 2, 9).single(),
        phone: Some("012-34567890".into()),
        cell: Some("0912-345-6789".into()),
        street_number: Some("4213".into()),
        street_name: Some("Azadi".into()),
        city: Some("Tabriz".into()),
        state: Some("East Azerbaijan".into()),
        country: Some("Iran".into()),
        postcode: Some("51368".into()),
        latitude: Some(38.0962),
        longitude: Some(46.2738),
        timezone_offset: Some("+3:30".into()),
        timezone_description: Some("Tehran".into()),
        national_id_name: Some("".into()),
        national_id_value: None,
        picture_large: Some("https://randomuser.me/api/portraits/women/12.jpg".into()),
        picture_medium: Some("https://randomuser.me/api/portraits/med/women/12.jpg".into()),
        picture_thumbnail: Some("https://randomuser.me/api/portraits/thumb/women/12.jpg".into()),
        nat: Some("IR".into()),
        source_api_version: Some("1.4".into()),
        age: Some(44),
        id_source: Some("login_uuid".into()),
    }
}

/// The slow path: both schemas name-resolved again for every message. It stops at the resolved
/// Avro value (no `UserRecord` built), so the ratio it yields understates the difference.
fn decode_re_resolving(
    writer: &Schema,
    reader: &Schema,
    message: &[u8],
) -> apache_avro::types::Value {
    let mut body = &message[WIRE_HEADER_LEN..];
    GenericDatumReader::builder(writer)
        .reader_schema(reader)
        .build()
        .and_then(|datum_reader| datum_reader.read_value(&mut body))
        .unwrap_or_else(|error| panic!("baseline decode failed: {error}"))
}

fn records_per_second(mut decode_one: impl FnMut(), window: Duration) -> f64 {
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < window {
        for _ in 0..1_000 {
            decode_one();
        }
        count += 1_000;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let encoder = Encoder::new().expect("the newest schema parses");
    let mut decoder = Decoder::new().expect("the newest schema is a valid reader");
    decoder
        .register_writer(SCHEMA_ID, USER_SCHEMA)
        .expect("the newest schema reads itself");
    let schema = Schema::parse_str(USER_SCHEMA).expect("the newest schema parses");
    let record = user();
    let message = encode_wire(
        SCHEMA_ID,
        &encoder.encode(&record).expect("the record encodes"),
    );
    assert_eq!(decoder.decode(&message).expect("decodes").record, record);

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode/cached_resolution", |b| {
        b.iter(|| decoder.decode(black_box(&message)).expect("decodes"))
    });
    group.bench_function("decode/re_resolving_per_message", |b| {
        b.iter(|| decode_re_resolving(&schema, &schema, black_box(&message)))
    });
    group.bench_function("encode", |b| {
        b.iter(|| encoder.encode(black_box(&record)).expect("encodes"))
    });
    group.finish();
    criterion.final_summary();

    let window = Duration::from_secs(2);
    let cached = records_per_second(
        || {
            black_box(decoder.decode(black_box(&message)).expect("decodes"));
        },
        window,
    );
    let baseline = records_per_second(
        || {
            black_box(decode_re_resolving(&schema, &schema, black_box(&message)));
        },
        window,
    );
    println!("decode, cached resolution:        {cached:>12.0} records/s");
    println!("decode, re-resolving per message: {baseline:>12.0} records/s");
    println!("ratio: {:.2}x", cached / baseline);
}
