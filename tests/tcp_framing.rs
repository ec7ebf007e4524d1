//! TCP framing against the running binary: a malformed message whose framing is intact
//! is answered 400 and the next message on the same connection is still served; a
//! stream that cannot be framed is answered 400 and only that connection is closed; a
//! CRLF keep-alive ping gets its pong; the IPv6 UDP listener answers too.

mod common;

use common::{parse_response, udp_exchange, SipEcho, SipEchoConfig};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn options(call_id: &str, cseq: &str, extra: &str) -> String {
    format!(
        "OPTIONS sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{call_id}\r\nFrom: <sip:t@127.0.0.1>;tag=f1\r\nTo: <sip:echo@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n{extra}\r\n"
    )
}

/// Reads from `stream` until `count` responses (each ending with a blank line and a
/// zero Content-Length) arrived, EOF, or `wait` passed. Returns the status codes and
/// whether the peer closed.
fn read_responses(stream: &mut TcpStream, count: usize, wait: Duration) -> (Vec<u16>, bool) {
    let deadline = Instant::now() + wait;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let mut closed = false;
    loop {
        let codes: Vec<u16> = data
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"SIP/2.0 "))
            .filter_map(|l| {
                parse_response(l.split(|&b| b == b'\r').next().unwrap_or(l))
                    .map(|r| r.code)
                    .or_else(|| std::str::from_utf8(&l[8..11]).ok()?.parse().ok())
            })
            .collect();
        if codes.len() >= count || closed || Instant::now() >= deadline {
            return (codes, closed);
        }
        stream
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => closed = true,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(_) => {
                if Instant::now() >= deadline {
                    return (codes, closed);
                }
            }
        }
    }
}

#[test]
fn malformed_but_framed_message_gets_400_and_the_connection_goes_on() {
    let echo = SipEcho::start();
    let mut stream = TcpStream::connect(echo.tcp).unwrap();
    let bad = options("tcpbad1", "99999999999 OPTIONS", "Content-Length: 0\r\n");
    let good = options("tcpgood1", "2 OPTIONS", "Content-Length: 0\r\n");
    stream.write_all(format!("{bad}{good}").as_bytes()).unwrap();
    let (codes, closed) = read_responses(&mut stream, 2, Duration::from_secs(3));
    assert_eq!(
        codes,
        vec![400, 200],
        "responses on one connection (closed: {closed})"
    );
    assert!(!closed, "the connection must stay open");
}

#[test]
fn unframeable_stream_closes_only_its_own_connection() {
    let echo = SipEcho::start();
    let mut other = TcpStream::connect(echo.tcp).unwrap();
    let mut broken = TcpStream::connect(echo.tcp).unwrap();
    // No Content-Length on a stream: the end of this message cannot be known.
    broken
        .write_all(options("tcpnocl", "1 OPTIONS", "").as_bytes())
        .unwrap();
    let (codes, closed) = read_responses(&mut broken, 2, Duration::from_secs(3));
    assert_eq!(codes, vec![400], "the unframeable message is answered 400");
    assert!(closed, "the unframeable connection is closed");
    other
        .write_all(options("tcpother", "1 OPTIONS", "Content-Length: 0\r\n").as_bytes())
        .unwrap();
    let (codes, closed) = read_responses(&mut other, 1, Duration::from_secs(3));
    assert_eq!(codes, vec![200], "the other connection still works");
    assert!(!closed);
}

#[test]
fn crlf_keepalive_ping_gets_a_pong() {
    let echo = SipEcho::start();
    let mut stream = TcpStream::connect(echo.tcp).unwrap();
    stream.write_all(b"\r\n\r\n").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 8];
    let n = stream.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"\r\n");
}

#[test]
fn ipv6_udp_listener_answers_options() {
    let echo = SipEcho::start_with(&SipEchoConfig {
        ipv6_udp: true,
        ..SipEchoConfig::default()
    });
    let addr = echo.udp6.expect("IPv6 listener");
    let socket = UdpSocket::bind("[::1]:0").unwrap();
    let msg = "OPTIONS sip:echo@[::1] SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:9;branch=z9hG4bKv6\r\nFrom: <sip:t@[::1]>;tag=f1\r\nTo: <sip:echo@[::1]>\r\nCall-ID: v6\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let reply = udp_exchange(&socket, addr, msg.as_bytes(), Duration::from_secs(2))
        .unwrap()
        .expect("a reply");
    assert!(
        reply.starts_with(b"SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}
