//! Helpers shared by the API tests (`tickets_api`, `tickets_archive_api`, `archive_cli`,
//! `qa_api`, `ui_pages`): raw HTTP/1.1 requests, call records with recordings on disk,
//! SHA-256 of files, and ticket ids; [`server`] is the in-process tickets API server of
//! `tickets_api` and `tickets_archive_api`. Included with `#[path]`; each test binary uses
//! a different subset.
#![allow(dead_code)]

pub mod server;

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use threering::call::record::{
    AgentAttempt, AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide, RecordingMeta,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
        survey_offered: false,
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

/// An HTTP answer: status, headers and the body as text.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `problems` of a 400 answer, joined, after checking the status and `error`.
    pub fn problems(&self) -> String {
        assert_eq!(self.status, 400, "{}", self.body);
        let body = self.json();
        assert!(body["error"].is_string(), "{body}");
        body["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("no problems in {body}"))
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One request over a fresh connection, `Connection: close` so the reply ends at EOF.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let content = match body {
        Some(b) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ),
        None => String::new(),
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}{content}\r\n{}",
        body.unwrap_or("")
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut raw),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {path}: no reply within 20 s"))
    .unwrap();
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}
