//! The SIP message model: requests, responses, methods, typed accessors for what the
//! daemon reads, the serializer, and the builder for responses (RFC 3261 §8.2.6).
//!
//! Serialization is canonical: full header names, `Name: value` with one space, CRLF line
//! ends, and a Content-Length computed from the body. Parsing a serialized message gives
//! back the same message (see the property test in `parse`).

use super::header::{CSeq, HeaderName, Headers, MediaType, NameAddr, Via};
use super::text::ByteStr;
use super::uri::Uri;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

macro_rules! methods {
    ($( $variant:ident => $text:literal ),* $(,)?) => {
        /// A request method. Methods are case-sensitive (RFC 3261 §7.1): `invite` is an
        /// extension method, not INVITE.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Method {
            $( $variant, )*
            Extension(ByteStr),
        }

        impl Method {
            pub fn as_str(&self) -> &str {
                match self {
                    $( Method::$variant => $text, )*
                    Method::Extension(m) => m.as_str(),
                }
            }
        }

        impl From<&str> for Method {
            fn from(s: &str) -> Method {
                match s {
                    $( $text => Method::$variant, )*
                    other => Method::Extension(other.into()),
                }
            }
        }
    };
}

methods! {
    Invite => "INVITE",
    Ack => "ACK",
    Bye => "BYE",
    Cancel => "CANCEL",
    Options => "OPTIONS",
    Register => "REGISTER",
    Info => "INFO",
    Prack => "PRACK",
    Update => "UPDATE",
    Subscribe => "SUBSCRIBE",
    Notify => "NOTIFY",
    Refer => "REFER",
    Message => "MESSAGE",
    Publish => "PUBLISH",
}

