//! The CTI events call control publishes (`crate::events`): what each carries, built from
//! the call's state. Publishing never waits, so these are plain calls on the controller's
//! task.
//!
//! ```text
//! call.offered      a call was taken for a queue (inbound), or a callback started
//! call.ringing      an agent attempt started ringing (its first 180/183), a callback's
//!                   customer started ringing, and again each time the caller's ring
//!                   count goes up while nobody has answered (the 200 ms tick)
//! call.answered     with the rings the caller heard (the desktop apologises past target)
//! call.ended        outcome, who hung up, talk time, survey score
//! survey.completed  the survey ended: scored, no score, or the caller hung up
//! ```

use super::*;
use crate::call::record::rings_for;
use crate::events::{self, EventBus};
use serde_json::json;

pub(super) fn offered(bus: &EventBus, call: &Call) {
    let record = &call.record;
    bus.publish(
        events::CALL_OFFERED,
        json!({
            "call_id": record.id,
            "sip_call_id": record.sip_call_id,
            "direction": record.direction.as_str(),
            "caller": record.caller,
            "callee": record.callee,
            "queue": record.queue,
            "tickets": record.tickets,
        }),
    );
}

/// The caller's ring time and ring count so far (None before our first 180).
fn caller_rings(call: &Call, cadence_ms: u64) -> Option<(i64, i64)> {
    let since = call.caller_ringing?;
    let ms = Instant::now()
        .saturating_duration_since(since.mono)
        .as_millis() as i64;
    Some((ms, rings_for(ms, cadence_ms as i64)))
}

/// `call.ringing` for `agent` (None: no agent is ringing, the caller waits).
pub(super) fn ringing(bus: &EventBus, call: &mut Call, agent: Option<&str>, cadence_ms: u64) {
    let so_far = caller_rings(call, cadence_ms);
    if let Some((_, rings)) = so_far {
        call.rings_told = call.rings_told.max(rings);
    }
    let agents: Vec<&str> = if call.phase == Phase::Dialing {
        call.record.agent.as_deref().into_iter().collect()
    } else {
        call.attempts
            .iter()
            .filter(|a| a.open)
            .map(|a| a.agent.as_str())
            .collect()
    };
    // Who is being rung: the agent (an inbound call, or a callback's first leg), or the
    // customer a callback calls.
    let leg = if call.phase == Phase::Dialing {
        "customer"
    } else {
        "agent"
    };
    let record = &call.record;
    bus.publish(
        events::CALL_RINGING,
        json!({
            "call_id": record.id,
            "direction": record.direction.as_str(),
            "queue": record.queue,
            "leg": leg,
            "agent": agent,
            "agents": agents,
            "rings": so_far.map(|(_, rings)| rings),
            "ring_ms": so_far.map(|(ms, _)| ms),
        }),
    );
}

pub(super) fn answered(bus: &EventBus, record: &CallRecord, target: u32) {
    bus.publish(
        events::CALL_ANSWERED,
        json!({
            "call_id": record.id,
            "direction": record.direction.as_str(),
            "queue": record.queue,
            "agent": record.agent,
            "caller": record.caller,
            "caller_ring_ms": record.caller_ring_ms,
            "rings": record.rings,
            "target": target,
            "three_ring_ok": record.three_ring_ok,
            "over_limit": record.over_limit,
        }),
    );
}

pub(super) fn ended(bus: &EventBus, record: &CallRecord) {
    bus.publish(
        events::CALL_ENDED,
        json!({
            "call_id": record.id,
            "direction": record.direction.as_str(),
            "queue": record.queue,
            "agent": record.agent,
            "outcome": record.outcome.as_str(),
            "hangup_side": record.hangup_side.map(HangupSide::as_str),
            "caller_ring_ms": record.caller_ring_ms,
            "rings": record.rings,
            "talk_ms": record.talk_ms,
            "survey_score": record.survey_score,
            "recorded": record.recording_path.is_some(),
            "tickets": record.tickets,
        }),
    );
}

/// `result`: `scored`, `no_score` (no valid key in time) or `hung_up`.
pub(super) fn survey_completed(bus: &EventBus, record: &CallRecord, result: &str) {
    bus.publish(
        events::SURVEY_COMPLETED,
        json!({
            "call_id": record.id,
            "queue": record.queue,
            "agent": record.agent,
            "score": record.survey_score,
            "result": result,
            "tickets": record.tickets,
        }),
    );
}

impl Controller {
    /// On every tick: a `call.ringing` for each call whose caller's ring count went up
    /// since the last one told (nobody has answered yet).
    pub(super) fn tick_rings(&mut self) {
        let cadence_ms = self.config.rings.cadence_ms;
        for call in self.calls.values_mut() {
            let waiting = match call.phase {
                Phase::Routing => call.callback.is_none(),
                Phase::Dialing => true,
                _ => false,
            };
            if !waiting {
                continue;
            }
            let Some((_, rings)) = caller_rings(call, cadence_ms) else {
                continue;
            };
            if rings <= call.rings_told {
                continue;
            }
            // The agent rung most recently (ring-all: `agents` lists them all).
            let agent = if call.phase == Phase::Dialing {
                call.record.agent.clone()
            } else {
                call.attempts
                    .iter()
                    .rev()
                    .find(|a| a.open)
                    .map(|a| a.agent.clone())
            };
            ringing(&self.events, call, agent.as_deref(), cadence_ms);
        }
    }
}
