//! HTTP/1.1 over a plain `TcpStream` (or rustls on one, for HTTPS): one request without a
//! body (`GET`, `POST`; Connection: close, optional bearer token and extra headers) and
//! its response parsed, chunked bodies included, the body kept as raw bytes.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::base::{head_end, show_bytes};

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const HTTP_WAIT: Duration = Duration::from_secs(5);

/// `GET path` (Connection: close), optionally with `Authorization: Bearer token`.
pub fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<HttpResponse, String> {
    http_request(addr, "GET", path, token, &[])
}

/// `method path` with no body (Connection: close), optionally with `Authorization: Bearer
/// token`, and `headers` as (name, value) pairs. The body of the answer is kept as raw
/// bytes (a WAV file, say).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    http_send(addr, method, path, token, headers, None)
}

/// `method path` with a JSON `body` (Connection: close) and the bearer `token`.
pub fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<HttpResponse, String> {
    http_send(addr, method, path, token, &[], Some(body))
}

/// `method path` over HTTPS, the server verified with `tls` for the IP of `addr`; an
/// optional JSON `body`. Otherwise like [`http_request`].
pub fn https_request(
    addr: SocketAddr,
    tls: &Arc<ClientConfig>,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpResponse, String> {
    http_send_over(addr, Some(tls), method, path, token, headers, body)
}

fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpResponse, String> {
    http_send_over(addr, None, method, path, token, headers, body)
}

/// Something to write a request to and read its answer from: a socket, or TLS on one.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// One request over plain HTTP, or HTTPS when `tls` is given.
pub(super) fn http_send_over(
    addr: SocketAddr,
    tls: Option<&Arc<ClientConfig>>,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpResponse, String> {
    let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("HTTP connect to {addr}: {e}"))?;
    socket
        .set_write_timeout(Some(HTTP_WAIT))
        .map_err(|e| e.to_string())?;
    // Read timeouts are set on the socket, under TLS too.
    let timeouts = socket.try_clone().map_err(|e| e.to_string())?;
    let mut stream: Box<dyn Stream> = match tls {
        None => Box::new(socket),
        Some(config) => {
            let name = ServerName::IpAddress(addr.ip().into());
            let conn = ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
            Box::new(StreamOwned::new(conn, socket))
        }
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        let _ = write!(req, "Authorization: Bearer {token}\r\n");
    }
    for (name, value) in headers {
        let _ = write!(req, "{name}: {value}\r\n");
    }
    match body {
        Some(body) => {
            let _ = write!(
                req,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        None => {
            if method != "GET" && method != "HEAD" {
                req.push_str("Content-Length: 0\r\n");
            }
            req.push_str("\r\n");
        }
    }
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("HTTP write to {addr}: {e}"))?;
    let deadline = Instant::now() + HTTP_WAIT;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "{method} {path}: no complete answer within {HTTP_WAIT:?} (got {})",
                show_bytes(&raw, 300)
            ));
        }
        timeouts
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if raw.is_empty() => return Err(format!("{method} {path}: read: {e}")),
            Err(_) => break,
        }
    }
    parse_http_response(&raw).map_err(|e| format!("{method} {path}: {e}"))
}

fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let body_start =
        head_end(raw).ok_or_else(|| format!("no header block in {}", show_bytes(raw, 300)))?;
    let head = String::from_utf8_lossy(&raw[..body_start - 4]);
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut parts = start.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: {start:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {start:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[body_start..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        if rest.len() < len {
            return Err(format!(
                "body shorter ({}) than Content-Length {len}",
                rest.len()
            ));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
