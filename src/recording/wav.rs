//! Crash-durable stereo WAV files (RIFF/WAVE, 8 kHz, 16-bit PCM), and their repair.
//!
//! A WAV header states the sizes of the RIFF and `data` chunks, which a plain writer only
//! fills in when the file is closed: kill the process mid-call and the file claims to hold
//! nothing (the notorious 44-byte WAV after a 23-minute call). This writer instead
//! *checkpoints*: it rewrites both sizes to cover the frames written so far and `sync_data`s
//! the file, so after any crash the file is a valid WAV of everything up to the last
//! checkpoint, and usually more: frames [`flush`](WavWriter::flush)ed after it are in the
//! page cache and survive a killed process, only not a power cut.
//!
//! [`repair`] handles the "more": at start-up the daemon looks for files whose header
//! disagrees with their length, extends the sizes over the data actually present (dropping
//! a trailing partial frame) and so keeps every sample that reached the disk.
//!
//! The header is written by this module rather than through `hound`'s writer because the
//! checkpoint needs to reach the file descriptor to sync it and to rewrite the sizes in
//! place; it is the canonical 44-byte PCM header (`fmt ` with 16 bytes, then `data`), which
//! `hound`, `sox` and every player read. Repair and summary parse any RIFF chunk layout.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::RecordingError;

/// Samples per second per channel: G.711 telephony.
pub const SAMPLE_RATE: u32 = 8000;
/// Caller on the left (first) channel, agent on the right.
pub const CHANNELS: u16 = 2;
/// Bits per sample.
pub const BITS_PER_SAMPLE: u16 = 16;
/// Bytes per stereo frame.
const FRAME_BYTES: u64 = 4;
/// Bytes per second of audio.
const BYTE_RATE: u32 = SAMPLE_RATE * FRAME_BYTES as u32;
/// Size of the canonical header this writer produces.
pub const HEADER_LEN: u64 = 44;
/// Offset of the RIFF chunk size (file length − 8).
const RIFF_SIZE_OFFSET: u64 = 4;
/// Offset of the `data` chunk size in the canonical header.
const DATA_SIZE_OFFSET: u64 = 40;
/// Largest `data` chunk a header can describe: the RIFF size (data + 36) is a `u32`. At
/// 32,000 bytes a second this is over 37 hours, far beyond any call.
const MAX_DATA: u64 = (u32::MAX as u64 - (HEADER_LEN - 8)) / FRAME_BYTES * FRAME_BYTES;
/// Frames are collected in memory and handed to the OS once this much is buffered (a
/// quarter of a second of audio), and at every checkpoint: one `write` per call every
/// 250 ms rather than one per recorder tick, while a killed process loses at most this
/// much beyond the writing lag, and the buffer stays small (it is per active call).
/// (An eighth of a second before: the `write`s were 4.4 % of the daemon's CPU at 400
/// recorded calls in `bench/relay_cpu`.)
const WRITE_CHUNK: usize = BYTE_RATE as usize / 4;
/// Chunks looked at before giving up on finding `data` (a valid file has two or three).
const MAX_CHUNKS: usize = 64;

/// Size, duration and digest of a closed (or repaired) recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavSummary {
    /// Length of the whole file.
    pub bytes: u64,
    /// Audio duration from the number of frames in the data chunk.
    pub duration_ms: u64,
    /// SHA-256 of the whole file, lowercase hex: QA can show a recording was not altered.
    pub sha256: String,
}

type Result<T> = std::result::Result<T, RecordingError>;

