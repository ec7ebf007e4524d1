//! Ringing agents for a call: picking them, the agent leg's INVITE, its responses
//! (ring start, answer, refusal), ring-no-answer and max-wait timers, and the caller
//! giving up.

use super::*;
use crate::call::agents::AgentAction;

/// How long an agent claimed by another node is left out of this node's routing.
const CLAIMED_ELSEWHERE_BACKOFF: Duration = Duration::from_millis(500);

impl Controller {
    /// Rings the next agent(s) for a call that has none ringing. An agent claimed by
    /// another node is skipped (backed off) and the pick made again at once, at most once
    /// per agent of the queue.
    pub(super) async fn route(&mut self, key: u64) {
        let Some(queue_name) = self.calls.get(&key).map(|c| c.queue.clone()) else {
            return;
        };
        let rounds = self
            .config
            .queue(&queue_name)
            .map_or(1, |q| q.agents.len().max(1));
        for _ in 0..rounds {
            let refused_before = self.claims.as_ref().map_or(0, |c| c.refused());
            self.route_once(key).await;
            let refused_now = self.claims.as_ref().map_or(0, |c| c.refused());
            let rang = self
                .calls
                .get(&key)
                .is_none_or(|c| c.ringing_attempts() > 0);
            if rang || refused_now == refused_before {
                break;
            }
        }
    }

    async fn route_once(&mut self, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.phase != Phase::Routing || call.ringing_attempts() > 0 {
            return;
        }
        if call.callback.is_some() {
            // A callback rings its one agent; when that fails, the callback is over.
            return self
                .end_call(key, CallOutcome::NoAgent, HangupSide::System)
                .await;
        }
        // The config is shared, not the queue copied: a queue lists every agent, and this
        // runs for every call.
        let config = Arc::clone(&self.config);
        let Some(queue) = config.queue(&call.queue) else {
            return;
        };
        let cursor = self.cursors.entry(queue.name.clone()).or_default();
        let picks = pick_agents(
            queue.strategy,
            &queue.name,
            &self.board,
            &call.tried,
            cursor,
            Instant::now(),
        );
        for agent in picks {
            self.ring_agent(key, &agent, queue.ring_timeout_ms).await;
        }
    }

    pub(super) async fn route_waiting(&mut self) {
        let waiting: Vec<u64> = self
            .calls
            .values()
            .filter(|c| c.phase == Phase::Routing && c.ringing_attempts() == 0)
            .map(|c| c.key)
            .collect();
        for key in waiting {
            self.route(key).await;
        }
    }

    pub(super) fn agent_target(&self, agent: &str) -> Option<(Uri, Target)> {
        if let Some(binding) = self.registrar.binding(agent) {
            return Some((binding.contact.to_request_uri(), binding.target()));
        }
        if let Some(shared) = self.shared_target(agent) {
            return Some(shared);
        }
        self.fixed_contacts.get(agent).cloned()
    }

