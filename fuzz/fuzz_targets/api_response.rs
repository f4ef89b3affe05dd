//! Any bytes as a randomuser.me response body: the parser must answer (a page, or a reason the
//! body is unusable) without panicking, and account for every element of `results`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userstream::randomuser::{parse_response, RecordOutcome};

fuzz_target!(|body: &[u8]| {
    if let Ok(response) = parse_response(body) {
        for outcome in &response.records {
            if let RecordOutcome::Accepted(user) = outcome {
                // What is accepted must also survive normalization without a panic.
                let _ = userstream::normalize::normalize(&user.record);
            }
        }
    }
});
