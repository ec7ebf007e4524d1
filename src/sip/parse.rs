//! The parser: bytes in, a [`Message`] or a [`ParseError`] out. No I/O here.
//!
//! * [`parse`] takes one whole message (a UDP datagram, or a frame cut by [`frame`]).
//!   Octets after the body that Content-Length announces are ignored (RFC 4475 §3.1.1.8);
//!   a body shorter than announced is an error.
//! * [`frame`] finds message boundaries in a TCP byte stream by Content-Length, skipping
//!   keep-alive CRLFs, and tells a broken stream (no usable Content-Length) from a
//!   message that is merely malformed.
//! * [`reply_info`] reads, leniently, just enough of a message that failed to parse to
//!   answer it with a 400 (Via, From, To, Call-ID, CSeq as received).
//!
//! Every known header's value is checked by its typed parser here, so a message that
//! parses has well-formed Via, From, To, CSeq, Call-ID, Max-Forwards, Contact, Route,
//! Content-Type, Content-Length, Expires and Date values.

use super::header::{check_value, split_list_value, Header, HeaderName, Headers};
use super::message::{Message, Method, Request, Response};
use super::text::{is_lws, is_token, trim_lws, ByteStr};
use super::uri::Uri;
use bytes::Bytes;

/// Largest message accepted on any transport.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most header lines (after unfolding) in one message.
pub const MAX_HEADERS: usize = 256;
/// Longest single header line.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message too large ({size} octets, limit {limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("missing empty line after headers")]
    NoEndOfHeaders,
    #[error("bad start line: {reason}")]
    StartLine { reason: &'static str },
    #[error("bad Request-URI: {reason}")]
    RequestUri { reason: &'static str },
    #[error("unsupported SIP version {version}")]
    Version { version: String },
    #[error("bad header line {line}: {reason}")]
    HeaderLine { line: usize, reason: &'static str },
    #[error("{name}: {what}")]
    Header { name: String, what: String },
    #[error("too many headers (limit {limit})")]
    TooManyHeaders { limit: usize },
    #[error("header line too long (limit {limit})")]
    LineTooLong { limit: usize },
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch { cseq: String, method: String },
    #[error("body shorter than Content-Length ({actual} of {declared} octets)")]
    Truncated { declared: usize, actual: usize },
}

impl ParseError {
    /// The status a request that failed this way is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Version { .. } => 505,
            ParseError::TooLarge { .. } => 513,
            _ => 400,
        }
    }

    /// A reason phrase naming the problem, safe to put on a status line.
    pub fn reason_phrase(&self) -> String {
        let base = super::message::reason_phrase(self.status());
        sanitize_reason(&format!("{base}: {self}"))
    }
}

/// Keeps a reason phrase on one line and bounded in length.
pub fn sanitize_reason(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect()
}

/// Where the header block ends: (end of last header line, start of body).
fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\n' {
            if data.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Splits the header block into lines (CRLF or bare LF), giving byte ranges.
fn lines(data: &[u8], start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut line_start = start;
    let mut i = start;
    while i < end {
        if data[i] == b'\n' {
            let line_end = if i > line_start && data[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            out.push((line_start, line_end));
            line_start = i + 1;
        }
        i += 1;
    }
    let line_end = if end > line_start && data[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    out.push((line_start, line_end));
    out
}

fn skip_leading_crlf(data: &[u8]) -> usize {
    data.iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count()
}

enum StartLine {
    Request { method: Method, uri: Uri },
    Response { status: u16, reason: ByteStr },
}

/// `SIP/` at the start, compared as bytes (the line may hold any UTF-8).
fn starts_with_sip_slash(s: &str) -> bool {
    s.as_bytes()
        .get(..4)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"SIP/"))
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let looks_like_version = v.len() > 4
        && starts_with_sip_slash(v)
        && v[4..].split_once('.').is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        });
    if looks_like_version {
        Err(ParseError::Version {
            version: v.to_owned(),
        })
    } else {
        Err(ParseError::StartLine {
            reason: "missing or malformed SIP-Version",
        })
    }
}

