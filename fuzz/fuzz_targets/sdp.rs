//! SDP bodies: parse, the reads call control makes, print → parse, anchoring to the relay.
//! The body is `threering::fuzzing::sdp`, which `cargo test` also runs over the seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threering::fuzzing::sdp(data);
});
