//! The recording state machine: from tapped RTP packets to stereo frames on disk.
//!
//! Kept apart from the recorder thread and driven by explicit instants, so that placement,
//! alignment and pause muting are tested exactly, without sleeping.
//!
//! # Where a packet's samples go
//! The file's sample *n* is the instant `start + n / 8000 s` for both channels: channel
//! time is wall time, which is what keeps the two legs aligned with each other and a 60 s
//! call a 60 s file. Each leg is *anchored* at its first packet: that packet's samples go
//! where its arrival time says, and its RTP timestamp is noted. Later packets are placed by
//! their timestamp's distance from the anchor's (wrapping 32-bit arithmetic, RFC 3550
//! §5.1), which keeps the sender's own spacing free of network jitter. The leg is
//! re-anchored at the arrival time when the timestamp and the arrival disagree by more than
//! [`REANCHOR_AFTER`] (the sender's clock jumped, or it was silent and restarted) or when
//! the SSRC changes (a new stream, e.g. after a re-INVITE or a transfer).
//!
//! # What is written, and when
//! Frames are written up to a point a little behind real time (the caller passes it), so
//! packets still held by the reorder buffer or a little late can take their place; a
//! position nobody filled is silence (lost packets, DTMF events, comfort noise, a leg that
//! is quiet, a paused span). A packet in sequence whose place is already written means the
//! leg's anchor runs early (the sender's clock is slower than ours, or the anchor packet
//! was unusually fast): the anchor moves forward so the audio is delayed rather than lost.
//! Packets out of sequence were already dropped by the reorder buffer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::reorder::{Admission, ReorderBuffer};
use super::wav::{WavSummary, WavWriter, SAMPLE_RATE};
use super::{g711, Codec, RecordingError};
use crate::media::rtp::{self, PacketKind};
use crate::media::Leg;

/// Timestamp and arrival may disagree this much (in samples: 200 ms) before the leg is
/// re-anchored on arrival. Far above network jitter, far below an audible misalignment.
pub const REANCHOR_AFTER: i64 = SAMPLE_RATE as i64 / 5;

/// A packet is not placed further ahead of the written frames than this (10 s): it would
/// be a sender bug, and the buffer must stay bounded whatever the input.
const MAX_AHEAD: u64 = SAMPLE_RATE as u64 * 10;

/// Frames written per `write_frames` call at most (1 s), so a long silence after a stall
/// does not allocate in one piece.
const WRITE_PIECE: u64 = SAMPLE_RATE as u64;

/// Packets a leg's reorder buffer holds at most: 32 × 20 ms is far beyond the hold time.
const REORDER_WINDOW: usize = 32;

/// Sample position of `at` on a timeline starting at `start` (0 before the start).
pub fn samples_at(start: Instant, at: Instant) -> u64 {
    let nanos = at.saturating_duration_since(start).as_nanos();
    u64::try_from(nanos * u128::from(SAMPLE_RATE) / 1_000_000_000).unwrap_or(u64::MAX)
}

/// A paused span in milliseconds from the start; `None` while still paused.
pub type Span = (u64, Option<u64>);

/// What an RTP packet carries, for placement.
#[derive(Debug)]
struct RtpPacket {
    arrival: Instant,
    payload_type: u8,
    timestamp: u32,
    ssrc: u32,
    payload: Bytes,
}

