//! Header fields: names (full and compact forms, case-insensitive), the ordered header
//! list of a message, and the typed values the daemon reads (Via, name-addr, CSeq,
//! Content-Type, token lists). Values stay as received text until a typed accessor parses
//! them; the parser runs the same typed parsers once to decide whether a message is valid.

use super::text::{
    is_lws, is_token, is_token_char, is_word_char, split_list, take_quoted, trim_lws, ByteStr,
};
use super::uri::{parse_hostport, Host, Params, Uri};
use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A header field name. Known names are variants; anything else is kept as written.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $variant, )*
            Other(ByteStr),
        }

        impl HeaderName {
            /// Resolves a received name: case-insensitive, compact forms accepted.
            pub fn from_wire(name: ByteStr) -> HeaderName {
                $(
                    if name.eq_ignore_ascii_case($canon) $(|| name.eq_ignore_ascii_case($compact))? {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other(name)
            }

            /// The canonical (full) name, as the serializer writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(n) => n.as_str(),
                }
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact", "m";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    ContentEncoding => "Content-Encoding", "e";
    Route => "Route";
    RecordRoute => "Record-Route";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyAuthenticate => "Proxy-Authenticate";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Supported => "Supported", "k";
    Unsupported => "Unsupported";
    Allow => "Allow";
    Accept => "Accept";
    Date => "Date";
    Subject => "Subject", "s";
    Event => "Event", "o";
    AllowEvents => "Allow-Events", "u";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    SessionExpires => "Session-Expires", "x";
    Identity => "Identity", "y";
    UserAgent => "User-Agent";
    Server => "Server";
    RetryAfter => "Retry-After";
    Warning => "Warning";
    Reason => "Reason";
}

impl HeaderName {
    /// Headers whose value is a comma-separated list (RFC 3261 §7.3.1): the parser stores
    /// one entry per element so that, for example, every Via is its own entry.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::Accept
                | HeaderName::ContentEncoding
                | HeaderName::AllowEvents
        )
    }

    /// Headers a request may carry at most once.
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    /// The value, unfolded and trimmed; one list element for list headers.
    pub value: ByteStr,
}

