//! Tests of the engine, driven by explicit instants: placement, alignment, loss,
//! reordering, duplicates, re-anchoring, pause muting and checkpoints, checked sample by
//! sample in the file `hound` reads back.

use std::time::{Duration, Instant};

use super::*;
use crate::recording::test_support::{alaw, read_stereo, rtp, sine, ulaw};

const HOLD: Duration = Duration::from_millis(60);
/// The recorder thread's default writing lag, in frames (150 ms).
const LAG: u64 = 1200;
const PACKET: usize = 160;

/// One tapped packet of a scenario.
#[derive(Clone)]
struct Event {
    arrival_ms: f64,
    leg: Leg,
    data: Bytes,
}

/// What a scenario left on disk.
struct Outcome {
    left: Vec<i16>,
    right: Vec<i16>,
    caller: LegStats,
    agent: LegStats,
}

fn engine_at(path: &std::path::Path, start: Instant) -> Engine {
    let writer = WavWriter::create(path).expect("create");
    Engine::new(
        writer,
        start,
        vec![(0, Codec::Pcmu), (8, Codec::Pcma)],
        HOLD,
        Duration::from_secs(1),
    )
}

fn at(start: Instant, ms: f64) -> Instant {
    start + Duration::from_secs_f64(ms / 1000.0)
}

/// Feeds events in arrival order as the recorder thread does (ingest, release, write up to
/// `now − lag`), finishes at `end_ms` and reads the file back.
fn play(mut events: Vec<Event>, end_ms: u64, paused: &[Span]) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("2024/03/04/call.wav");
    let start = Instant::now();
    let mut engine = engine_at(&path, start);
    events.sort_by(|a, b| a.arrival_ms.total_cmp(&b.arrival_ms));
    for event in &events {
        let now = at(start, event.arrival_ms);
        engine.ingest(event.leg, now, &event.data);
        engine.release(now);
        engine.advance(samples_at(start, now).saturating_sub(LAG), now, paused);
    }
    let (caller, agent) = (engine.stats(Leg::Caller), engine.stats(Leg::Agent));
    let summary = engine
        .finish(at(start, end_ms as f64), paused)
        .expect("finish");
    assert_eq!(summary.duration_ms, end_ms);
    let (left, right) = read_stereo(&path);
    assert_eq!(left.len() as u64, end_ms * 8);
    Outcome {
        left,
        right,
        caller,
        agent,
    }
}

/// A leg's stream: packet `k` carries samples `160k..160k+160` of a sine at `hz`, with
/// sequence number `seq0 + k` and timestamp `ts0 + 160k` (both wrapping), arriving at
/// `arrival(k)` ms. Returns each packet's payload too, to check placement.
struct Stream {
    leg: Leg,
    payload_type: u8,
    ssrc: u32,
    seq0: u16,
    ts0: u32,
    hz: f64,
}

impl Stream {
    fn caller() -> Stream {
        Stream {
            leg: Leg::Caller,
            payload_type: 8,
            ssrc: 0x1111_1111,
            seq0: 65_530,
            ts0: u32::MAX - 479,
            hz: 400.0,
        }
    }

    fn agent() -> Stream {
        Stream {
            leg: Leg::Agent,
            payload_type: 0,
            ssrc: 0x2222_2222,
            seq0: 1000,
            ts0: 123_456,
            hz: 1000.0,
        }
    }

    fn payload(&self, k: u64) -> Vec<u8> {
        let samples = sine(self.hz, k * PACKET as u64, PACKET);
        match self.payload_type {
            0 => ulaw(&samples),
            _ => alaw(&samples),
        }
    }

    fn packet(&self, k: u64, arrival_ms: f64) -> Event {
        let seq = self.seq0.wrapping_add(k as u16);
        let ts = self.ts0.wrapping_add((k * PACKET as u64) as u32);
        Event {
            arrival_ms,
            leg: self.leg,
            data: rtp(self.payload_type, seq, ts, self.ssrc, &self.payload(k)),
        }
    }

    fn decoded(&self, k: u64) -> Vec<i16> {
        let decode = match self.payload_type {
            0 => g711::ulaw_to_linear,
            _ => g711::alaw_to_linear,
        };
        self.payload(k).into_iter().map(decode).collect()
    }
}

fn count_nonzero(samples: &[i16]) -> usize {
    samples.iter().filter(|&&s| s != 0).count()
}