    pub(super) async fn ring_agent(&mut self, key: u64, agent: &str, ring_timeout_ms: u64) {
        let Some((uri, target)) = self.agent_target(agent) else {
            tracing::warn!(%agent, "agent has no reachable contact");
            return;
        };
        if let Some(claims) = self.claims.as_mut() {
            let Some(call) = self.calls.get(&key) else {
                return;
            };
            if !claims.claim(agent, &call.record.id).await {
                // Rung or talking on another node: out of this node's routing for a
                // moment; the routing tick tries the others (and this one again later).
                tracing::debug!(%agent, "agent is busy on another node");
                self.board
                    .back_off(agent, Instant::now() + CLAIMED_ELSEWHERE_BACKOFF);
                return;
            }
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let mut offer = match std::str::from_utf8(&call.caller_invite.body)
            .ok()
            .and_then(|b| Sdp::parse(b).ok())
        {
            Some(sdp) => sdp,
            None => return,
        };
        offer.anchor(self.media_ip, call.media.agent_port());
        let (host, _) = self.endpoint.local_hostport(target.protocol, target.addr);
        let mut invite = Request::new(Method::Invite, uri.clone());
        let caller = &call.record.caller;
        invite.headers.push(
            HeaderName::From,
            format!("<sip:{caller}@{host}>;tag={}", new_tag()),
        );
        invite.headers.push(HeaderName::To, format!("<{uri}>"));
        invite
            .headers
            .push(HeaderName::CallId, format!("{}@threering", random_token()));
        invite.headers.push(HeaderName::CSeq, "1 INVITE");
        invite.headers.push(
            HeaderName::Contact,
            format!(
                "<{}>",
                our_contact(&self.endpoint, target.protocol, target.addr)
            ),
        );
        invite.headers.push(
            HeaderName::Other("X-Threering-Call".into()),
            call.record.id.as_str(),
        );
        invite
            .headers
            .push(HeaderName::Other("X-Queue".into()), call.queue.as_str());
        for ticket in &call.record.tickets {
            invite
                .headers
                .push(HeaderName::Other("X-Ticket-ID".into()), ticket.as_str());
        }
        invite
            .headers
            .push(HeaderName::ContentType, "application/sdp");
        invite.body = offer.to_string().into();
        let Ok(tx) = self.endpoint.request(invite.clone(), target).await else {
            return;
        };
        let call = self.calls.get_mut(&key).expect("checked above");
        let index = call.attempts.len();
        call.attempts.push(Attempt {
            agent: agent.to_owned(),
            tx,
            invite,
            target,
            invited: Stamp::now(),
            ring_started: None,
            ended: None,
            outcome: AttemptOutcome::Ringing,
            sip_status: None,
            open: true,
        });
        call.tried.insert(agent.to_owned());
        self.clients
            .insert(tx, Purpose::Attempt { call: key, index });
        self.board.ringing(agent);
        tracing::info!(call = %call.record.id, %agent, "ringing agent");
        self.timer(
            Duration::from_millis(ring_timeout_ms),
            Timer::RingTimeout {
                call: key,
                attempt: index,
            },
        );
    }

    pub(super) async fn on_response(&mut self, tx: ClientTx, resp: Response) {
        let Some(purpose) = self.clients.get(&tx).copied() else {
            return;
        };
        if resp.status >= 200 {
            self.clients.remove(&tx);
        }
        match purpose {
            Purpose::Attempt { call, index } => self.on_attempt_response(call, index, resp).await,
            Purpose::Customer { call } => self.on_customer_response(call, resp).await,
            Purpose::Bye => {}
            Purpose::Orphan { index } => {
                let Some((invite, target)) = self.orphans.remove(&index) else {
                    return;
                };
                if resp.status < 200 {
                    self.orphans.insert(index, (invite, target));
                } else if resp.is_success() {
                    self.release_late_answer(&invite, target, &resp).await;
                }
            }
            Purpose::Relay {
                call,
                tx: server_tx,
                to_agent,
            } => {
                self.on_relay_response(call, server_tx, to_agent, resp)
                    .await
            }
        }
    }

    pub(super) async fn on_attempt_response(&mut self, key: u64, index: usize, resp: Response) {
        let Some(call) = self.calls.get_mut(&key) else {
            // The call is gone: a late 2xx from an agent must still be ACKed and ended.
            return;
        };
        let status = resp.status;
        if status < 200 {
            if status == 100 {
                return;
            }
            let attempt = &mut call.attempts[index];
            let starts_ringing = attempt.open && attempt.ring_started.is_none();
            if starts_ringing {
                attempt.ring_started = Some(Stamp::now());
            }
            let inbound = call.caller_tx;
            let caller_starts = matches!(
                (call.caller_ringing, call.phase, inbound),
                (None, Phase::Routing, Some(_))
            );
            if caller_starts {
                call.caller_ringing = Some(Stamp::now());
            }
            if starts_ringing {
                let agent = call.attempts[index].agent.clone();
                cti::ringing(
                    &self.events,
                    call,
                    Some(&agent),
                    self.config.rings.cadence_ms,
                );
            }
            if let (true, Some(caller_tx)) = (caller_starts, inbound) {
                let mut ringing =
                    response_to(&call.caller_invite, 180, None, Some(&call.caller_tag));
                let contact = our_contact(
                    &self.endpoint,
                    call.caller_peer.protocol,
                    call.caller_peer.remote,
                );
                ringing
                    .headers
                    .push(HeaderName::Contact, format!("<{contact}>"));
                self.respond(caller_tx, ringing).await;
            }
            return;
        }
        if (200..300).contains(&status) {
            return self.on_agent_answer(key, index, resp).await;
        }
        // A final failure.
        let attempt = &mut call.attempts[index];
        let agent = attempt.agent.clone();
        if attempt.open {
            let outcome = match status {
                486 | 600 => AttemptOutcome::Busy,
                408 => AttemptOutcome::NoAnswer,
                487 => AttemptOutcome::Cancelled,
                503 if attempt.ring_started.is_none() => AttemptOutcome::Failed,
                _ => AttemptOutcome::Rejected,
            };
            attempt.finish(outcome, Some(status));
            let pause_after = self
                .config
                .queue(&call.queue)
                .map_or(0, |q| q.auto_pause_after);
            if self
                .board
                .attempt_failed(&agent, outcome == AttemptOutcome::NoAnswer, pause_after)
            {
                agent_control::auto_paused(&self.events, &self.board, &self.config, &agent);
                // The other nodes pause the agent too (`self.cluster`, not `share_command`:
                // `call` is borrowed).
                let reason = self.board.get(&agent).and_then(|a| a.pause_reason.clone());
                if let (Some(link), Some(reason)) = (&self.cluster, reason) {
                    link.publish_command(&agent, &AgentAction::Pause { reason }, "system");
                }
            }
            if matches!(
                outcome,
                AttemptOutcome::Busy | AttemptOutcome::Rejected | AttemptOutcome::Failed
            ) {
                let retry = self.config.queue(&call.queue).map_or(5000, |q| q.retry_ms);
                self.board
                    .back_off(&agent, Instant::now() + Duration::from_millis(retry));
            }
            tracing::info!(call = %call.record.id, %agent, status, outcome = outcome.as_str(), "agent attempt failed");
        }
        self.route(key).await;
    }

    pub(super) async fn on_agent_answer(&mut self, key: u64, index: usize, resp: Response) {
        let call = self.calls.get_mut(&key).expect("caller checked");
        let attempt = &call.attempts[index];
        let dialog = Dialog::uac(&attempt.invite, &resp);
        let target = dialog
            .as_ref()
            .ok()
            .and_then(|d| target_for_uri(d.next_hop()))
            .unwrap_or(attempt.target);
        let invite_seq = attempt.invite.cseq().map_or(1, |c| c.seq);
        let Ok(mut dialog) = dialog else {
            tracing::warn!("agent's 200 OK does not form a dialog");
            return;
        };
        // Every 2xx is acknowledged, even one we do not want.
        let _ = self.endpoint.ack(dialog.ack(invite_seq), target).await;
        let call = self.calls.get_mut(&key).expect("caller checked");
        if call.attempts[index].outcome == AttemptOutcome::Answered {
            // A retransmitted 2xx from the agent who answered (our ACK was lost): the
            // ACK above was all it needed.
            return;
        }
        if call.phase != Phase::Routing || !call.attempts[index].open {
            // Another agent won (ring-all race) or the caller left: release this one.
            let bye = dialog.request(Method::Bye);
            if let Ok(tx) = self.endpoint.request(bye, target).await {
                self.clients.insert(tx, Purpose::Bye);
            }
            let agent = call.attempts[index].agent.clone();
            call.attempts[index].finish(AttemptOutcome::Cancelled, Some(resp.status));
            self.board
                .call_ended(&agent, Instant::now(), Duration::ZERO);
            return;
        }
        if call.callback.is_some() {
            return self
                .callback_agent_answered(key, index, dialog, target, resp)
                .await;
        }
        let now = Stamp::now();
        call.attempts[index].finish(AttemptOutcome::Answered, Some(resp.status));
        call.answered = Some(now);
        call.phase = Phase::Connected;
        let agent = call.attempts[index].agent.clone();
        call.record.agent = Some(agent.clone());
        call.record.outcome = CallOutcome::Answered;
        // Cancel everyone else still ringing for this call.
        let losers = call.close_open_attempts();
        // Media: the agent's answer tells where its RTP goes; the caller gets the
        // same answer anchored on our caller-facing port.
        let agent_sdp = std::str::from_utf8(&resp.body)
            .ok()
            .and_then(|b| Sdp::parse(b).ok());
        call.media
            .set_agent_remote(agent_sdp.as_ref().and_then(Sdp::audio_destination));
        // The caller is answered with the agent's codecs: the first G.711 one is what
        // prompts are played in.
        call.caller_codec = agent_sdp.as_ref().and_then(super::callback::first_g711);
        if call.recording_wanted {
            let offer = std::str::from_utf8(&call.caller_invite.body)
                .ok()
                .and_then(|b| Sdp::parse(b).ok());
            start_recording(
                call,
                &self.config.store.recordings,
                [offer.as_ref(), agent_sdp.as_ref()],
            );
        }
        let mut answer = agent_sdp.unwrap_or_else(|| {
            Sdp::parse(std::str::from_utf8(&call.caller_invite.body).unwrap_or(""))
                .expect("offer parsed at call start")
        });
        answer.anchor(self.media_ip, call.media.caller_port());
        let mut ok = response_to(&call.caller_invite, 200, None, Some(&call.caller_tag));
        let contact = our_contact(
            &self.endpoint,
            call.caller_peer.protocol,
            call.caller_peer.remote,
        );
        ok.headers.push(HeaderName::Contact, format!("<{contact}>"));
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = answer.to_string().into();
        call.caller_dialog = Dialog::uas(&call.caller_invite, &ok, contact).ok();
        self.by_call_id.insert(dialog.id.call_id.clone(), key);
        call.agent_dialog = Some((dialog, target));
        let rings = &self.config.rings;
        call.sync_record(rings.cadence_ms, rings.target, rings.limit);
        let caller_tx = call.caller_tx.expect("an inbound call");
        let ring_s = call.record.caller_ring_ms.unwrap_or(0) as f64 / 1000.0;
        let violation = call.record.three_ring_ok == Some(false);
        let record = call.record.clone();
        let queue = call.queue.clone();
        self.respond(caller_tx, ok).await;
        cti::answered(&self.events, &record, self.config.rings.target);
        tracing::info!(call = %record.id, %agent, rings = record.rings, caller_ring_ms = record.caller_ring_ms, "answered");
        crate::metrics::agent_answered(&queue, &agent, ring_s, violation);
        self.board.answered(&agent);
        self.cancel_attempts(losers).await;
        self.store.save(record).await;
    }

    /// Sends CANCEL for attempts closed by `Call::close_open_attempts` and frees their
    /// agents.
    pub(super) async fn cancel_attempts(&mut self, attempts: Vec<(ClientTx, String)>) {
        for (tx, agent) in attempts {
            let _ = self.endpoint.cancel(tx).await;
            self.board.attempt_failed(&agent, false, 0);
        }
    }

    /// An agent INVITE got no response at all (or the transport failed).
    pub(super) async fn attempt_failed(&mut self, key: u64, index: usize) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(attempt) = call.attempts.get_mut(index) else {
            return;
        };
        if attempt.open {
            attempt.finish(AttemptOutcome::Failed, None);
            let agent = attempt.agent.clone();
            tracing::warn!(call = %call.record.id, %agent, "agent unreachable");
            self.board.attempt_failed(&agent, false, 0);
            let retry = self.config.queue(&call.queue).map_or(5000, |q| q.retry_ms);
            self.board
                .back_off(&agent, Instant::now() + Duration::from_millis(retry));
        }
        self.route(key).await;
    }