fn parse_start_line(data: &Bytes, (s, e): (usize, usize)) -> Result<StartLine, ParseError> {
    let line = std::str::from_utf8(&data[s..e]).map_err(|_| ParseError::StartLine {
        reason: "not UTF-8",
    })?;
    if starts_with_sip_slash(line) {
        let (version, rest) = line.split_once(' ').ok_or(ParseError::StartLine {
            reason: "status line without status code",
        })?;
        check_version(version)?;
        let (code, reason) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, ""),
        };
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::StartLine {
                reason: "status code is not three digits",
            });
        }
        let status: u16 = code.parse().unwrap_or(0);
        if !(100..700).contains(&status) {
            return Err(ParseError::StartLine {
                reason: "status code out of range",
            });
        }
        let reason_start = e - reason.len();
        return Ok(StartLine::Response {
            status,
            reason: ByteStr::from_utf8(data.slice(reason_start..e)).unwrap_or_default(),
        });
    }
    let first = line.find(' ').ok_or(ParseError::StartLine {
        reason: "request line without Request-URI",
    })?;
    let last = line.rfind(' ').unwrap_or(first);
    if first == last {
        // Only one space: either no version (RFC 2543-style garbage) or no URI.
        check_version(&line[first + 1..])?;
        return Err(ParseError::StartLine {
            reason: "request line without Request-URI",
        });
    }
    check_version(&line[last + 1..])?;
    let method = &line[..first];
    if !is_token(method) {
        return Err(ParseError::StartLine {
            reason: "method is not a token",
        });
    }
    let uri_text = &line[first + 1..last];
    if uri_text.is_empty() || uri_text.bytes().any(is_lws) {
        return Err(ParseError::StartLine {
            reason: "Request-URI with whitespace, or elements not separated by single spaces",
        });
    }
    let uri = Uri::parse(uri_text).map_err(|e| ParseError::RequestUri { reason: e.reason })?;
    if let Uri::Sip(u) = &uri {
        // RFC 3261 §19.1.5: headers are not allowed in a Request-URI.
        if !u.headers.is_empty() {
            return Err(ParseError::RequestUri {
                reason: "escaped headers are not allowed in a Request-URI",
            });
        }
    }
    Ok(StartLine::Request {
        method: Method::from(method),
        uri,
    })
}

/// One unfolded header line: name and value, as slices of `data` when possible.
fn header_from_lines(
    data: &Bytes,
    first: (usize, usize),
    continuations: &[(usize, usize)],
    index: usize,
) -> Result<(ByteStr, ByteStr), ParseError> {
    let line = &data[first.0..first.1];
    let colon = line
        .iter()
        .position(|&c| c == b':')
        .ok_or(ParseError::HeaderLine {
            line: index,
            reason: "no ':' in header line",
        })?;
    let mut name_end = colon;
    while name_end > 0 && is_lws(line[name_end - 1]) {
        name_end -= 1;
    }
    let name = ByteStr::from_utf8(data.slice(first.0..first.0 + name_end)).map_err(|_| {
        ParseError::HeaderLine {
            line: index,
            reason: "header name is not a token",
        }
    })?;
    if !is_token(&name) {
        return Err(ParseError::HeaderLine {
            line: index,
            reason: "header name is not a token",
        });
    }
    let value_range = (first.0 + colon + 1, first.1);
    let bad_utf8 = ParseError::HeaderLine {
        line: index,
        reason: "header value is not UTF-8",
    };
    let value = if continuations.is_empty() {
        let raw = ByteStr::from_utf8(data.slice(value_range.0..value_range.1))
            .map_err(|_| bad_utf8.clone())?;
        let trimmed = trim_lws(&raw);
        ByteStr::from_utf8(raw.as_bytes().slice_ref(trimmed.as_bytes())).map_err(|_| bad_utf8)?
    } else {
        let mut text = String::new();
        for &(s, e) in std::iter::once(&value_range).chain(continuations) {
            let piece = std::str::from_utf8(&data[s..e]).map_err(|_| bad_utf8.clone())?;
            let piece = trim_lws(piece);
            if piece.is_empty() {
                continue;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(piece);
        }
        ByteStr::from(text)
    };
    if value.bytes().any(|c| c == b'\r') {
        return Err(ParseError::HeaderLine {
            line: index,
            reason: "bare CR in header value",
        });
    }
    Ok((name, value))
}

/// Parses one message. See the module doc for framing rules.
pub fn parse(data: Bytes) -> Result<Message, ParseError> {
    if data.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge {
            size: data.len(),
            limit: MAX_MESSAGE,
        });
    }
    let start = skip_leading_crlf(&data);
    let (head_end, body_start) = match find_head_end(&data[start..]) {
        Some((h, b)) => (h + start, b + start),
        // A datagram that ends right after a header line lacks only the empty line;
        // read it as a message without a body rather than refuse it for that alone.
        None if data.len() > start && data.ends_with(b"\n") => (data.len() - 1, data.len()),
        None => return Err(ParseError::NoEndOfHeaders),
    };
    let all_lines = lines(&data, start, head_end);
    let start_line = parse_start_line(&data, all_lines[0])?;

    let mut headers = Headers::default();
    let mut content_lengths = Vec::new();
    let mut i = 1;
    let mut count = 0;
    while i < all_lines.len() {
        let first = all_lines[i];
        if first.1 - first.0 > MAX_LINE {
            return Err(ParseError::LineTooLong { limit: MAX_LINE });
        }
        if first.0 < first.1 && is_lws(data[first.0]) {
            return Err(ParseError::HeaderLine {
                line: i,
                reason: "continuation line before any header",
            });
        }
        let mut j = i + 1;
        while j < all_lines.len() && all_lines[j].0 < all_lines[j].1 && is_lws(data[all_lines[j].0])
        {
            j += 1;
        }
        let (name, value) = header_from_lines(&data, first, &all_lines[i + 1..j], i)?;
        i = j;
        count += 1;
        if count > MAX_HEADERS {
            return Err(ParseError::TooManyHeaders { limit: MAX_HEADERS });
        }
        let name = HeaderName::from_wire(name);
        let header_error = |what: String| ParseError::Header {
            name: name.as_str().to_owned(),
            what,
        };
        if name.is_list() {
            let parts = split_list_value(&value).map_err(|e| header_error(e.what))?;
            for part in parts {
                check_value(&name, part).map_err(|e| header_error(e.what))?;
                let part_bytes = value.as_bytes().slice_ref(part.as_bytes());
                headers.0.push(Header {
                    name: name.clone(),
                    value: ByteStr::from_utf8(part_bytes).unwrap_or_default(),
                });
            }
        } else {
            check_value(&name, &value).map_err(|e| header_error(e.what))?;
            if name == HeaderName::ContentLength {
                content_lengths.push(super::header::parse_number(&value).unwrap_or(u64::MAX));
            }
            headers.0.push(Header { name, value });
        }
    }

    let available = data.len() - body_start;
    let body = match content_lengths.as_slice() {
        [] => data.slice(body_start..),
        [declared, rest @ ..] if rest.iter().all(|l| l == declared) => {
            let declared = usize::try_from(*declared).unwrap_or(usize::MAX);
            if declared > available {
                return Err(ParseError::Truncated {
                    declared,
                    actual: available,
                });
            }
            data.slice(body_start..body_start + declared)
        }
        // Conflicting values: the body cannot be known. Keep what arrived; the element
        // above answers 400 on seeing several Content-Length headers.
        _ => data.slice(body_start..),
    };

    match start_line {
        StartLine::Request { method, uri } => {
            if let Some(cseq) = headers.get(&HeaderName::CSeq) {
                if let Ok(cseq) = super::header::CSeq::parse(cseq) {
                    if cseq.method != method {
                        return Err(ParseError::CSeqMismatch {
                            cseq: cseq.method.to_string(),
                            method: method.to_string(),
                        });
                    }
                }
            }
            Ok(Message::Request(Request {
                method,
                uri,
                headers,
                body,
            }))
        }
        StartLine::Response { status, reason } => Ok(Message::Response(Response {
            status,
            reason,
            headers,
            body,
        })),
    }
}

