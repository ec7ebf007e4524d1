//! A file in the recordings tree at start-up: the repair of WAVs whose header disagrees
//! with their length.
//! The body is `threering::fuzzing::wav_repair`, which `cargo test` also runs over the seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threering::fuzzing::wav_repair(data);
});