    /// ACKs and hangs up a 2xx that arrived for a call already gone.
    pub(super) async fn release_late_answer(
        &mut self,
        invite: &Request,
        target: Target,
        resp: &Response,
    ) {
        let Ok(mut dialog) = Dialog::uac(invite, resp) else {
            return;
        };
        let target = target_for_uri(dialog.next_hop()).unwrap_or(target);
        let seq = invite.cseq().map_or(1, |c| c.seq);
        let _ = self.endpoint.ack(dialog.ack(seq), target).await;
        let bye = dialog.request(Method::Bye);
        if let Ok(tx) = self.endpoint.request(bye, target).await {
            self.clients.insert(tx, Purpose::Bye);
        }
    }

    pub(super) async fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::CustomerTimeout { call } => self.customer_timeout(call).await,
            Timer::SurveyDone { call: key, score } => {
                let Some(call) = self.calls.get_mut(&key) else {
                    return;
                };
                if call.phase != Phase::Survey {
                    return;
                }
                call.record.survey_score = score.map(i64::from);
                call.survey = None;
                let result = if score.is_some() {
                    "scored"
                } else {
                    "no_score"
                };
                cti::survey_completed(&self.events, &call.record, result);
                tracing::info!(call = %call.record.id, score = ?score, "survey finished");
                self.hang_up(key, HangupSide::System, Some(false)).await;
            }
            Timer::RingTimeout {
                call: key,
                attempt: index,
            } => {
                let Some(call) = self.calls.get_mut(&key) else {
                    return;
                };
                let Some(attempt) = call.attempts.get_mut(index) else {
                    return;
                };
                if !attempt.open || call.phase != Phase::Routing {
                    return;
                }
                attempt.finish(AttemptOutcome::NoAnswer, None);
                let (tx, agent) = (attempt.tx, attempt.agent.clone());
                let pause_after = self
                    .config
                    .queue(&call.queue)
                    .map_or(0, |q| q.auto_pause_after);
                tracing::info!(call = %call.record.id, %agent, "ring-no-answer");
                let _ = self.endpoint.cancel(tx).await;
                if self.board.attempt_failed(&agent, true, pause_after) {
                    agent_control::auto_paused(&self.events, &self.board, &self.config, &agent);
                }
                self.route(key).await;
            }
            Timer::MaxWait {
                call: key,
                generation,
            } => {
                let Some(call) = self.calls.get_mut(&key) else {
                    return;
                };
                if call.phase != Phase::Routing || call.wait_generation != generation {
                    return;
                }
                let overflow = self
                    .config
                    .queue(&call.queue)
                    .and_then(|q| q.overflow.clone());
                let ringing = call.close_open_attempts();
                self.cancel_attempts(ringing).await;
                let call = self.calls.get_mut(&key).expect("present");
                let config = Arc::clone(&self.config);
                match overflow.and_then(|o| config.queue(&o)) {
                    Some(next) => {
                        tracing::info!(call = %call.record.id, from = %call.queue, to = %next.name, "overflow");
                        call.queue = next.name.clone();
                        call.record.queue = Some(next.name.clone());
                        call.tried.clear();
                        call.wait_generation += 1;
                        let generation = call.wait_generation;
                        self.timer(
                            Duration::from_millis(next.max_wait_ms),
                            Timer::MaxWait {
                                call: key,
                                generation,
                            },
                        );
                        self.route(key).await;
                    }
                    None => {
                        let resp = response_to(
                            &call.caller_invite,
                            480,
                            Some("Temporarily Unavailable: no agent answered"),
                            Some(&call.caller_tag),
                        );
                        if let Some(caller_tx) = call.caller_tx {
                            self.respond(caller_tx, resp).await;
                        }
                        self.end_call(key, CallOutcome::NoAgent, HangupSide::System)
                            .await;
                    }
                }
            }
        }
    }

    /// The caller cancelled while ringing (the endpoint already answered 487).
    pub(super) async fn abandon(&mut self, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.phase != Phase::Routing {
            return;
        }
        let ringing = call.close_open_attempts();
        self.cancel_attempts(ringing).await;
        self.end_call(key, CallOutcome::Abandoned, HangupSide::Caller)
            .await;
    }
}