/// What [`frame`] found at the front of a stream buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// `n` octets of CRLF keep-alive to consume (RFC 5626 §3.5.1: a double CRLF "ping"
    /// is answered with a single CRLF "pong").
    KeepAlive { len: usize, ping: bool },
    /// A whole message of `len` octets (framing intact, content not yet checked).
    Message { len: usize },
    /// The stream cannot be framed past this point; `head_len` octets of headers are
    /// available to answer from. The connection must be closed.
    Broken {
        reason: &'static str,
        head_len: usize,
    },
}

/// Frames the next message of a stream by its Content-Length (RFC 3261 §18.3).
pub fn frame(buf: &[u8]) -> Frame {
    let crlf = skip_leading_crlf(buf);
    if crlf > 0 {
        return Frame::KeepAlive {
            len: crlf,
            ping: buf[..crlf].windows(4).any(|w| w == b"\r\n\r\n"),
        };
    }
    let Some((head_end, body_start)) = find_head_end(buf) else {
        if buf.len() > MAX_MESSAGE {
            return Frame::Broken {
                reason: "header block too large",
                head_len: buf.len(),
            };
        }
        return Frame::Incomplete;
    };
    let mut lengths = Vec::new();
    for (s, e) in lines(buf, 0, head_end).into_iter().skip(1) {
        let line = &buf[s..e];
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let name = trim_ascii(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = trim_ascii(&line[colon + 1..]);
            match std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
            {
                Some(n) if value.iter().all(u8::is_ascii_digit) => lengths.push(n),
                _ => {
                    return Frame::Broken {
                        reason: "bad Content-Length",
                        head_len: body_start,
                    }
                }
            }
        }
    }
    let len = match lengths.as_slice() {
        [] => {
            return Frame::Broken {
                reason: "missing Content-Length on a stream",
                head_len: body_start,
            }
        }
        [n, rest @ ..] if rest.iter().all(|m| m == n) => *n,
        _ => {
            return Frame::Broken {
                reason: "conflicting Content-Length values",
                head_len: body_start,
            }
        }
    };
    let total = body_start.saturating_add(len);
    if total > MAX_MESSAGE {
        return Frame::Broken {
            reason: "message too large",
            head_len: body_start,
        };
    }
    if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message { len: total }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !is_lws(*c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_lws(*c)).map_or(start, |e| e + 1);
    &b[start..end]
}

