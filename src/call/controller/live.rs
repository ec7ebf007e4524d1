//! What is going on right now, for the wallboard: every call in progress (waiting,
//! ringing with the rings the caller has heard so far, connected, in the survey) and
//! every agent's state. Read on call control's own task, so it is consistent.

use serde::Serialize;

use super::*;

/// One call in progress.
#[derive(Debug, Clone, Serialize)]
pub struct LiveCall {
    pub id: String,
    pub queue: String,
    pub caller: String,
    pub direction: &'static str,
    /// waiting (no agent ringing), ringing, dialing (a callback's customer), connected,
    /// survey
    pub phase: &'static str,
    pub started_at: i64,
    /// Since the call came in.
    pub waited_ms: i64,
    /// Since the caller started hearing ringing.
    pub ring_ms: Option<i64>,
    /// Rings the caller has heard so far (or heard before the answer).
    pub rings: Option<i64>,
    /// Agents being rung now.
    pub ringing: Vec<String>,
    /// The agent who answered.
    pub agent: Option<String>,
}

/// One agent.
#[derive(Debug, Clone, Serialize)]
pub struct LiveAgent {
    pub id: String,
    pub name: String,
    /// available, ringing, on_call, wrap_up, paused, backoff
    pub state: &'static str,
    /// Why the agent is paused (or will be, after the current call).
    pub pause_reason: Option<String>,
    pub registered: bool,
    pub calls_answered: u64,
}

/// The whole picture at `at` (epoch ms).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub at: i64,
    pub cadence_ms: u64,
    pub target: u32,
    pub limit: u32,
    pub calls: Vec<LiveCall>,
    pub agents: Vec<LiveAgent>,
}

impl Controller {
    pub(super) fn snapshot(&self) -> Snapshot {
        let now = Stamp::now();
        let rings = &self.config.rings;
        let mut calls: Vec<LiveCall> = self
            .calls
            .values()
            .map(|call| {
                let ringing: Vec<String> = call
                    .attempts
                    .iter()
                    .filter(|a| a.open)
                    .map(|a| a.agent.clone())
                    .collect();
                let phase = match call.phase {
                    Phase::Routing if ringing.is_empty() => "waiting",
                    Phase::Routing => "ringing",
                    Phase::Dialing => "dialing",
                    Phase::Connected => "connected",
                    Phase::Survey => "survey",
                    Phase::Ended => "ended",
                };
                let ring_until = call.answered.unwrap_or(now);
                let ring_ms = call.caller_ringing.map(|r| r.ms_until(&ring_until));
                LiveCall {
                    id: call.record.id.clone(),
                    queue: call.queue.clone(),
                    caller: call.record.caller.clone(),
                    direction: call.record.direction.as_str(),
                    phase,
                    started_at: call.started.wall,
                    waited_ms: call.started.ms_until(&now),
                    ring_ms,
                    rings: ring_ms
                        .map(|ms| crate::call::record::rings_for(ms, rings.cadence_ms as i64)),
                    ringing,
                    agent: call.record.agent.clone(),
                }
            })
            .collect();
        calls.sort_by_key(|c| c.started_at);
        let mono = now.mono;
        let agents = self
            .config
            .agents
            .iter()
            .filter_map(|a| {
                let agent = self.board.get(&a.id)?;
                let state = agent.state_name(mono);
                Some(LiveAgent {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    state,
                    pause_reason: agent.pause_reason.clone(),
                    registered: agent.registered || agent.fixed_contact,
                    calls_answered: agent.calls_answered,
                })
            })
            .collect();
        Snapshot {
            at: now.wall,
            cadence_ms: rings.cadence_ms,
            target: rings.target,
            limit: rings.limit,
            calls,
            agents,
        }
    }
}