/// Starts recording an answered call into `root/YYYY/MM/DD/<id>.wav`. A recording that
/// cannot start (disk full, permissions) leaves the call unrecorded, with an error in the
/// log: the call itself goes on.
pub(super) fn start_recording(call: &mut Call, root: &std::path::Path, sdps: [Option<&Sdp>; 2]) {
    use crate::recording::{recording_path, Codec, Recorder, RecorderConfig};
    let today = chrono::Utc::now().date_naive();
    let path = recording_path(root, today, &call.record.id);
    let mut config = RecorderConfig::new(&path);
    // Dynamic payload types named PCMU/PCMA in either side's SDP decode too.
    for sdp in sdps.into_iter().flatten() {
        for (pt, encoding) in sdp.audio_formats() {
            let codec = encoding
                .as_deref()
                .and_then(|e| e.split('/').next())
                .and_then(Codec::from_encoding_name);
            if let Some(codec) = codec {
                if !config.codecs.iter().any(|(p, _)| *p == pt) {
                    config.codecs.push((pt, codec));
                }
            }
        }
    }
    match Recorder::start(config) {
        Ok((recorder, tap)) => {
            call.media.set_tap(Some(tap));
            call.record.recording_path = path
                .strip_prefix(root)
                .ok()
                .map(|p| p.to_string_lossy().into_owned());
            call.recorder = Some(recorder);
        }
        Err(e) => {
            tracing::error!(call = %call.record.id, error = %e, "recording failed to start: the call goes on unrecorded");
            crate::metrics::recording_failed();
            crate::alarms::raise(
                crate::alarms::Alarm::RecordingsFailing,
                format!("call {}: {e}", call.record.id),
            );
        }
    }
}