/// The headers needed to answer a request that did not parse, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyInfo {
    pub method: String,
    pub vias: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<String>,
}

/// Reads a broken message leniently. `None` if it is a response, or if it has no Via or
/// no CSeq: then no response can be addressed and it is dropped.
pub fn reply_info(data: &[u8]) -> Option<ReplyInfo> {
    let start = skip_leading_crlf(data);
    let head_end = find_head_end(&data[start..]).map_or(data.len(), |(h, _)| h + start);
    let all = lines(data, start, head_end);
    let first = std::str::from_utf8(&data[all[0].0..all[0].1]).ok()?;
    if starts_with_sip_slash(first) {
        return None;
    }
    let mut info = ReplyInfo {
        method: first.split(' ').next().unwrap_or("").to_owned(),
        ..ReplyInfo::default()
    };
    let mut k = 1;
    while k < all.len() {
        let mut text = String::from_utf8_lossy(&data[all[k].0..all[k].1]).into_owned();
        k += 1;
        while k < all.len() && all[k].0 < all[k].1 && is_lws(data[all[k].0]) {
            text.push(' ');
            text.push_str(String::from_utf8_lossy(&data[all[k].0..all[k].1]).trim());
            k += 1;
        }
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let name = HeaderName::from_wire(trim_lws(name).into());
        let value = trim_lws(value).replace(['\r', '\n'], " ");
        if value.is_empty() {
            continue;
        }
        match name {
            HeaderName::Via => info.vias.push(value),
            HeaderName::From if info.from.is_none() => info.from = Some(value),
            HeaderName::To if info.to.is_none() => info.to = Some(value),
            HeaderName::CallId if info.call_id.is_none() => info.call_id = Some(value),
            HeaderName::CSeq if info.cseq.is_none() => info.cseq = Some(value),
            _ => {}
        }
    }
    if info.vias.is_empty() || info.cseq.is_none() {
        return None;
    }
    Some(info)
}

impl ReplyInfo {
    /// A response with the received headers copied verbatim.
    pub fn response(&self, status: u16, reason: &str) -> Response {
        let mut resp = Response::new(status, sanitize_reason(reason).as_str());
        for via in &self.vias {
            resp.headers.push(HeaderName::Via, via.as_str());
        }
        let singles = [
            (HeaderName::From, &self.from),
            (HeaderName::To, &self.to),
            (HeaderName::CallId, &self.call_id),
            (HeaderName::CSeq, &self.cseq),
        ];
        for (name, value) in singles {
            if let Some(v) = value {
                resp.headers.push(name, v.as_str());
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzzer, sip_parse): a multi-byte character across byte 4 of the
    /// version field panicked on a str slice.
    #[test]
    fn multibyte_character_in_version_position_is_refused_not_panicking() {
        let data = Bytes::from_static(
            b"INVITE sip\xc6\x90ips%3Auser%.example.net\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        assert!(parse(data.clone()).is_err());
        let _ = reply_info(&data);
        assert!(parse(Bytes::from_static(b"SI\xc6\x90 200 OK\r\n\r\n")).is_err());
        assert!(
            super::super::header::check_sip_date("Sa\u{0190}, 15 Oct 2005 04:44:56 GMT").is_err()
        );
    }

    /// Regression (fuzzer, sip_parse): a datagram of nothing but line ends made the
    /// header block end before it started.
    #[test]
    fn only_line_ends_is_refused_not_panicking() {
        for data in [&b"\n\n"[..], b"\r\n", b"\n", b"\r\n\r\n\n"] {
            assert!(parse(Bytes::copy_from_slice(data)).is_err());
        }
    }

    #[test]
    fn stream_framing() {
        assert_eq!(
            frame(b"\r\n\r\nOPTIONS"),
            Frame::KeepAlive { len: 4, ping: true }
        );
        assert_eq!(
            frame(b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nab"),
            Frame::Incomplete
        );
        assert_eq!(
            frame(b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabcNEXT"),
            Frame::Message { len: 36 }
        );
        assert!(matches!(
            frame(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"),
            Frame::Broken { .. }
        ));
        assert!(matches!(
            frame(b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\nl: 4\r\n\r\n"),
            Frame::Broken { .. }
        ));
    }
}