#[test]
fn legs_are_placed_by_timestamp_aligned_despite_loss_reorder_and_duplicates() {
    let (caller, agent) = (Stream::caller(), Stream::agent());
    let arrival = |k: u64, jitter: u64| 100.0 + 20.0 * k as f64 + ((k * jitter) % 5) as f64;
    let mut events = Vec::new();
    for k in 0..50 {
        // Caller 20 and agent 25 are lost.
        if k != 20 {
            // Caller 10 arrives after 11.
            let ms = if k == 10 {
                arrival(11, 7) + 2.0
            } else {
                arrival(k, 7)
            };
            events.push(caller.packet(k, ms));
        }
        if k != 25 {
            let ms = if k == 30 {
                arrival(31, 3) + 2.0
            } else {
                arrival(k, 3)
            };
            events.push(agent.packet(k, ms));
        }
    }
    events.push(caller.packet(15, arrival(15, 7) + 5.0)); // duplicate, still held or not
    events.push(agent.packet(35, arrival(35, 3) + 5.0));
    events.push(caller.packet(5, arrival(40, 7))); // far too late
    let out = play(events, 1300, &[]);

    // Both legs anchored at their first packet's arrival (100 ms = frame 800), then placed
    // by timestamp, across the sequence and timestamp wraps of the caller.
    assert!(out.left[..800].iter().all(|&s| s == 0));
    assert!(out.right[..800].iter().all(|&s| s == 0));
    for k in 0..50u64 {
        let range = 800 + PACKET * k as usize..800 + PACKET * (k as usize + 1);
        if k == 20 {
            assert!(
                out.left[range.clone()].iter().all(|&s| s == 0),
                "lost → silence"
            );
        } else {
            assert_eq!(
                out.left[range.clone()],
                caller.decoded(k)[..],
                "caller packet {k}"
            );
        }
        if k == 25 {
            assert!(out.right[range].iter().all(|&s| s == 0), "lost → silence");
        } else {
            assert_eq!(out.right[range], agent.decoded(k)[..], "agent packet {k}");
        }
    }
    assert!(out.left[8800..].iter().all(|&s| s == 0));
    assert_eq!(out.caller.placed, 49);
    assert_eq!(out.agent.placed, 49);
    assert_eq!(out.caller.duplicates + out.caller.late, 2);
    assert_eq!(out.agent.duplicates + out.agent.late, 1);
    assert_eq!((out.caller.anchors, out.agent.anchors), (1, 1));
    assert_eq!((out.caller.shifted, out.agent.shifted), (0, 0));
}

#[test]
fn paused_spans_are_silent_in_both_channels() {
    let (caller, agent) = (Stream::caller(), Stream::agent());
    let mut events = Vec::new();
    for k in 0..50u64 {
        events.push(caller.packet(k, 20.0 * k as f64));
        events.push(agent.packet(k, 20.0 * k as f64));
    }
    let paused = [(300, Some(500)), (800, None)];
    let out = play(events, 1000, &paused);
    for channel in [&out.left, &out.right] {
        assert!(channel[2400..4000].iter().all(|&s| s == 0));
        assert!(channel[6400..8000].iter().all(|&s| s == 0));
        assert!(
            count_nonzero(&channel[2240..2400]) > 100,
            "audio up to the pause"
        );
        assert!(
            count_nonzero(&channel[4000..4160]) > 100,
            "audio from the resume"
        );
        assert!(count_nonzero(&channel[6240..6400]) > 100);
    }
}

#[test]
fn a_timestamp_jump_reanchors_on_arrival() {
    let caller = Stream::caller();
    let events = (0..50u64)
        .map(|k| {
            let mut event = caller.packet(k, 20.0 * k as f64);
            if k >= 25 {
                // The sender's clock jumped 10 s ahead.
                let ts = caller
                    .ts0
                    .wrapping_add((k * PACKET as u64) as u32)
                    .wrapping_add(80_000);
                event.data = rtp(
                    8,
                    caller.seq0.wrapping_add(k as u16),
                    ts,
                    caller.ssrc,
                    &caller.payload(k),
                );
            }
            event
        })
        .collect();
    let out = play(events, 1200, &[]);
    for k in 0..50u64 {
        let range = PACKET * k as usize..PACKET * (k as usize + 1);
        assert_eq!(out.left[range], caller.decoded(k)[..], "packet {k}");
    }
    assert_eq!(out.caller.anchors, 2);
    assert_eq!(out.caller.placed, 50);
}

#[test]
fn a_new_ssrc_with_a_lower_sequence_is_a_new_stream() {
    let caller = Stream::caller();
    let events = (0..50u64)
        .map(|k| {
            let mut event = caller.packet(k, 20.0 * k as f64);
            if k >= 25 {
                let (seq, ts) = (100 + k as u16, 7_000_000 + (k * PACKET as u64) as u32);
                event.data = rtp(8, seq, ts, 0x3333_3333, &caller.payload(k));
            }
            event
        })
        .collect();
    let out = play(events, 1200, &[]);
    for k in 0..50u64 {
        let range = PACKET * k as usize..PACKET * (k as usize + 1);
        assert_eq!(out.left[range], caller.decoded(k)[..], "packet {k}");
    }
    assert_eq!(out.caller.anchors, 2);
    assert_eq!(out.caller.late, 0);
}

