//! The digest header fields on the wire: parsing `Authorization` credentials and
//! `WWW-Authenticate` challenges (RFC 7616 §3.4, RFC 3261 §25), and the client side's
//! answer to a challenge (for outbound trunks).

use super::*;
use crate::sip::text::{is_token_char, quote};

/// Linear white space, including folded line ends in case the caller did not
/// unfold the header.
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Byte cursor over a header value. It only ever stops on ASCII bytes, so
/// every slice it produces is valid UTF-8; that is still checked rather than
/// assumed.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor {
            bytes: s.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_lws(&mut self) {
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> Result<&'a str, AuthError> {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        let slice = self.bytes.get(start..self.pos).unwrap_or_default();
        std::str::from_utf8(slice).map_err(|_| AuthError::malformed("invalid UTF-8"))
    }

    /// Reads a quoted-string body after its opening quote, undoing `\"` and
    /// `\\` (and any other quoted-pair) escapes.
    fn quoted_string(&mut self) -> Result<String, AuthError> {
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err(AuthError::malformed("unterminated quoted string")),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(escaped) => out.push(escaped),
                    None => return Err(AuthError::malformed("unterminated quoted string")),
                },
                Some(b) => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| AuthError::malformed("invalid UTF-8 in quoted string"))
    }
}

/// Splits off the scheme and checks it is `Digest`, leaving the cursor at the
/// parameters. Other schemes are reported before their parameters are looked
/// at, since they may not even use the auth-param syntax (e.g. token68).
fn digest_params(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let mut cur = Cursor::new(value);
    cur.skip_lws();
    let scheme = cur.take_while(is_token_char)?;
    if scheme.is_empty() {
        return Err(AuthError::malformed("missing authentication scheme"));
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::NotDigest {
            scheme: scheme.chars().take(MAX_SCHEME_ECHO).collect(),
        });
    }
    if cur.peek().is_some_and(|b| !is_lws(b)) {
        return Err(AuthError::malformed(
            "authentication scheme must be followed by white space",
        ));
    }
    parse_params(&mut cur)
}

/// Parses `name=value` pairs separated by commas (empty list elements are
/// tolerated, as RFC 7230 §7 asks). Names come back lower-cased; values are
/// unquoted. A repeated name is an error because the two copies could be
/// read differently by different components.
fn parse_params(cur: &mut Cursor<'_>) -> Result<Vec<(String, String)>, AuthError> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    loop {
        cur.skip_lws();
        match cur.peek() {
            None => break,
            Some(b',') => {
                cur.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = cur.take_while(is_token_char)?.to_ascii_lowercase();
        if name.is_empty() {
            return Err(AuthError::malformed("expected a parameter name"));
        }
        cur.skip_lws();
        if cur.bump() != Some(b'=') {
            return Err(AuthError::malformed(format!(
                "parameter {name} has no value"
            )));
        }
        cur.skip_lws();
        let value = if cur.peek() == Some(b'"') {
            cur.pos += 1;
            cur.quoted_string()?
        } else {
            // Tokens, leniently: base64 nonces and the like may contain '/'
            // or '=' even though they should have been quoted.
            let v = cur.take_while(|b| !is_lws(b) && b != b',' && b != b'"')?;
            if v.is_empty() {
                return Err(AuthError::malformed(format!(
                    "parameter {name} has an empty value"
                )));
            }
            v.to_string()
        };
        if !seen.insert(name.clone()) {
            return Err(AuthError::malformed(format!("duplicate parameter {name}")));
        }
        cur.skip_lws();
        match cur.bump() {
            None | Some(b',') => {}
            Some(_) => {
                return Err(AuthError::malformed(format!(
                    "unexpected text after parameter {name}"
                )))
            }
        }
        params.push((name, value));
    }
    Ok(params)
}

/// The parameters of a `Digest` `Authorization` / `Proxy-Authorization`
/// value, unquoted but otherwise as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub opaque: Option<String>,
}