impl Method {
    /// Methods defined by an RFC (answered 405 when not allowed); others get 501.
    pub fn is_standard(&self) -> bool {
        !matches!(self, Method::Extension(_))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: ByteStr,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

/// Typed reads shared by requests and responses. Each parses on demand; the parser has
/// already checked that known headers are well-formed, so `None` means absent.
pub trait HeaderAccess {
    fn headers(&self) -> &Headers;

    fn vias(&self) -> Vec<Via> {
        self.headers()
            .get_all(&HeaderName::Via)
            .filter_map(|v| Via::parse(v).ok())
            .collect()
    }
    fn top_via(&self) -> Option<Via> {
        self.headers()
            .get(&HeaderName::Via)
            .and_then(|v| Via::parse(v).ok())
    }
    fn header_from(&self) -> Option<NameAddr> {
        self.headers()
            .get(&HeaderName::From)
            .and_then(|v| NameAddr::parse(v).ok())
    }
    fn header_to(&self) -> Option<NameAddr> {
        self.headers()
            .get(&HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
    }
    fn call_id(&self) -> Option<&str> {
        self.headers().get(&HeaderName::CallId).map(|v| v.as_str())
    }
    fn cseq(&self) -> Option<CSeq> {
        self.headers()
            .get(&HeaderName::CSeq)
            .and_then(|v| CSeq::parse(v).ok())
    }
    fn max_forwards(&self) -> Option<u8> {
        self.headers()
            .get(&HeaderName::MaxForwards)
            .and_then(|v| super::header::parse_max_forwards(v).ok())
    }
    fn contacts(&self) -> Vec<NameAddr> {
        self.headers()
            .get_all(&HeaderName::Contact)
            .filter_map(|v| super::header::parse_contact(v).ok().flatten())
            .collect()
    }
    fn record_routes(&self) -> Vec<NameAddr> {
        self.headers()
            .get_all(&HeaderName::RecordRoute)
            .filter_map(|v| NameAddr::parse(v).ok())
            .collect()
    }
    fn routes(&self) -> Vec<NameAddr> {
        self.headers()
            .get_all(&HeaderName::Route)
            .filter_map(|v| NameAddr::parse(v).ok())
            .collect()
    }
    fn content_type(&self) -> Option<MediaType> {
        self.headers()
            .get(&HeaderName::ContentType)
            .and_then(|v| MediaType::parse(v).ok())
    }
    fn expires(&self) -> Option<u32> {
        self.headers()
            .get(&HeaderName::Expires)
            .and_then(|v| super::header::parse_expires(v).ok())
    }
    /// Option tags of a list header (Require, Supported, Proxy-Require, …).
    fn tokens(&self, name: &HeaderName) -> Vec<String> {
        self.headers()
            .get_all(name)
            .map(|v| super::text::trim_lws(v).to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }
    /// Methods listed in Allow.
    fn allow(&self) -> Vec<Method> {
        self.tokens(&HeaderName::Allow)
            .iter()
            .map(|m| Method::from(m.as_str()))
            .collect()
    }
}

impl HeaderAccess for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
}

impl HeaderAccess for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
}

fn write_headers(buf: &mut BytesMut, headers: &Headers, body: &Bytes) {
    for h in &headers.0 {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        buf.put_slice(h.name.as_str().as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(h.value.as_bytes());
        buf.put_slice(b"\r\n");
    }
    buf.put_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    buf.put_slice(body);
}

fn headers_len(headers: &Headers) -> usize {
    headers
        .0
        .iter()
        .map(|h| h.name.as_str().len() + h.value.len() + 4)
        .sum::<usize>()
        + 24
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Self {
        Request {
            method,
            uri,
            headers: Headers::default(),
            body: Bytes::new(),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let uri = self.uri.to_string();
        let mut buf =
            BytesMut::with_capacity(headers_len(&self.headers) + uri.len() + 32 + self.body.len());
        buf.put_slice(self.method.as_str().as_bytes());
        buf.put_u8(b' ');
        buf.put_slice(uri.as_bytes());
        buf.put_slice(b" SIP/2.0\r\n");
        write_headers(&mut buf, &self.headers, &self.body);
        buf.freeze()
    }

    /// The transaction key of RFC 3261 §17.2.3 for requests with a magic-cookie branch:
    /// branch + sent-by + method (ACK and CANCEL match the INVITE's branch but are their
    /// own method; callers that want the INVITE pass `Method::Invite`).
    pub fn branch(&self) -> Option<String> {
        self.top_via().and_then(|v| v.branch().map(str::to_owned))
    }
}

impl Response {
    pub fn new(status: u16, reason: impl Into<ByteStr>) -> Self {
        Response {
            status,
            reason: reason.into(),
            headers: Headers::default(),
            body: Bytes::new(),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(
            headers_len(&self.headers) + self.reason.len() + 16 + self.body.len(),
        );
        buf.put_slice(format!("SIP/2.0 {} ", self.status).as_bytes());
        buf.put_slice(self.reason.as_bytes());
        buf.put_slice(b"\r\n");
        write_headers(&mut buf, &self.headers, &self.body);
        buf.freeze()
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => match status / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// Builds a response to `req` (RFC 3261 §8.2.6.2): Via, From, To, Call-ID and CSeq copied;
/// `to_tag` is added to To when To has none (for everything but 100 Trying).
pub fn response_to(
    req: &Request,
    status: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let mut resp = Response::new(status, reason.unwrap_or(reason_phrase(status)));
    // A response that can establish a dialog carries the request's Record-Route, so
    // the proxies that record-routed stay on the path of the peer's in-dialog requests
    // (RFC 3261 §12.1.1).
    let dialog_forming = req.method == Method::Invite && (101..300).contains(&status);
    for h in &req.headers.0 {
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                resp.headers.0.push(h.clone());
            }
            HeaderName::RecordRoute if dialog_forming => resp.headers.0.push(h.clone()),
            HeaderName::To => {
                let mut value = h.value.clone();
                if let Some(tag) = to_tag {
                    if status != 100 {
                        if let Ok(to) = NameAddr::parse(&h.value) {
                            if to.tag().is_none() {
                                value = format!("{};tag={tag}", h.value).into();
                            }
                        }
                    }
                }
                resp.headers.push(HeaderName::To, value);
            }
            _ => {}
        }
    }
    resp
}

/// A random token for tags, branches and Call-IDs (RFC 3261 asks for 32 bits of
/// randomness at least; we use 64).
pub fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_token())
}
