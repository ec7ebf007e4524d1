//! Event stream clients over plain sockets: SSE (`GET /api/events`, a chunked
//! `text/event-stream` parsed as it arrives) and WebSocket (`/api/events/ws`: the RFC 6455
//! handshake and unmasked server frames). Each runs a thread that hands what it parses to
//! a channel, until dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One SSE event: its `id:`, `event:` and `data:` (parsed as JSON).
#[derive(Debug, Clone)]
pub struct SseFrame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Value,
}

/// What a stream client collected.
pub struct StreamClient<T> {
    items: mpsc::Receiver<T>,
    pub got: Vec<T>,
    /// The response head (SSE) or handshake answer (WebSocket).
    pub head: String,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl<T> StreamClient<T> {
    /// Collects until `done` holds for everything so far, or `wait` passes.
    pub fn wait_until(&mut self, wait: Duration, done: impl Fn(&[T]) -> bool) -> &[T] {
        let deadline = Instant::now() + wait;
        while !done(&self.got) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self
                .items
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(item) => self.got.push(item),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        &self.got
    }
}

impl<T> Drop for StreamClient<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects and sends `request`; reads the response head (up to the blank line).
fn open(addr: SocketAddr, request: &str) -> (TcpStream, String, Vec<u8>) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no response head ({e}); got {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
        assert!(
            n > 0,
            "closed before the head: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    (stream, head, raw[end..].to_vec())
}

/// Reads into `pending` until stopped or closed, calling `parse` after each read; a
/// read timeout lets the stop flag be seen.
fn pump(
    mut stream: TcpStream,
    mut pending: Vec<u8>,
    stop: Arc<AtomicBool>,
    mut parse: impl FnMut(&mut Vec<u8>, &mut TcpStream) -> bool,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 8192];
    loop {
        if !parse(&mut pending, &mut stream) || stop.load(Ordering::SeqCst) {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                parse(&mut pending, &mut stream);
                return;
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// `GET path` as an SSE stream with the bearer token (and `Last-Event-ID` when given).
pub fn sse(
    addr: SocketAddr,
    token: &str,
    path: &str,
    last_event_id: Option<&str>,
) -> StreamClient<SseFrame> {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n"
    );
    if let Some(id) = last_event_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    let (stream, head, rest) = open(addr, &request);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: expected 200, got {head}"
    );
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let (tx, items) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = thread::spawn(move || {
        let mut text = Vec::new();
        pump(stream, rest, stopped, move |pending, _| {
            if chunked {
                // Move every complete chunk's payload to `text`.
                while let Some(eol) = pending.windows(2).position(|w| w == b"\r\n") {
                    let size_text = String::from_utf8_lossy(&pending[..eol]).into_owned();
                    let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
                        return false;
                    };
                    if size == 0 {
                        return false;
                    }
                    if pending.len() < eol + 2 + size + 2 {
                        break;
                    }
                    text.extend_from_slice(&pending[eol + 2..eol + 2 + size]);
                    pending.drain(..eol + 2 + size + 2);
                }
            } else {
                text.append(pending);
            }
            // Every complete event (a blank line ends it).
            while let Some(end) = text.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8_lossy(&text[..end]).into_owned();
                text.drain(..end + 2);
                let mut frame = SseFrame {
                    id: None,
                    event: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        frame.id = Some(v.trim().to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        frame.event = Some(v.trim().to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    frame.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    if tx.send(frame).is_err() {
                        return false;
                    }
                }
            }
            true
        })
    });
    StreamClient {
        items,
        got: Vec::new(),
        head,
        stop,
        thread: Some(thread),
    }
}

/// The RFC 6455 example key and the accept value it must get back.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// `GET path` upgraded to a WebSocket; every text message parsed as JSON.
pub fn websocket(addr: SocketAddr, token: &str, path: &str) -> StreamClient<Value> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\n\r\n"
    );
    let (stream, head, rest) = open(addr, &request);
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "GET {path} (WebSocket): expected 101, got {head}"
    );
    assert!(
        head.contains(WS_ACCEPT),
        "the handshake answer lacks Sec-WebSocket-Accept {WS_ACCEPT}: {head}"
    );
    let (tx, items) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = thread::spawn(move || {
        let mut message = Vec::new();
        pump(stream, rest, stopped, move |pending, stream| {
            loop {
                if pending.len() < 2 {
                    return true;
                }
                let (fin, opcode) = (pending[0] & 0x80 != 0, pending[0] & 0x0f);
                assert!(pending[1] & 0x80 == 0, "server frames must not be masked");
                let (len, at) = match pending[1] & 0x7f {
                    126 if pending.len() >= 4 => {
                        (u16::from_be_bytes([pending[2], pending[3]]) as usize, 4)
                    }
                    127 if pending.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&pending[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    126 | 127 => return true,
                    n => (n as usize, 2),
                };
                if pending.len() < at + len {
                    return true;
                }
                let payload: Vec<u8> = pending[at..at + len].to_vec();
                pending.drain(..at + len);
                match opcode {
                    0x1 | 0x0 => {
                        message.extend_from_slice(&payload);
                        if fin {
                            let text = String::from_utf8_lossy(&message).into_owned();
                            message.clear();
                            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                            if tx.send(value).is_err() {
                                return false;
                            }
                        }
                    }
                    0x8 => return false,
                    0x9 => {
                        // Pong with the same payload, masked (client frames must be).
                        let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                        pong.extend_from_slice(&payload);
                        let _ = stream.write_all(&pong);
                    }
                    _ => {}
                }
            }
        })
    });
    StreamClient {
        items,
        got: Vec::new(),
        head,
        stop,
        thread: Some(thread),
    }
}
