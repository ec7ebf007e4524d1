//! Call recording: both legs of a call into one stereo WAV file that survives crashes.
//!
//! QA audits calls from these files, so a recording that is missing, empty, one-sided or
//! unplayable after a crash is the worst failure the product can have. Hence:
//!
//! - **Stereo, aligned with wall time**: caller on the left, agent on the right, 8 kHz
//!   16-bit PCM, and channel time equals wall time (a 60 s call gives a 60 s file): each
//!   leg's audio is placed where its packets belong in time and gaps become silence, so the
//!   two sides stay aligned whatever the network lost, duplicated or reordered
//!   (the private `engine` module documents the placement, [`reorder`] the per-leg reorder
//!   buffer).
//! - **Crash-durable**: the header is checkpointed and the data synced at least every
//!   [`RecorderConfig::checkpoint_every`], and [`repair_all`] fixes files a crash left
//!   behind ([`wav`]).
//! - **Off the runtime**: recordings are served by a few recorder OS threads (the private
//!   `pool` module), so decoding, writing and `fsync` never stall the async tasks relaying
//!   media and SIP. The relay hands packets over through a bounded tap
//!   ([`crate::media::tap`]) and never waits for the recorder.
//! - **Pause/resume** for sensitive data (card numbers): the paused span is silence in both
//!   channels and is listed in the summary.
//!
//! The recorder knows packets, legs and files, not calls: call control decides when to
//! start and stop, and stores the [`RecordingSummary`] with the call.

pub(crate) mod engine;
pub mod g711;
mod pool;
pub mod reorder;
pub mod wav;

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::media::tap::{self, TapReceiver, TapSender};
use crate::media::Leg;
use engine::{samples_at, Engine, Span};
pub use wav::{repair, repair_all, summarize, WavSummary, WavWriter};

/// Packets the tap holds (about 2.5 s of both legs at 20 ms packets): room for the
/// recorder thread to sit out a slow `fsync` without the relay dropping audio.
pub const TAP_CAPACITY: usize = 256;

/// How often a recorder thread takes every recording's packets and writes its frames.
const TICK: Duration = Duration::from_millis(20);

/// Frames are written this far behind the reorder hold, so packets released by the reorder
/// buffer (or a little late) still find their place unwritten. The total lag (150 ms by
/// default) only delays the file, never its length at stop.
const LAG_AFTER_HOLD: Duration = Duration::from_millis(90);

/// Tapped packets taken per tick at most, so a flood cannot keep the thread from writing.
const MAX_PACKETS_PER_TICK: usize = 4 * TAP_CAPACITY;

/// Why a recording could not be made or closed.
#[derive(thiserror::Error, Debug)]
pub enum RecordingError {
    /// A file system operation on a recording (or its directory) failed.
    #[error("recording {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file in the recordings tree is not a WAV file that can be read or repaired.
    #[error("{} is not a usable WAV file: {reason}", path.display())]
    NotWav { path: PathBuf, reason: String },
    /// The recording reached the 4 GiB a WAV header can describe (over 37 hours).
    #[error("recording {} reached the WAV size limit", path.display())]
    TooLarge { path: PathBuf },
    /// The recorder thread could not be started, or ended without closing the file.
    #[error("recorder thread: {0}")]
    Thread(String),
}

/// An audio codec the recorder decodes. Everything else (telephone-event, comfort noise,
/// unknown payload types) is ignored and leaves silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The codec for an SDP `a=rtpmap` encoding name (case-insensitive, RFC 4566 §6), so
    /// call control can map dynamic payload types to codecs.
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }
}

/// What to record and how.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// The file to create (parent directories are created; an existing file is an error).
    pub path: PathBuf,
    /// Payload type → codec for this call. Static types 0 (PCMU) and 8 (PCMA) are known
    /// even when not listed.
    pub codecs: Vec<(u8, Codec)>,
    /// Longest time between header checkpoints (sizes rewritten, data synced): what a
    /// crash can lose at most, plus the writing lag.
    pub checkpoint_every: Duration,
    /// How long a leg's packets wait behind a missing one before it counts as lost.
    pub reorder_hold: Duration,
}

