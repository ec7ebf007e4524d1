//! Helpers shared by the ticket tests (`tickets_api`, `archive_cli`): call records with
//! recordings on disk, SHA-256 of files, and ticket ids. Included with `#[path]`; each
//! test binary uses a different subset.
#![allow(dead_code)]

use std::path::Path;

use sha2::{Digest, Sha256};
use threering::call::record::{
    AgentAttempt, AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide, RecordingMeta,
};

/// The day the test recordings are filed under (relative to the recordings root).
pub const RECORDING_DAY: &str = "2026/11/24";

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// A marker that appears in the recording of `call_id` and nowhere else in a bundle.
pub fn recording_marker(call_id: &str) -> Vec<u8> {
    format!("<<RECORDING-MARKER:{call_id}>>").into_bytes()
}

/// A WAV-ish file: a 44-byte RIFF/WAVE header (8 kHz mono 16-bit) and `data_len` bytes
/// of a sample pattern, with [`recording_marker`] in the middle of the data.
pub fn wav_bytes(call_id: &str, data_len: usize) -> Vec<u8> {
    let marker = recording_marker(call_id);
    let data_len = data_len.max(marker.len() + 2);
    let mut out = Vec::with_capacity(44 + data_len);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    let mut data: Vec<u8> = (0..data_len).map(|i| (i % 251) as u8).collect();
    let at = data_len / 2;
    data[at..at + marker.len()].copy_from_slice(&marker);
    out.extend_from_slice(&data);
    out
}

/// Writes the recording of `call_id` at `<recordings>/2026/11/24/<call_id>.wav`; returns
/// its path relative to the recordings root and its SHA-256.
pub fn write_recording(recordings: &Path, call_id: &str, data_len: usize) -> (String, String) {
    let relative = format!("{RECORDING_DAY}/{call_id}.wav");
    let path = recordings.join(&relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = wav_bytes(call_id, data_len);
    std::fs::write(&path, &bytes).unwrap();
    (relative, sha256_hex(&bytes))
}

/// An answered inbound call to the consult queue, started at `started_at` (epoch ms),
/// with a finished recording when `recording` is `Some((relative path, sha256))`.
pub fn call_record(
    id: &str,
    started_at: i64,
    recording: Option<(String, String)>,
    tickets: Vec<String>,
) -> CallRecord {
    let (recording_path, sha256) = match recording {
        Some((path, sha)) => (Some(path), Some(sha)),
        None => (None, None),
    };
    CallRecord {
        id: id.to_owned(),
        sip_call_id: format!("{id}@pbx.example.com"),
        direction: Direction::Inbound,
        caller: "13800138000".to_owned(),
        callee: "4008001234".to_owned(),
        queue: Some("consult".to_owned()),
        agent: Some("1002".to_owned()),
        started_at,
        caller_ringing_at: Some(started_at + 50),
        answered_at: Some(started_at + 50 + 6_200),
        ended_at: Some(started_at + 50 + 6_200 + 61_000),
        caller_ring_ms: Some(6_200),
        rings: Some(2),
        three_ring_ok: Some(true),
        over_limit: Some(false),
        outcome: CallOutcome::Answered,
        hangup_side: Some(HangupSide::Agent),
        talk_ms: Some(61_000),
        attempts: vec![AgentAttempt {
            agent: "1002".to_owned(),
            invited_at: started_at + 60,
            ring_started_at: started_at + 80,
            ended_at: Some(started_at + 6_250),
            ring_ms: Some(6_170),
            outcome: AttemptOutcome::Answered,
            sip_status: Some(200),
        }],
        recording_path,
        survey_score: None,
        recording: RecordingMeta {
            sha256,
            duration_ms: Some(61_000),
            bytes: None,
            interrupted: false,
            paused_spans: Vec::new(),
        },
        tickets,
    }
}

/// Whether `id` looks like `T-YYYYMMDD-NNNN`.
pub fn is_ticket_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 3
        && parts[0] == "T"
        && parts[1].len() == 8
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && parts[2].len() == 4
        && parts[2].bytes().all(|b| b.is_ascii_digit())
}

/// `(YYYYMMDD, number)` of a ticket id.
pub fn id_parts(id: &str) -> (String, u32) {
    assert!(is_ticket_id(id), "{id:?} is not T-YYYYMMDD-NNNN");
    let parts: Vec<&str> = id.split('-').collect();
    (parts[1].to_owned(), parts[2].parse().unwrap())
}

/// The bundle path relative to the archive root: `YYYY/MM/DD/<kind>/<id>.tar`, dated by
/// the day in the ticket's id (the local day it was accepted).
pub fn bundle_relative(kind: &str, id: &str) -> String {
    let (day, _) = id_parts(id);
    format!(
        "{}/{}/{}/{kind}/{id}.tar",
        &day[0..4],
        &day[4..6],
        &day[6..8]
    )
}

/// The local (+08:00, the embedded calendar) date of an epoch-ms time, as `YYYYMMDD`.
pub fn local_day(epoch_ms: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .unwrap()
        .with_timezone(&offset)
        .format("%Y%m%d")
        .to_string()
}

/// Now, epoch ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
