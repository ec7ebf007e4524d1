//! Media input paths: SDP bodies, RTP datagrams through the relay's checks into the
//! recorder, and RFC 4733 telephone-events into the DTMF receiver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{steps, ScratchFile, AGENT, NEW_SDP, PAUSE, TICK};
use crate::media::dtmf::{event_digit, parse_dtmf_relay, DtmfReceiver, TelephoneEvent};
use crate::media::relay::{fit_family, Admission, Target};
use crate::media::rtp::{self, PacketKind, RTCP_MIN_LEN};
use crate::media::sdp::{Sdp, SdpError};
use crate::media::Leg;
use crate::recording::engine::{samples_at, Engine, Span};
use crate::recording::wav::{WavWriter, HEADER_LEN};
use crate::recording::Codec;

/// Parse, the three reads call control makes, print → parse, and anchoring on both
/// address families: the anchored copy parses, sends audio to the relay, keeps formats
/// and direction, and anchoring twice changes nothing more.
pub fn sdp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sdp) = Sdp::parse(text) else {
        return;
    };
    let destination = sdp.audio_destination();
    let formats = sdp.audio_formats();
    let direction = sdp.audio_direction().to_owned();
    let printed = sdp.to_string();
    let again = Sdp::parse(&printed).expect("a parsed SDP prints as one that parses");
    assert_eq!(again, sdp, "print → parse gives the same description");

    let relays = [
        (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40_000),
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            40_002,
        ),
    ];
    for (ip, port) in relays {
        let mut anchored = sdp.clone();
        anchored.anchor(ip, port);
        let text = anchored.to_string();
        let reparsed = match Sdp::parse(&text) {
            Ok(reparsed) => reparsed,
            // Rewritten addresses are longer and a c= line may be added: a description at
            // our own limits may end up past them. The far phone has its own limits.
            Err(SdpError::TooLarge { .. } | SdpError::TooManyLines { .. }) => continue,
            Err(e) => panic!("the anchored SDP does not parse: {e}\n{text}"),
        };
        assert_eq!(reparsed, anchored, "anchored print → parse");
        let relay = SocketAddr::new(ip, port);
        if destination.is_some() {
            assert_eq!(
                reparsed.audio_destination(),
                Some(relay),
                "audio goes to us"
            );
        }
        if let Some(to) = reparsed.audio_destination() {
            assert_eq!(to, relay, "audio goes nowhere but to us");
        }
        assert_eq!(reparsed.audio_formats(), formats, "formats kept");
        assert_eq!(reparsed.audio_direction(), direction, "direction kept");
        let mut twice = anchored.clone();
        twice.anchor(ip, port);
        assert_eq!(twice, anchored, "anchoring is idempotent");
    }
}

/// The per-datagram checks of the relay and its guarantees to callers.
fn relay_checks(packet: &[u8]) -> PacketKind {
    let kind = rtp::classify(packet);
    match kind {
        PacketKind::Rtp => {
            let header = rtp::rtp_header_len(packet).expect("RTP has a header length");
            assert!(header <= packet.len(), "the RTP header fits the packet");
            assert!(rtp::payload_type(packet).is_some_and(|pt| pt <= 127));
        }
        PacketKind::Rtcp => assert!(packet.len() >= RTCP_MIN_LEN),
        PacketKind::Invalid => {}
    }
    kind
}

/// One leg's RTP latching in the relay, checked against the state diagram of
/// `media::relay`: the first packet from the SDP address's IP latches the leg, then only
/// that source gets in, until a new SDP address re-opens latching; packets go to the
/// latched source, else to the SDP address.
struct Latching {
    target: Target,
    addresses: [SocketAddr; 2],
    sdp: usize,
    latched: Option<SocketAddr>,
}

impl Latching {
    fn new(addresses: [SocketAddr; 2]) -> Latching {
        let mut target = Target::default();
        target.expect(Some(addresses[0]));
        Latching {
            target,
            addresses,
            sdp: 0,
            latched: None,
        }
    }

    /// A re-INVITE: with a new address when `new`, else the same one again.
    fn sdp_answer(&mut self, new: bool) {
        if new {
            self.sdp = 1 - self.sdp;
            self.latched = None;
        }
        self.target.expect(Some(self.addresses[self.sdp]));
    }

