//! Prompts: recorded announcements played to a leg, and the RTP numbering of what we send.
//!
//! A [`Prompt`] is 8 kHz mono 16-bit audio, loaded once (at start-up, from a WAV file or
//! from bytes built into the binary) and cut into 20 ms G.711 frames in the codec of the
//! leg it is played to ([`Prompt::frames`]); the frames are what
//! [`MediaSession::play_to_caller`](super::MediaSession::play_to_caller) sends.
//!
//! A [`PromptPlayer`] numbers one outgoing stream (RFC 3550 §5.1): one random SSRC for the
//! leg, a sequence number that goes up by one per packet and a timestamp that goes up by
//! 160 per 20 ms frame. Between prompts the stream is silent, and the receiver must be
//! able to tell how long: each prompt starts a new talk spurt
//! ([`PromptPlayer::start_talkspurt`]), whose first packet has the marker bit set and a
//! timestamp advanced by the wall time that passed, so that the caller's jitter buffer (and
//! the recorder) place it right.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::MediaError;
use crate::recording::g711;

/// Prompts are 8 kHz audio, as is every G.711 RTP clock.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples (and G.711 octets) per 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;
/// The pace frames are sent at.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// An RTP packet of one frame: the 12-octet fixed header, then the frame.
pub const PACKET_LEN: usize = 12 + FRAME_SAMPLES;
/// Longest prompt accepted (10 minutes, 9.6 MB of PCM): prompts are announcements, and a
/// misconfigured path to a huge file must not eat the daemon's memory.
pub const MAX_PROMPT: Duration = Duration::from_secs(600);

/// One 20 ms frame of G.711 audio.
pub type Frame = [u8; FRAME_SAMPLES];

/// The G.711 codecs prompts are played in: the static payload types every SIP phone
/// supports (RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromptCodec {
    /// µ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl PromptCodec {
    /// The static payload type (0 or 8). A leg may have mapped the codec to another number
    /// in SDP; send with the negotiated one.
    pub fn static_payload_type(self) -> u8 {
        match self {
            PromptCodec::Pcmu => 0,
            PromptCodec::Pcma => 8,
        }
    }

    /// The codec of a static payload type, `None` for others.
    pub fn from_static_payload_type(payload_type: u8) -> Option<PromptCodec> {
        match payload_type {
            0 => Some(PromptCodec::Pcmu),
            8 => Some(PromptCodec::Pcma),
            _ => None,
        }
    }

    /// The codec of an SDP encoding (`PCMU/8000`, `pcma`, as in
    /// [`Sdp::audio_formats`](super::Sdp::audio_formats)); `None` for other codecs or
    /// clock rates.
    pub fn from_encoding(encoding: &str) -> Option<PromptCodec> {
        let mut parts = encoding.trim().split('/');
        let name = parts.next()?;
        if let Some(rate) = parts.next() {
            if rate.trim() != "8000" {
                return None;
            }
        }
        if let Some(channels) = parts.next() {
            if channels.trim() != "1" {
                return None;
            }
        }
        if name.eq_ignore_ascii_case("PCMU") {
            Some(PromptCodec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(PromptCodec::Pcma)
        } else {
            None
        }
    }

    /// Encodes one linear sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            PromptCodec::Pcmu => g711::linear_to_ulaw(sample),
            PromptCodec::Pcma => g711::linear_to_alaw(sample),
        }
    }

    /// The code of silence (linear 0): 0xFF in µ-law, 0xD5 in A-law.
    pub fn silence(self) -> u8 {
        self.encode(0)
    }
}

/// Mono 8 kHz 16-bit audio to play. Cheap to clone (the samples are shared).
#[derive(Clone, PartialEq, Eq)]
pub struct Prompt {
    samples: Arc<[i16]>,
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("samples", &self.samples.len())
            .field("duration", &self.duration())
            .finish()
    }
}