/// Parses the RTP fixed header (RFC 3550 §5.1), skipping CSRCs, the header extension and
/// padding. `None` for anything that is not a well-formed RTP packet.
fn parse_rtp(data: &[u8], arrival: Instant) -> Option<(u16, RtpPacket)> {
    if rtp::classify(data) != PacketKind::Rtp {
        return None;
    }
    let header_len = rtp::rtp_header_len(data)?;
    let mut end = data.len();
    if data.first()? & 0x20 != 0 {
        // Padding: the last octet counts the padding octets, itself included.
        let padding = usize::from(*data.last()?);
        if padding == 0 || header_len + padding > end {
            return None;
        }
        end -= padding;
    }
    let word = |i: usize| -> Option<u32> {
        let b = data.get(i..i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let seq = u16::from_be_bytes([*data.get(2)?, *data.get(3)?]);
    Some((
        seq,
        RtpPacket {
            arrival,
            payload_type: rtp::payload_type(data)?,
            timestamp: word(4)?,
            ssrc: word(8)?,
            payload: Bytes::copy_from_slice(&data[header_len..end]),
        },
    ))
}

/// Where a leg's RTP timestamps meet the file's timeline.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    position: i64,
    timestamp: u32,
    ssrc: u32,
}

/// Counters for one leg, logged when the recording ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LegStats {
    /// RTP packets whose samples were placed.
    pub placed: u64,
    /// Not RTP at all.
    pub invalid: u64,
    /// Payload types that are not audio we decode (telephone-event, comfort noise, ...).
    pub ignored: u64,
    /// Dropped by the reorder buffer as duplicates.
    pub duplicates: u64,
    /// Dropped by the reorder buffer as late.
    pub late: u64,
    /// Times the leg was (re-)anchored on an arrival time.
    pub anchors: u64,
    /// Samples by which the anchor was moved forward to avoid losing audio.
    pub shifted: u64,
    /// Placed implausibly far ahead of the written frames (a sender bug): dropped.
    pub too_far_ahead: u64,
}

/// One leg: its reorder buffer, anchor, and the decoded samples not yet written.
#[derive(Debug)]
struct Track {
    reorder: ReorderBuffer<RtpPacket>,
    ssrc: Option<u32>,
    anchor: Option<Anchor>,
    /// Samples from the first unwritten frame on; missing ones are silence.
    pending: VecDeque<i16>,
    stats: LegStats,
}

impl Track {
    fn new(hold: Duration) -> Track {
        Track {
            reorder: ReorderBuffer::new(hold, REORDER_WINDOW),
            ssrc: None,
            anchor: None,
            pending: VecDeque::new(),
            stats: LegStats::default(),
        }
    }
}

fn index(leg: Leg) -> usize {
    match leg {
        Leg::Caller => 0,
        Leg::Agent => 1,
    }
}

/// The recording of one call; see the module documentation.
#[derive(Debug)]
pub struct Engine {
    writer: Option<WavWriter>,
    start: Instant,
    codecs: Vec<(u8, Codec)>,
    /// Caller, agent.
    tracks: [Track; 2],
    /// Frames written so far: the position of `pending[0]` on both tracks.
    written: u64,
    checkpoint_every: Duration,
    last_checkpoint: Option<Instant>,
    /// The first write error; nothing more is written after it.
    error: Option<RecordingError>,
    /// The left and right samples of the piece being written, kept between ticks so
    /// writing does not allocate.
    sides: [Vec<i16>; 2],
}

impl Engine {
    /// An engine writing to `writer`, whose frame 0 is the instant `start`.
    pub fn new(
        writer: WavWriter,
        start: Instant,
        codecs: Vec<(u8, Codec)>,
        hold: Duration,
        checkpoint_every: Duration,
    ) -> Engine {
        Engine {
            writer: Some(writer),
            start,
            codecs,
            tracks: [Track::new(hold), Track::new(hold)],
            written: 0,
            checkpoint_every,
            last_checkpoint: None,
            error: None,
            sides: Default::default(),
        }
    }

    /// Counters for a leg.
    pub fn stats(&self, leg: Leg) -> LegStats {
        self.tracks[index(leg)].stats
    }

    /// Takes in one tapped packet. Invalid packets are counted and ignored.
    pub fn ingest(&mut self, leg: Leg, arrival: Instant, data: &[u8]) {
        let i = index(leg);
        let Some((seq, packet)) = parse_rtp(data, arrival) else {
            self.tracks[i].stats.invalid += 1;
            return;
        };
        if self.tracks[i].ssrc != Some(packet.ssrc) {
            // A new stream: what the old one still had held goes first, then its sequence
            // numbers mean nothing any more.
            let old = self.tracks[i].reorder.drain();
            for held in old {
                self.place(i, held);
            }
            self.tracks[i].reorder.reset();
            self.tracks[i].ssrc = Some(packet.ssrc);
        }
        let track = &mut self.tracks[i];
        match track.reorder.insert(seq, arrival, packet) {
            Admission::Accepted | Admission::Restarted => {}
            Admission::Duplicate => track.stats.duplicates += 1,
            Admission::Late => track.stats.late += 1,
        }
    }