impl RecorderConfig {
    /// Defaults: PCMU and PCMA on their static payload types, a checkpoint every second,
    /// 60 ms reorder hold.
    pub fn new(path: impl Into<PathBuf>) -> RecorderConfig {
        RecorderConfig {
            path: path.into(),
            codecs: vec![(0, Codec::Pcmu), (8, Codec::Pcma)],
            checkpoint_every: Duration::from_secs(1),
            reorder_hold: Duration::from_millis(60),
        }
    }
}

/// A closed recording, to be stored with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub path: PathBuf,
    /// Size of the file.
    pub bytes: u64,
    /// Length of the audio: the time from start to stop.
    pub duration_ms: u64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    /// Paused spans, in milliseconds from the start; all closed.
    pub paused_spans: Vec<(u64, Option<u64>)>,
}

/// Where a call's recording lives: `root/YYYY/MM/DD/<id>.wav`. Characters of `id` that
/// could leave the directory or trouble a shell (anything but ASCII letters, digits and
/// `-_.@+`) become `_`, and a leading dot is replaced, so any call id gives a plain file
/// name inside the day's directory.
pub fn recording_path(root: &Path, date: chrono::NaiveDate, id: &str) -> PathBuf {
    use chrono::Datelike;
    let mut name: String = id
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    root.join(format!("{:04}", date.year()))
        .join(format!("{:02}", date.month()))
        .join(format!("{:02}", date.day()))
        .join(format!("{name}.wav"))
}

/// State shared between the handle and the recorder thread.
#[derive(Debug)]
struct Shared {
    /// Frame 0 of the file.
    start: Instant,
    spans: Mutex<Vec<Span>>,
}

impl Shared {
    fn spans(&self) -> std::sync::MutexGuard<'_, Vec<Span>> {
        // The lock guards plain data that is never left half-updated: a panic elsewhere
        // while holding it must not take the recording down too.
        self.spans.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ms_now(&self, round_up: bool) -> u64 {
        let elapsed = self.start.elapsed();
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if round_up && elapsed.subsec_nanos() % 1_000_000 != 0 {
            ms.saturating_add(1)
        } else {
            ms
        }
    }
}

/// What the handle asks of the recorder thread serving it.
enum Control {
    Stop {
        at: Instant,
        reply: oneshot::Sender<Result<RecordingSummary, RecordingError>>,
    },
}

/// The handle of a running recording. Dropping it without [`stop`](Recorder::stop) also
/// closes the file (at the moment of the drop), only without reporting the summary.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    shared: Arc<Shared>,
    control: std_mpsc::Sender<Control>,
    /// Wakes the thread serving this recording, so a stop is handled at once rather than
    /// at its next tick.
    thread: pool::Waker,
}

impl Recorder {
    /// Starts recording now (t = 0 of the file is this instant). Served by one of the
    /// recorder threads (not the async runtime): returns the handle and the sender to feed
    /// tapped packets (bounded: the relay offers each one and counts those refused).
    /// Creating the file happens here, so a bad path is reported at once; syncing it
    /// happens on the thread.
    pub fn start(config: RecorderConfig) -> Result<(Recorder, TapSender), RecordingError> {
        let start = Instant::now();
        let writer = WavWriter::create(&config.path)?;
        let engine = Engine::new(
            writer,
            start,
            config.codecs,
            config.reorder_hold,
            config.checkpoint_every,
        );
        let (tap, taps) = tap::channel(TAP_CAPACITY);
        let (control, controls) = std_mpsc::channel();
        let shared = Arc::new(Shared {
            start,
            spans: Mutex::new(Vec::new()),
        });
        let lag = config.reorder_hold.saturating_add(LAG_AFTER_HOLD);
        let worker = Worker {
            engine,
            taps,
            controls,
            lag_frames: samples_at(start, start + lag),
            shared: Arc::clone(&shared),
            path: config.path.clone(),
        };
        let thread = pool::serve(worker)?;
        tracing::debug!(path = %config.path.display(), "recording started");
        let recorder = Recorder {
            path: config.path,
            shared,
            control,
            thread,
        };
        Ok((recorder, tap))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// From now on both channels are silence; the span is recorded. Pausing while paused
    /// does nothing.
    pub fn pause(&self) {
        let now = self.shared.ms_now(false);
        let mut spans = self.shared.spans();
        if !spans.last().is_some_and(|(_, end)| end.is_none()) {
            spans.push((now, None));
        }
    }

    /// Audio is recorded again from now on. Resuming while not paused does nothing.
    pub fn resume(&self) {
        // Rounded up, so the listed span covers all the muted audio.
        let now = self.shared.ms_now(true);
        if let Some((_, end @ None)) = self.shared.spans().last_mut() {
            *end = Some(now);
        }
    }

    /// Whether the recording is paused now.
    pub fn is_paused(&self) -> bool {
        self.shared
            .spans()
            .last()
            .is_some_and(|(_, end)| end.is_none())
    }

    /// Paused spans so far, in ms from the start (end `None` while paused).
    pub fn paused_spans(&self) -> Vec<(u64, Option<u64>)> {
        self.shared.spans().clone()
    }

    /// Stops at this instant: writes everything up to now (silence-padded so the file's
    /// length equals the wall time since start), finishes the header and returns the
    /// summary. Also used at SIGTERM. The work happens on the recorder thread; this only
    /// waits for its answer.
    pub async fn stop(self) -> Result<RecordingSummary, RecordingError> {
        let at = Instant::now();
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Control::Stop { at, reply })
            .map_err(|_| RecordingError::Thread("the recorder thread has ended".to_string()))?;
        self.thread.wake();
        answer.await.map_err(|_| {
            RecordingError::Thread("the recorder thread ended without closing the file".into())
        })?
    }
}