fn io_error(path: &Path, source: io::Error) -> RecordingError {
    RecordingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a stereo recording; see the module documentation.
#[derive(Debug)]
pub struct WavWriter {
    path: PathBuf,
    file: File,
    /// The file system the file is on (`st_dev`), if known: files on one file system can
    /// be synced together ([`WavWriter::sync_filesystem`]).
    device: Option<u64>,
    /// Frames not yet handed to the file.
    buffer: Vec<u8>,
    /// Data bytes accepted so far (in the file or in `buffer`).
    data_bytes: u64,
    /// Set by `finish` (nothing left to do on drop) or after a failed write (the file's
    /// contents past the last checkpoint are unknown; repair will sort them out).
    closed: bool,
}

impl WavWriter {
    /// Creates the file (and its parent directories) and writes a header for zero frames.
    /// Refuses to overwrite an existing file: a recording is evidence, and two calls must
    /// never end up in one file. Nothing is synced yet; the first [`checkpoint`] does that,
    /// so that the caller can keep the sync off its own thread.
    ///
    /// [`checkpoint`]: WavWriter::checkpoint
    pub fn create(path: impl AsRef<Path>) -> Result<WavWriter> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
            }
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        if let Err(e) = file.write_all(&header(0)) {
            // Not even the header fits (volume full): leave no empty, headerless file
            // behind for QA to find; the call goes on unrecorded.
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(io_error(&path, e));
        }
        let device = file.metadata().ok().map(|m| m.dev());
        Ok(WavWriter {
            path,
            file,
            device,
            // One recorder tick (20 ms, 640 bytes) past the threshold, rounded up.
            buffer: Vec::with_capacity(WRITE_CHUNK + 1024),
            data_bytes: 0,
            closed: false,
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.data_bytes / FRAME_BYTES
    }

    /// Appends frames: `left[i]` and `right[i]` make frame `i`. If one side is shorter it is
    /// padded with silence, so the channels never slip against each other.
    pub fn write_frames(&mut self, left: &[i16], right: &[i16]) -> Result<()> {
        self.check_open()?;
        let frames = left.len().max(right.len());
        let added = frames as u64 * FRAME_BYTES;
        if self.data_bytes + added > MAX_DATA {
            return Err(RecordingError::TooLarge {
                path: self.path.clone(),
            });
        }
        // Zeroed first, so that a shorter side is padded with silence; then each side
        // fills its half of the frames.
        let start = self.buffer.len();
        self.buffer.resize(start + frames * FRAME_BYTES as usize, 0);
        let out = &mut self.buffer[start..];
        for (frame, l) in out.chunks_exact_mut(FRAME_BYTES as usize).zip(left) {
            frame[..2].copy_from_slice(&l.to_le_bytes());
        }
        for (frame, r) in out.chunks_exact_mut(FRAME_BYTES as usize).zip(right) {
            frame[2..].copy_from_slice(&r.to_le_bytes());
        }
        self.data_bytes += added;
        if self.buffer.len() >= WRITE_CHUNK {
            self.flush_buffer()?;
        }
        Ok(())
    }

    /// Hands buffered frames to the operating system, without syncing: enough for them to
    /// survive a killed process (not a power cut), since [`repair`] recovers frames past
    /// the last checkpoint. [`write_frames`](WavWriter::write_frames) does it by itself
    /// once a quarter second is buffered.
    pub fn flush(&mut self) -> Result<()> {
        self.check_open()?;
        self.flush_buffer()
    }

    /// Makes everything written so far durable: writes out buffered frames, rewrites the
    /// RIFF and `data` sizes to match, and `sync_data`s the file. After it returns, a
    /// `kill -9` (or a power cut) leaves a valid WAV holding at least these frames.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.prepare_checkpoint()?;
        self.sync()
    }

    /// The first half of [`checkpoint`](WavWriter::checkpoint): buffered frames handed to
    /// the OS and the sizes rewritten, not yet durable. [`sync`](WavWriter::sync) or
    /// [`sync_filesystem`](WavWriter::sync_filesystem) completes it.
    pub fn prepare_checkpoint(&mut self) -> Result<()> {
        self.check_open()?;
        self.flush_buffer()?;
        self.write_sizes().map_err(|e| self.fail(e))
    }

    /// `sync_data`s the file: what was written so far is on the disk.
    pub fn sync(&mut self) -> Result<()> {
        self.check_open()?;
        let result = self.file.sync_data();
        result.map_err(|e| self.fail(e))
    }

    /// The file system the file is on, if known; see
    /// [`sync_filesystem`](WavWriter::sync_filesystem).
    pub fn device(&self) -> Option<u64> {
        self.device
    }

    /// `syncfs(2)` on the file's file system: this file and every other one on it
    /// ([`device`](WavWriter::device)) are on the disk when it returns `Ok`. One call for
    /// all the recordings of a thread costs one journal commit and one cache flush instead
    /// of one per file. An error is the file system's (any file's writeback since this
    /// file was opened); to learn which file failed, sync them one by one.
    pub fn sync_filesystem(&self) -> io::Result<()> {
        self.check_open().map_err(io::Error::other)?;
        // SAFETY: `syncfs` only reads the descriptor, which `self.file` owns and keeps open
        // for the whole call; it touches no memory of ours.
        if unsafe { libc::syncfs(self.file.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Checkpoints a last time and returns the summary (size, duration, SHA-256 of the
    /// whole file, read back from disk so it is the digest of what is actually stored).
    pub fn finish(mut self) -> Result<WavSummary> {
        self.checkpoint()?;
        self.closed = true;
        let bytes = HEADER_LEN + self.data_bytes;
        let sha256 = hash_file(&mut self.file).map_err(|e| io_error(&self.path, e))?;
        Ok(WavSummary {
            bytes,
            duration_ms: duration_ms(self.data_bytes, BYTE_RATE),
            sha256,
        })
    }

    /// Test hook: what a `kill -9` leaves behind. Buffered frames reach the file (as they
    /// would have from the page cache after earlier writes) but the header keeps the sizes
    /// of the last checkpoint, and nothing more is done on drop.
    #[cfg(test)]
    pub(crate) fn crash(mut self) {
        let _ = self.flush_buffer();
        self.closed = true;
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(io_error(
                &self.path,
                io::Error::other("the writer failed or was finished"),
            ));
        }
        Ok(())
    }

    fn flush_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.buffer);
        self.buffer.clear();
        result.map_err(|e| self.fail(e))
    }

    fn write_sizes(&mut self) -> io::Result<()> {
        let data = u32::try_from(self.data_bytes).map_err(io::Error::other)?;
        write_sizes_at(&self.file, DATA_SIZE_OFFSET, data)
    }

    /// A failed write leaves the file's tail unknown: stop writing and let repair decide.
    fn fail(&mut self, source: io::Error) -> RecordingError {
        self.closed = true;
        io_error(&self.path, source)
    }
}

impl Drop for WavWriter {
    /// A writer dropped without `finish` (an error path, a panic elsewhere) still leaves a
    /// valid file of everything written: best effort, errors are only logged.
    fn drop(&mut self) {
        if !self.closed {
            if let Err(e) = self.checkpoint() {
                tracing::warn!(error = %e, "recording not finalized on drop");
            }
        }
    }
}

/// The canonical 44-byte header for a stereo 8 kHz 16-bit PCM file of `data` bytes.
pub(crate) fn header(data: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"RIFF");
    put(&data.saturating_add((HEADER_LEN - 8) as u32).to_le_bytes());
    put(b"WAVE");
    put(b"fmt ");
    put(&16u32.to_le_bytes());
    put(&1u16.to_le_bytes()); // WAVE_FORMAT_PCM
    put(&CHANNELS.to_le_bytes());
    put(&SAMPLE_RATE.to_le_bytes());
    put(&BYTE_RATE.to_le_bytes());
    put(&(FRAME_BYTES as u16).to_le_bytes());
    put(&BITS_PER_SAMPLE.to_le_bytes());
    put(b"data");
    put(&data.to_le_bytes());
    h
}

