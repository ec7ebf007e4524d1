//! A small SDP (RFC 4566) parser and rewriter, just enough for an anchoring B2BUA.
//!
//! Call control needs three things from a session description: where a leg wants its audio
//! ([`Sdp::audio_destination`]), what it can send ([`Sdp::audio_formats`],
//! [`Sdp::audio_direction`]), and a copy pointing at our relay instead of at the phone
//! ([`Sdp::anchor`]) to hand to the other leg. Everything else in the description is
//! somebody else's business, so [`Sdp`] keeps every line, known or not, in its original
//! order, and writes it back unchanged except for the fields `anchor` rewrites. That keeps
//! codecs, `fmtp`, `ptime` and vendor attributes flowing end to end (RFC 3264 offer/answer
//! stays between the two phones) without this module having to understand them.
//!
//! Parsing is tolerant where the RFC is (line order inside a section, LF-only line ends,
//! blank lines) and strict where a mistake would send audio to the wrong place or keep
//! garbage (unknown type letters, malformed `o=`, `c=` and `m=` lines). Input size is
//! bounded; no input makes it panic.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Larger descriptions are refused: a call-center audio offer is well under 4 KiB, and SIP
/// bodies reach us from the network.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Bounds the line vector independently of the byte limit (many one-byte lines).
pub const MAX_SDP_LINES: usize = 1024;

/// The line types RFC 4566 §5 defines. Its rule is that a parser "MUST completely ignore any
/// session description that contains a type letter that it does not understand", so any
/// other letter is an error rather than a line to carry along.
const KNOWN_TYPES: &[u8] = b"vosiuepcbtrzkam";

const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

/// Why a body is not a usable session description. `line` numbers count from 1, as an
/// operator reading the body in a SIP trace would.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SdpError {
    #[error("SDP is {len} bytes, more than the {max} accepted")]
    TooLarge { len: usize, max: usize },
    #[error("SDP has more than {max} lines")]
    TooManyLines { max: usize },
    #[error("SDP line {line}: {reason}")]
    Malformed { line: usize, reason: &'static str },
    #[error("SDP line {line}: unknown type letter {letter:?}")]
    UnknownType { line: usize, letter: char },
    #[error("SDP has no {field}= line")]
    Missing { field: char },
    #[error("SDP line {line}: unsupported version (only v=0 exists)")]
    UnsupportedVersion { line: usize },
}

/// One `<type>=<value>` line. The type is kept as an ASCII byte, checked against
/// [`KNOWN_TYPES`] at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    kind: u8,
    value: String,
}

/// A parsed session description: its lines in their original order.
///
/// Lines before the first `m=` form the session section; each `m=` starts a media section
/// that runs to the next `m=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    lines: Vec<Line>,
}

/// The fields of an `m=` line this module reads, borrowed from the line.
struct MediaLine<'a> {
    media: &'a str,
    port: u16,
    formats: std::str::SplitAsciiWhitespace<'a>,
}

impl<'a> MediaLine<'a> {
    /// `m=<media> <port>[/<count>] <proto> <fmt> ...`. At least media, port and proto must
    /// be there; a stream with no format is odd but harmless to carry.
    fn parse(value: &'a str) -> Option<MediaLine<'a>> {
        let mut fields = value.split_ascii_whitespace();
        let media = fields.next()?;
        let port_field = fields.next()?;
        let port_text = port_field.split('/').next()?;
        let port = port_text.parse::<u16>().ok()?;
        if let Some(count) = port_field.split('/').nth(1) {
            count.parse::<u16>().ok()?;
        }
        let _proto = fields.next()?;
        Some(MediaLine {
            media,
            port,
            formats: fields,
        })
    }
}

impl Sdp {
    /// Parses a session description.
    ///
    /// Requires `v=0`, `o=` (six fields), `s=` and `t=` in the session section and at least
    /// one well-formed `m=` line. Lines may end in CRLF or LF; blank lines are skipped.
    pub fn parse(text: &str) -> Result<Sdp, SdpError> {
        if text.len() > MAX_SDP_BYTES {
            return Err(SdpError::TooLarge {
                len: text.len(),
                max: MAX_SDP_BYTES,
            });
        }
        let mut lines = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.trim().is_empty() {
                continue;
            }
            if lines.len() == MAX_SDP_LINES {
                return Err(SdpError::TooManyLines { max: MAX_SDP_LINES });
            }
            lines.push(parse_line(index + 1, raw)?);
        }
        let sdp = Sdp { lines };
        let session = &sdp.lines[..sdp.session_end()];
        for field in [b'v', b'o', b's', b't'] {
            if !session.iter().any(|l| l.kind == field) {
                return Err(SdpError::Missing {
                    field: char::from(field),
                });
            }
        }
        if session.len() == sdp.lines.len() {
            return Err(SdpError::Missing { field: 'm' });
        }
        Ok(sdp)
    }