    /// A datagram from source number `source` (see [`super::SOURCE`]); whether it gets in.
    fn admit(&mut self, source: u8) -> bool {
        let sdp = self.addresses[self.sdp];
        let from = match source {
            0 => sdp,
            1 => SocketAddr::new(sdp.ip(), sdp.port().wrapping_add(2)),
            2 => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), sdp.port()),
            _ => match sdp.ip() {
                IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), sdp.port()),
                IpAddr::V6(_) => sdp,
            },
        };
        let expected = match self.latched {
            Some(latched) if latched == from => Admission::Known,
            Some(_) => Admission::Rejected,
            None if from.ip().to_canonical() == sdp.ip() => {
                self.latched = Some(from);
                Admission::Latched
            }
            None => Admission::Rejected,
        };
        assert_eq!(self.target.admit(from), expected, "latching of {from}");
        let destination = self.target.destination();
        assert_eq!(
            destination,
            Some(self.latched.unwrap_or(sdp)),
            "destination"
        );
        if let Some(destination) = destination {
            let v4 = fit_family(destination, IpAddr::V4(Ipv4Addr::LOCALHOST));
            let v6 = fit_family(destination, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            assert!(v6.is_ipv6(), "an IPv6 socket reaches {destination} as {v6}");
            assert_eq!(v4.ip().to_canonical(), destination.ip().to_canonical());
        }
        expected != Admission::Rejected
    }
}

/// Longest simulated call: bounds the WAV each run writes (3 s ≈ 96 KB), so that runs stay
/// fast. It is far above the recorder's hold, lag and re-anchoring thresholds (≤ 200 ms).
const MAX_CALL: Duration = Duration::from_secs(3);
/// The recorder's reorder hold and writing lag (`RecorderConfig::new` and the recorder
/// thread's defaults).
const HOLD: Duration = Duration::from_millis(60);
const LAG: Duration = Duration::from_millis(150);

/// A recorded call: every datagram goes through the relay's checks and latching (with
/// [`super::SOURCE`] and [`NEW_SDP`]); those it taps (RTP) go into the recorder, which
/// writes on [`TICK`] steps and is paused and resumed on [`PAUSE`] steps. The parameter byte is one more payload type mapped to PCMA. The file
/// must be a stereo 8 kHz WAV exactly as long as the call, hound must read it, and paused
/// spans must be silent.
pub fn rtp(data: &[u8]) {
    let Some((&param, script)) = data.split_first() else {
        return;
    };
    let file = ScratchFile::new("wav");
    let writer = WavWriter::create(file.path()).expect("a scratch WAV in the temp directory");
    let start = Instant::now();
    let codecs = vec![
        (0, Codec::Pcmu),
        (8, Codec::Pcma),
        (param & 0x7f, Codec::Pcma),
    ];
    let mut engine = Engine::new(writer, start, codecs, HOLD, Duration::from_secs(1));
    let lag_frames = samples_at(start, start + LAG);
    let mut spans: Vec<Span> = Vec::new();
    let addresses = |a: [u8; 4], port: u16| {
        let ip = IpAddr::V4(Ipv4Addr::from(a));
        [SocketAddr::new(ip, port), SocketAddr::new(ip, port + 2)]
    };
    let mut legs = [
        Latching::new(addresses([198, 51, 100, 10], 4000)),
        Latching::new(addresses([127, 0, 0, 1], 6000)),
    ];
    let mut now = start;
    for step in steps(script) {
        if now + step.advance > start + MAX_CALL {
            break;
        }
        now += step.advance;
        let ms = u64::try_from((now - start).as_millis()).unwrap_or(u64::MAX);
        let (leg, latching) = if step.has(AGENT) {
            (Leg::Agent, &mut legs[1])
        } else {
            (Leg::Caller, &mut legs[0])
        };
        latching.sdp_answer(step.has(NEW_SDP));
        if !step.packet.is_empty() {
            let kind = relay_checks(step.packet);
            if kind != PacketKind::Invalid
                && latching.admit(step.source())
                && kind == PacketKind::Rtp
            {
                engine.ingest(leg, now, &Bytes::copy_from_slice(step.packet));
            }
        }
        if step.has(PAUSE) {
            match spans.last_mut() {
                Some((_, end @ None)) => *end = Some(ms),
                _ => spans.push((ms, None)),
            }
        }
        if step.has(TICK) {
            engine.release(now);
            let target = samples_at(start, now).saturating_sub(lag_frames);
            engine.advance(target, now, &spans);
        }
    }
    let end_ms = u64::try_from((now - start).as_millis()).unwrap_or(u64::MAX);
    for (_, end) in spans.iter_mut() {
        end.get_or_insert(end_ms);
    }
    let summary = engine.finish(now, &spans).expect("the recording closes");
    let frames = samples_at(start, now);
    assert_eq!(
        summary.bytes,
        HEADER_LEN + 4 * frames,
        "file length is call length"
    );

    // hound checks the header; the samples are read here, as reading each one through
    // hound took most of a run's time.
    let reader = hound::WavReader::open(file.path()).expect("hound opens the recording");
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    assert_eq!(
        u64::from(reader.len()),
        2 * frames,
        "hound sees the whole call"
    );
    let bytes = std::fs::read(file.path()).expect("the recording reads back");
    let audio = bytes.get(HEADER_LEN as usize..).unwrap_or_default();
    for &(from_ms, to_ms) in &spans {
        // 8 frames of 4 bytes per millisecond.
        let from = usize::try_from(from_ms.saturating_mul(32)).unwrap_or(usize::MAX);
        let to = to_ms.unwrap_or(end_ms).saturating_mul(32);
        let to = usize::try_from(to).unwrap_or(usize::MAX).min(audio.len());
        let muted = audio.get(from..to).unwrap_or_default();
        assert!(
            muted.iter().all(|&b| b == 0),
            "paused span {from_ms}..{to_ms:?} ms is silent"
        );
    }
}

