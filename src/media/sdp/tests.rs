//! SDP parser and rewriter tests: real-world offers, the SDP bodies of the RFC 4475 torture
//! messages, the rewrite the B2BUA relies on, and arbitrary input.

use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An offer as Asterisk 18 sends it on a trunk.
const ASTERISK: &str = "v=0\r\n\
o=- 1719405130 1719405130 IN IP4 10.20.0.5\r\n\
s=Asterisk\r\n\
c=IN IP4 10.20.0.5\r\n\
t=0 0\r\n\
m=audio 17424 RTP/AVP 0 8 3 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:3 GSM/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

/// The body most RFC 4475 messages carry (§3.1.1.3 and others).
const RFC4475: &str = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\ns=-\r\n\
c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\n\
a=rtpmap:31 LPC\r\n";

fn sock(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

fn pcmu_only(connection: &str, port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc={connection}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\n{extra}"
    )
}

#[test]
fn asterisk_offer() {
    let sdp = Sdp::parse(ASTERISK).expect("parses");
    assert_eq!(sdp.audio_destination(), Some(sock("10.20.0.5:17424")));
    assert_eq!(
        sdp.audio_formats(),
        vec![
            (0, Some("PCMU/8000".to_owned())),
            (8, Some("PCMA/8000".to_owned())),
            (3, Some("GSM/8000".to_owned())),
            (101, Some("telephone-event/8000".to_owned())),
        ]
    );
    assert_eq!(sdp.audio_direction(), "sendrecv");
    assert_eq!(
        sdp.to_string(),
        ASTERISK,
        "unchanged lines are written back as read"
    );
}

#[test]
fn rfc4475_body() {
    let sdp = Sdp::parse(RFC4475).expect("parses");
    assert_eq!(sdp.audio_destination(), Some(sock("192.0.2.1:49217")));
    assert_eq!(
        sdp.audio_formats(),
        vec![
            (0, Some("PCMU/8000".to_owned())),
            (12, Some("QCELP/8000".to_owned()))
        ],
        "static types known without rtpmap; the video rtpmap does not leak into audio"
    );
    assert_eq!(sdp.to_string(), RFC4475);
}

#[test]
fn rfc4475_wsinv_uses_c_not_o() {
    // §3.1.1.1: the o= and c= addresses differ; media goes to c=.
    let body = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\n\
                c=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\n\
                m=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";
    let sdp = Sdp::parse(body).expect("parses");
    assert_eq!(sdp.audio_destination(), Some(sock("192.0.2.4:49217")));
}

#[test]
fn rfc4475_broken_bodies_are_errors() {
    // §3.1.2.x TC_MISMATCH02: no s= and no t=.
    let no_s = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\n\
                m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";
    assert_eq!(Sdp::parse(no_s), Err(SdpError::Missing { field: 's' }));
    // The body of TC_TEST_I.
    assert_eq!(
        Sdp::parse("v=0\r\ntesting=123\r\n"),
        Err(SdpError::Malformed {
            line: 2,
            reason: "not of the form <type>=<value>"
        })
    );
    // The trailing octets of TC_DBLREQ: "m =video".
    let dblreq = RFC4475.replace("m=video", "m =video");
    assert!(matches!(
        Sdp::parse(&dblreq),
        Err(SdpError::Malformed { line: 7, .. })
    ));
}

#[test]
fn media_level_connection_overrides_session_level() {
    let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                m=video 5000 RTP/AVP 31\r\nc=IN IP4 10.0.0.9\r\n\
                m=audio 4000 RTP/AVP 8\r\na=sendonly\r\nc=IN IP4 10.0.0.2/127\r\n";
    let sdp = Sdp::parse(body).expect("parses");
    // c= comes after a= here: order inside a section is tolerated.
    assert_eq!(sdp.audio_destination(), Some(sock("10.0.0.2:4000")));
    assert_eq!(sdp.audio_formats(), vec![(8, Some("PCMA/8000".to_owned()))]);
    assert_eq!(sdp.audio_direction(), "sendonly");

    // Without a media-level c=, the session-level one applies, not the video one.
    let body = body.replace("c=IN IP4 10.0.0.2/127\r\n", "");
    let sdp = Sdp::parse(&body).expect("parses");
    assert_eq!(sdp.audio_destination(), Some(sock("10.0.0.1:4000")));
}

