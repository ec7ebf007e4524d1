//! The SIP message path as threering runs it: stream framing, parsing, the request
//! checks, the lenient header scan used to answer broken requests, typed accessors,
//! and serialize → parse stability for whatever parses.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use threering::sip::message::HeaderAccess;
use threering::sip::parse::{frame, parse, reply_info};
use threering::sip::validate::{check_request, Capabilities};
use threering::sip::Message;

fuzz_target!(|data: &[u8]| {
    let _ = frame(data);
    if let Some(info) = reply_info(data) {
        let _ = info.response(400, "Bad Request").to_bytes();
    }
    let Ok(msg) = parse(Bytes::copy_from_slice(data)) else { return };
    if let Message::Request(req) = &msg {
        let _ = check_request(req, &Capabilities::default());
        let _ = (req.vias(), req.contacts(), req.routes(), req.record_routes(), req.cseq(), req.header_from(), req.header_to());
    }
    let again = parse(msg.to_bytes()).expect("a serialized message parses");
    assert_eq!(again.to_bytes(), msg.to_bytes(), "serialization is stable");
});