/// Rewrites the RIFF size (from the file layout: everything after the first 8 bytes) and
/// the `data` size at `data_size_offset`, with positioned writes: the file's offset (where
/// frames are appended) does not move.
fn write_sizes_at(file: &File, data_size_offset: u64, data: u32) -> io::Result<()> {
    let riff =
        u32::try_from(data_size_offset + 4 + u64::from(data) - 8).map_err(io::Error::other)?;
    file.write_all_at(&riff.to_le_bytes(), RIFF_SIZE_OFFSET)?;
    file.write_all_at(&data.to_le_bytes(), data_size_offset)
}

fn duration_ms(data_bytes: u64, byte_rate: u32) -> u64 {
    if byte_rate == 0 {
        return 0;
    }
    let ms = u128::from(data_bytes) * 1000 / u128::from(byte_rate);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn hash_file(file: &mut File) -> io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Where the interesting parts of a WAV file are, as its header states them.
#[derive(Debug)]
struct Layout {
    declared_riff: u32,
    /// Offset of the `data` size field; the samples start 4 bytes later.
    data_size_offset: u64,
    declared_data: u32,
    block_align: u16,
    byte_rate: u32,
}

impl Layout {
    fn data_offset(&self) -> u64 {
        self.data_size_offset + 4
    }
}

fn read_exact_at(file: &mut File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Walks the RIFF chunks up to `data`. `Ok(Err(reason))` means the file is readable but is
/// not a WAV this module understands.
fn parse(file: &mut File, len: u64) -> io::Result<std::result::Result<Layout, String>> {
    if len < 12 {
        return Ok(Err(format!("{len} bytes is too short for a RIFF header")));
    }
    let mut riff = [0u8; 12];
    read_exact_at(file, 0, &mut riff)?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Ok(Err("not a RIFF/WAVE file".to_string()));
    }
    let declared_riff = u32_at(&riff, 4);
    let mut format: Option<(u16, u32)> = None;
    let mut at = 12u64;
    for _ in 0..MAX_CHUNKS {
        if at + 8 > len {
            break;
        }
        let mut chunk = [0u8; 8];
        read_exact_at(file, at, &mut chunk)?;
        let size = u32_at(&chunk, 4);
        match &chunk[0..4] {
            b"data" => {
                let Some((block_align, byte_rate)) = format else {
                    return Ok(Err("data chunk before the fmt chunk".to_string()));
                };
                return Ok(Ok(Layout {
                    declared_riff,
                    data_size_offset: at + 4,
                    declared_data: size,
                    block_align,
                    byte_rate,
                }));
            }
            b"fmt " => {
                // Which one would hound, a player or this repair believe? Truncating the
                // data to the wrong frame size would lose audio: refuse to guess.
                if format.is_some() {
                    return Ok(Err("more than one fmt chunk".to_string()));
                }
                if size < 16 || at + 8 + 16 > len {
                    return Ok(Err("fmt chunk too short".to_string()));
                }
                let mut fmt = [0u8; 16];
                read_exact_at(file, at + 8, &mut fmt)?;
                let channels = u16_at(&fmt, 2);
                let byte_rate = u32_at(&fmt, 8);
                let mut block_align = u16_at(&fmt, 12);
                let bits = u16_at(&fmt, 14);
                if block_align == 0 {
                    block_align = channels.saturating_mul(bits.div_ceil(8));
                }
                if block_align == 0 {
                    return Ok(Err("fmt chunk gives no frame size".to_string()));
                }
                format = Some((block_align, byte_rate));
            }
            _ => {}
        }
        // Chunks are padded to an even length (RIFF).
        at = at.saturating_add(8 + u64::from(size) + u64::from(size & 1));
    }
    Ok(Err("no data chunk".to_string()))
}

/// Fixes a recording left by a crash: if the header's sizes disagree with the file's
/// length, drops a trailing partial frame, rewrites the sizes to cover the data actually
/// present, syncs, and returns the summary; returns `Ok(None)` for a file that is already
/// consistent. An empty file (crash between creating it and writing the header) gets a
/// header for zero frames. A file that is not a WAV is an error and is left untouched.
///
/// Data is taken to run to the end of the file, which is how this module writes; a file
/// whose RIFF size matches its length is left alone even if more chunks follow `data`.
pub fn repair(path: impl AsRef<Path>) -> Result<Option<WavSummary>> {
    let path = path.as_ref();
    let io = |e| io_error(path, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        file.write_all(&header(0)).map_err(io)?;
        file.sync_data().map_err(io)?;
        return summarize_open(path, &mut file).map(Some);
    }
    let layout = parse(&mut file, len)
        .map_err(io)?
        .map_err(|reason| RecordingError::NotWav {
            path: path.to_path_buf(),
            reason,
        })?;
    let data_offset = layout.data_offset();
    let align = u64::from(layout.block_align);
    let present = len.saturating_sub(data_offset) / align * align;
    let riff_matches = u64::from(layout.declared_riff) + 8 == len;
    let data_fits = data_offset + u64::from(layout.declared_data) <= len;
    if riff_matches && data_fits {
        return Ok(None);
    }
    if present > MAX_DATA {
        return Err(RecordingError::NotWav {
            path: path.to_path_buf(),
            reason: "data is larger than a WAV header can describe".to_string(),
        });
    }
    let new_len = data_offset + present;
    if new_len < len {
        file.set_len(new_len).map_err(io)?;
    }
    // `present` fits: checked against MAX_DATA above.
    let data = u32::try_from(present).unwrap_or(0);
    write_sizes_at(&file, layout.data_size_offset, data).map_err(io)?;
    file.sync_data().map_err(io)?;
    tracing::info!(
        path = %path.display(),
        declared = layout.declared_data,
        present,
        "repaired recording header"
    );
    summarize_open(path, &mut file).map(Some)
}

/// Size, duration and SHA-256 of a recording on disk (for example one finished before a
/// restart whose summary was not stored). The duration counts the frames the header
/// declares that are actually present.
pub fn summarize(path: impl AsRef<Path>) -> Result<WavSummary> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    summarize_open(path, &mut file)
}

