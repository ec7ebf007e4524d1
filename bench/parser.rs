//! Parser throughput on a typical INVITE with SDP (as a softphone or PBX trunk sends
//! it): `cargo bench --bench parser`. Prints messages per second for parse alone and
//! for parse + the request checks + serialize (what the endpoint does per request).

use bytes::Bytes;
use std::hint::black_box;
use std::time::Instant;
use threering::sip::message::Message;
use threering::sip::parse::parse;
use threering::sip::validate::{check_request, Capabilities};

const INVITE: &str = "INVITE sip:4008001234@10.0.0.5:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-524287-1---e5c4b3a2d1f0;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:13800138000@10.0.0.9:5060;transport=udp>\r\n\
To: <sip:4008001234@10.0.0.5:5060>\r\n\
From: \"Customer\" <sip:13800138000@10.0.0.9:5060>;tag=8f2c1a7d\r\n\
Call-ID: 9b1e7a52c3d04f6b8a9e@10.0.0.9\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, timer\r\n\
User-Agent: Asterisk PBX 20.5.0\r\n\
X-Ticket-ID: T-20261123-0001\r\n\
Content-Length: 236\r\n\
\r\n\
v=0\r\n\
o=- 3927493 3927493 IN IP4 10.0.0.9\r\n\
s=Asterisk\r\n\
c=IN IP4 10.0.0.9\r\n\
t=0 0\r\n\
m=audio 18230 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name}: {:.0} messages/s ({:.2} µs each, {iterations} iterations)",
        f64::from(iterations) / secs,
        secs * 1e6 / f64::from(iterations)
    );
}

fn main() {
    let data = Bytes::from_static(INVITE.as_bytes());
    assert!(parse(data.clone()).is_ok(), "the benchmark INVITE parses");
    let caps = Capabilities::default();
    measure("parse", 200_000, || {
        black_box(parse(black_box(data.clone())).unwrap());
    });
    measure("parse+check+serialize", 200_000, || {
        if let Message::Request(req) = parse(black_box(data.clone())).unwrap() {
            black_box(check_request(&req, &caps).is_ok());
            black_box(req.to_bytes());
        }
    });
}
