//! `GET /api/calls` and `GET /api/calls/{id}`: call records as JSON. The field names are
//! a contract (DESIGN.md "Contract"); fields may be added, never renamed. Times are
//! RFC 3339 UTC with milliseconds (`2025-03-01T08:30:00.125Z`), durations integer ms.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;

use super::{ApiCaller, ApiError, AppState};
use crate::call::record::{AgentAttempt, CallRecord, PausedSpan};
use crate::store::CallFilter;

/// Most calls one request may ask for; the store caps at the same number.
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CallList {
    pub calls: Vec<CallView>,
}

/// One call as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CallView {
    pub id: String,
    pub sip_call_id: String,
    pub direction: &'static str,
    pub caller: String,
    pub callee: String,
    pub queue: Option<String>,
    /// The agent who answered.
    pub agent: Option<String>,
    pub outcome: &'static str,
    pub started_at: Option<String>,
    pub caller_ringing_at: Option<String>,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub caller_ring_ms: Option<i64>,
    pub rings: Option<i64>,
    pub three_ring_ok: Option<bool>,
    pub over_limit: Option<bool>,
    pub attempts: Vec<AttemptView>,
    pub hangup_side: Option<&'static str>,
    pub talk_ms: Option<i64>,
    /// URL of the recording, when there is one.
    pub recording: Option<String>,
    /// Hex SHA-256 of the closed WAV file.
    pub recording_sha256: Option<String>,
    pub recording_ms: Option<i64>,
    pub recording_bytes: Option<i64>,
    /// The recording stopped before the call ended: the daemon died (the file was repaired
    /// at the next start) or a write failed, e.g. the recordings volume was full (the file
    /// was repaired at once). The file holds the audio up to that point.
    pub interrupted: bool,
    /// Spans of the recording paused for sensitive data (silence), ms from its start.
    pub paused_spans: Vec<PausedSpan>,
    pub survey_score: Option<i64>,
    /// The caller was handed to the survey (scored or not).
    pub survey_offered: bool,
    pub tickets: Vec<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AttemptView {
    pub agent: String,
    pub ring_ms: Option<i64>,
    pub outcome: &'static str,
    pub invited_at: Option<String>,
    pub ring_started_at: Option<String>,
    pub ended_at: Option<String>,
    pub sip_status: Option<u16>,
}

impl From<CallRecord> for CallView {
    fn from(call: CallRecord) -> CallView {
        let recording = call
            .recording_path
            .as_ref()
            .map(|_| format!("/api/calls/{}/recording", encode_path_segment(&call.id)));
        CallView {
            direction: call.direction.as_str(),
            outcome: call.outcome.as_str(),
            started_at: time(Some(call.started_at)),
            caller_ringing_at: time(call.caller_ringing_at),
            answered_at: time(call.answered_at),
            ended_at: time(call.ended_at),
            hangup_side: call.hangup_side.map(|side| side.as_str()),
            attempts: call.attempts.iter().map(AttemptView::from).collect(),
            recording,
            recording_sha256: call.recording.sha256,
            recording_ms: call.recording.duration_ms,
            recording_bytes: call.recording.bytes,
            interrupted: call.recording.interrupted,
            paused_spans: call.recording.paused_spans,
            id: call.id,
            sip_call_id: call.sip_call_id,
            caller: call.caller,
            callee: call.callee,
            queue: call.queue,
            agent: call.agent,
            caller_ring_ms: call.caller_ring_ms,
            rings: call.rings,
            three_ring_ok: call.three_ring_ok,
            over_limit: call.over_limit,
            talk_ms: call.talk_ms,
            survey_score: call.survey_score,
            survey_offered: call.survey_offered,
            tickets: call.tickets,
        }
    }
}

impl From<&AgentAttempt> for AttemptView {
    fn from(attempt: &AgentAttempt) -> AttemptView {
        AttemptView {
            agent: attempt.agent.clone(),
            ring_ms: attempt.ring_ms,
            outcome: attempt.outcome.as_str(),
            invited_at: time(Some(attempt.invited_at)),
            ring_started_at: time(Some(attempt.ring_started_at)),
            ended_at: time(attempt.ended_at),
            sip_status: attempt.sip_status,
        }
    }
}