#[test]
fn ipv6_destination() {
    let body = "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::2\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 0\r\n";
    let sdp = Sdp::parse(body).expect("parses");
    assert_eq!(sdp.audio_destination(), Some(sock("[2001:db8::2]:4000")));
}

#[test]
fn no_destination_for_refused_held_or_unresolvable_streams() {
    let refused = Sdp::parse(&pcmu_only("IN IP4 10.0.0.1", 0, "")).expect("parses");
    assert_eq!(refused.audio_destination(), None);
    let held = Sdp::parse(&pcmu_only("IN IP4 0.0.0.0", 4000, "")).expect("parses");
    assert_eq!(held.audio_destination(), None);
    let held6 = Sdp::parse(&pcmu_only("IN IP6 ::", 4000, "")).expect("parses");
    assert_eq!(held6.audio_destination(), None);
    let fqdn = Sdp::parse(&pcmu_only("IN IP4 pbx.example.com", 4000, "")).expect("parses");
    assert_eq!(fqdn.audio_destination(), None);
    let wrong_family = Sdp::parse(&pcmu_only("IN IP4 ::1", 4000, "")).expect("parses");
    assert_eq!(wrong_family.audio_destination(), None);
    let video_only = RFC4475.replace("m=audio 49217 RTP/AVP 0 12\r\n", "");
    let video_only = Sdp::parse(&video_only).expect("parses");
    assert_eq!(video_only.audio_destination(), None);
    assert!(video_only.audio_formats().is_empty());
    assert_eq!(video_only.audio_direction(), "sendrecv");
}

#[test]
fn anchor_rewrites_addresses_and_ports_only() {
    let mut sdp = Sdp::parse(ASTERISK).expect("parses");
    let formats = sdp.audio_formats();
    sdp.anchor(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)), 30000);
    let text = sdp.to_string();
    assert_eq!(
        text,
        ASTERISK
            .replace("IN IP4 10.20.0.5", "IN IP4 203.0.113.10")
            .replace("m=audio 17424", "m=audio 30000")
    );
    let again = Sdp::parse(&text).expect("anchored SDP parses");
    assert_eq!(again.audio_destination(), Some(sock("203.0.113.10:30000")));
    assert_eq!(again.audio_formats(), formats);
    assert_eq!(again.audio_direction(), "sendrecv");
}

#[test]
fn anchor_declines_other_streams_and_moves_rtcp() {
    let body = "v=0\r\no=alice 7 8 IN IP4 198.51.100.7\r\ns=-\r\nt=0 0\r\n\
                m=audio 4000/2 RTP/AVP 0 101\r\nc=IN IP4 198.51.100.7\r\na=rtcp:4001\r\n\
                a=rtcp-mux\r\na=rtpmap:101 telephone-event/8000\r\n\
                m=video 5000 RTP/AVP 96\r\nc=IN IP4 198.51.100.7\r\na=rtpmap:96 H264/90000\r\n\
                m=audio 0 RTP/AVP 8\r\n";
    let mut sdp = Sdp::parse(body).expect("parses");
    sdp.anchor(IpAddr::V6(Ipv6Addr::LOCALHOST), 20000);
    assert_eq!(
        sdp.to_string(),
        "v=0\r\no=alice 7 8 IN IP6 ::1\r\ns=-\r\nt=0 0\r\n\
         m=audio 20000 RTP/AVP 0 101\r\nc=IN IP6 ::1\r\na=rtcp:20001\r\n\
         a=rtcp-mux\r\na=rtpmap:101 telephone-event/8000\r\n\
         m=video 0 RTP/AVP 96\r\nc=IN IP6 ::1\r\na=rtpmap:96 H264/90000\r\n\
         m=audio 0 RTP/AVP 8\r\n"
    );
}

