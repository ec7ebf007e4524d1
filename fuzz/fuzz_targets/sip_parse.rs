//! The SIP message path as threering runs it: stream framing, parsing, the lenient scan
//! that answers broken requests, serialize → parse stability, and for requests what the
//! endpoint, call control, the registrar and digest authentication do with them.
//! The body is `threering::fuzzing::sip`, which `cargo test` also runs over the seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threering::fuzzing::sip(data);
});