impl Prompt {
    /// Reads an 8 kHz mono 16-bit PCM WAV file. Other formats (another rate, stereo, 8 or
    /// 24 bits, float, compressed) are refused with an error that says what the file is
    /// and how to convert it. Blocking file I/O: load prompts at start-up, or from
    /// `spawn_blocking`.
    pub fn load_wav(path: impl AsRef<Path>) -> Result<Prompt, MediaError> {
        let path = path.as_ref();
        let io_error = |source| MediaError::PromptIo {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io_error)?.len();
        // Header and chunks besides the samples are small; this bounds the read.
        let limit = MAX_PROMPT.as_secs() * u64::from(SAMPLE_RATE) * 2 + 64 * 1024;
        if size > limit {
            return Err(MediaError::PromptFormat {
                path: path.to_owned(),
                reason: format!(
                    "{size} bytes is longer than the {} s a prompt may last",
                    MAX_PROMPT.as_secs()
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(io_error)?;
        decode_wav(&bytes).map_err(|reason| MediaError::PromptFormat {
            path: path.to_owned(),
            reason,
        })
    }

    /// Decodes an 8 kHz mono 16-bit PCM WAV held in memory (a prompt built into the binary
    /// with `include_bytes!`), with the checks of [`Prompt::load_wav`].
    pub fn from_wav_bytes(bytes: &[u8]) -> Result<Prompt, MediaError> {
        decode_wav(bytes).map_err(|reason| MediaError::PromptFormat {
            path: PathBuf::from("(built-in)"),
            reason,
        })
    }

    /// A prompt of 8 kHz samples (generated tones, tests). Longer than [`MAX_PROMPT`] is
    /// accepted here: the caller made them.
    pub fn from_samples(samples: Vec<i16>) -> Prompt {
        Prompt {
            samples: samples.into(),
        }
    }

    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// How long the prompt plays, before padding to whole frames.
    pub fn duration(&self) -> Duration {
        let samples = u64::try_from(self.samples.len()).unwrap_or(u64::MAX);
        Duration::from_micros(samples.saturating_mul(1_000_000) / u64::from(SAMPLE_RATE))
    }

    /// The prompt as 20 ms frames in `codec`, the last one padded with silence. An empty
    /// prompt has no frames.
    pub fn frames(&self, codec: PromptCodec) -> Vec<Frame> {
        let silence = codec.silence();
        self.samples
            .chunks(FRAME_SAMPLES)
            .map(|chunk| {
                let mut frame = [silence; FRAME_SAMPLES];
                for (code, &sample) in frame.iter_mut().zip(chunk) {
                    *code = codec.encode(sample);
                }
                frame
            })
            .collect()
    }
}

/// The samples of an 8 kHz mono 16-bit PCM WAV, or why it is not one.
fn decode_wav(bytes: &[u8]) -> Result<Prompt, String> {
    let reader =
        hound::WavReader::new(Cursor::new(bytes)).map_err(|e| format!("not a WAV: {e}"))?;
    let spec = reader.spec();
    let wanted = spec.sample_rate == SAMPLE_RATE
        && spec.channels == 1
        && spec.bits_per_sample == 16
        && spec.sample_format == hound::SampleFormat::Int;
    if !wanted {
        let format = match spec.sample_format {
            hound::SampleFormat::Int => "PCM",
            hound::SampleFormat::Float => "float",
        };
        return Err(format!(
            "{} Hz, {} channel(s), {}-bit {format}; prompts must be 8000 Hz mono 16-bit PCM \
             (convert with: sox in.wav -r 8000 -c 1 -b 16 -e signed-integer out.wav)",
            spec.sample_rate, spec.channels, spec.bits_per_sample
        ));
    }
    let max_samples = MAX_PROMPT.as_secs() * u64::from(SAMPLE_RATE);
    if u64::from(reader.len()) > max_samples {
        return Err(format!(
            "{} samples is longer than the {} s a prompt may last",
            reader.len(),
            MAX_PROMPT.as_secs()
        ));
    }
    let samples = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(|e| format!("unreadable samples: {e}"))?;
    Ok(Prompt::from_samples(samples))
}

/// Where the current talk spurt started: the wall time and the RTP timestamp of its first
/// packet.
#[derive(Debug, Clone, Copy)]
struct Spurt {
    at: Instant,
    timestamp: u32,
}

/// RTP numbering of one outgoing stream of 20 ms G.711 frames (one per leg we play to):
/// a fixed random SSRC, and sequence numbers and timestamps that continue across prompts
/// and the silences between them. See the module documentation.
#[derive(Debug, Clone)]
pub struct PromptPlayer {
    ssrc: u32,
    /// Of the next packet.
    sequence: u16,
    /// Of the next packet, if the stream goes on without a pause.
    timestamp: u32,
    /// Whether the next packet starts a talk spurt.
    marker: bool,
    spurt: Option<Spurt>,
}

impl Default for PromptPlayer {
    fn default() -> Self {
        PromptPlayer::new()
    }
}

impl PromptPlayer {
    /// A stream with a random SSRC, first sequence number and first timestamp (RFC 3550
    /// §5.1 asks for random starting values).
    pub fn new() -> PromptPlayer {
        PromptPlayer::with_start(rand::random(), rand::random(), rand::random())
    }

    /// A stream with the given SSRC and first sequence number and timestamp.
    pub fn with_start(ssrc: u32, sequence: u16, timestamp: u32) -> PromptPlayer {
        PromptPlayer {
            ssrc,
            sequence,
            timestamp,
            marker: true,
            spurt: None,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The timestamp the next packet will carry, if no talk spurt starts before it.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Starts a talk spurt at `now` (call it before the first frame of each prompt): the
    /// next packet carries the marker bit, and its timestamp is that of the previous
    /// spurt's first packet plus the samples of the wall time since (never less than the
    /// plain continuation), so a pause between prompts shows in the timestamps.
    pub fn start_talkspurt(&mut self, now: Instant) {
        if let Some(previous) = self.spurt {
            let elapsed = now.saturating_duration_since(previous.at);
            let samples = elapsed.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000;
            // Timestamps are modulo 2^32 (RFC 3550 §5.1): the truncation is the wrap.
            let by_wall_clock = previous.timestamp.wrapping_add(samples as u32);
            // Ahead of the continuation, in wrapping order (and a pause of over 3 days
            // wraps too far to tell; the continuation is then as good as anything).
            let ahead = by_wall_clock.wrapping_sub(self.timestamp);
            if ahead != 0 && ahead < 1 << 31 && samples < 1 << 31 {
                self.timestamp = by_wall_clock;
            }
        }
        self.spurt = Some(Spurt {
            at: now,
            timestamp: self.timestamp,
        });
        self.marker = true;
    }

    /// The RTP packet for the next frame, sent with `payload_type` (the one negotiated for
    /// the frames' codec); advances the sequence number by one and the timestamp by 160.
    pub fn next_packet(&mut self, payload_type: u8, frame: &Frame) -> [u8; PACKET_LEN] {
        let mut packet = [0u8; PACKET_LEN];
        packet[0] = 0x80;
        packet[1] = (payload_type & 0x7f) | if self.marker { 0x80 } else { 0 };
        packet[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        packet[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        packet[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        packet[12..].copy_from_slice(frame);
        self.marker = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        packet
    }
}

#[cfg(test)]
mod tests;
