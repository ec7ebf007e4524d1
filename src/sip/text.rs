//! Text primitives of the SIP grammar (RFC 3261 §25): validated UTF-8 byte strings that
//! share the received buffer, and the character classes the parsers test against.

use bytes::Bytes;
use std::fmt;
use std::ops::Deref;

/// A slice of a received message that is known to be valid UTF-8.
///
/// Header values keep pointing into the datagram or stream buffer they arrived in
/// (`Bytes` is reference-counted), so parsing a message copies no header text unless a
/// value had to be unfolded.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ByteStr(Bytes);

impl ByteStr {
    /// Wraps bytes after checking they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(ByteStr(bytes))
    }

    /// A static string, for values we write ourselves.
    pub const fn from_static(s: &'static str) -> Self {
        ByteStr(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks (or is given) valid UTF-8 and the bytes are
        // immutable afterwards.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        ByteStr(Bytes::from(s))
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> Self {
        ByteStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `token` characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
pub fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// `word` characters (Call-ID): token characters plus ( ) < > : \ " / [ ] ? { }.
pub fn is_word_char(c: u8) -> bool {
    is_token_char(c)
        || matches!(
            c,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        )
}

pub fn is_lws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Trims SP and HTAB (the LWS left after unfolding) from both ends.
pub fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Reads a quoted-string starting at `s[0] == '"'`. Returns the unescaped content and the
/// rest after the closing quote. quoted-pair (`\` followed by any octet but CR/LF) is
/// honoured, so `\"` does not end the string.
pub fn take_quoted(s: &str) -> Option<(String, &str)> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut out = String::new();
    let mut i = 1;
    let mut run_start = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                out.push_str(&s[run_start..i]);
                return Some((out, &s[i + 1..]));
            }
            b'\\' => {
                out.push_str(&s[run_start..i]);
                let next = *bytes.get(i + 1)?;
                if next == b'\r' || next == b'\n' {
                    return None;
                }
                // The escaped character may be a multi-byte UTF-8 sequence only if the
                // grammar allowed it; quoted-pair is ASCII, so take one char.
                let ch = s[i + 1..].chars().next()?;
                out.push(ch);
                i += 1 + ch.len_utf8();
                run_start = i;
            }
            b'\r' | b'\n' => return None,
            _ => i += 1,
        }
    }
    None
}

/// Writes `s` as a quoted-string, escaping `"` and `\`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Finds the first occurrence of `needle` outside quoted strings and outside `<...>`.
pub fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_quotes {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == b'"' {
                in_quotes = false;
            }
        } else if c == b'"' {
            in_quotes = true;
        } else if c == b'<' {
            in_angle = true;
        } else if c == b'>' {
            in_angle = false;
        } else if c == needle && !in_angle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Splits a header value at top-level commas (not inside quotes or angle brackets).
pub fn split_list(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(at) = find_unquoted(rest, b',') {
        parts.push(trim_lws(&rest[..at]));
        rest = &rest[at + 1..];
    }
    parts.push(trim_lws(rest));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_honour_escapes() {
        let (v, rest) = take_quoted(r#""J Rosenberg \\\"" <sip:a@b>"#).unwrap();
        assert_eq!(v, r#"J Rosenberg \""#);
        assert_eq!(rest, " <sip:a@b>");
        assert!(take_quoted("\"unterminated <sip:a@b>").is_none());
    }

    #[test]
    fn lists_split_outside_quotes_and_brackets() {
        let parts = split_list(r#""a, b" <sip:x@y;p=1,2>, <sip:z@w>"#);
        assert_eq!(parts, vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z@w>"]);
    }
}