#[test]
fn anchor_keeps_a_refused_audio_stream_refused() {
    let mut sdp = Sdp::parse(&pcmu_only("IN IP4 10.0.0.1", 0, "")).expect("parses");
    sdp.anchor(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50)), 20000);
    assert!(sdp.to_string().contains("m=audio 0 RTP/AVP 0\r\n"));
    assert_eq!(sdp.audio_destination(), None);
}

#[test]
fn anchor_adds_a_connection_line_when_there_is_none() {
    let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nb=AS:64\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 0\r\n";
    let mut sdp = Sdp::parse(body).expect("parses");
    assert_eq!(sdp.audio_destination(), None);
    sdp.anchor(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50)), 20000);
    assert_eq!(
        sdp.to_string(),
        "v=0\r\no=- 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nb=AS:64\r\n\
         t=0 0\r\nm=audio 20000 RTP/AVP 0\r\n"
    );
    assert_eq!(sdp.audio_destination(), Some(sock("192.0.2.50:20000")));
}

#[test]
fn lf_only_input_is_written_with_crlf() {
    let lf = ASTERISK.replace("\r\n", "\n");
    let sdp = Sdp::parse(&lf).expect("LF-only parses");
    assert_eq!(sdp.audio_destination(), Some(sock("10.20.0.5:17424")));
    assert_eq!(sdp.to_string(), ASTERISK);
    // No final line end, a trailing blank line and mixed ends are fine too.
    let ragged = format!("{}\r\n\r\n", lf.trim_end());
    assert_eq!(Sdp::parse(&ragged).expect("parses").to_string(), ASTERISK);
}

#[test]
fn directions() {
    let session_level =
        pcmu_only("IN IP4 10.0.0.1", 4000, "").replace("t=0 0", "a=inactive\r\nt=0 0");
    let sdp = Sdp::parse(&session_level).expect("parses");
    assert_eq!(sdp.audio_direction(), "inactive");
    let both = format!("{session_level}a=recvonly\r\n");
    assert_eq!(
        Sdp::parse(&both).expect("parses").audio_direction(),
        "recvonly"
    );
    let unknown = pcmu_only("IN IP4 10.0.0.1", 4000, "a=sendsideways\r\n");
    assert_eq!(
        Sdp::parse(&unknown).expect("parses").audio_direction(),
        "sendrecv"
    );
}

#[test]
fn formats_without_rtpmap_and_overridden_static_types() {
    let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 96 8 0 200 x 13\r\na=rtpmap:8  PCMA/8000/1\r\n\
                a=rtpmap:96\r\n";
    let sdp = Sdp::parse(body).expect("parses");
    assert_eq!(
        sdp.audio_formats(),
        vec![
            (96, None),
            (8, Some("PCMA/8000/1".to_owned())),
            (0, Some("PCMU/8000".to_owned())),
            (13, Some("CN/8000".to_owned())),
        ]
    );
}

#[test]
fn unknown_lines_are_kept() {
    let body = pcmu_only(
        "IN IP4 10.0.0.1",
        4000,
        "a=X-vendor-thing:1 2 3\r\nb=TIAS:64000\r\na=fmtp:0 foo\r\n",
    )
    .replace(
        "s=-\r\n",
        "s=-\r\ni=info\r\nu=http://example.com\r\ne=a@example.com\r\n",
    );
    let sdp = Sdp::parse(&body).expect("parses");
    assert_eq!(sdp.to_string(), body);
}