fn summarize_open(path: &Path, file: &mut File) -> Result<WavSummary> {
    let io = |e| io_error(path, e);
    let len = file.metadata().map_err(io)?.len();
    let layout = parse(file, len)
        .map_err(io)?
        .map_err(|reason| RecordingError::NotWav {
            path: path.to_path_buf(),
            reason,
        })?;
    let present = len.saturating_sub(layout.data_offset());
    let data = u64::from(layout.declared_data).min(present);
    let data = data / u64::from(layout.block_align) * u64::from(layout.block_align);
    let sha256 = hash_file(file).map_err(io)?;
    Ok(WavSummary {
        bytes: len,
        duration_ms: duration_ms(data, layout.byte_rate),
        sha256,
    })
}

/// Repairs every `.wav` file under `root` (the recordings tree), in path order. Symbolic
/// links are not followed, so a link cannot send the repair outside the tree or round in
/// circles. A missing root is an empty result (nothing was ever recorded); a directory
/// that cannot be read is reported as an entry with its error.
pub fn repair_all(root: impl AsRef<Path>) -> Vec<(PathBuf, Result<Option<WavSummary>>)> {
    let root = root.as_ref();
    let mut files = Vec::new();
    let mut results = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir == root => continue,
            Err(e) => {
                results.push((dir.clone(), Err(io_error(&dir, e))));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    results.push((dir.clone(), Err(io_error(&dir, e))));
                    continue;
                }
            };
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => dirs.push(path),
                Ok(kind) if kind.is_file() && is_wav(&path) => files.push(path),
                Ok(_) => {}
                Err(e) => results.push((path.clone(), Err(io_error(&path, e)))),
            }
        }
    }
    files.sort();
    results.extend(files.into_iter().map(|path| {
        let result = repair(&path);
        (path, result)
    }));
    results
}

