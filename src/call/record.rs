//! The call record: what the store keeps and the API serves for every call, answered or
//! not. Call control fills it in as the call goes; times are wall-clock epoch
//! milliseconds (durations are measured on the monotonic clock and stored as ms).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// How a call ended, for `threering_calls_total{outcome}` and the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Still in progress (ringing or talking).
    Active,
    /// An agent answered.
    Answered,
    /// The caller hung up before an agent answered.
    Abandoned,
    /// No agent answered within max_wait_ms (and no overflow took it): caller got 480.
    NoAgent,
    /// Refused before routing (unknown number, bad request, overload, shutdown).
    Rejected,
    /// Broke down (transport failure, timeout) before being answered.
    Failed,
    /// An outbound call (a callback) the customer did not answer: busy, declined, no
    /// answer or unreachable.
    NotReached,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Active => "active",
            CallOutcome::Answered => "answered",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::NoAgent => "no_agent",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Failed => "failed",
            CallOutcome::NotReached => "not_reached",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupSide {
    Caller,
    Agent,
    System,
}

impl HangupSide {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupSide::Caller => "caller",
            HangupSide::Agent => "agent",
            HangupSide::System => "system",
        }
    }
}

/// How one attempt to reach an agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// Still ringing.
    Ringing,
    Answered,
    /// Rang for ring_timeout_ms; we cancelled it.
    NoAnswer,
    /// 486 / 600.
    Busy,
    /// 603, 480 or another final error from the agent.
    Rejected,
    /// We cancelled it: the caller gave up or another agent answered first.
    Cancelled,
    /// No response at all / transport error.
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Ringing => "ringing",
            AttemptOutcome::Answered => "answered",
            AttemptOutcome::NoAnswer => "no-answer",
            AttemptOutcome::Busy => "busy",
            AttemptOutcome::Rejected => "rejected",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Failed => "failed",
        }
    }
}

/// One agent attempt within a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentAttempt {
    pub agent: String,
    /// When we sent the INVITE to the agent (epoch ms).
    pub invited_at: i64,
    /// When ringing started: first 180/183 from the agent, or the INVITE if none came.
    pub ring_started_at: i64,
    /// When the attempt ended (answer, final error, our CANCEL, another agent answering).
    pub ended_at: Option<i64>,
    /// ended_at − ring_started_at, measured on the monotonic clock.
    pub ring_ms: Option<i64>,
    pub outcome: AttemptOutcome,
    /// SIP status that ended it, if any.
    pub sip_status: Option<u16>,
}

/// A stretch of a recording that was paused (silence), in ms from the recording's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PausedSpan {
    pub start_ms: i64,
    /// None while still paused.
    pub end_ms: Option<i64>,
}

/// What is known about a call's recording file (`recording_path` says where it is).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordingMeta {
    /// Hex SHA-256 of the whole WAV file, once it is closed (or repaired).
    pub sha256: Option<String>,
    /// Duration of the audio in the file.
    pub duration_ms: Option<i64>,
    pub bytes: Option<i64>,
    /// The recording stopped before the call ended: the daemon stopped without closing the
    /// file (crash, kill -9; repaired at the next start, ending where the last checkpoint
    /// did) or a write failed (volume full; repaired at once, ending where writing failed).
    pub interrupted: bool,
    pub paused_spans: Vec<PausedSpan>,
}

/// Everything known about one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Our id, unique across nodes: also the recording file name.
    pub id: String,
    /// Call-ID of the caller's leg.
    pub sip_call_id: String,
    pub direction: Direction,
    /// Caller number / user (From).
    pub caller: String,
    /// Number dialled (Request-URI user).
    pub callee: String,
    pub queue: Option<String>,
    /// The agent who answered.
    pub agent: Option<String>,
    pub started_at: i64,
    /// When our 180 went to the caller (the caller starts hearing ringing).
    pub caller_ringing_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// From our 180 to the caller to our 200 to the caller (answered calls), or to the
    /// caller's CANCEL (abandoned ones).
    pub caller_ring_ms: Option<i64>,
    /// floor(caller_ring_ms / cadence_ms) + 1 for answered calls.
    pub rings: Option<i64>,
    /// rings <= target.
    pub three_ring_ok: Option<bool>,
    /// rings > limit.
    pub over_limit: Option<bool>,
    pub outcome: CallOutcome,
    pub hangup_side: Option<HangupSide>,
    /// From answer to hang-up.
    pub talk_ms: Option<i64>,
    pub attempts: Vec<AgentAttempt>,
    /// Recording file path relative to the recordings root (`YYYY/MM/DD/<id>.wav`).
    pub recording_path: Option<String>,
    pub recording: RecordingMeta,
    pub survey_score: Option<i64>,
    /// The caller was handed to the satisfaction survey (then "the agent hung up first"
    /// is a hand-off, not a hang-up), whether or not a key was pressed.
    #[serde(default)]
    pub survey_offered: bool,
    /// Ticket ids linked to the call (tickets issue; `X-Ticket-ID` is kept here now).
    pub tickets: Vec<String>,
}

impl CallRecord {
    /// A minimal record for unit tests: an inbound call to the consult queue that the
    /// caller abandoned after a second, started at `started_at`.
    #[cfg(test)]
    pub(crate) fn abandoned_for_test(id: &str, started_at: i64) -> CallRecord {
        CallRecord {
            id: id.to_owned(),
            sip_call_id: format!("{id}@test"),
            direction: Direction::Inbound,
            caller: "13800138000".into(),
            callee: "4008001234".into(),
            queue: Some("consult".into()),
            agent: None,
            started_at,
            caller_ringing_at: None,
            answered_at: None,
            ended_at: Some(started_at + 1000),
            caller_ring_ms: None,
            rings: None,
            three_ring_ok: None,
            over_limit: None,
            outcome: CallOutcome::Abandoned,
            hangup_side: None,
            talk_ms: None,
            attempts: Vec::new(),
            recording_path: None,
            recording: RecordingMeta::default(),
            survey_score: None,
            survey_offered: false,
            tickets: Vec::new(),
        }
    }

    /// Whether the agent's leaving was a hand-off to the survey (records written before
    /// `survey_offered` existed tell it by the score alone).
    pub fn handed_to_survey(&self) -> bool {
        self.survey_offered || self.survey_score.is_some()
    }
}

/// Rings heard for an answer after `ms` (DESIGN.md "Ring timing"): the first burst is
/// at t = 0, so an answer at d ms falls on ring floor(d / cadence) + 1.
pub fn rings_for(ms: i64, cadence_ms: i64) -> i64 {
    if cadence_ms <= 0 {
        return 1;
    }
    ms.max(0) / cadence_ms + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_counts_follow_the_cadence() {
        assert_eq!(rings_for(0, 5000), 1);
        assert_eq!(rings_for(4999, 5000), 1);
        assert_eq!(rings_for(5000, 5000), 2);
        assert_eq!(rings_for(14_999, 5000), 3);
        assert_eq!(rings_for(15_000, 5000), 4);
        assert_eq!(rings_for(2400, 1000), 3);
        assert_eq!(rings_for(3100, 1000), 4);
    }
}
