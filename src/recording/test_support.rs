//! Helpers shared by the recording tests: RTP packets built by hand (RFC 3550 §5.1), test
//! tones, a WAV reader and a Goertzel tone detector.

use std::path::Path;

use bytes::Bytes;

use super::g711;

/// An RTP packet: version 2, no padding, extension or CSRC, marker clear.
pub fn rtp(payload_type: u8, seq: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Bytes {
    let mut packet = Vec::with_capacity(12 + payload.len());
    packet.push(0x80);
    packet.push(payload_type & 0x7f);
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    Bytes::from(packet)
}

/// `count` samples of a sine at `hz`, starting at sample index `first` (so consecutive
/// packets continue the same wave).
pub fn sine(hz: f64, first: u64, count: usize) -> Vec<i16> {
    (0..count as u64)
        .map(|i| {
            let t = (first + i) as f64 / 8000.0;
            (12_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

pub fn alaw(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| g711::linear_to_alaw(s)).collect()
}

pub fn ulaw(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| g711::linear_to_ulaw(s)).collect()
}

/// Left and right channels of a stereo WAV, read with `hound` (an independent parser).
pub fn read_stereo(path: &Path) -> (Vec<i16>, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).expect("hound opens the recording");
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(reader.spec().sample_rate, 8000);
    assert_eq!(reader.spec().bits_per_sample, 16);
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("samples");
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

/// Power of `hz` in `samples` (Goertzel's single-bin DFT), normalised by length.
pub fn goertzel(samples: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let coefficient = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    power / (samples.len().max(1) as f64).powi(2)
}