/// One recording, as a recorder thread serves it.
struct Worker {
    engine: Engine,
    taps: TapReceiver,
    controls: std_mpsc::Receiver<Control>,
    /// Frames are written this far behind real time (the reorder hold plus
    /// [`LAG_AFTER_HOLD`]).
    lag_frames: u64,
    shared: Arc<Shared>,
    path: PathBuf,
}

/// When and how a recording ends: the instant its file ends at, and who wants the summary.
type StopRequest = (
    Instant,
    Option<oneshot::Sender<Result<RecordingSummary, RecordingError>>>,
);

impl Worker {
    /// A stop the handle asked for, or the handle's drop (the file then ends now).
    fn stop_request(&self) -> Option<StopRequest> {
        match self.controls.try_recv() {
            Ok(Control::Stop { at, reply }) => Some((at, Some(reply))),
            Err(std_mpsc::TryRecvError::Empty) => None,
            Err(std_mpsc::TryRecvError::Disconnected) => Some((Instant::now(), None)),
        }
    }

    /// Takes the packets tapped since the last tick and writes frames up to `now` less
    /// the lag. Returns whether a checkpoint was prepared that still needs a sync (the
    /// thread syncs all of them together).
    fn tick(&mut self, now: Instant) -> bool {
        self.take_packets();
        self.engine.release(now);
        let target = samples_at(self.shared.start, now).saturating_sub(self.lag_frames);
        let spans = self.shared.spans().clone();
        self.engine.advance(target, now, &spans)
    }

    /// Writes everything up to `at`, closes the file and answers the handle.
    fn finish(mut self, (at, reply): StopRequest) {
        self.take_packets();
        // The file ends at `at`: a span still open ends there too.
        let end_ms = samples_at(self.shared.start, at) / (u64::from(wav::SAMPLE_RATE) / 1000);
        let spans: Vec<Span> = {
            let mut spans = self.shared.spans();
            for (_, end) in spans.iter_mut() {
                if end.is_none() {
                    *end = Some(end_ms);
                }
            }
            spans.clone()
        };
        let (caller, agent) = (
            self.engine.stats(Leg::Caller),
            self.engine.stats(Leg::Agent),
        );
        let result = self.engine.finish(at, &spans).map(|wav| RecordingSummary {
            path: self.path.clone(),
            bytes: wav.bytes,
            duration_ms: wav.duration_ms,
            sha256: wav.sha256,
            paused_spans: spans,
        });
        match &result {
            Ok(summary) => tracing::info!(
                path = %self.path.display(),
                duration_ms = summary.duration_ms,
                ?caller,
                ?agent,
                "recording closed"
            ),
            Err(e) => tracing::error!(path = %self.path.display(), error = %e, "recording failed"),
        }
        if let Some(reply) = reply {
            // The caller of `stop` may have gone away; the file is closed either way.
            let _ = reply.send(result);
        }
    }

    fn take_packets(&mut self) {
        let engine = &mut self.engine;
        self.taps.drain(MAX_PACKETS_PER_TICK, |leg, arrival, data| {
            engine.ingest(leg, arrival.into_std(), data)
        });
    }
}

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
