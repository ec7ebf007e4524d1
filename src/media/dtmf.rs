//! Keys pressed by a caller: RFC 4733 telephone-events in RTP, and SIP INFO bodies.
//!
//! # RFC 4733 in one paragraph
//! A phone that sends a key as a telephone-event uses the payload type it negotiated for
//! `telephone-event/8000` in SDP (often 101, but any dynamic type is possible). While the
//! key is held it sends packets that all carry the *same* RTP timestamp, the instant the
//! event started, with a growing duration; when the key is released it sends an "end"
//! packet (E bit set), usually three times for robustness. The payload is four octets:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! So an event is identified by its (SSRC, timestamp): every packet with the same pair
//! belongs to the same key press, and a new timestamp is a new press, even of the same key.
//!
//! # What [`DtmfReceiver`] reports
//! One digit per event, when the event is over: at its first end packet, when a packet of a
//! newer event shows that it is over, or, when every end packet was lost, once no packet of
//! it came for [`DtmfReceiver::timeout`] ([`DtmfReceiver::on_tick`]). Packets of an event
//! already reported (the repeated end packets, duplicates, stragglers that arrive out of
//! order) are recognised by their key and ignored. An event longer than the 16-bit duration
//! field can hold is continued by the sender under a new timestamp (RFC 4733 §2.5.1.3); a
//! segment that follows an unfinished event of the same key whose duration neared that
//! limit is taken as its continuation, not a second press.
//!
//! The receiver is a pure state machine driven by explicit instants: no I/O, no
//! allocation, no panic whatever the bytes.

use std::time::{Duration, Instant};

use super::rtp::{self, PacketKind};

/// How long an event whose end packets never came is waited for after its last packet.
/// Senders repeat an ongoing event's packet every 50 ms or so, so half a second of nothing
/// means the end was lost.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// Keys of recently reported events remembered, to ignore their late packets.
const RECENT: usize = 8;

/// An unfinished event whose duration reached this may be continued under a new timestamp
/// (RFC 4733 §2.5.1.3: the field saturates at 0xFFFF).
const LONG_EVENT: u16 = 0xF000;

/// The key a telephone-event code stands for (RFC 4733 §3.2: 0-9, `*`, `#`, A-D), `None`
/// for the other events (flash, tones).
pub fn event_digit(code: u8) -> Option<char> {
    match code {
        0..=9 => Some(char::from(b'0' + code)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + (code - 12))),
        _ => None,
    }
}

/// The telephone-event code of a key (the inverse of [`event_digit`]); lower-case a-d are
/// accepted.
pub fn digit_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// One telephone-event payload (the first four octets after the RTP header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the four-octet payload; `None` if it is shorter.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let [event, flags, d0, d1] = *payload.get(..4)? else {
            return None;
        };
        Some(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The four-octet payload (the R bit clear).
    pub fn to_bytes(self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        let end = if self.end { 0x80 } else { 0 };
        [self.event, end | (self.volume & 0x3f), d0, d1]
    }
}

/// (SSRC, RTP timestamp): what identifies one event.
type EventKey = (u32, u32);

/// The event being received and not yet reported.
#[derive(Debug, Clone, Copy)]
struct Current {
    key: EventKey,
    event: u8,
    last_packet: Instant,
    longest: u16,
}

/// Keys that finished together with another one, waiting to be handed out. Two events can
/// finish on one packet (the one under way, and a new one whose first packet is an end
/// packet), and at most one digit is returned per call; a few slots are plenty, and the
/// oldest is dropped should they ever run out.
#[derive(Debug, Clone, Copy, Default)]
struct Queue {
    items: [char; 4],
    start: usize,
    len: usize,
}

impl Queue {
    fn push(&mut self, digit: char) {
        let capacity = self.items.len();
        if self.len == capacity {
            self.start = (self.start + 1) % capacity;
            self.len -= 1;
        }
        if let Some(slot) = self.items.get_mut((self.start + self.len) % capacity) {
            *slot = digit;
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<char> {
        if self.len == 0 {
            return None;
        }
        let digit = self.items.get(self.start).copied();
        self.start = (self.start + 1) % self.items.len();
        self.len -= 1;
        digit
    }
}

/// Turns a stream of RTP packets into key presses, one per RFC 4733 event. See the module
/// documentation.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    payload_type: u8,
    timeout: Duration,
    current: Option<Current>,
    /// Keys of events already reported (or superseded), oldest overwritten first.
    recent: [Option<EventKey>; RECENT],
    recent_next: usize,
    queued: Queue,
    /// When the first queued key was queued: [`DtmfReceiver::deadline`] for it.
    queued_at: Option<Instant>,
}

impl DtmfReceiver {
    /// A receiver for telephone-events on `payload_type`: the type negotiated for
    /// `telephone-event` in SDP, whatever its number. Other payload types are ignored.
    pub fn new(payload_type: u8) -> DtmfReceiver {
        DtmfReceiver {
            payload_type: payload_type & 0x7f,
            timeout: DEFAULT_TIMEOUT,
            current: None,
            recent: [None; RECENT],
            recent_next: 0,
            queued: Queue::default(),
            queued_at: None,
        }
    }

