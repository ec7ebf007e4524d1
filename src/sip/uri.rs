//! URIs as SIP carries them (RFC 3261 §19.1, §25.1; RFC 3966 for `tel`). `sip` and `sips`
//! URIs are parsed into parts; `tel` keeps its number and parameters; any other scheme is
//! kept as opaque text so that the element above can answer 416 for it.
//!
//! Parts keep their escaped form as received, so a URI serializes back byte for byte.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URI: {reason}")]
pub struct UriError {
    pub reason: &'static str,
}

fn err<T>(reason: &'static str) -> Result<T, UriError> {
    Err(UriError { reason })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    pub fn parse(s: &str) -> Result<Host, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UriError {
                reason: "unterminated IPv6 reference",
            })?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::V6)
                .map_err(|_| UriError {
                    reason: "bad IPv6 address",
                });
        }
        if s.is_empty() {
            return err("empty host");
        }
        if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            return s.parse::<Ipv4Addr>().map(Host::V4).map_err(|_| UriError {
                reason: "bad IPv4 address",
            });
        }
        let valid = s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_');
        if !valid || s.starts_with('.') || s.starts_with('-') || s.contains("..") {
            return err("bad host name");
        }
        Ok(Host::Name(s.to_owned()))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]`, with IPv6 references in brackets.
pub fn parse_hostport(s: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']').ok_or(UriError {
            reason: "unterminated IPv6 reference",
        })?;
        let rest = &s[close + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return err("junk after IPv6 reference"),
        };
        (&s[..=close], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return err("bad port");
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return err("port out of range"),
                Ok(n) => Some(n),
            }
        }
    };
    Ok((Host::parse(host)?, port))
}

/// A `;name=value` list as it appears in URIs and header fields. Names compare
/// case-insensitively; order is kept for serialization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The value of a parameter that has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn set(&mut self, name: &str, value: Option<String>) {
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.0 {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    /// The user part, escaped as received.
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// `?name=value&...` headers, escaped as received.
    pub headers: Vec<(String, String)>,
}

impl SipUri {
    /// A plain `sip:user@host:port` URI.
    pub fn new(user: Option<&str>, host: Host, port: Option<u16>) -> Self {
        SipUri {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Params::default(),
            headers: Vec::new(),
        }
    }

    /// The user part with %-escapes decoded (lossy for non-UTF-8 results).
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.as_deref().map(unescape)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Tel {
        number: String,
        params: Params,
    },
    /// Any other scheme, kept as received (`scheme` is lower-cased).
    Other {
        scheme: String,
        opaque: String,
    },
}

impl Uri {
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel { .. } => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI or the number of a tel URI: what a call is routed on.
    pub fn user(&self) -> Option<String> {
        match self {
            Uri::Sip(u) => u.user_unescaped(),
            Uri::Tel { number, .. } => Some(number.clone()),
            Uri::Other { .. } => None,
        }
    }

    /// This URI fit to be a Request-URI: RFC 3261 §19.1.1 (table 1) allows neither the
    /// `?headers` component nor the `method` parameter there. A Contact or a configured
    /// contact may carry them, and a request built on them as they are would be refused by
    /// every strict parser, ours included.
    pub fn to_request_uri(&self) -> Uri {
        match self {
            Uri::Sip(u) if !u.headers.is_empty() || u.params.contains("method") => {
                let mut u = u.clone();
                u.headers.clear();
                u.params.remove("method");
                Uri::Sip(u)
            }
            other => other.clone(),
        }
    }

    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let colon = s.find(':').ok_or(UriError {
            reason: "missing scheme",
        })?;
        let scheme = &s[..colon];
        let rest = &s[colon + 1..];
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return err("bad scheme");
        }
        if rest.is_empty() || rest.bytes().any(|c| c <= b' ' || c == 0x7f) {
            return err("empty URI or whitespace in URI");
        }
        if scheme.eq_ignore_ascii_case("sip") {
            parse_sip(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            parse_sip(rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = match rest.find(';') {
                Some(at) => (&rest[..at], parse_uri_params(&rest[at..])?),
                None => (rest, Params::default()),
            };
            let number_ok = !number.is_empty()
                && number.bytes().all(|c| {
                    c.is_ascii_hexdigit()
                        || matches!(
                            c,
                            b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#' | b'p' | b'w'
                        )
                });
            if !number_ok {
                return err("bad tel number");
            }
            Ok(Uri::Tel {
                number: number.to_owned(),
                params,
            })
        } else {
            // RFC 3261 absoluteURI (RFC 2396): reserved, unreserved and escaped octets
            // only. Anything else (a '>' or '"' most of all) would end the URI early when
            // it is written back inside <>.
            check_escaped(
                rest,
                |c| b";/?:@&=+$,".contains(&c),
                "character not allowed in a URI",
            )?;
            Ok(Uri::Other {
                scheme: scheme.to_ascii_lowercase(),
                opaque: rest.to_owned(),
            })
        }
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Checks that every byte is allowed or part of a `%HH` escape.
fn check_escaped(
    s: &str,
    allowed: impl Fn(u8) -> bool,
    what: &'static str,
) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return err("bad %-escape");
            }
            i += 3;
        } else if is_unreserved(b[i]) || allowed(b[i]) {
            i += 1;
        } else {
            return Err(UriError { reason: what });
        }
    }
    Ok(())
}

fn parse_sip(rest: &str, secure: bool) -> Result<SipUri, UriError> {
    let (userinfo, after) = match rest.find('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            if u.is_empty() {
                return err("empty user part");
            }
            check_escaped(
                u,
                |c| matches!(c, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'),
                "bad character in user part",
            )?;
            if let Some(p) = p {
                check_escaped(
                    p,
                    |c| matches!(c, b'&' | b'=' | b'+' | b'$' | b','),
                    "bad character in password",
                )?;
            }
            (Some(u.to_owned()), p.map(str::to_owned))
        }
    };
    let hostport_end = after.find([';', '?']).unwrap_or(after.len());
    let (host, port) = parse_hostport(&after[..hostport_end])?;
    let mut tail = &after[hostport_end..];
    let mut headers = Vec::new();
    if let Some(q) = tail.find('?') {
        for pair in tail[q + 1..].split('&') {
            let (name, value) = pair.split_once('=').ok_or(UriError {
                reason: "URI header without '='",
            })?;
            if name.is_empty() {
                return err("empty URI header name");
            }
            let hnv = |c: u8| matches!(c, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$');
            check_escaped(name, hnv, "bad character in URI header")?;
            check_escaped(value, hnv, "bad character in URI header")?;
            headers.push((name.to_owned(), value.to_owned()));
        }
        tail = &tail[..q];
    }
    let params = parse_uri_params(tail)?;
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

/// Parses `;name[=value]...` of a URI (no whitespace allowed here).
fn parse_uri_params(s: &str) -> Result<Params, UriError> {
    let mut params = Params::default();
    if s.is_empty() {
        return Ok(params);
    }
    let s = s.strip_prefix(';').ok_or(UriError {
        reason: "junk after host",
    })?;
    let paramchar = |c: u8| matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$');
    for p in s.split(';') {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        if name.is_empty() {
            return err("empty URI parameter");
        }
        check_escaped(name, paramchar, "bad character in URI parameter")?;
        if let Some(v) = value {
            if v.is_empty() {
                return err("empty URI parameter value");
            }
            check_escaped(v, paramchar, "bad character in URI parameter")?;
        }
        params.0.push((name.to_owned(), value.map(str::to_owned)));
    }
    Ok(params)
}

/// Decodes `%HH` escapes.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)?;
        for (i, (n, v)) in self.headers.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => write!(f, "{u}"),
            Uri::Tel { number, params } => write!(f, "tel:{number}{params}"),
            Uri::Other { scheme, opaque } => write!(f, "{scheme}:{opaque}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sip_uri_parts() {
        let u = Uri::parse("sip:alice:pw@[::1]:5070;transport=tcp;lr?Subject=hi&X=1").unwrap();
        let s = u.as_sip().unwrap();
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(s.host, Host::V6("::1".parse().unwrap()));
        assert_eq!(s.port, Some(5070));
        assert_eq!(s.params.value("transport"), Some("tcp"));
        assert!(s.params.contains("lr"));
        assert_eq!(s.headers.len(), 2);
        assert_eq!(
            u.to_string(),
            "sip:alice:pw@[::1]:5070;transport=tcp;lr?Subject=hi&X=1"
        );
    }

    #[test]
    fn torture_user_parts() {
        let u = Uri::parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com").unwrap();
        assert_eq!(u.as_sip().unwrap().host, Host::Name("example.com".into()));
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(u.user().as_deref(), Some("sips:user@example.com"));
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(
            u.as_sip().unwrap().user.as_deref(),
            Some("user;par=u%40example.net")
        );
    }

    #[test]
    fn request_uris_lose_headers_and_method() {
        let contact =
            Uri::parse("sip:a@192.0.2.1:5070;transport=tcp;method=INVITE?X=1&Y=2").unwrap();
        assert_eq!(
            contact.to_request_uri().to_string(),
            "sip:a@192.0.2.1:5070;transport=tcp"
        );
        let plain = Uri::parse("sip:a@192.0.2.1").unwrap();
        assert_eq!(plain.to_request_uri(), plain);
    }

    #[test]
    fn other_schemes_take_uri_characters_only() {
        assert!(Uri::parse("mailto:a%20b@example.com?subject=x").is_ok());
        for bad in ["s:>", "p:a<b", "x:\"q\"", "x:a%2"] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schemes() {
        assert_eq!(Uri::parse("tel:+86-400-800-1234").unwrap().scheme(), "tel");
        assert_eq!(
            Uri::parse("soap.beep://192.0.2.103:3002").unwrap().scheme(),
            "soap.beep"
        );
        assert!(Uri::parse("<sip:user@example.com>").is_err());
        assert!(Uri::parse("sip:user@example.com; lr").is_err());
        assert!(Uri::parse("sip:user@exa mple.com").is_err());
        assert!(Uri::parse("sip:user@host:99999").is_err());
        assert!(Uri::parse("sip:us%zzer@host").is_err());
    }
}