fn is_wav(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ext.eq_ignore_ascii_case("wav"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frames: usize, offset: usize) -> (Vec<i16>, Vec<i16>) {
        let left = (0..frames)
            .map(|i| (((i + offset) % 100) as i16 - 50) * 300)
            .collect();
        let right = (0..frames)
            .map(|i| (((i + offset) % 37) as i16 - 18) * -500)
            .collect();
        (left, right)
    }

    fn read_all(path: &Path) -> (hound::WavSpec, Vec<i16>) {
        let mut reader = hound::WavReader::open(path).expect("hound opens the file");
        let spec = reader.spec();
        let samples = reader
            .samples::<i16>()
            .collect::<std::result::Result<Vec<_>, _>>()
            .expect("samples");
        (spec, samples)
    }

    fn sha256_of(path: &Path) -> String {
        hex::encode(Sha256::digest(fs::read(path).expect("read")))
    }

    #[test]
    fn writes_a_file_hound_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("2024/05/06/call.wav");
        let mut w = WavWriter::create(&path).expect("create");
        let (l, r) = tone(12_000, 0);
        w.write_frames(&l, &r).expect("write");
        // Unequal sides: the right is padded with silence.
        w.write_frames(&[7, 8], &[9]).expect("write");
        let summary = w.finish().expect("finish");
        let (spec, samples) = read_all(&path);
        assert_eq!(spec.channels, 2);
        assert_eq!(spec.sample_rate, 8000);
        assert_eq!(spec.bits_per_sample, 16);
        assert_eq!(samples.len(), 2 * 12_002);
        assert_eq!(samples[0], l[0]);
        assert_eq!(samples[1], r[0]);
        assert_eq!(&samples[samples.len() - 4..], &[7, 9, 8, 0]);
        assert_eq!(summary.bytes, 44 + 4 * 12_002);
        assert_eq!(summary.duration_ms, 1500);
        assert_eq!(summary.sha256, sha256_of(&path));
        assert_eq!(summarize(&path).expect("summarize"), summary);
        assert_eq!(repair(&path).expect("repair"), None);
    }

    #[test]
    fn refuses_to_overwrite_a_recording() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.wav");
        WavWriter::create(&path)
            .expect("create")
            .finish()
            .expect("finish");
        assert!(matches!(
            WavWriter::create(&path),
            Err(RecordingError::Io { .. })
        ));
    }

    #[test]
    fn checkpoint_makes_a_valid_file_of_everything_so_far() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.wav");
        let mut w = WavWriter::create(&path).expect("create");
        let (l, r) = tone(8000, 0);
        w.write_frames(&l, &r).expect("write");
        w.checkpoint().expect("checkpoint");
        // Read while the writer is still open, as a player would after a crash.
        let (_, samples) = read_all(&path);
        assert_eq!(samples.len(), 2 * 8000);
        w.crash();
    }

    #[test]
    fn repair_recovers_frames_written_after_the_last_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("2024/01/02/crashed.wav");
        let mut w = WavWriter::create(&path).expect("create");
        let (l, r) = tone(8000, 0);
        w.write_frames(&l, &r).expect("write");
        w.checkpoint().expect("checkpoint");
        let (l2, r2) = tone(3000, 8000);
        w.write_frames(&l2, &r2).expect("write");
        w.crash();
        // And half a frame that was being written when the process died.
        let mut tail = OpenOptions::new().append(true).open(&path).expect("open");
        tail.write_all(&[1, 2, 3]).expect("append");
        drop(tail);

        let (_, before) = read_all(&path);
        assert_eq!(
            before.len(),
            2 * 8000,
            "the header only covers the checkpoint"
        );

        let summary = repair(&path).expect("repair").expect("was inconsistent");
        let (_, samples) = read_all(&path);
        assert_eq!(samples.len(), 2 * 11_000);
        assert_eq!(samples[2 * 10_999], l2[2999]);
        assert_eq!(samples[2 * 10_999 + 1], r2[2999]);
        assert_eq!(summary.bytes, 44 + 4 * 11_000);
        assert_eq!(fs::metadata(&path).expect("meta").len(), summary.bytes);
        assert_eq!(summary.duration_ms, 1375);
        assert_eq!(summary.sha256, sha256_of(&path));
        assert_eq!(repair(&path).expect("second repair"), None);
    }

    #[test]
    fn repair_handles_empty_foreign_and_garbage_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.wav");
        fs::write(&empty, b"").expect("write");
        let summary = repair(&empty).expect("repair").expect("header written");
        assert_eq!(summary.duration_ms, 0);
        assert_eq!(read_all(&empty).1.len(), 0);

        let garbage = dir.path().join("garbage.wav");
        fs::write(&garbage, b"this is not a wav file at all").expect("write");
        assert!(matches!(
            repair(&garbage),
            Err(RecordingError::NotWav { .. })
        ));
        assert_eq!(
            fs::read(&garbage).expect("read"),
            b"this is not a wav file at all",
            "left untouched"
        );

        let short = dir.path().join("short.wav");
        fs::write(&short, &header(400)[..30]).expect("write");
        assert!(repair(&short).is_err());
    }

    #[test]
    fn repair_all_walks_the_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("recordings");
        let good = root.join("2024/01/01/good.wav");
        let bad = root.join("2024/01/02/bad.WAV");
        WavWriter::create(&good)
            .expect("create")
            .finish()
            .expect("finish");
        let mut w = WavWriter::create(&bad).expect("create");
        w.write_frames(&[1; 100], &[2; 100]).expect("write");
        w.crash();
        fs::write(root.join("2024/notes.txt"), b"not audio").expect("write");

        let results = repair_all(&root);
        assert_eq!(results.len(), 2, "{results:?}");
        assert_eq!(results[0].0, good);
        assert!(matches!(results[0].1, Ok(None)));
        assert_eq!(results[1].0, bad);
        let summary = results[1]
            .1
            .as_ref()
            .expect("ok")
            .as_ref()
            .expect("repaired");
        assert_eq!(summary.bytes, 44 + 400);
        assert!(repair_all(dir.path().join("missing")).is_empty());
    }

    /// Regression (fuzzer, wav_repair): a second `fmt ` chunk with another frame size was
    /// believed, the data cut to that frame size, and hound refused the "repaired" file.
    #[test]
    fn a_second_fmt_chunk_is_refused_not_repaired() {
        let data: &[u8] = b"RIFF$\x00\x00\x00WAVEfmt \
            \x10\x00\x00\x00\x01\x00\x02\x00@\x1f\x00\x00\x00}\x00\x00\
            \x04\x00\x10\x00fmt \x10\x00\x00\x00\x01\x00\x02\x00\
            @\x1f\x00\x00\x00}\x00\x00\xbc\x00\x10\x00data\
            \xff\xff\xff\xff\xffata\xff\xff\xff\xff\xff\xff0\x00\
            \x00\x00\x00\x0b\xbb0RI";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("two-fmt.wav");
        fs::write(&path, data).expect("write");
        match repair(&path) {
            Err(RecordingError::NotWav { reason, .. }) => {
                assert!(reason.contains("more than one fmt chunk"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&path).expect("read"), data, "left untouched");
    }

    proptest::proptest! {
        /// Whatever bytes a file holds, repair and summarize return without panicking, and a
        /// repaired file is consistent afterwards.
        #[test]
        fn repair_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            riff in proptest::bool::ANY,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("x.wav");
            let mut content = if riff { header(0).to_vec() } else { Vec::new() };
            content.extend_from_slice(&bytes);
            fs::write(&path, &content).expect("write");
            let _ = summarize(&path);
            if let Ok(Some(_)) = repair(&path) {
                proptest::prop_assert!(matches!(repair(&path), Ok(None)));
            }
        }
    }
}