    /// The same receiver with another end-packet timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> DtmfReceiver {
        self.timeout = timeout;
        self
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Takes one received RTP packet (header included). Returns a key when an event is
    /// over; each event gives its key once. Anything that is not a telephone-event packet
    /// of our payload type is ignored.
    ///
    /// When two events finish on one packet, the second key is kept for the next call of
    /// this or of [`DtmfReceiver::on_tick`] (whose [`DtmfReceiver::deadline`] is then due).
    pub fn on_packet(&mut self, packet: &[u8], now: Instant) -> Option<char> {
        self.accept(packet, now);
        self.pop()
    }

    /// Reports an event whose end packets never came once [`DtmfReceiver::timeout`] has
    /// passed since its last packet, and keys left queued by [`DtmfReceiver::on_packet`].
    /// Call it at [`DtmfReceiver::deadline`] (until it returns `None`), or periodically.
    pub fn on_tick(&mut self, now: Instant) -> Option<char> {
        if let Some(queued) = self.pop() {
            return Some(queued);
        }
        let current = self.current?;
        if now.saturating_duration_since(current.last_packet) < self.timeout {
            return None;
        }
        self.finish(current.last_packet);
        self.pop()
    }

    /// When [`DtmfReceiver::on_tick`] may next have something to report: `None` while no
    /// event is under way and nothing is queued.
    pub fn deadline(&self) -> Option<Instant> {
        // A timeout too long to represent never expires.
        self.queued_at.or_else(|| {
            self.current
                .and_then(|c| c.last_packet.checked_add(self.timeout))
        })
    }

    /// Forgets any event under way, queued keys and every remembered key.
    pub fn reset(&mut self) {
        *self = DtmfReceiver::new(self.payload_type).with_timeout(self.timeout);
    }

    /// Updates the state with one packet; finished keys go to the queue.
    fn accept(&mut self, packet: &[u8], now: Instant) {
        let Some((key, event)) = self.parse(packet) else {
            return;
        };
        if self.recent.contains(&Some(key)) {
            return;
        }
        if let Some(current) = self.current {
            let same = current.key == key;
            let next_segment = !same
                && current.key.0 == key.0
                && current.event == event.event
                && current.longest >= LONG_EVENT;
            if same || next_segment {
                if next_segment {
                    // A long event goes on under a new timestamp; the old one is done with.
                    self.remember(current.key);
                }
                self.current = Some(Current {
                    key,
                    event: current.event,
                    last_packet: now,
                    longest: if same {
                        current.longest.max(event.duration)
                    } else {
                        event.duration
                    },
                });
                if event.end {
                    self.finish(now);
                }
                return;
            }
            // A new event: the one under way is over, even though its end was lost.
            self.finish(now);
        }
        self.current = Some(Current {
            key,
            event: event.event,
            last_packet: now,
            longest: event.duration,
        });
        if event.end {
            self.finish(now);
        }
    }

    /// The key and payload of a telephone-event packet of our payload type.
    fn parse(&self, packet: &[u8]) -> Option<(EventKey, TelephoneEvent)> {
        if rtp::classify(packet) != PacketKind::Rtp
            || rtp::payload_type(packet)? != self.payload_type
        {
            return None;
        }
        let header_len = rtp::rtp_header_len(packet)?;
        let event = TelephoneEvent::parse(packet.get(header_len..)?)?;
        let word = |at: usize| -> Option<u32> {
            let b = packet.get(at..at + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        Some(((word(8)?, word(4)?), event))
    }

    /// Ends the event under way: its key is remembered and its digit (if it is a key, not
    /// another event) queued.
    fn finish(&mut self, now: Instant) {
        let Some(current) = self.current.take() else {
            return;
        };
        self.remember(current.key);
        if let Some(digit) = event_digit(current.event) {
            self.queued.push(digit);
            self.queued_at.get_or_insert(now);
        }
    }

    fn pop(&mut self) -> Option<char> {
        let digit = self.queued.pop();
        if self.queued.len == 0 {
            self.queued_at = None;
        }
        digit
    }

    fn remember(&mut self, key: EventKey) {
        if let Some(slot) = self.recent.get_mut(self.recent_next) {
            *slot = Some(key);
        }
        self.recent_next = (self.recent_next + 1) % RECENT;
    }
}

/// The key in a SIP INFO body: `application/dtmf-relay` (`Signal=4` on its own line, with a
/// `Duration=` line that is ignored) or `application/dtmf` (the body is the key itself).
/// Keys are `0`-`9`, `*`, `#`, `A`-`D` (lower case accepted), or their telephone-event
/// codes 0-15 (some phones send `Signal=11` for `#`). `None` for anything else.
pub fn parse_dtmf_relay(body: &str) -> Option<char> {
    let signal = body.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        name.trim().eq_ignore_ascii_case("signal").then_some(value)
    });
    match signal {
        Some(value) => key_from_text(value),
        // No `Signal=` line: an `application/dtmf` body, unless it is some other form.
        None if !body.contains('=') => key_from_text(body),
        None => None,
    }
}

fn key_from_text(text: &str) -> Option<char> {
    let text = text.trim();
    let mut chars = text.chars();
    let first = chars.next()?;
    if chars.next().is_none() {
        return digit_event(first).and_then(event_digit);
    }
    // Two characters or more: only an event code (10..=15) makes sense.
    text.parse::<u8>().ok().and_then(event_digit)
}

#[cfg(test)]
mod tests;