    /// Index of the first `m=` line (the end of the session section).
    fn session_end(&self) -> usize {
        self.lines
            .iter()
            .position(|l| l.kind == b'm')
            .unwrap_or(self.lines.len())
    }

    /// The first audio media section as `(index of its m= line, end index exclusive)`.
    fn first_audio(&self) -> Option<(usize, usize)> {
        let start = self.lines.iter().position(|l| {
            l.kind == b'm' && MediaLine::parse(&l.value).is_some_and(|m| m.media == "audio")
        })?;
        let end = self.lines[start + 1..]
            .iter()
            .position(|l| l.kind == b'm')
            .map_or(self.lines.len(), |p| start + 1 + p);
        Some((start, end))
    }

    /// The address and port RTP for the first audio stream should go to.
    ///
    /// A media-level `c=` overrides the session-level one (RFC 4566 §5.7). `None` when there
    /// is no audio stream, its port is 0 (stream refused, RFC 3264 §6), the connection
    /// address is unspecified (`0.0.0.0`/`::`, the RFC 2543 way of putting a call on hold),
    /// or it is not a literal IP address (an FQDN would need a DNS lookup the relay does not
    /// do; the sender then has to be found by latching).
    pub fn audio_destination(&self) -> Option<SocketAddr> {
        let (start, end) = self.first_audio()?;
        let port = MediaLine::parse(&self.lines[start].value)?.port;
        if port == 0 {
            return None;
        }
        let media_c = self.lines[start + 1..end].iter().find(|l| l.kind == b'c');
        let session_c = self.lines[..self.session_end()]
            .iter()
            .find(|l| l.kind == b'c');
        let ip = connection_ip(&media_c.or(session_c)?.value)?;
        if ip.is_unspecified() {
            return None;
        }
        Some(SocketAddr::new(ip, port))
    }

