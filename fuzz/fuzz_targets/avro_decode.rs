//! Any bytes as a Kafka value: the decoder must return a user or a precise error, never panic.
//! The first byte chooses whether the input is taken as a whole message (wire header included)
//! or as an Avro body behind a valid header, so both layers are explored.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use userstream::codec::{encode_wire, Decoder, USER_SCHEMA_VERSIONS};

fn decoder() -> &'static Decoder {
    static DECODER: OnceLock<Decoder> = OnceLock::new();
    DECODER.get_or_init(|| {
        let mut decoder = Decoder::new().expect("the reader schema parses");
        for (index, schema) in USER_SCHEMA_VERSIONS.iter().enumerate() {
            decoder
                .register_writer(index as u32 + 1, schema)
                .expect("every local version resolves against the newest");
        }
        decoder
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let versions = USER_SCHEMA_VERSIONS.len() as u32;
    let _ = if mode < 128 {
        decoder().decode(rest)
    } else {
        decoder().decode(&encode_wire(u32::from(mode) % versions + 1, rest))
    };
});
