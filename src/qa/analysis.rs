//! What QA needs from a recording, in one pass over the WAV: per 50 ms window and
//! channel (caller left, agent right) the RMS level and the sample range. The waveform
//! is drawn from the ranges; silence and talk-over are found from the levels.

use std::path::Path;

/// Length of one analysis window.
pub const WINDOW_MS: u32 = 50;

/// One recording's levels, window by window.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub sample_rate: u32,
    pub channels: u16,
    /// Frames (one sample per channel) in the file.
    pub frames: u64,
    /// RMS level per window, 0.0–1.0 of full scale: [caller, agent].
    pub rms: Vec<[f32; 2]>,
    /// Lowest and highest sample per window: [caller, agent].
    pub low: Vec<[i16; 2]>,
    pub high: Vec<[i16; 2]>,
}

impl Analysis {
    pub fn duration_ms(&self) -> i64 {
        if self.sample_rate == 0 {
            return 0;
        }
        (self.frames * 1000 / u64::from(self.sample_rate)) as i64
    }

    /// Reads a 16-bit PCM WAV (mono: both "channels" are the one channel).
    pub fn of_file(path: &Path) -> Result<Analysis, String> {
        let reader = hound::WavReader::open(path)
            .map_err(|e| format!("{}: not a readable WAV ({e})", path.display()))?;
        let spec = reader.spec();
        if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
            return Err(format!(
                "{}: {}-bit {:?} audio; QA reads 16-bit PCM",
                path.display(),
                spec.bits_per_sample,
                spec.sample_format
            ));
        }
        let channels = spec.channels.max(1);
        let mut builder = Builder::new(spec.sample_rate, channels);
        for sample in reader.into_samples::<i16>() {
            let sample = sample.map_err(|e| format!("{}: {e}", path.display()))?;
            builder.push(sample);
        }
        Ok(builder.finish())
    }

    /// From interleaved samples (tests and tools).
    pub fn of_samples(sample_rate: u32, channels: u16, samples: &[i16]) -> Analysis {
        let mut builder = Builder::new(sample_rate, channels.max(1));
        for &s in samples {
            builder.push(s);
        }
        builder.finish()
    }
}

/// Accumulates samples into windows.
struct Builder {
    sample_rate: u32,
    channels: u16,
    per_window: u64,
    channel: u16,
    frames: u64,
    in_window: u64,
    squares: [f64; 2],
    low: [i16; 2],
    high: [i16; 2],
    out: Analysis,
}

impl Builder {
    fn new(sample_rate: u32, channels: u16) -> Builder {
        Builder {
            sample_rate,
            channels,
            per_window: (u64::from(sample_rate) * u64::from(WINDOW_MS) / 1000).max(1),
            channel: 0,
            frames: 0,
            in_window: 0,
            squares: [0.0; 2],
            low: [i16::MAX; 2],
            high: [i16::MIN; 2],
            out: Analysis {
                sample_rate,
                channels,
                frames: 0,
                rms: Vec::new(),
                low: Vec::new(),
                high: Vec::new(),
            },
        }
    }

    fn push(&mut self, sample: i16) {
        // Channels beyond the second are ignored; mono feeds both.
        let targets: &[usize] = match (self.channels, self.channel) {
            (1, _) => &[0, 1],
            (_, 0) => &[0],
            (_, 1) => &[1],
            _ => &[],
        };
        for &c in targets {
            let v = f64::from(sample) / 32768.0;
            self.squares[c] += v * v;
            self.low[c] = self.low[c].min(sample);
            self.high[c] = self.high[c].max(sample);
        }
        self.channel += 1;
        if self.channel == self.channels {
            self.channel = 0;
            self.frames += 1;
            self.in_window += 1;
            if self.in_window == self.per_window {
                self.close_window();
            }
        }
    }

    fn close_window(&mut self) {
        if self.in_window == 0 {
            return;
        }
        let n = self.in_window as f64;
        self.out.rms.push([
            (self.squares[0] / n).sqrt() as f32,
            (self.squares[1] / n).sqrt() as f32,
        ]);
        self.out.low.push(self.low);
        self.out.high.push(self.high);
        self.in_window = 0;
        self.squares = [0.0; 2];
        self.low = [i16::MAX; 2];
        self.high = [i16::MIN; 2];
    }

    fn finish(mut self) -> Analysis {
        self.close_window();
        self.out.frames = self.frames;
        let _ = self.sample_rate;
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 s at 8 kHz: the caller speaks (a loud tone) for the first half, the agent for
    /// the second.
    fn turns() -> Vec<i16> {
        let mut samples = Vec::new();
        for i in 0..8000 {
            let tone = ((i as f32 * 0.3).sin() * 16000.0) as i16;
            let (l, r) = if i < 4000 { (tone, 0) } else { (0, tone) };
            samples.push(l);
            samples.push(r);
        }
        samples
    }

    #[test]
    fn levels_follow_who_speaks() {
        let a = Analysis::of_samples(8000, 2, &turns());
        assert_eq!(a.frames, 8000);
        assert_eq!(a.duration_ms(), 1000);
        assert_eq!(a.rms.len(), 20, "20 windows of 50 ms");
        assert!(a.rms[0][0] > 0.3 && a.rms[0][1] == 0.0);
        assert!(a.rms[19][1] > 0.3 && a.rms[19][0] == 0.0);
        assert!(a.high[0][0] > 15000 && a.low[0][0] < -15000);
        assert_eq!((a.low[0][1], a.high[0][1]), (0, 0));
    }

    #[test]
    fn a_short_last_window_is_kept_and_mono_feeds_both() {
        let a = Analysis::of_samples(8000, 1, &[1000; 500]);
        assert_eq!(a.rms.len(), 2, "400 + 100 samples");
        assert_eq!(a.rms[1][0], a.rms[1][1]);
    }

    #[test]
    fn a_real_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).unwrap();
        for s in turns() {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        let a = Analysis::of_file(&path).unwrap();
        assert_eq!(a, Analysis::of_samples(8000, 2, &turns()));
        assert!(Analysis::of_file(&dir.path().join("none.wav")).is_err());
    }
}