    /// Payload types of the first audio `m=` line with their encodings (`name/rate`, plus
    /// `/channels` when the `rtpmap` gives one), in the offerer's order of preference.
    ///
    /// An `a=rtpmap` in that media section wins; without one, the static RTP/AVP types of
    /// RFC 3551 (0 PCMU, 8 PCMA, ...) are known; other types map to `None`. Formats that are
    /// not RTP payload type numbers (0..=127) are left out.
    pub fn audio_formats(&self) -> Vec<(u8, Option<String>)> {
        let Some((start, end)) = self.first_audio() else {
            return Vec::new();
        };
        let Some(media) = MediaLine::parse(&self.lines[start].value) else {
            return Vec::new();
        };
        let section = &self.lines[start + 1..end];
        media
            .formats
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|&pt| pt <= 127)
            .map(|pt| {
                let mapped = section
                    .iter()
                    .filter(|l| l.kind == b'a')
                    .find_map(|l| rtpmap_encoding(&l.value, pt));
                let encoding = mapped
                    .map(str::to_owned)
                    .or_else(|| static_encoding(pt).map(str::to_owned));
                (pt, encoding)
            })
            .collect()
    }

    /// Rewrites the description to point at our relay: every `c=` line and the `o=` address
    /// become `ip`, the first audio stream's port becomes `port` (and an RFC 3605 `a=rtcp`
    /// in it becomes `port + 1`). Payload types, formats and other attributes are kept, so
    /// the far phone negotiates codecs with the near one as if we were not there.
    ///
    /// Two deliberate choices beyond a plain rewrite:
    /// - a first audio stream with port 0 stays 0: it was refused or disabled, and giving it
    ///   our port would turn it back on;
    /// - every other stream (video, a second audio) gets port 0. The relay carries one audio
    ///   stream; since `c=` now names our address, leaving those ports would invite the far
    ///   side to send media to ports of ours nobody listens on. Port 0 keeps the `m=` line
    ///   count that RFC 3264 §6 requires and declines the stream cleanly.
    ///
    /// The `o=` session version is left alone: it changes when, and only when, the phone's
    /// own description changes, which is the rule RFC 3264 §8 asks of us too.
    pub fn anchor(&mut self, ip: IpAddr, port: u16) {
        let addr_type = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let connection = format!("IN {addr_type} {ip}");
        let audio = self.first_audio();
        let audio_start = audio.map(|(start, _)| start);

        let has_session_c = self.lines[..self.session_end()]
            .iter()
            .any(|l| l.kind == b'c');
        let audio_has_c = audio
            .is_some_and(|(start, end)| self.lines[start + 1..end].iter().any(|l| l.kind == b'c'));

        let mut in_audio = false;
        for (index, line) in self.lines.iter_mut().enumerate() {
            match line.kind {
                b'c' => line.value.clone_from(&connection),
                b'o' => {
                    let fields: Vec<&str> = line.value.split_ascii_whitespace().collect();
                    if let [user, id, version, ..] = fields[..] {
                        line.value = format!("{user} {id} {version} {connection}");
                    }
                }
                b'm' => {
                    in_audio = Some(index) == audio_start;
                    let current = MediaLine::parse(&line.value).map(|m| m.port);
                    let new_port = match current {
                        Some(0) | None => None,
                        Some(_) if in_audio => Some(port),
                        Some(_) => Some(0),
                    };
                    if let Some(new_port) = new_port {
                        line.value = replace_media_port(&line.value, new_port);
                    }
                }
                b'a' if in_audio && line.value.starts_with("rtcp:") => {
                    line.value = format!("rtcp:{}", port.saturating_add(1));
                }
                _ => {}
            }
        }

        // An SDP whose audio section gets its address from nowhere (no session c=, none in
        // the section) is broken, but the anchored copy must say where to send: add a
        // session-level c= where RFC 4566 §5 orders it (before b=, t= and what follows).
        if audio.is_some() && !has_session_c && !audio_has_c {
            let at = self.lines[..self.session_end()]
                .iter()
                .position(|l| b"btrzkam".contains(&l.kind))
                .unwrap_or_else(|| self.session_end());
            self.lines.insert(
                at,
                Line {
                    kind: b'c',
                    value: connection,
                },
            );
        }
    }

    /// The direction attribute of the first audio stream (RFC 3264 §5.1): the media-level
    /// attribute, else the session-level one, else `sendrecv`.
    pub fn audio_direction(&self) -> &str {
        let direction_in = |lines: &[Line]| -> Option<&'static str> {
            lines
                .iter()
                .filter(|l| l.kind == b'a')
                .find_map(|l| DIRECTIONS.into_iter().find(|d| l.value.trim() == *d))
        };
        let media = self
            .first_audio()
            .and_then(|(start, end)| direction_in(&self.lines[start + 1..end]));
        media
            .or_else(|| direction_in(&self.lines[..self.session_end()]))
            .unwrap_or("sendrecv")
    }
}

impl fmt::Display for Sdp {
    /// Writes the description with CRLF line ends (RFC 4566 §5), whatever the input used.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            write!(f, "{}={}\r\n", char::from(line.kind), line.value)?;
        }
        Ok(())
    }
}