/// Epoch ms as RFC 3339 UTC with milliseconds; `None` for a time chrono cannot show.
fn time(epoch_ms: Option<i64>) -> Option<String> {
    let at = DateTime::from_timestamp_millis(epoch_ms?)?;
    Some(at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any call id makes
/// a valid URL path segment.
fn encode_path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<CallList>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::BadParam {
        param: "query".to_owned(),
        message: e.body_text(),
    })?;
    let mut filter = filter_from_params(&params)?;
    if let Some(own) = caller.agent_scope() {
        // An agent lists only the calls it answered.
        if filter.agent.as_deref().is_some_and(|asked| asked != own) {
            return Err(ApiError::Forbidden {
                message: "an agent may list only its own calls".into(),
            });
        }
        filter.agent = Some(own.to_owned());
    }
    let calls = state.store.list_calls(&filter).await?;
    Ok(Json(CallList {
        calls: calls.into_iter().map(CallView::from).collect(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
) -> Result<Json<CallView>, ApiError> {
    match state.store.get_call(&id).await? {
        Some(call) => {
            caller.check_call(&id, call.agent.as_deref())?;
            Ok(Json(CallView::from(call)))
        }
        None => Err(ApiError::NotFound {
            what: format!("call {id:?}"),
        }),
    }
}

/// For an agent caller, 403 unless call `id` is stored as answered by it (a call in
/// progress is stored once answered). Other roles pass without a lookup.
pub(super) async fn check_own_call(
    state: &AppState,
    caller: &ApiCaller,
    id: &str,
) -> Result<(), ApiError> {
    if caller.agent_scope().is_none() {
        return Ok(());
    }
    let call = state.store.get_call(id).await?;
    caller.check_call(id, call.as_ref().and_then(|c| c.agent.as_deref()))
}

/// The store filter for a query string. Empty values count as absent (an HTML form sends
/// every field); unknown parameters are refused, so a misspelt filter is not silently
/// ignored and a list of every call returned instead.
fn filter_from_params(params: &HashMap<String, String>) -> Result<CallFilter, ApiError> {
    let mut filter = CallFilter::default();
    for (name, value) in params {
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "from" => filter.from = Some(parse_time(name, value)?),
            "to" => filter.to = Some(parse_time(name, value)?),
            "agent" => filter.agent = Some(value.clone()),
            "queue" => filter.queue = Some(value.clone()),
            "ticket" => filter.ticket = Some(value.clone()),
            "violation" => filter.violation = Some(parse_bool(name, value)?),
            "limit" => filter.limit = Some(parse_limit(name, value)?),
            _ => {
                return Err(bad_param(
                    name,
                    "unknown parameter (known: from, to, agent, queue, ticket, violation, limit)",
                ))
            }
        }
    }
    Ok(filter)
}

/// RFC 3339 (`2025-03-01T08:00:00+08:00`) or epoch milliseconds.
pub(super) fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.timestamp_millis())
        .map_err(|_| {
            bad_param(
                name,
                format!(
                    "{value:?} is neither RFC 3339 (2025-03-01T08:00:00Z) nor epoch milliseconds"
                ),
            )
        })
}

pub(super) fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad_param(
            name,
            format!("{value:?}: expected true or false"),
        )),
    }
}

pub(super) fn parse_limit(name: &str, value: &str) -> Result<u32, ApiError> {
    match value.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(bad_param(
            name,
            format!("{value:?}: expected a number from 1 to {MAX_LIMIT}"),
        )),
    }
}

pub(super) fn bad_param(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadParam {
        param: name.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(
            time(Some(1_740_817_800_125)).as_deref(),
            Some("2025-03-01T08:30:00.125Z")
        );
        assert_eq!(time(None), None);
    }

    #[test]
    fn query_times_take_rfc3339_or_epoch_ms() {
        let filter = filter_from_params(&params(&[
            ("from", "2025-03-01T16:30:00.125+08:00"),
            ("to", "1740817900000"),
            ("agent", ""),
        ]))
        .unwrap();
        assert_eq!(filter.from, Some(1_740_817_800_125));
        assert_eq!(filter.to, Some(1_740_817_900_000));
        assert_eq!(filter.agent, None);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (name, value) in [
            ("from", "yesterday"),
            ("violation", "yes"),
            ("limit", "0"),
            ("limit", "1001"),
            ("agnet", "1001"),
        ] {
            match filter_from_params(&params(&[(name, value)])) {
                Err(ApiError::BadParam { param, .. }) => assert_eq!(param, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn ids_are_encoded_in_urls() {
        assert_eq!(encode_path_segment("n1-20250301-0001"), "n1-20250301-0001");
        assert_eq!(encode_path_segment("a/b c"), "a%2Fb%20c");
    }
}
