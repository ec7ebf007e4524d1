//! Audio for the recording tests: pcap files (read, their RTP decoded, rewritten from
//! A-law to µ-law), recorded WAV files read back (header chunks checked by hand, samples
//! with `hound`), normalized cross-correlation, and G.711 tone packets for a test sender.
//!
//! G.711 comes from `threering::recording::g711` (the tables the daemon decodes with, which
//! its own unit tests check against the ITU reference values): the tests here are about
//! where the daemon puts the samples, not about the tables.

use std::fs;
use std::path::Path;

use threering::recording::g711;

/// A G.711 flavour: its static RTP payload type, SDP name and decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G711 {
    Alaw,
    Ulaw,
}

impl G711 {
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Alaw => 8,
            G711::Ulaw => 0,
        }
    }

    pub fn sdp_name(self) -> &'static str {
        match self {
            G711::Alaw => "PCMA",
            G711::Ulaw => "PCMU",
        }
    }

    pub fn decode(self, code: u8) -> i16 {
        match self {
            G711::Alaw => g711::alaw_to_linear(code),
            G711::Ulaw => g711::ulaw_to_linear(code),
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            G711::Alaw => g711::linear_to_alaw(sample),
            G711::Ulaw => g711::linear_to_ulaw(sample),
        }
    }
}

// ---------------------------------------------------------------------------------------
// pcap
// ---------------------------------------------------------------------------------------

/// A classic pcap file (not pcapng), kept as bytes so it can be rewritten in place.
pub struct Pcap {
    bytes: Vec<u8>,
    big_endian: bool,
    link_type: u32,
}

/// Where one record's RTP packet sits in the file.
#[derive(Clone, Copy, Debug)]
struct RtpSpot {
    /// Offset of the UDP header.
    udp: usize,
    /// Offset of the RTP header.
    rtp: usize,
    /// End of the UDP payload.
    end: usize,
}

/// One RTP packet of a pcap.
#[derive(Clone, Debug)]
pub struct RtpView {
    pub payload_type: u8,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

impl Pcap {
    pub fn read(path: &Path) -> Pcap {
        let bytes =
            fs::read(path).unwrap_or_else(|e| panic!("cannot read pcap {}: {e}", path.display()));
        assert!(
            bytes.len() >= 24,
            "{}: too short for a pcap",
            path.display()
        );
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        let big_endian = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => false,
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => true,
            _ => panic!(
                "{}: not a classic pcap file (magic {magic:02x?})",
                path.display()
            ),
        };
        let mut pcap = Pcap {
            bytes,
            big_endian,
            link_type: 0,
        };
        pcap.link_type = pcap.u32_at(20);
        pcap
    }

