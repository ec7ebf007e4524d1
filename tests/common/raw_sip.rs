//! Raw SIP over sockets: SIP responses parsed (start line and headers), datagrams sent and
//! awaited over UDP, and one request written and its answer read over a fresh TCP
//! connection.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

/// A response's start line and header fields (the body is ignored).
#[derive(Clone, Debug)]
pub struct SipResponse {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub raw: Vec<u8>,
}

impl SipResponse {
    /// The first value of header `name` (case-insensitive; `compact` is its one-letter form).
    pub fn header(&self, name: &str) -> Option<&str> {
        let compact = compact_form(name);
        self.headers
            .iter()
            .find(|(n, _)| {
                n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
            })
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Status line for messages: "400 Bad Request: CSeq".
    pub fn status_line(&self) -> String {
        format!("{} {}", self.code, self.reason)
    }
}

fn compact_form(name: &str) -> Option<&'static str> {
    const FORMS: &[(&str, &str)] = &[
        ("Call-ID", "i"),
        ("Contact", "m"),
        ("Content-Encoding", "e"),
        ("Content-Length", "l"),
        ("Content-Type", "c"),
        ("From", "f"),
        ("Subject", "s"),
        ("Supported", "k"),
        ("To", "t"),
        ("Via", "v"),
    ];
    FORMS
        .iter()
        .find(|(long, _)| long.eq_ignore_ascii_case(name))
        .map(|(_, short)| *short)
}

/// The end of the header block (index just past the empty line), if complete.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Parses the start line and headers of a SIP response (`SIP/2.0 CODE REASON`). Folded
/// header lines are joined. None if it is not a response.
pub fn parse_response(bytes: &[u8]) -> Option<SipResponse> {
    let end = head_end(bytes).unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let rest = start.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = match rest.split_once(' ') {
        Some((code, reason)) => (code, reason),
        None => (rest, ""),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    Some(SipResponse {
        code,
        reason: reason.to_string(),
        headers,
        raw: bytes.to_vec(),
    })
}

/// A UDP socket on 127.0.0.1, any port.
pub fn udp_socket() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP 127.0.0.1:0")
}

/// Waits up to `wait` for one datagram on `socket`.
pub fn udp_recv(socket: &UdpSocket, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        socket
            .set_read_timeout(Some(left))
            .expect("set UDP read timeout");
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            // e.g. ECONNREFUSED from an ICMP error: keep listening until the deadline.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Waits up to `wait` for the first datagram that is not a provisional (1xx) response;
/// provisional ones are skipped. Returns its bytes (a final response, or whatever else
/// came that is not a provisional).
pub fn udp_final_response(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (data, _) = udp_recv(socket, left)?;
        match parse_response(&data) {
            Some(resp) if resp.code < 200 => continue,
            _ => return Some(data),
        }
    }
}

/// Sends `bytes` as one datagram from `socket` to `target`, then waits up to `wait` for
/// the first datagram back.
pub fn udp_exchange(
    socket: &UdpSocket,
    target: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> io::Result<Option<Vec<u8>>> {
    let sent = socket.send_to(bytes, target)?;
    if sent != bytes.len() {
        return Err(io::Error::other(format!(
            "short UDP send: {sent} of {} bytes",
            bytes.len()
        )));
    }
    Ok(udp_recv(socket, wait).map(|(data, _)| data))
}

/// What came back on one TCP connection.
#[derive(Debug, Default)]
pub struct TcpExchange {
    /// Everything read, in order.
    pub received: Vec<u8>,
    /// Writing failed part-way (the peer may have closed early after answering).
    pub write_error: Option<String>,
    /// The peer closed (EOF or reset) before the deadline.
    pub closed: bool,
}

/// Opens a fresh connection to `target`, writes `bytes`, shuts down the write half when
/// `half_close`, then reads until EOF, a reset, `wait`, or (when `stop_at_first_head`) as
/// soon as a complete header block has arrived.
pub fn tcp_exchange(
    target: SocketAddr,
    bytes: &[u8],
    half_close: bool,
    wait: Duration,
    stop_at_first_head: bool,
) -> io::Result<TcpExchange> {
    let deadline = Instant::now() + wait;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut result = TcpExchange::default();
    if let Err(e) = stream.write_all(bytes) {
        result.write_error = Some(e.to_string());
    }
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut buf = [0u8; 16384];
    loop {
        if stop_at_first_head && head_end(&result.received).is_some() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => {
                result.closed = true;
                break;
            }
            Ok(n) => result.received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                result.closed = true;
                break;
            }
        }
    }
    Ok(result)
}