    /// Places every packet the reorder buffers release at `now`.
    pub fn release(&mut self, now: Instant) {
        for i in 0..2 {
            while let Some(packet) = self.tracks[i].reorder.pop_ready(now) {
                self.place(i, packet);
            }
        }
    }

    /// Writes frames up to (not including) `target`, silence where nothing was placed and
    /// over the paused spans, and prepares a checkpoint (frames handed to the OS, header
    /// sizes rewritten) if one is due at `now`. Returns whether it did: the caller then
    /// makes it durable, with [`sync`](Engine::sync) or, for several recordings at once,
    /// [`sync_filesystem`](Engine::sync_filesystem).
    pub fn advance(&mut self, target: u64, now: Instant, paused: &[Span]) -> bool {
        self.write_until(target, paused);
        self.checkpoint_due(now, false) && self.prepare_checkpoint(now)
    }

    /// Whether a checkpoint is due at `now` (the last one is `checkpoint_every` old, or
    /// there was none yet), or, with `early`, half due.
    pub fn checkpoint_due(&self, now: Instant, early: bool) -> bool {
        let every = if early {
            self.checkpoint_every / 2
        } else {
            self.checkpoint_every
        };
        self.writer.is_some()
            && self
                .last_checkpoint
                .is_none_or(|last| now.saturating_duration_since(last) >= every)
    }