#[test]
fn a_slow_sender_clock_delays_audio_instead_of_dropping_it() {
    // The sender's 8 kHz clock runs 5 % slow: its packets arrive 21 ms apart. Placed by
    // timestamp they fall ever further behind real time until their place is written
    // (after about 170 packets), well before the gap reaches the re-anchoring threshold.
    let caller = Stream::caller();
    let events = (0..300u64)
        .map(|k| caller.packet(k, 21.0 * k as f64))
        .collect();
    let out = play(events, 6500, &[]);
    assert_eq!(out.caller.placed, 300);
    assert_eq!(out.caller.late, 0);
    assert_eq!(out.caller.anchors, 1);
    assert!(out.caller.shifted > 0);
    // A-law never decodes to 0: every sample of every packet is in the file.
    assert_eq!(count_nonzero(&out.left), 300 * PACKET);
}

#[test]
fn non_audio_payloads_and_garbage_leave_silence() {
    let caller = Stream::caller();
    let mut events: Vec<Event> = (0..50u64)
        .map(|k| {
            let mut event = caller.packet(k, 20.0 * k as f64);
            let (seq, ts) = (
                caller.seq0.wrapping_add(k as u16),
                caller.ts0.wrapping_add((k * PACKET as u64) as u32),
            );
            if (20..25).contains(&k) {
                // RFC 4733 telephone-event on a dynamic payload type.
                event.data = rtp(101, seq, ts, caller.ssrc, &[4, 0x0a, 0, 160]);
            }
            if k == 30 {
                // Padding (RFC 3550 §5.1): four octets, the last one counting them.
                let mut padded = rtp(8, seq, ts, caller.ssrc, &caller.payload(k)).to_vec();
                padded[0] |= 0x20;
                padded.extend_from_slice(&[0, 0, 0, 4]);
                event.data = Bytes::from(padded);
            }
            event
        })
        .collect();
    for garbage in [&b"hello"[..], &[0x80, 200, 0, 1, 0, 0, 0, 0][..], &[][..]] {
        events.push(Event {
            arrival_ms: 500.0,
            leg: Leg::Caller,
            data: Bytes::copy_from_slice(garbage),
        });
    }
    let out = play(events, 1100, &[]);
    assert!(out.left[3200..4000].iter().all(|&s| s == 0));
    assert_eq!(out.left[4800..4960], caller.decoded(30)[..]);
    assert_eq!(count_nonzero(&out.left), 45 * PACKET);
    assert_eq!(out.caller.ignored, 5);
    assert_eq!(out.caller.invalid, 3);
    assert!(out.right.iter().all(|&s| s == 0), "the agent said nothing");
}

#[test]
fn silence_only_recording_has_the_wall_clock_length() {
    let out = play(Vec::new(), 500, &[]);
    assert!(out.left.iter().chain(&out.right).all(|&s| s == 0));
}

#[test]
fn the_header_is_checkpointed_every_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.wav");
    let start = Instant::now();
    let mut engine = engine_at(&path, start);
    let declared = || {
        let bytes = std::fs::read(&path).expect("read");
        u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]])
    };
    assert!(engine.advance(8000, at(start, 1000.0), &[]));
    assert_eq!(declared(), 8000 * 4, "the first advance checkpoints");
    engine.sync();
    assert!(!engine.advance(12000, at(start, 1500.0), &[]));
    assert_eq!(declared(), 8000 * 4, "not due yet");
    // Half due: a recorder thread syncing other files now may bring it forward.
    assert!(engine.checkpoint_due(at(start, 1500.0), true));
    assert!(!engine.checkpoint_due(at(start, 1499.0), true));
    assert!(!engine.checkpoint_due(at(start, 1500.0), false));
    // But the frames are in the file already: a killed process loses none of them.
    let length = std::fs::metadata(&path).expect("metadata").len();
    assert_eq!(length, 44 + 12000 * 4);
    assert!(engine.advance(16000, at(start, 2000.0), &[]));
    assert_eq!(declared(), 16000 * 4);
    assert!(engine.device().is_some());
    engine.sync_filesystem().expect("syncfs");
    let summary = engine.finish(at(start, 2500.0), &[]).expect("finish");
    assert_eq!(summary.duration_ms, 2500);
    assert_eq!(declared(), 20000 * 4);
}

proptest::proptest! {
    /// Any bytes from either leg: no panic, and the file still has the wall-clock length.
    #[test]
    fn ingest_never_panics(
        packets in proptest::collection::vec(
            (proptest::bool::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0u64..800),
            0..60,
        ),
    ) {
        let events = packets
            .into_iter()
            .map(|(caller, mut data, ms)| {
                if data.len() > 1 {
                    data[0] = 0x80 | (data[0] & 0x3f);
                }
                Event {
                    arrival_ms: ms as f64,
                    leg: if caller { Leg::Caller } else { Leg::Agent },
                    data: Bytes::from(data),
                }
            })
            .collect();
        play(events, 900, &[(100, Some(200))]);
    }
}