/// Splits one non-blank line into its type and value.
fn parse_line(number: usize, raw: &str) -> Result<Line, SdpError> {
    let bytes = raw.as_bytes();
    let (Some(&kind), Some(&b'=')) = (bytes.first(), bytes.get(1)) else {
        return Err(SdpError::Malformed {
            line: number,
            reason: "not of the form <type>=<value>",
        });
    };
    if !kind.is_ascii_lowercase() {
        return Err(SdpError::Malformed {
            line: number,
            reason: "type is not a lowercase letter",
        });
    }
    if !KNOWN_TYPES.contains(&kind) {
        return Err(SdpError::UnknownType {
            line: number,
            letter: char::from(kind),
        });
    }
    // RFC 4566 §5: text fields may hold any octet but NUL, CR and LF.
    if raw.bytes().any(|b| b == 0 || b == b'\r') {
        return Err(SdpError::Malformed {
            line: number,
            reason: "NUL or bare CR in the line",
        });
    }
    // Both leading octets are ASCII, so index 2 is a char boundary.
    let value = &raw[2..];
    // The lines the relay reads are checked here, once, so that the accessors can rely on
    // their shape and a bad one is reported with its line number.
    let malformed = |reason| SdpError::Malformed {
        line: number,
        reason,
    };
    match kind {
        b'v' if value.trim() != "0" => return Err(SdpError::UnsupportedVersion { line: number }),
        b'o' if value.split_ascii_whitespace().count() != 6 => {
            return Err(malformed("o= needs six fields"))
        }
        b'c' if value.split_ascii_whitespace().count() != 3 => {
            return Err(malformed("c= needs network type, address type and address"))
        }
        b'm' if MediaLine::parse(value).is_none() => {
            return Err(malformed("m= needs media, a port and a protocol"))
        }
        _ => {}
    }
    Ok(Line {
        kind,
        value: value.to_owned(),
    })
}

/// The IP address of a `c=` value `IN IP4|IP6 <address>[/ttl[/count]]`, if it is a literal
/// of the announced family.
fn connection_ip(value: &str) -> Option<IpAddr> {
    let mut fields = value.split_ascii_whitespace();
    let (net_type, addr_type, address) = (fields.next()?, fields.next()?, fields.next()?);
    if net_type != "IN" {
        return None;
    }
    let address = address.split('/').next()?;
    let ip = match addr_type {
        "IP4" => IpAddr::V4(address.parse().ok()?),
        "IP6" => IpAddr::V6(address.parse().ok()?),
        _ => return None,
    };
    Some(ip)
}

/// The encoding of `a=rtpmap:<pt> <encoding>/<rate>[/<channels>]` if the attribute is an
/// rtpmap for `pt`.
fn rtpmap_encoding(attribute: &str, pt: u8) -> Option<&str> {
    let rest = attribute.strip_prefix("rtpmap:")?;
    let rest = rest.trim_start();
    let (number, encoding) = rest.split_once(|c: char| c.is_ascii_whitespace())?;
    if number.parse::<u8>().ok()? != pt {
        return None;
    }
    let encoding = encoding.trim();
    (!encoding.is_empty()).then_some(encoding)
}

/// Static audio payload types of RFC 3551 §6 (table 4), usable without an rtpmap.
fn static_encoding(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU/8000",
        3 => "GSM/8000",
        4 => "G723/8000",
        5 => "DVI4/8000",
        6 => "DVI4/16000",
        7 => "LPC/8000",
        8 => "PCMA/8000",
        9 => "G722/8000",
        10 => "L16/44100/2",
        11 => "L16/44100",
        12 => "QCELP/8000",
        13 => "CN/8000",
        14 => "MPA/90000",
        15 => "G728/8000",
        16 => "DVI4/11025",
        17 => "DVI4/22050",
        18 => "G729/8000",
        _ => return None,
    })
}

/// `m=` value with its port (and any `/count`) replaced; the other fields keep their text.
fn replace_media_port(value: &str, port: u16) -> String {
    let mut fields = value.split_ascii_whitespace();
    let media = fields.next().unwrap_or_default();
    let _old_port = fields.next();
    let mut out = format!("{media} {port}");
    for field in fields {
        out.push(' ');
        out.push_str(field);
    }
    out
}

#[cfg(test)]
mod tests;