    /// Hands the written frames to the OS and rewrites the header's sizes; `false` if the
    /// recording has failed (nothing to make durable).
    pub fn prepare_checkpoint(&mut self, now: Instant) -> bool {
        self.last_checkpoint = Some(now);
        let Some(writer) = self.writer.as_mut() else {
            return false;
        };
        match writer.prepare_checkpoint() {
            Ok(()) => true,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Makes this recording's prepared checkpoint durable (`sync_data`).
    pub fn sync(&mut self) {
        if let Some(writer) = self.writer.as_mut() {
            if let Err(e) = writer.sync() {
                self.fail(e);
            }
        }
    }

    /// The file system of the file, if known; recordings on the same one can be made
    /// durable with one [`sync_filesystem`](Engine::sync_filesystem).
    pub fn device(&self) -> Option<u64> {
        self.writer.as_ref().and_then(WavWriter::device)
    }

    /// `syncfs(2)` on the file's file system; see [`WavWriter::sync_filesystem`].
    pub fn sync_filesystem(&self) -> std::io::Result<()> {
        match self.writer.as_ref() {
            Some(writer) => writer.sync_filesystem(),
            None => Err(std::io::Error::other("the recording has failed")),
        }
    }

    /// Ends the recording at `at`: places everything still held, writes up to `at` (the
    /// file's length is then the time from start to `at`) and closes the file.
    pub fn finish(mut self, at: Instant, paused: &[Span]) -> Result<WavSummary, RecordingError> {
        for i in 0..2 {
            for packet in self.tracks[i].reorder.drain() {
                self.place(i, packet);
            }
        }
        self.write_until(samples_at(self.start, at), paused);
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.writer.take() {
            Some(writer) => writer.finish(),
            None => Err(RecordingError::Thread(
                "the recording was already closed".to_string(),
            )),
        }
    }

    fn fail(&mut self, e: RecordingError) {
        tracing::error!(error = %e, "recording write failed; the rest of the call is not recorded");
        crate::alarms::raise(crate::alarms::Alarm::RecordingsFailing, e.to_string());
        // Dropping the writer leaves the file for repair at the next start.
        self.writer = None;
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn codec(&self, payload_type: u8) -> Option<Codec> {
        self.codecs
            .iter()
            .find(|(pt, _)| *pt == payload_type)
            .map(|&(_, codec)| codec)
            .or(match payload_type {
                0 => Some(Codec::Pcmu),
                8 => Some(Codec::Pcma),
                _ => None,
            })
    }

    /// Decodes a released packet into its leg's pending samples; see the module docs.
    fn place(&mut self, i: usize, packet: RtpPacket) {
        let Some(codec) = self.codec(packet.payload_type) else {
            self.tracks[i].stats.ignored += 1;
            return;
        };
        let arrival = i64::try_from(samples_at(self.start, packet.arrival)).unwrap_or(i64::MAX);
        let frontier = i64::try_from(self.written).unwrap_or(i64::MAX);
        let track = &mut self.tracks[i];
        let predicted = track
            .anchor
            .filter(|anchor| anchor.ssrc == packet.ssrc)
            .map(|anchor| {
                let elapsed = packet.timestamp.wrapping_sub(anchor.timestamp) as i32;
                anchor.position.saturating_add(i64::from(elapsed))
            })
            .filter(|&predicted| predicted.abs_diff(arrival) <= REANCHOR_AFTER as u64);
        let mut position = match predicted {
            Some(position) => position,
            None => {
                track.anchor = Some(Anchor {
                    position: arrival,
                    timestamp: packet.timestamp,
                    ssrc: packet.ssrc,
                });
                track.stats.anchors += 1;
                arrival
            }
        };
        if position < frontier {
            let shift = frontier - position;
            if let Some(anchor) = track.anchor.as_mut() {
                anchor.position = anchor.position.saturating_add(shift);
            }
            track.stats.shifted += shift.unsigned_abs();
            position = frontier;
        }
        let offset = (position - frontier).unsigned_abs();
        let samples = packet.payload.len() as u64;
        if offset + samples > MAX_AHEAD {
            track.stats.too_far_ahead += 1;
            return;
        }
        let (offset, end) = (offset as usize, (offset + samples) as usize);
        if track.pending.len() < end {
            track.pending.resize(end, 0);
        }
        // One loop per law, so the table lookup is inlined (a function pointer per sample
        // was not).
        let slots = track
            .pending
            .range_mut(offset..end)
            .zip(packet.payload.iter());
        match codec {
            Codec::Pcmu => slots.for_each(|(slot, &code)| *slot = g711::ulaw_to_linear(code)),
            Codec::Pcma => slots.for_each(|(slot, &code)| *slot = g711::alaw_to_linear(code)),
        }
        track.stats.placed += 1;
    }

    fn write_until(&mut self, target: u64, paused: &[Span]) {
        while self.written < target {
            let count = (target - self.written).min(WRITE_PIECE) as usize;
            let mut sides = std::mem::take(&mut self.sides);
            for (side, track) in sides.iter_mut().zip(self.tracks.iter_mut()) {
                side.clear();
                let take = count.min(track.pending.len());
                // Copied slice by slice: extending from the deque's drain went sample by
                // sample (this function was 3.6 % of the daemon's samples at 400 recorded
                // calls, the recorder threads' CPU fell by about a tenth without it).
                let (front, back) = track.pending.as_slices();
                let from_front = take.min(front.len());
                side.extend_from_slice(&front[..from_front]);
                side.extend_from_slice(&back[..take - from_front]);
                track.pending.drain(..take);
                side.resize(count, 0);
            }
            mute(&mut sides, self.written, paused);
            self.written += count as u64;
            let [left, right] = &sides;
            if let Some(writer) = self.writer.as_mut() {
                if let Err(e) = writer.write_frames(left, right) {
                    self.fail(e);
                }
            }
            self.sides = sides;
        }
    }
}

/// Silences the part of frames `first..first + len` that falls in a paused span.
fn mute(sides: &mut [Vec<i16>; 2], first: u64, paused: &[Span]) {
    let per_ms = u64::from(SAMPLE_RATE) / 1000;
    let len = sides[0].len() as u64;
    for &(from_ms, to_ms) in paused {
        let from = from_ms.saturating_mul(per_ms).max(first);
        let to = to_ms.map_or(u64::MAX, |ms| ms.saturating_mul(per_ms));
        let to = to.min(first + len);
        if from >= to {
            continue;
        }
        let range = (from - first) as usize..(to - first) as usize;
        for side in sides.iter_mut() {
            if let Some(samples) = side.get_mut(range.clone()) {
                samples.fill(0);
            }
        }
    }
}

#[cfg(test)]
mod tests;
