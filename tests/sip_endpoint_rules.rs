//! Transaction-layer rules of the SIP core against the running binary (sip-echo with a
//! long ring): a merged request (same From tag, Call-ID and CSeq as one in progress, but
//! another branch) gets 482; a CANCEL gets 200 and its INVITE 487; a CANCEL that
//! matches nothing gets 481.

mod common;

use common::{parse_response, udp_recv, udp_socket, SipEcho, SipEchoConfig};
use std::net::UdpSocket;
use std::time::Duration;

fn invite(socket: &UdpSocket, branch: &str, call_id: &str, method: &str) -> String {
    let local = socket.local_addr().unwrap();
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let (ct, body) = if method == "INVITE" {
        ("Content-Type: application/sdp\r\n", body)
    } else {
        ("", "")
    };
    format!(
        "{method} sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\nFrom: <sip:c@127.0.0.1>;tag=merge1\r\nTo: <sip:echo@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:c@{local}>\r\nMax-Forwards: 70\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Status codes received on `socket` within `wait`, in order.
fn statuses(socket: &UdpSocket, wait: Duration) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    while let Some((data, _)) = udp_recv(socket, wait) {
        if let Some(r) = parse_response(&data) {
            let cseq = r.header("CSeq").unwrap_or("").to_string();
            out.push((r.code, cseq));
        }
    }
    out
}

fn long_ring() -> SipEcho {
    SipEcho::start_with(&SipEchoConfig {
        ring_ms: 10_000,
        ..SipEchoConfig::default()
    })
}

#[test]
fn merged_request_gets_482() {
    let echo = long_ring();
    let socket = udp_socket();
    socket
        .send_to(
            invite(&socket, "z9hG4bKm1", "merge-call", "INVITE").as_bytes(),
            echo.udp,
        )
        .unwrap();
    let first = statuses(&socket, Duration::from_millis(500));
    assert!(
        first.iter().any(|(c, _)| *c == 180),
        "first INVITE rings: {first:?}"
    );
    // The same request forked back to us over another path: another branch.
    socket
        .send_to(
            invite(&socket, "z9hG4bKm2", "merge-call", "INVITE").as_bytes(),
            echo.udp,
        )
        .unwrap();
    let second = statuses(&socket, Duration::from_millis(500));
    assert_eq!(
        second.first().map(|s| s.0),
        Some(482),
        "merged request: {second:?}"
    );
}

#[test]
fn cancel_gets_200_and_the_invite_487_and_a_stray_cancel_481() {
    let echo = long_ring();
    let socket = udp_socket();
    socket
        .send_to(
            invite(&socket, "z9hG4bKc1", "cancel-call", "INVITE").as_bytes(),
            echo.udp,
        )
        .unwrap();
    let ringing = statuses(&socket, Duration::from_millis(500));
    assert!(ringing.iter().any(|(c, _)| *c == 180), "{ringing:?}");
    socket
        .send_to(
            invite(&socket, "z9hG4bKc1", "cancel-call", "CANCEL").as_bytes(),
            echo.udp,
        )
        .unwrap();
    let after = statuses(&socket, Duration::from_millis(500));
    assert!(after.contains(&(200, "1 CANCEL".to_string())), "{after:?}");
    assert!(after.contains(&(487, "1 INVITE".to_string())), "{after:?}");
    socket
        .send_to(
            invite(&socket, "z9hG4bKnone", "no-such-call", "CANCEL").as_bytes(),
            echo.udp,
        )
        .unwrap();
    let stray = statuses(&socket, Duration::from_millis(500));
    assert_eq!(stray.first().map(|s| s.0), Some(481), "{stray:?}");
}
