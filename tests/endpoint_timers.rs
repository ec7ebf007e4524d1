//! The endpoint's retransmission timers over real loopback sockets, with a short T1 so
//! the whole RFC 3261 schedule fits in about a second: a client INVITE to a silent peer
//! is retransmitted on T1, 2T1, 4T1… and given up after 64·T1; a 2xx we send is
//! retransmitted (doubling, capped at T2) until the ACK arrives, and reported when it
//! never does.

use std::time::{Duration, Instant};
use threering::sip::endpoint::{Endpoint, EndpointConfig, Event, Target};
use threering::sip::header::HeaderName;
use threering::sip::message::{response_to, Method, Request};
use threering::sip::transaction::{TerminationReason, TimerConfig};
use threering::sip::transport::Protocol;
use threering::sip::Uri;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const T1: Duration = Duration::from_millis(20);
const T2: Duration = Duration::from_millis(80);

async fn endpoint() -> (
    Endpoint,
    tokio::sync::mpsc::Receiver<Event>,
    CancellationToken,
) {
    let cancel = CancellationToken::new();
    let config = EndpointConfig {
        listen: vec!["udp:127.0.0.1:0".parse().unwrap()],
        timers: TimerConfig {
            t1: T1,
            t2: T2,
            t4: Duration::from_millis(100),
        },
        ..EndpointConfig::default()
    };
    let (ep, events) = Endpoint::start(config, cancel.clone()).await.unwrap();
    (ep, events, cancel)
}

#[tokio::test]
async fn client_invite_retransmits_then_gives_up_after_64_t1() {
    let (ep, mut events, cancel) = endpoint().await;
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = Target {
        protocol: Protocol::Udp,
        addr: silent.local_addr().unwrap(),
    };
    let mut req = Request::new(
        Method::Invite,
        Uri::parse(&format!("sip:agent@{}", target.addr)).unwrap(),
    );
    req.headers
        .push(HeaderName::From, "<sip:tr@127.0.0.1>;tag=a1");
    req.headers.push(HeaderName::To, "<sip:agent@127.0.0.1>");
    req.headers.push(HeaderName::CallId, "timer-test-1");
    req.headers.push(HeaderName::CSeq, "1 INVITE");
    let started = Instant::now();
    let tx = ep.request(req, target).await.unwrap();
    let mut arrivals = Vec::new();
    let mut buf = [0u8; 4096];
    let failed_at = loop {
        tokio::select! {
            r = silent.recv_from(&mut buf) => { r.unwrap(); arrivals.push(started.elapsed()); }
            ev = events.recv() => match ev.unwrap() {
                Event::ClientFailed { tx: t, reason } => {
                    assert_eq!(t, tx);
                    assert_eq!(reason, TerminationReason::Timeout);
                    break started.elapsed();
                }
                other => panic!("unexpected event {other:?}"),
            },
            _ = tokio::time::sleep(Duration::from_secs(5)) => panic!("no timeout reported"),
        }
    };
    // Sends at 0, T1, 3T1, 7T1, 15T1, 31T1, 63T1: seven, then Timer B at 64·T1.
    assert_eq!(arrivals.len(), 7, "INVITE sends at {arrivals:?}");
    for (i, at) in arrivals.iter().enumerate() {
        let expected = T1 * ((1u32 << i) - 1);
        assert!(
            at.abs_diff(expected) < Duration::from_millis(25),
            "send {i} at {at:?}, expected {expected:?}"
        );
    }
    assert!(
        failed_at.abs_diff(T1 * 64) < Duration::from_millis(30),
        "gave up at {failed_at:?}"
    );
    cancel.cancel();
}

fn invite_bytes(call_id: &str, local: std::net::SocketAddr) -> String {
    format!(
        "INVITE sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id};rport\r\nFrom: <sip:c@127.0.0.1>;tag=c1\r\nTo: <sip:echo@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Answers the INVITE with 200 and collects when each 200 arrives at the caller.
async fn send_invite_and_answer(ack: bool) -> (Vec<Duration>, Option<Duration>) {
    let (ep, mut events, cancel) = endpoint().await;
    let addr = ep.listening()[0].addr;
    let caller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let call_id = format!("ack-test-{ack}");
    caller
        .send_to(
            invite_bytes(&call_id, caller.local_addr().unwrap()).as_bytes(),
            addr,
        )
        .await
        .unwrap();
    let Some(Event::Request { tx, request, .. }) = events.recv().await else {
        panic!("no INVITE")
    };
    let mut ok = response_to(&request, 200, None, Some("uas1"));
    ok.headers
        .push(HeaderName::Contact, format!("<sip:echo@{addr}>"));
    let started = Instant::now();
    ep.respond(tx, ok).await.unwrap();
    let mut oks = Vec::new();
    let mut ack_timeout = None;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::sleep(T1 * 64 + Duration::from_millis(500));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            r = caller.recv_from(&mut buf) => {
                let (n, _) = r.unwrap();
                if buf[..n].starts_with(b"SIP/2.0 200") {
                    oks.push(started.elapsed());
                    if ack && oks.len() == 3 {
                        let a = format!("ACK sip:echo@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKack1\r\nFrom: <sip:c@127.0.0.1>;tag=c1\r\nTo: <sip:echo@127.0.0.1>;tag=uas1\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", caller.local_addr().unwrap());
                        caller.send_to(a.as_bytes(), addr).await.unwrap();
                    }
                }
            }
            ev = events.recv() => match ev {
                Some(Event::AckTimeout { call_id: c, .. }) => { assert_eq!(c, call_id); ack_timeout = Some(started.elapsed()); }
                Some(Event::Ack { .. }) => {}
                other => panic!("unexpected event {other:?}"),
            },
            _ = &mut deadline => break,
        }
    }
    cancel.cancel();
    (oks, ack_timeout)
}

#[tokio::test]
async fn two_hundred_is_retransmitted_capped_at_t2_until_64_t1_without_ack() {
    let (oks, timeout) = send_invite_and_answer(false).await;
    // 0, T1, 3T1, then every T2 (= 4·T1) until 64·T1.
    let mut expected = vec![Duration::ZERO, T1, T1 * 3];
    let mut at = T1 * 3;
    loop {
        at += T2;
        if at >= T1 * 64 {
            break;
        }
        expected.push(at);
    }
    assert_eq!(
        oks.len(),
        expected.len(),
        "200 OK arrivals {oks:?}, expected {expected:?}"
    );
    for (got, want) in oks.iter().zip(&expected) {
        assert!(
            got.abs_diff(*want) < Duration::from_millis(25),
            "200 at {got:?}, expected {want:?}"
        );
    }
    let timeout = timeout.expect("AckTimeout reported");
    assert!(
        timeout.abs_diff(T1 * 64) < Duration::from_millis(30),
        "AckTimeout at {timeout:?}"
    );
}

#[tokio::test]
async fn ack_stops_two_hundred_retransmissions() {
    let (oks, timeout) = send_invite_and_answer(true).await;
    assert_eq!(oks.len(), 3, "200 OK arrivals {oks:?}");
    assert!(timeout.is_none());
}
