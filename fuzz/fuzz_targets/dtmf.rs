//! RFC 4733 telephone-events (a timed packet script) into the DTMF receiver, with the
//! relay's timer, and SIP INFO key bodies.
//! The body is `threering::fuzzing::dtmf`, which `cargo test` also runs over the seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = threering::fuzzing::dtmf(data);
});
