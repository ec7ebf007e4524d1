//! RTP datagrams (a timed packet script) through the relay's checks into the recorder;
//! the WAV must be as long as the call and readable by hound.
//! The body is `threering::fuzzing::rtp`, which `cargo test` also runs over the seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threering::fuzzing::rtp(data);
});