/// Parses `Digest username="..", realm="..", ...`. Unknown parameters are
/// ignored; missing required ones and duplicates are [`AuthError::Malformed`];
/// another scheme is [`AuthError::NotDigest`].
pub fn parse_credentials(value: &str) -> Result<DigestCredentials, AuthError> {
    let mut username = None;
    let mut realm = None;
    let mut nonce = None;
    let mut uri = None;
    let mut response = None;
    let mut algorithm = None;
    let mut cnonce = None;
    let mut qop = None;
    let mut nc = None;
    let mut opaque = None;
    for (name, value) in digest_params(value)? {
        let slot = match name.as_str() {
            "username" => &mut username,
            "realm" => &mut realm,
            "nonce" => &mut nonce,
            "uri" => &mut uri,
            "response" => &mut response,
            "algorithm" => &mut algorithm,
            "cnonce" => &mut cnonce,
            "qop" => &mut qop,
            "nc" => &mut nc,
            "opaque" => &mut opaque,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(DigestCredentials {
        username: username.ok_or_else(|| AuthError::missing("username"))?,
        realm: realm.ok_or_else(|| AuthError::missing("realm"))?,
        nonce: nonce.ok_or_else(|| AuthError::missing("nonce"))?,
        uri: uri.ok_or_else(|| AuthError::missing("uri"))?,
        response: response.ok_or_else(|| AuthError::missing("response"))?,
        algorithm,
        cnonce,
        qop,
        nc,
        opaque,
    })
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge, as
/// needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// The server offered `qop=auth`; when false we answer in the RFC 2069
    /// form without cnonce/nc.
    pub qop_auth: bool,
    pub opaque: Option<String>,
    pub stale: bool,
}

/// Parses one Digest challenge (client side). A header value carrying several
/// comma-separated challenges is not split; callers give one challenge per
/// header line, as SIP servers send them.
pub fn parse_challenge(value: &str) -> Result<Challenge, AuthError> {
    let mut realm = None;
    let mut nonce = None;
    let mut algorithm = Algorithm::Md5;
    let mut qop_auth = false;
    let mut opaque = None;
    let mut stale = false;
    for (name, value) in digest_params(value)? {
        match name.as_str() {
            "realm" => realm = Some(value),
            "nonce" => nonce = Some(value),
            "algorithm" => algorithm = value.parse()?,
            "qop" => {
                // qop-options is a quoted, comma-separated list.
                qop_auth = value.split(',').any(|q| {
                    q.trim_matches(|c: char| c.is_ascii_whitespace())
                        .eq_ignore_ascii_case("auth")
                });
                if !qop_auth {
                    return Err(AuthError::UnsupportedQop { qop: value });
                }
            }
            "opaque" => opaque = Some(value),
            "stale" => stale = value.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    Ok(Challenge {
        realm: realm.ok_or_else(|| AuthError::missing("realm"))?,
        nonce: nonce.ok_or_else(|| AuthError::missing("nonce"))?,
        algorithm,
        qop_auth,
        opaque,
        stale,
    })
}

/// Client side: the `Authorization` / `Proxy-Authorization` value answering
/// `ch` for a request with this method and Request-URI. `nc` counts the
/// requests made with this nonce, starting at 1; the caller keeps it, and
/// supplies a fresh random `cnonce`.
pub fn authorization_for(
    ch: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let nc_hex = format!("{nc:08x}");
    let response = DigestInputs {
        algorithm: ch.algorithm,
        username,
        realm: &ch.realm,
        password,
        method,
        uri,
        nonce: &ch.nonce,
        qop_auth: ch.qop_auth.then_some((nc_hex.as_str(), cnonce)),
    }
    .response();
    let mut out = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\", algorithm={}",
        quote(username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(uri),
        ch.algorithm,
    );
    if ch.qop_auth {
        out.push_str(&format!(
            ", qop=auth, nc={nc_hex}, cnonce={}",
            quote(cnonce)
        ));
    }
    if let Some(opaque) = &ch.opaque {
        out.push_str(&format!(", opaque={}", quote(opaque)));
    }
    out
}
