//! Codec throughput on one thread, ours against the generic `apache_avro` path, on the same
//! messages: every accepted record of `fixtures/randomuser/`, encoded with the newest schema.
//!
//! * decode + normalize — ours: `Decoder::decode` (the cached per-writer plan, straight into the
//!   record) then `normalize_owned`; baseline: `from_avro_datum(writer, reader)` (as its
//!   `GenericDatumReader` equivalent) → `Value` →
//!   `record_from_value` → `normalize_owned`.
//! * encode — ours: `Encoder::encode_message`; baseline: the record → `Value` (`to_avro_value`)
//!   → `to_avro_datum` (as `GenericDatumWriter`), behind the same wire header.
//!
//! `cargo bench --bench codec [-- --quick] [-- --json PATH]` (or `USERSTREAM_BENCH_JSON=PATH`).
//! Each case alternates whole passes of ours and of the baseline over the messages until each
//! has run for about 2.5 s (0.2 s with `--quick`), after a warm-up pass. Flags it does not know
//! (cargo passes `--bench`) are ignored.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use userstream::codec::{
    encode_wire_header, parse_wire, record_from_value, to_avro_value, Decoder, Encoder, USER_SCHEMA,
};
use userstream::model::UserRecord;
use userstream::normalize::normalize_owned;
use userstream::randomuser::parse_response;

const SCHEMA_ID: u32 = 1;

struct Options {
    quick: bool,
    json: Option<PathBuf>,
}

fn options() -> Options {
    let mut options = Options {
        quick: false,
        json: std::env::var_os("USERSTREAM_BENCH_JSON").map(PathBuf::from),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--json" => options.json = args.next().map(PathBuf::from),
            _ => {}
        }
    }
    options
}

/// Every accepted record of every fixture file, in file-name order.
fn fixture_records() -> Vec<UserRecord> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/randomuser");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let body = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let response =
                parse_response(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            response
                .accepted()
                .map(|parsed| parsed.record.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Records per second of `ours` and of `baseline` (each handles `per_pass` records per call),
/// after one warm-up pass each. Their passes alternate until both have run for `window`, so
/// both see the same load on a shared machine and the ratio stays meaningful.
fn compare(
    per_pass: usize,
    window: Duration,
    mut ours: impl FnMut(),
    mut baseline: impl FnMut(),
) -> Comparison {
    ours();
    baseline();
    let (mut ours_time, mut baseline_time) = (Duration::ZERO, Duration::ZERO);
    let mut passes = 0u64;
    while passes == 0 || ours_time.min(baseline_time) < window {
        let started = Instant::now();
        ours();
        ours_time += started.elapsed();
        let started = Instant::now();
        baseline();
        baseline_time += started.elapsed();
        passes += 1;
    }
    let records = (passes * per_pass as u64) as f64;
    Comparison {
        ours: records / ours_time.as_secs_f64(),
        baseline: records / baseline_time.as_secs_f64(),
    }
}

struct Comparison {
    ours: f64,
    baseline: f64,
}

impl Comparison {
    fn ratio(&self) -> f64 {
        self.ours / self.baseline
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "ours_rps": self.ours.round(),
            "baseline_rps": self.baseline.round(),
            "ratio": (self.ratio() * 100.0).round() / 100.0,
        })
    }
}

fn main() {
    let options = options();
    let window = Duration::from_millis(if options.quick { 200 } else { 2_500 });

    let records = fixture_records();
    let encoder = Encoder::new().expect("the newest schema is writable");
    let mut decoder = Decoder::new().expect("the newest schema is a valid reader");
    decoder
        .register_writer(SCHEMA_ID, USER_SCHEMA)
        .expect("the newest schema reads itself");
    let schema = Schema::parse_str(USER_SCHEMA).expect("the newest schema parses");
    let messages: Vec<Vec<u8>> = records
        .iter()
        .map(|record| {
            encoder
                .encode_message(SCHEMA_ID, record)
                .expect("a record encodes")
        })
        .collect();

    let ours_decode = |message: &[u8]| {
        let record = decoder.decode(message).expect("decodes").record;
        normalize_owned(record)
    };
    let baseline_decode = |message: &[u8]| {
        let (_, mut body) = parse_wire(message).expect("a wire-format frame");
        // `from_avro_datum(writer, body, Some(reader))`, which is deprecated in favour of this.
        let value = GenericDatumReader::builder(&schema)
            .reader_schema(&schema)
            .build()
            .and_then(|reader| reader.read_value(&mut body))
            .expect("decodes");
        normalize_owned(record_from_value(value).expect("a UserRecord"))
    };
    let ours_encode = |record: &UserRecord| {
        encoder
            .encode_message(SCHEMA_ID, record)
            .expect("a record encodes")
    };
    let baseline_encode = |record: &UserRecord| {
        // `to_avro_datum(schema, value)`, which is deprecated in favour of this.
        let body = GenericDatumWriter::builder(&schema)
            .build()
            .and_then(|writer| writer.write_value_to_vec(to_avro_value(record)))
            .expect("a record encodes");
        let mut message = Vec::with_capacity(5 + body.len());
        encode_wire_header(SCHEMA_ID, &mut message);
        message.extend_from_slice(&body);
        message
    };

    // Both paths must agree on every message before their speeds mean anything.
    for (record, message) in records.iter().zip(&messages) {
        assert_eq!(
            ours_encode(record),
            baseline_encode(record),
            "{}",
            record.id
        );
        assert_eq!(
            ours_decode(message),
            baseline_decode(message),
            "{}",
            record.id
        );
    }

    let count = messages.len();
    let decode_normalize = compare(
        count,
        window,
        || {
            for message in &messages {
                black_box(ours_decode(black_box(message)).ok());
            }
        },
        || {
            for message in &messages {
                black_box(baseline_decode(black_box(message)).ok());
            }
        },
    );
    let encode = compare(
        count,
        window,
        || {
            for record in &records {
                black_box(ours_encode(black_box(record)));
            }
        },
        || {
            for record in &records {
                black_box(baseline_encode(black_box(record)));
            }
        },
    );

    println!(
        "codec, one thread, {count} fixture records{}",
        if options.quick { " (quick)" } else { "" }
    );
    println!(
        "{:<18} {:>14} {:>14} {:>7}",
        "case", "ours rec/s", "baseline rec/s", "ratio"
    );
    for (name, comparison) in [("decode+normalize", &decode_normalize), ("encode", &encode)] {
        println!(
            "{name:<18} {:>14.0} {:>14.0} {:>6.2}x",
            comparison.ours,
            comparison.baseline,
            comparison.ratio()
        );
    }

    if let Some(path) = options.json {
        let report = serde_json::json!({
            "decode_normalize": decode_normalize.json(),
            "encode": encode.json(),
            "records": count,
            "quick": options.quick,
        });
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let text = serde_json::to_string_pretty(&report).expect("JSON");
        std::fs::write(&path, text + "\n").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("wrote {}", path.display());
    }
}
