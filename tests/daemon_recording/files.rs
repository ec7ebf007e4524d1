//! A call's recording on disk and in its record: where the file is, what it must look
//! like (a stereo 8 kHz 16-bit WAV whose header describes the bytes on disk, with the
//! record's checksum, size and length), and what `soxi`/`sox` say about it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::audio::Wav;
use crate::daemon_common::{pretty, str_field, Checks, Daemon};

/// The file's length may differ from the call's talk time by this much (the issue's
/// "a 60 s call gives a 60 s file, ±100 ms").
pub const DURATION_SLACK_MS: i64 = 100;

pub fn id_of(call: &Value) -> String {
    str_field(call, "id")
        .unwrap_or_else(|| panic!("the call has no id: {}", pretty(call)))
        .to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every `*.wav` under `root`.
pub fn wav_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "wav") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Epoch ms of an RFC 3339 field of the call.
pub fn epoch_ms(call: &Value, key: &str) -> Option<i64> {
    str_field(call, key)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
}

/// A call's recording read from disk.
pub struct Recording {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub wav: Wav,
}

/// The call's recording: `root/YYYY/MM/DD/<id>.wav`, the date being the UTC day the call
/// was answered. Panics (with the call record) if it is missing or not a WAV file.
pub fn recording_of(daemon: &Daemon, call: &Value) -> Recording {
    let id = id_of(call);
    let root = daemon.recordings_root();
    let answered = epoch_ms(call, "answered_at")
        .unwrap_or_else(|| panic!("the call has no answered_at: {}", pretty(call)));
    let day = chrono::DateTime::from_timestamp_millis(answered)
        .expect("answered_at in range")
        .date_naive();
    let path = threering::recording::recording_path(&root, day, &id);
    let bytes = fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "the recording of call {id} is not at {}: {e}\nWAV files under the root: {:?}\n--- call:\n{}",
            path.display(),
            wav_files(&root),
            pretty(call)
        )
    });
    let wav = Wav::parse(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} is not a readable WAV file: {e}\n--- call:\n{}",
            path.display(),
            pretty(call)
        )
    });
    Recording { path, bytes, wav }
}

/// What every closed recording must show: a stereo 8 kHz 16-bit PCM file whose header
/// describes the bytes on disk; the call's `recording` URL, `recording_sha256`,
/// `recording_bytes` and `recording_ms` describe that file.
pub fn recording_basics(c: &mut Checks, call: &Value, rec: &Recording) {
    for problem in rec.wav.format_problems() {
        c.that(false, format!("{}: {problem}", rec.path.display()));
    }
    let id = id_of(call);
    c.str_eq(call, "recording", &format!("/api/calls/{id}/recording"));
    c.str_eq(call, "recording_sha256", &sha256_hex(&rec.bytes));
    c.int_eq(call, "recording_bytes", rec.bytes.len() as i64);
    let frames_ms = rec.wav.duration_ms();
    c.int_in(call, "recording_ms", frames_ms - 1, frames_ms + 1);
}

/// The file lasts as long as the call's talk time (±100 ms).
pub fn duration_is_talk_time(c: &mut Checks, call: &Value, rec: &Recording) {
    let file_ms = rec.wav.duration_ms();
    c.int_in(
        call,
        "talk_ms",
        file_ms - DURATION_SLACK_MS,
        file_ms + DURATION_SLACK_MS,
    );
}

/// `name` on PATH, or a failure that says to install sox.
pub fn sox_program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain([Path::new("/usr/bin").join(name)])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: this test checks every recording with sox/soxi. \
                 Install the Debian package `sox` (apt-get install -y sox); CI must install \
                 it too. The test fails rather than skips without it."
            )
        })
}

/// What `soxi` says about a file, and whether `sox` decodes all of it cleanly.
pub fn sox_verdict(path: &Path, frames: usize) -> Result<String, String> {
    let soxi = sox_program("soxi");
    let ask = |flag: &str| -> Result<String, String> {
        let out = Command::new(&soxi)
            .arg(flag)
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run soxi: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "soxi {flag} {} failed ({}): {}",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let (channels, rate, bits, samples) = (ask("-c")?, ask("-r")?, ask("-b")?, ask("-s")?);
    let said = format!("soxi: {channels} channels, {rate} Hz, {bits} bits, {samples} samples");
    if (channels.as_str(), rate.as_str(), bits.as_str()) != ("2", "8000", "16")
        || samples != frames.to_string()
    {
        return Err(format!("{said}; expected 2, 8000, 16 and {frames} samples"));
    }
    let decoded = Command::new(sox_program("sox"))
        .arg(path)
        .args(["-n", "stat"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run sox: {e}"))?;
    let stderr = String::from_utf8_lossy(&decoded.stderr);
    if !decoded.status.success() || stderr.contains("WARN") || stderr.contains("FAIL") {
        return Err(format!(
            "sox {} -n stat: {} {}",
            path.display(),
            decoded.status,
            stderr
        ));
    }
    Ok(said)
}