#[test]
fn garbage_is_an_error() {
    let cases: &[&str] = &[
        "",
        "\r\n\r\n",
        "hello world",
        "v=0",
        "v=1\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
        "V=0\r\n",
        "=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=- 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio -1 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio 1/x RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nx=what\r\nm=audio 1 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\0\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=a\rb\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
        "\u{feff}v=0\r\n",
        "é=0\r\n",
    ];
    for case in cases {
        assert!(Sdp::parse(case).is_err(), "accepted {case:?}");
    }
    assert_eq!(
        Sdp::parse("v=0\r\nx=1\r\n"),
        Err(SdpError::UnknownType {
            line: 2,
            letter: 'x'
        })
    );
}

#[test]
fn size_limits() {
    let big = format!("{ASTERISK}a={}\r\n", "x".repeat(MAX_SDP_BYTES));
    assert!(matches!(Sdp::parse(&big), Err(SdpError::TooLarge { .. })));
    let many = format!("{ASTERISK}{}", "a=x\n".repeat(MAX_SDP_LINES));
    assert_eq!(
        Sdp::parse(&many),
        Err(SdpError::TooManyLines { max: MAX_SDP_LINES })
    );
}

/// Lines that look like SDP, so that the property test reaches the accessors often.
fn sdp_line() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("v=0".to_owned()),
        1 => Just("o=- 1 2 IN IP4 10.0.0.1".to_owned()),
        1 => Just("s=-".to_owned()),
        1 => Just("t=0 0".to_owned()),
        4 => "c=IN IP4 (10\\.0\\.0\\.[0-9]{1,3}|0\\.0\\.0\\.0)(/127)?",
        1 => "c=IN IP6 (2001:db8::[0-9a-f]{1,4}|::)",
        1 => "c=IN IP[46x] [0-9a-f.:/]{0,20}",
        4 => "m=audio [0-9]{1,5}(/2)? RTP/AVP( [0-9]{1,3}){1,4}",
        1 => "m=(audio|video) [0-9]{1,6}(/[0-9]{1,2})? RTP/AVP( [0-9x]{1,4}){0,4}",
        3 => "a=rtpmap:[0-9]{1,3} ?[A-Za-z0-9-]{1,10}/[0-9]{4,5}",
        3 => "a=(sendrecv|sendonly|recvonly|inactive|rtcp:[0-9]{1,5}|rtcp-mux|ptime:20)",
        2 => "[iuepbrzk]=[ -~]{0,30}",
        1 => "[a-z]=[ -~]{0,30}",
        1 => "[ -~]{0,10}",
    ]
}

proptest! {
    // Cheap cases: enough of them that a few hundred reach the accessors and the rewrite.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,300}") {
        let _ = Sdp::parse(&text);
    }

    #[test]
    fn sdp_like_input_never_panics_and_anchoring_round_trips(
        with_header in proptest::bool::weighted(0.8),
        lines in proptest::collection::vec(sdp_line(), 0..16),
        crlf in any::<bool>(),
        port in 1u16..,
    ) {
        let header = ["v=0", "o=- 1 2 IN IP4 10.0.0.1", "s=-", "t=0 0"];
        let all: Vec<&str> = header
            .iter()
            .copied()
            .filter(|_| with_header)
            .chain(lines.iter().map(String::as_str))
            .collect();
        let text = all.join(if crlf { "\r\n" } else { "\n" });
        if let Ok(mut sdp) = Sdp::parse(&text) {
            let _ = sdp.audio_destination();
            let formats = sdp.audio_formats();
            let direction = sdp.audio_direction().to_owned();
            let had_audio = sdp.audio_destination().is_some();
            sdp.anchor(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)), port);
            let again = Sdp::parse(&sdp.to_string()).expect("anchored SDP parses again");
            prop_assert_eq!(again.audio_formats(), formats);
            prop_assert_eq!(again.audio_direction(), direction);
            if had_audio {
                prop_assert_eq!(
                    again.audio_destination(),
                    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)), port))
                );
            }
        }
    }
}