/// The caller's keys: packets (and SIP INFO-style text) into the RFC 4733 receiver on
/// the parameter byte's payload type, timers on [`TICK`] steps as the relay runs them.
/// Only keys come out, never more than the events that went in, and a drained receiver
/// is never due again at once (the relay would spin on its timer). Returns the keys.
pub fn dtmf(data: &[u8]) -> String {
    if let Some(key) = parse_dtmf_relay(&String::from_utf8_lossy(data)) {
        assert_is_key(key);
    }
    let Some((&payload_type, script)) = data.split_first() else {
        return String::new();
    };
    let mut receiver = DtmfReceiver::new(payload_type);
    let start = Instant::now();
    let mut now = start;
    let mut events = 0usize;
    let mut keys = String::new();
    for step in steps(script) {
        now += step.advance;
        if !step.packet.is_empty() {
            if is_telephone_event(step.packet, receiver.payload_type()) {
                events += 1;
            }
            if let Some(key) = receiver.on_packet(step.packet, now) {
                assert_is_key(key);
                keys.push(key);
            }
        }
        if step.has(TICK) {
            drain(&mut receiver, now, &mut keys);
        }
        let count = keys.chars().count();
        assert!(
            count <= events,
            "{keys:?} from {events} telephone-event packets"
        );
    }
    drain(&mut receiver, now + Duration::from_secs(3600), &mut keys);
    let count = keys.chars().count();
    assert!(
        count <= events,
        "{keys:?} from {events} telephone-event packets"
    );
    assert_eq!(
        receiver.deadline(),
        None,
        "nothing is left after the timeout"
    );
    keys
}

fn is_telephone_event(packet: &[u8], payload_type: u8) -> bool {
    rtp::classify(packet) == PacketKind::Rtp
        && rtp::payload_type(packet) == Some(payload_type)
        && rtp::rtp_header_len(packet)
            .and_then(|len| packet.get(len..))
            .and_then(TelephoneEvent::parse)
            .is_some()
}

fn assert_is_key(key: char) {
    assert!(
        (0..16).any(|code| event_digit(code) == Some(key)),
        "{key:?} is not a key"
    );
}

/// The relay's timer: `on_tick` until it has nothing more. A receiver holds a handful of
/// keys at most, so it must be done within a few calls.
fn drain(receiver: &mut DtmfReceiver, now: Instant, keys: &mut String) {
    for _ in 0..8 {
        match receiver.on_tick(now) {
            Some(key) => {
                assert_is_key(key);
                keys.push(key);
            }
            None => {
                if let Some(deadline) = receiver.deadline() {
                    assert!(deadline > now, "drained at {now:?} but due at {deadline:?}");
                }
                return;
            }
        }
    }
    panic!("on_tick kept giving keys");
}
