//! One call as call control tracks it: the caller's leg, the agent attempts, the media
//! session, and the record being filled in. Timing uses the monotonic clock for
//! durations and the wall clock for dates (DESIGN.md "Ring timing").

use super::record::{AgentAttempt, AttemptOutcome, CallOutcome, CallRecord, HangupSide};
use crate::media::MediaSession;
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{ClientTx, ServerTx, Target};
use crate::sip::transport::Peer;
use crate::sip::Request;
use std::collections::HashSet;
use tokio::time::Instant;

pub fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A moment on both clocks: the wall clock for the record, the monotonic one for
/// durations (a wall-clock jump must not distort ring times).
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub wall: i64,
    pub mono: Instant,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp {
            wall: wall_ms(),
            mono: Instant::now(),
        }
    }

    pub fn ms_until(&self, later: &Stamp) -> i64 {
        later.mono.saturating_duration_since(self.mono).as_millis() as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Looking for an agent: attempts ringing or waiting for one to be free.
    Routing,
    /// A callback: the agent answered; the customer is being rung through a trunk.
    Dialing,
    Connected,
    /// The agent hung up; the caller hears the satisfaction survey.
    Survey,
    Ended,
}

/// One agent attempt in progress or done.
pub struct Attempt {
    pub agent: String,
    pub tx: ClientTx,
    /// The INVITE as we built it (before the endpoint added its Via).
    pub invite: Request,
    pub target: Target,
    pub invited: Stamp,
    pub ring_started: Option<Stamp>,
    pub ended: Option<Stamp>,
    pub outcome: AttemptOutcome,
    pub sip_status: Option<u16>,
    /// Generation of its ring timer, so a stale timer does nothing.
    pub open: bool,
}

impl Attempt {
    /// Ring start: the first 180/183, or the INVITE if none came.
    pub fn ring_start(&self) -> Stamp {
        self.ring_started.unwrap_or(self.invited)
    }

    pub fn finish(&mut self, outcome: AttemptOutcome, status: Option<u16>) {
        if !self.open {
            return;
        }
        self.open = false;
        self.outcome = outcome;
        self.sip_status = status;
        self.ended = Some(Stamp::now());
    }

    pub fn to_record(&self) -> AgentAttempt {
        let start = self.ring_start();
        AgentAttempt {
            agent: self.agent.clone(),
            invited_at: self.invited.wall,
            ring_started_at: start.wall,
            ended_at: self.ended.map(|e| e.wall),
            ring_ms: self.ended.map(|e| start.ms_until(&e)),
            outcome: self.outcome,
            sip_status: self.sip_status,
        }
    }
}

pub struct SurveyState {
    pub digits: tokio::sync::mpsc::Sender<char>,
    pub task: tokio::task::JoinHandle<()>,
}

pub struct Call {
    pub key: u64,
    pub record: CallRecord,
    pub phase: Phase,
    pub queue: String,
    /// The caller's INVITE transaction; None for a callback (we called the customer).
    pub caller_tx: Option<ServerTx>,
    pub caller_invite: Request,
    pub caller_peer: Peer,
    /// Our To tag towards the caller.
    pub caller_tag: String,
    pub caller_dialog: Option<Dialog>,
    /// When our 180 went to the caller.
    pub caller_ringing: Option<Stamp>,
    pub started: Stamp,
    pub answered: Option<Stamp>,
    pub media: std::sync::Arc<MediaSession>,
    pub attempts: Vec<Attempt>,
    pub tried: HashSet<String>,
    /// The answering agent's dialog and where to send to it.
    pub agent_dialog: Option<(Dialog, Target)>,
    /// Bumped on overflow so the old queue's max-wait timer is ignored.
    pub wait_generation: u32,
    /// Record this call when it is answered (queue policy and `X-Record`).
    pub recording_wanted: bool,
    /// The recording in progress, from the answer on.
    pub recorder: Option<crate::recording::Recorder>,
    /// The codec and payload type the caller was answered with (prompts are sent in it).
    pub caller_codec: Option<(crate::media::prompt::PromptCodec, u8)>,
    /// When the agent left (the survey began): talk time ends there.
    pub agent_left: Option<Stamp>,
    /// The survey in progress: where the caller's keys go, and its task.
    pub survey: Option<SurveyState>,
    /// A callback to a customer (the API started it for a ticket): the customer leg.
    pub callback: Option<CallbackLeg>,
    /// The caller's ring count last told in a `call.ringing` event (0: none yet).
    pub rings_told: i64,
}

/// The customer leg of a callback. The "caller" side of the call is the customer:
/// `caller_invite` is the INVITE we send them, `caller_dialog` its dialog once answered.
pub struct CallbackLeg {
    pub number: String,
    /// The trunk the customer is called through.
    pub trunk: crate::config::TrunkConfig,
    pub target: Target,
    /// The customer INVITE in flight.
    pub tx: Option<ClientTx>,
    /// Digest credentials were sent once (a second challenge fails the call).
    pub authenticated: bool,
    /// The SIP status the customer leg failed with.
    pub failed_status: Option<u16>,
}

impl Call {
    /// Closes every attempt still ringing as cancelled; returns them for CANCEL.
    pub fn close_open_attempts(&mut self) -> Vec<(ClientTx, String)> {
        self.attempts
            .iter_mut()
            .filter(|a| a.open)
            .map(|a| {
                a.finish(AttemptOutcome::Cancelled, None);
                (a.tx, a.agent.clone())
            })
            .collect()
    }

    pub fn ringing_attempts(&self) -> usize {
        self.attempts.iter().filter(|a| a.open).count()
    }

    /// Fills the record's derived fields from the call's state.
    pub fn sync_record(&mut self, cadence_ms: u64, target: u32, limit: u32) {
        self.record.attempts = self.attempts.iter().map(Attempt::to_record).collect();
        self.record.caller_ringing_at = self.caller_ringing.map(|s| s.wall);
        if let Some(answered) = self.answered {
            self.record.answered_at = Some(answered.wall);
            let ring_ms = self.caller_ringing.map_or(0, |r| r.ms_until(&answered));
            let rings = super::record::rings_for(ring_ms, cadence_ms as i64);
            self.record.caller_ring_ms = Some(ring_ms);
            self.record.rings = Some(rings);
            self.record.three_ring_ok = Some(rings <= i64::from(target));
            self.record.over_limit = Some(rings > i64::from(limit));
        }
    }

    /// Ends the call's record: the caller's ring time for abandoned calls, talk time
    /// for answered ones.
    pub fn finish(&mut self, outcome: CallOutcome, side: HangupSide) {
        let now = Stamp::now();
        self.phase = Phase::Ended;
        self.record.ended_at = Some(now.wall);
        // The agent hung up first even when the caller then took the survey; QA tells a
        // hand-off to the survey from a hang-up by the survey score being asked for.
        self.record.hangup_side = Some(if self.agent_left.is_some() {
            HangupSide::Agent
        } else {
            side
        });
        self.record.outcome = match (self.record.outcome, outcome) {
            (CallOutcome::Answered, _) => CallOutcome::Answered,
            (_, o) => o,
        };
        match self.answered {
            Some(answered) => {
                let talk_end = self.agent_left.unwrap_or(now);
                self.record.talk_ms = Some(answered.ms_until(&talk_end));
            }
            None => self.record.caller_ring_ms = self.caller_ringing.map(|r| r.ms_until(&now)),
        }
        for attempt in &mut self.attempts {
            attempt.finish(AttemptOutcome::Cancelled, None);
        }
        if let Some(survey) = self.survey.take() {
            survey.task.abort();
        }
        self.media.stop();
    }
}