/// The header fields of a message, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    pub fn get(&self, name: &HeaderName) -> Option<&ByteStr> {
        self.0.iter().find(|h| &h.name == name).map(|h| &h.value)
    }

    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a ByteStr> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }

    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    pub fn push(&mut self, name: HeaderName, value: impl Into<ByteStr>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts before all other headers (for a new top Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<ByteStr>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Replaces every value of `name` by one value (appended if absent).
    pub fn set(&mut self, name: HeaderName, value: impl Into<ByteStr>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(first) => {
                self.0[first].value = value;
                let mut i = 0;
                self.0.retain(|h| {
                    let keep = i <= first || h.name != name;
                    i += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }

    /// Removes the first (topmost) value of a list header and returns it.
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<ByteStr> {
        let at = self.0.iter().position(|h| &h.name == name)?;
        Some(self.0.remove(at).value)
    }
}

/// Why a header value did not parse. `what` names the problem in words a 400's reason
/// phrase can carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct ValueError {
    pub what: String,
}

fn bad<T>(what: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError { what: what.into() })
}

/// Parses header parameters `*( LWS ";" LWS name [ LWS "=" LWS value ] )` (LWS allowed
/// around separators, RFC 3261 §25.1). Values are tokens, hosts (incl. IPv6 references) or
/// quoted strings (kept with their quotes so they serialize unchanged).
pub fn parse_header_params(mut s: &str) -> Result<Params, ValueError> {
    let mut params = Params::default();
    loop {
        s = trim_lws(s);
        if s.is_empty() {
            return Ok(params);
        }
        s = match s.strip_prefix(';') {
            Some(rest) => trim_lws(rest),
            None => return bad(format!("expected ';' before {:?}", truncate(s))),
        };
        let name_len = s.bytes().take_while(|&c| is_token_char(c)).count();
        if name_len == 0 {
            return bad("empty parameter");
        }
        let name = &s[..name_len];
        s = trim_lws(&s[name_len..]);
        let mut value = None;
        if let Some(rest) = s.strip_prefix('=') {
            let rest = trim_lws(rest);
            if rest.starts_with('"') {
                let (_, after) = take_quoted(rest).ok_or(ValueError {
                    what: format!("unterminated quoted value of parameter {name}"),
                })?;
                let raw_len = rest.len() - after.len();
                value = Some(rest[..raw_len].to_owned());
                s = after;
            } else {
                let len = rest
                    .bytes()
                    .take_while(|&c| is_token_char(c) || matches!(c, b'[' | b']' | b':'))
                    .count();
                if len == 0 {
                    return bad(format!("parameter {name} has an empty value"));
                }
                value = Some(rest[..len].to_owned());
                s = &rest[len..];
            }
        }
        params.0.push((name.to_owned(), value));
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(20) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper-cased transport token (`UDP`, `TCP`, `TLS`, or an unknown one).
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn parse(s: &str) -> Result<Via, ValueError> {
        // sent-protocol = name SLASH version SLASH transport, LWS allowed around SLASH.
        let mut rest = trim_lws(s);
        let mut parts = Vec::with_capacity(3);
        for i in 0..3 {
            let len = rest.bytes().take_while(|&c| is_token_char(c)).count();
            if len == 0 {
                return bad("bad sent-protocol");
            }
            parts.push(&rest[..len]);
            let after = &rest[len..];
            rest = trim_lws(after);
            if i < 2 {
                rest = match rest.strip_prefix('/') {
                    Some(r) => trim_lws(r),
                    None => return bad("bad sent-protocol"),
                };
            } else if rest.len() == after.len() {
                return bad("no space between transport and sent-by");
            }
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" {
            return bad("sent-protocol is not SIP/2.0");
        }
        let end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
        let (host, port) = parse_hostport(&rest[..end]).map_err(|e| ValueError {
            what: format!("bad sent-by: {}", e.reason),
        })?;
        let params = parse_header_params(&rest[end..])?;
        if let Some(received) = params.value("received") {
            if received.parse::<std::net::IpAddr>().is_err() {
                return bad("bad received parameter");
            }
        }
        if let Some(Some(v)) = params.get("rport") {
            if v.parse::<u16>().is_err() {
                return bad("bad rport parameter");
            }
        }
        Ok(Via {
            transport: parts[2].to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// True for an RFC 3261 branch (magic cookie), which identifies the transaction alone.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }

    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// `Some(None)` when the client asked for rport (RFC 3581) without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `[display-name] <uri> *(;param)` or `addr-spec *(;param)` (From, To, Contact, Route…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> Self {
        NameAddr {
            display: None,
            uri,
            params: Params::default(),
        }
    }

    pub fn parse(s: &str) -> Result<NameAddr, ValueError> {
        let s = trim_lws(s);
        let (display, rest) = if s.starts_with('"') {
            let (d, rest) = take_quoted(s).ok_or(ValueError {
                what: "unterminated quoted display name".into(),
            })?;
            let rest = trim_lws(rest);
            if !rest.starts_with('<') {
                return bad("display name not followed by <URI>");
            }
            (Some(d), rest)
        } else if let Some(lt) = s.find('<') {
            let d = trim_lws(&s[..lt]);
            // An unquoted display name is tokens separated by LWS.
            if !d.split([' ', '\t']).filter(|w| !w.is_empty()).all(is_token) {
                return bad("display name has characters that need quoting");
            }
            (
                if d.is_empty() {
                    None
                } else {
                    Some(d.to_owned())
                },
                &s[lt..],
            )
        } else {
            (None, s)
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let gt = inner.find('>').ok_or(ValueError {
                what: "missing '>'".into(),
            })?;
            let uri_text = &inner[..gt];
            if uri_text.bytes().any(is_lws) {
                return bad("whitespace inside <URI>");
            }
            let uri = Uri::parse(uri_text).map_err(|e| ValueError {
                what: e.to_string(),
            })?;
            let params = parse_header_params(&inner[gt + 1..])?;
            Ok(NameAddr {
                display,
                uri,
                params,
            })
        } else {
            // addr-spec: the URI may not contain ',', '?' or ';' (those need <>), so it
            // ends at the first ';'.
            let end = rest.find(';').unwrap_or(rest.len());
            let uri_text = trim_lws(&rest[..end]);
            if uri_text.contains('?') || uri_text.contains(',') {
                return bad("URI with headers or commas must be enclosed in <>");
            }
            let uri = Uri::parse(uri_text).map_err(|e| ValueError {
                what: e.to_string(),
            })?;
            let params = parse_header_params(&rest[end..])?;
            Ok(NameAddr {
                display: None,
                uri,
                params,
            })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{} ", super::text::quote(d))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// The Contact value `*` (un-register all) or a name-addr.
pub fn parse_contact(s: &str) -> Result<Option<NameAddr>, ValueError> {
    if trim_lws(s) == "*" {
        Ok(None)
    } else {
        NameAddr::parse(s).map(Some)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: super::message::Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, ValueError> {
        let s = trim_lws(s);
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return bad("missing sequence number");
        }
        // RFC 3261 §8.1.1.5: the sequence number MUST be less than 2**31.
        let seq = match s[..digits].parse::<u64>() {
            Ok(n) if n < (1 << 31) => n as u32,
            _ => return bad("sequence number too large"),
        };
        let method = trim_lws(&s[digits..]);
        if method.len() == s.len() - digits || !is_token(method) {
            return bad("bad method");
        }
        Ok(CSeq {
            seq,
            method: super::message::Method::from(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Parses a plain non-negative integer header (Max-Forwards, Content-Length, Expires).
pub fn parse_number(s: &str) -> Result<u64, ValueError> {
    let s = trim_lws(s);
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return bad("not a number");
    }
    s.parse::<u64>().or_else(|_| bad("number too large"))
}

pub fn parse_max_forwards(s: &str) -> Result<u8, ValueError> {
    match parse_number(s)? {
        n if n <= 255 => Ok(n as u8),
        _ => bad("larger than 255"),
    }
}

/// Expires and `expires=` values: RFC 3261 §20.19 caps them at 2**32-1.
pub fn parse_expires(s: &str) -> Result<u32, ValueError> {
    let s = trim_lws(s);
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return bad("not a number");
    }
    Ok(s.parse::<u32>().unwrap_or(u32::MAX))
}

pub fn parse_call_id(s: &str) -> Result<&str, ValueError> {
    let s = trim_lws(s);
    let (left, right) = match s.split_once('@') {
        Some((l, r)) => (l, Some(r)),
        None => (s, None),
    };
    let word = |w: &str| !w.is_empty() && w.bytes().all(is_word_char);
    if word(left) && right.is_none_or(word) {
        Ok(s)
    } else {
        bad("bad Call-ID")
    }
}

/// A media type (`type/subtype;params`), as in Content-Type and Accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub kind: String,
    pub subtype: String,
    pub params: Params,
}

impl MediaType {
    pub fn parse(s: &str) -> Result<MediaType, ValueError> {
        let s = trim_lws(s);
        let end = s.find(';').unwrap_or(s.len());
        let (kind, subtype) = s[..end].split_once('/').ok_or(ValueError {
            what: "media type without '/'".into(),
        })?;
        let (kind, subtype) = (trim_lws(kind), trim_lws(subtype));
        if !is_token(kind) || !is_token(subtype) {
            return bad("bad media type");
        }
        Ok(MediaType {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params: parse_header_params(&s[end..])?,
        })
    }

    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind == kind && self.subtype == subtype
    }

    /// For Accept ranges: does this range admit `kind/subtype`?
    pub fn admits(&self, kind: &str, subtype: &str) -> bool {
        (self.kind == "*" || self.kind == kind) && (self.subtype == "*" || self.subtype == subtype)
    }
}

/// Checks an RFC 1123 date as SIP requires it: `Sat, 13 Nov 2010 23:29:00 GMT`.
pub fn check_sip_date(s: &str) -> Result<(), ValueError> {
    let s = trim_lws(s);
    let b = s.as_bytes();
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let field = |r: std::ops::Range<usize>| b.get(r).unwrap_or_default();
    let ok = b.len() == 29
        && DAYS.iter().any(|d| field(0..3) == d.as_bytes())
        && field(3..5) == b", "
        && digits(5..7)
        && b[7] == b' '
        && MONTHS.iter().any(|m| field(8..11) == m.as_bytes())
        && b[11] == b' '
        && digits(12..16)
        && b[16] == b' '
        && digits(17..19)
        && b[19] == b':'
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25)
        && field(25..29) == b" GMT";
    if ok {
        Ok(())
    } else {
        bad("date must be RFC 1123 in GMT")
    }
}

/// Validates the value of a known header the way the parser requires; unknown headers
/// are accepted as text. Returns a description of the problem.
pub fn check_value(name: &HeaderName, value: &str) -> Result<(), ValueError> {
    match name {
        HeaderName::Via => Via::parse(value).map(drop),
        HeaderName::From | HeaderName::To => NameAddr::parse(value).map(drop),
        HeaderName::Contact => parse_contact(value).map(drop),
        HeaderName::Route | HeaderName::RecordRoute => {
            if !trim_lws(value).starts_with('<')
                && !trim_lws(value).starts_with('"')
                && trim_lws(value).find('<').is_none()
            {
                return bad("must be <URI>");
            }
            NameAddr::parse(value).map(drop)
        }
        HeaderName::CSeq => CSeq::parse(value).map(drop),
        HeaderName::CallId => parse_call_id(value).map(drop),
        HeaderName::MaxForwards => parse_max_forwards(value).map(drop),
        HeaderName::ContentLength => parse_number(value).map(drop),
        HeaderName::Expires | HeaderName::MinExpires => parse_expires(value).map(drop),
        HeaderName::ContentType => MediaType::parse(value).map(drop),
        HeaderName::Accept => {
            if trim_lws(value).is_empty() {
                Ok(())
            } else {
                MediaType::parse(value).map(drop)
            }
        }
        HeaderName::Date => check_sip_date(value),
        HeaderName::Require
        | HeaderName::ProxyRequire
        | HeaderName::Supported
        | HeaderName::Unsupported
        | HeaderName::Allow
        | HeaderName::ContentEncoding
        | HeaderName::AllowEvents => {
            // Supported and Allow may be empty; a listed element must be a token.
            if trim_lws(value).is_empty() || is_token(trim_lws(value)) {
                Ok(())
            } else {
                bad("expected a token")
            }
        }
        _ => Ok(()),
    }
}

/// Splits a list header's value into elements; an empty element is an error.
pub fn split_list_value(value: &str) -> Result<Vec<&str>, ValueError> {
    let parts = split_list(value);
    if parts.len() > 1 && parts.iter().any(|p| p.is_empty()) {
        return bad("empty list element");
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_everywhere() {
        let v = Via::parse("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.host, Host::Name("spindle.example.com".into()));
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        let v = Via::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.port, Some(5070));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/3.0/UDP a.example.com").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.tag(), Some("1918181833n"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display.as_deref(), Some("caller"));
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse("< sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse(r#""Joe" <sip:joe@example.org>;;;;"#).is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(CSeq::parse("0009 INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert_eq!(parse_max_forwards("0068").unwrap(), 68);
        assert!(parse_max_forwards("300").is_err());
        assert_eq!(parse_expires("100000000000000").unwrap(), u32::MAX);
        assert!(parse_number("-999").is_err());
        assert!(check_sip_date("Sat, 15 Oct 2005 04:44:56 GMT").is_ok());
        assert!(check_sip_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(parse_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(parse_call_id("a b").is_err());
    }

    #[test]
    fn header_names_resolve_compact_and_case() {
        assert_eq!(HeaderName::from_wire("v".into()), HeaderName::Via);
        assert_eq!(
            HeaderName::from_wire("MaX-fOrWaRdS".into()),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_wire("l".into()), HeaderName::ContentLength);
        assert!(matches!(
            HeaderName::from_wire("C%6Fntact".into()),
            HeaderName::Other(_)
        ));
    }
}