    pub fn write(&self, path: &Path) {
        fs::write(path, &self.bytes)
            .unwrap_or_else(|e| panic!("cannot write pcap {}: {e}", path.display()));
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Offset of the IP header in a frame of this link type.
    fn ip_offset(&self, frame: &[u8]) -> Option<usize> {
        match self.link_type {
            // Ethernet, with one optional 802.1Q tag.
            1 => {
                let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
                match ethertype {
                    0x0800 => Some(14),
                    0x8100 if frame.get(16..18)? == [0x08, 0x00] => Some(18),
                    _ => None,
                }
            }
            // BSD loopback: a 4-byte address family.
            0 => Some(4),
            // Raw IP.
            101 => Some(0),
            // Linux cooked capture.
            113 => Some(16),
            _ => None,
        }
    }

    /// The IPv4/UDP/RTP packets, in file order.
    fn spots(&self) -> Vec<RtpSpot> {
        let mut spots = Vec::new();
        let mut at = 24;
        while at + 16 <= self.bytes.len() {
            let caplen = self.u32_at(at + 8) as usize;
            let frame_start = at + 16;
            let frame_end = (frame_start + caplen).min(self.bytes.len());
            at = frame_start + caplen;
            let frame = &self.bytes[frame_start..frame_end];
            let Some(ip) = self.ip_offset(frame) else {
                continue;
            };
            let Some(&version_ihl) = frame.get(ip) else {
                continue;
            };
            // IPv4 carrying UDP only.
            if version_ihl >> 4 != 4 || frame.get(ip + 9) != Some(&17) {
                continue;
            }
            let udp = ip + usize::from(version_ihl & 0x0f) * 4;
            let Some(len) = frame.get(udp + 4..udp + 6) else {
                continue;
            };
            let udp_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let end = (udp + udp_len).min(frame.len());
            let rtp = udp + 8;
            if end < rtp + 12 || frame[rtp] >> 6 != 2 {
                continue;
            }
            spots.push(RtpSpot {
                udp: frame_start + udp,
                rtp: frame_start + rtp,
                end: frame_start + end,
            });
        }
        spots
    }

    fn header_len(&self, rtp: usize) -> usize {
        let csrc = usize::from(self.bytes[rtp] & 0x0f);
        let mut len = 12 + 4 * csrc;
        if self.bytes[rtp] & 0x10 != 0 {
            let ext = rtp + len;
            let words = u16::from_be_bytes([self.bytes[ext + 2], self.bytes[ext + 3]]);
            len += 4 + 4 * usize::from(words);
        }
        len
    }

    /// Every RTP packet of the file, in file order.
    pub fn rtp(&self) -> Vec<RtpView> {
        self.spots()
            .into_iter()
            .map(|s| {
                let b = &self.bytes;
                let mut end = s.end;
                if b[s.rtp] & 0x20 != 0 {
                    end -= usize::from(b[end - 1]);
                }
                RtpView {
                    payload_type: b[s.rtp + 1] & 0x7f,
                    timestamp: u32::from_be_bytes([
                        b[s.rtp + 4],
                        b[s.rtp + 5],
                        b[s.rtp + 6],
                        b[s.rtp + 7],
                    ]),
                    payload: b[s.rtp + self.header_len(s.rtp)..end].to_vec(),
                }
            })
            .collect()
    }

    /// The same capture with every A-law (payload type 8) packet turned into µ-law
    /// (payload type 0): each sample decoded and encoded again, the marker bit kept, the
    /// UDP checksum cleared (0: none, valid for IPv4) since the payload changed.
    pub fn alaw_to_ulaw(&self) -> Pcap {
        let mut out = Pcap {
            bytes: self.bytes.clone(),
            big_endian: self.big_endian,
            link_type: self.link_type,
        };
        for s in self.spots() {
            if self.bytes[s.rtp + 1] & 0x7f != 8 {
                continue;
            }
            let payload = s.rtp + self.header_len(s.rtp);
            let mut end = s.end;
            if self.bytes[s.rtp] & 0x20 != 0 {
                end -= usize::from(self.bytes[end - 1]);
            }
            out.bytes[s.rtp + 1] &= 0x80;
            for code in &mut out.bytes[payload..end] {
                *code = g711::linear_to_ulaw(g711::alaw_to_linear(*code));
            }
            out.bytes[s.udp + 6] = 0;
            out.bytes[s.udp + 7] = 0;
        }
        out
    }
}

/// The audio of a pcap's RTP stream as 8 kHz linear PCM: each packet's samples where its
/// RTP timestamp puts them relative to the first packet's (what a receiver that plays by
/// timestamp hears). Packets of other payload types are skipped.
pub fn decode_stream(packets: &[RtpView], codec: G711) -> Vec<i16> {
    let ours: Vec<&RtpView> = packets
        .iter()
        .filter(|p| p.payload_type == codec.payload_type())
        .collect();
    let Some(first) = ours.first() else {
        return Vec::new();
    };
    let mut out: Vec<i16> = Vec::new();
    for p in &ours {
        let at = p.timestamp.wrapping_sub(first.timestamp) as usize;
        if out.len() < at + p.payload.len() {
            out.resize(at + p.payload.len(), 0);
        }
        for (slot, &code) in out[at..].iter_mut().zip(&p.payload) {
            *slot = codec.decode(code);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// WAV
// ---------------------------------------------------------------------------------------

/// A recording read back: its format, the header's chunk sizes and the two channels.
#[derive(Debug)]
pub struct Wav {
    pub channels: u16,
    pub sample_rate: u32,
    pub bits: u16,
    /// Format tag of the `fmt ` chunk (1: PCM).
    pub format_tag: u16,
    /// The RIFF size field (should be the file length − 8).
    pub riff_size: u32,
    /// The `data` chunk size field and where the data starts.
    pub data_size: u32,
    pub data_offset: usize,
    pub file_len: usize,
    pub left: Vec<i16>,
    pub right: Vec<i16>,
}

impl Wav {
    /// Parses `bytes` as a RIFF/WAVE file: the chunks by hand (so a header that disagrees
    /// with the file is seen), the samples with `hound`.
    pub fn parse(bytes: &[u8]) -> Result<Wav, String> {
        let u32_at = |at: usize| -> Result<u32, String> {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| format!("truncated at byte {at}"))
        };
        let u16_at = |at: usize| -> Result<u16, String> {
            bytes
                .get(at..at + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or_else(|| format!("truncated at byte {at}"))
        };
        if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
            return Err(format!(
                "not RIFF/WAVE: starts with {:02x?}",
                &bytes[..bytes.len().min(12)]
            ));
        }
        let riff_size = u32_at(4)?;
        let mut at = 12;
        let mut fmt = None;
        let mut data = None;
        while at + 8 <= bytes.len() && data.is_none() {
            let id = &bytes[at..at + 4];
            let size = u32_at(at + 4)?;
            if id == b"fmt " {
                fmt = Some((
                    u16_at(at + 8)?,
                    u16_at(at + 10)?,
                    u32_at(at + 12)?,
                    u16_at(at + 22)?,
                ));
            } else if id == b"data" {
                data = Some((size, at + 8));
            }
            at += 8 + size as usize + (size as usize & 1);
        }
        let (format_tag, channels, sample_rate, bits) = fmt.ok_or("no fmt chunk")?;
        let (data_size, data_offset) = data.ok_or("no data chunk")?;
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
            .map_err(|e| format!("hound cannot read it: {e}"))?;
        let samples: Vec<i16> = reader
            .into_samples::<i16>()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("hound cannot read its samples: {e}"))?;
        let (left, right) = if channels == 2 {
            (
                samples.iter().step_by(2).copied().collect(),
                samples.iter().skip(1).step_by(2).copied().collect(),
            )
        } else {
            (samples, Vec::new())
        };
        Ok(Wav {
            channels,
            sample_rate,
            bits,
            format_tag,
            riff_size,
            data_size,
            data_offset,
            file_len: bytes.len(),
            left,
            right,
        })
    }

    /// Stereo frames in the data chunk.
    pub fn frames(&self) -> usize {
        self.left.len()
    }

    /// Length of the audio in ms (at 8 kHz).
    pub fn duration_ms(&self) -> i64 {
        self.frames() as i64 / 8
    }

    /// Problems with the format or the header sizes; empty when it is the stereo 8 kHz
    /// 16-bit PCM file whose header describes exactly the bytes on disk.
    pub fn format_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if (self.format_tag, self.channels, self.sample_rate, self.bits) != (1, 2, 8000, 16) {
            problems.push(format!(
                "format: expected PCM (1), 2 channels, 8000 Hz, 16 bits; got format {}, {} \
                 channel(s), {} Hz, {} bits",
                self.format_tag, self.channels, self.sample_rate, self.bits
            ));
        }
        if self.riff_size as usize + 8 != self.file_len {
            problems.push(format!(
                "RIFF size {} + 8 is not the file length {}",
                self.riff_size, self.file_len
            ));
        }
        if self.data_offset + self.data_size as usize != self.file_len {
            problems.push(format!(
                "data chunk ({} bytes at offset {}) does not end at the file's end ({} bytes)",
                self.data_size, self.data_offset, self.file_len
            ));
        }
        problems
    }
}

// ---------------------------------------------------------------------------------------
// Correlation
// ---------------------------------------------------------------------------------------

/// Where a reference signal sits in a channel: `channel[lag + n] ≈ reference[n]`.
#[derive(Clone, Copy, Debug)]
pub struct Found {
    /// In samples (8 kHz).
    pub lag: usize,
    /// Normalized correlation at that lag (1.0: identical shape).
    pub corr: f64,
}

impl Found {
    pub fn lag_ms(&self) -> f64 {
        self.lag as f64 / 8.0
    }
}

/// Normalized cross-correlation of `x[lag + n]` with `r[n]` over `n` in `from..to`
/// (clipped to both signals). 0 when either side is silent there.
pub fn corr_at(x: &[f64], r: &[f64], lag: usize, from: usize, to: usize) -> f64 {
    let to = to.min(r.len()).min(x.len().saturating_sub(lag));
    if from >= to {
        return 0.0;
    }
    let (xs, rs) = (&x[lag + from..lag + to], &r[from..to]);
    let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for (a, b) in xs.iter().zip(rs) {
        xy += a * b;
        xx += a * a;
        yy += b * b;
    }
    if xx == 0.0 || yy == 0.0 {
        0.0
    } else {
        xy / (xx * yy).sqrt()
    }
}

fn to_f64(s: &[i16]) -> Vec<f64> {
    s.iter().map(|&v| f64::from(v)).collect()
}

/// Averages of `factor` consecutive samples.
fn decimate(s: &[f64], factor: usize) -> Vec<f64> {
    s.chunks(factor)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect()
}

/// The lag in `0..=max_lag` at which `reference` best matches `channel` (normalized
/// correlation over their overlap, which must hold at least `min_overlap` samples).
/// Searched on 4× decimated signals first (speech lives below 1 kHz), then refined at full
/// rate around the best coarse lag.
pub fn best_lag(channel: &[i16], reference: &[i16], max_lag: usize, min_overlap: usize) -> Found {
    const FACTOR: usize = 4;
    let (x, r) = (to_f64(channel), to_f64(reference));
    let (xd, rd) = (decimate(&x, FACTOR), decimate(&r, FACTOR));
    let mut coarse = Found {
        lag: 0,
        corr: f64::MIN,
    };
    for lag in 0..=max_lag / FACTOR {
        let overlap = rd.len().min(xd.len().saturating_sub(lag));
        if overlap < min_overlap / FACTOR {
            break;
        }
        let corr = corr_at(&xd, &rd, lag, 0, overlap);
        if corr > coarse.corr {
            coarse = Found { lag, corr };
        }
    }
    let centre = coarse.lag * FACTOR;
    let mut best = Found {
        lag: 0,
        corr: f64::MIN,
    };
    for lag in centre.saturating_sub(2 * FACTOR)..=centre + 2 * FACTOR {
        let corr = corr_at(&x, &r, lag, 0, r.len());
        if corr > best.corr {
            best = Found { lag, corr };
        }
    }
    best
}

/// Normalized correlation of `channel[a..b]` with the reference placed at `lag`.
pub fn corr_in(channel: &[i16], reference: &[i16], lag: usize, a: usize, b: usize) -> f64 {
    let (x, r) = (to_f64(channel), to_f64(reference));
    corr_at(&x, &r, lag, a.saturating_sub(lag), b.saturating_sub(lag))
}

/// Root mean square of `s`.
pub fn rms(s: &[i16]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    (s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
}

// ---------------------------------------------------------------------------------------
// A test sender's packets
// ---------------------------------------------------------------------------------------

/// 160 samples (20 ms) of a sine of `freq` Hz at `amplitude`, continuing the phase from
/// sample `start` of the stream, as G.711 codes.
pub fn tone_payload(codec: G711, freq: f64, amplitude: f64, start: u64) -> Vec<u8> {
    (0..160u64)
        .map(|i| {
            let t = (start + i) as f64 / 8000.0;
            let v = amplitude * (2.0 * std::f64::consts::PI * freq * t).sin();
            codec.encode(v.round() as i16)
        })
        .collect()
}

/// An RTP packet (version 2, no CSRC, no extension).
pub fn rtp_packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(pt | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}
