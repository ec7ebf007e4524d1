//! `GET /api/calls/{id}/recording`: the call's WAV file, streamed from disk, with single
//! byte ranges (RFC 9110 §14) so that a browser's audio player can seek. Paths come from
//! the store and must stay inside the recordings root.

use std::path::{Component, Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::auth::ClientIp;
use super::{ApiCaller, ApiError, AppState};
use crate::call::{Control, RecordingRefused};
use axum::{Extension, Json};
use serde_json::json;

/// A requested byte range, resolved against the file length: `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// What a `Range` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No Range header, or one we serve whole (several ranges, another unit).
    Whole,
    Partial(ByteRange),
    /// Syntactically a byte range, but outside the file: 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` against a file of `len` bytes.
pub fn parse_range(value: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        (true, false) => last.parse::<u64>().ok().map(|n| {
            if n == 0 {
                None
            } else {
                Some((len.saturating_sub(n), len.saturating_sub(1)))
            }
        }),
        (false, true) => first
            .parse::<u64>()
            .ok()
            .map(|a| Some((a, len.saturating_sub(1)))),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => Some(Some((a, b.min(len.saturating_sub(1))))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => RangeRequest::Whole,
        Some(None) => RangeRequest::Unsatisfiable,
        Some(Some((start, end))) if len == 0 || start >= len || start > end => {
            RangeRequest::Unsatisfiable
        }
        Some(Some((start, end))) => RangeRequest::Partial(ByteRange { start, end }),
    }
}

/// The recording's file under `root`, refusing anything that would leave it.
pub(super) fn inside_root(root: &FsPath, relative: &str) -> Option<PathBuf> {
    let rel = FsPath::new(relative);
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| root.join(rel))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound {
        what: format!("recording of call {id}"),
    };
    let call = state.store.get_call(&id).await?.ok_or_else(not_found)?;
    caller.check_call(&id, call.agent.as_deref())?;
    let relative = call.recording_path.ok_or_else(not_found)?;
    let path = inside_root(&state.recordings, &relative).ok_or_else(not_found)?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| not_found())?;
    let len = file.metadata().await.map_err(|_| not_found())?.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match parse_range(range, len) {
        RangeRequest::Whole => (StatusCode::OK, 0, len),
        RangeRequest::Partial(r) => (StatusCode::PARTIAL_CONTENT, r.start, r.end - r.start + 1),
        RangeRequest::Unsatisfiable => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    // Every playback or download is in the audit log before a byte of it is sent; if
    // the log cannot be written, nothing is sent.
    let mut entry = super::users::entry(&caller, ip, "recording.play").target(&id);
    if let Some(range) = range {
        entry = entry.detail(range);
    }
    state.users.audit(entry).await?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|_| not_found())?;
    let body = Body::from_stream(ReaderStream::new(file.take(count)));
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "audio/wav")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, count);
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + count - 1;
        response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    Ok(response
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// `POST /api/calls/{id}/recording/pause`: the recording is silence from now on.
pub async fn pause(
    state: State<AppState>,
    caller: Extension<ApiCaller>,
    id: Path<String>,
) -> Result<Response, ApiError> {
    set_paused(state, caller, id, true).await
}

/// `POST /api/calls/{id}/recording/resume`.
pub async fn resume(
    state: State<AppState>,
    caller: Extension<ApiCaller>,
    id: Path<String>,
) -> Result<Response, ApiError> {
    set_paused(state, caller, id, false).await
}

async fn set_paused(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
    pause: bool,
) -> Result<Response, ApiError> {
    super::calls::check_own_call(&state, &caller, &id).await?;
    let call_id = id.clone();
    let answer = super::ask_control(&state, |reply| Control::Recording {
        call_id,
        pause,
        reply,
    })
    .await?;
    match answer {
        Ok(spans) => {
            Ok(Json(json!({ "id": id, "paused": pause, "paused_spans": spans })).into_response())
        }
        Err(RecordingRefused::NoSuchCall) => Err(ApiError::NotFound {
            what: format!("call in progress {id}"),
        }),
        Err(e @ RecordingRefused::NotRecording) => Err(ApiError::Conflict {
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |s: &str| parse_range(Some(s), 1000);
        assert_eq!(
            r("bytes=0-99"),
            RangeRequest::Partial(ByteRange { start: 0, end: 99 })
        );
        assert_eq!(
            r("bytes=900-"),
            RangeRequest::Partial(ByteRange {
                start: 900,
                end: 999
            })
        );
        assert_eq!(
            r("bytes=-100"),
            RangeRequest::Partial(ByteRange {
                start: 900,
                end: 999
            })
        );
        assert_eq!(
            r("bytes=990-2000"),
            RangeRequest::Partial(ByteRange {
                start: 990,
                end: 999
            })
        );
        assert_eq!(r("bytes=1000-"), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=-0"), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=5-1"), RangeRequest::Whole);
        assert_eq!(r("bytes=0-1,5-6"), RangeRequest::Whole);
        assert_eq!(r("items=0-1"), RangeRequest::Whole);
        assert_eq!(parse_range(None, 10), RangeRequest::Whole);
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let root = FsPath::new("/rec");
        assert_eq!(
            inside_root(root, "2026/11/24/a.wav"),
            Some(PathBuf::from("/rec/2026/11/24/a.wav"))
        );
        assert_eq!(inside_root(root, "../etc/passwd"), None);
        assert_eq!(inside_root(root, "/etc/passwd"), None);
        assert_eq!(inside_root(root, "2026/../../x"), None);
    }
}
