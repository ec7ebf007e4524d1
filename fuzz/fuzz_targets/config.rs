//! TOML text into the configuration: parse, validate, and what the daemon derives from it.
//! The body is `threering::fuzzing::config`, which `cargo test` also runs over the seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threering::fuzzing::config(data);
});
